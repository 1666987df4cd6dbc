//! Harness for end-to-end tests: starts `coffer serve` on a free loopback
//! port with a fresh state directory and users, and prepares a client home
//! (keys, known_hosts, ssh config) so that stock clients connect unchanged.
//!
//! The `coffer` binary is found next to the test executable's target
//! directory (`scripts/test` builds it first), or at `$COFFER_BIN`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub mod qemu;
pub mod sinks;
pub mod tree;

/// A throw-away GnuPG key in `home/.gnupg`: passphrase-less ed25519 for
/// signing with a cv25519 encryption subkey. Returns its fingerprint.
pub fn gpg_key(home: &Path) -> String {
    let gnupg = home.join(".gnupg");
    std::fs::create_dir_all(&gnupg).expect("gnupg home");
    std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).expect("chmod gnupg home");
    let gpg = |args: &[&str]| {
        run_ok(Command::new("gpg").env("GNUPGHOME", &gnupg).args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""]).args(args))
    };
    gpg(&["--quick-gen-key", "Coffer Test <test@coffer.invalid>", "ed25519", "sign,cert", "never"]);
    let listing = String::from_utf8_lossy(&gpg(&["--list-keys", "--with-colons"]).stdout).into_owned();
    let fpr = listing
        .lines()
        .find_map(|l| l.strip_prefix("fpr:").map(|r| r.trim_matches(':').to_string()))
        .expect("fingerprint");
    gpg(&["--quick-add-key", &fpr, "cv25519", "encr", "never"]);
    fpr
}

/// `coffer --state STATE ARGS…`, which must succeed.
pub fn coffer_ok(state: &Path, args: &[&str]) -> Output {
    run_ok(Command::new(coffer_bin()).arg("--state").arg(state).args(args))
}

/// Path of the `coffer` binary under test.
pub fn coffer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("COFFER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/coffer
    let profile_dir = exe.parent().and_then(Path::parent).expect("target directory");
    let bin = profile_dir.join("coffer");
    assert!(bin.exists(), "{} is missing: build it first (`cargo build -p coffer`, done by scripts/test)", bin.display());
    bin
}

/// Runs a command, panicking with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running `coffer serve` with its own state directory.
pub struct Coffer {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub state: PathBuf,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
    /// Descriptor limit (soft and hard, `ulimit -n`) the server starts
    /// under from the next [`Coffer::spawn`] on.
    pub nofile: Option<u64>,
}

/// Options for a server under test.
#[derive(Default)]
pub struct Options {
    /// Extra TOML appended to coffer.toml (sections included).
    pub config_extra: String,
    pub users: Vec<&'static str>,
}

impl Coffer {
    /// A server with users `alice` and `bob`.
    pub fn start() -> Self {
        Self::start_with(Options { users: vec!["alice", "bob"], ..Options::default() })
    }

    pub fn start_with(opts: Options) -> Self {
        let dir = tempfile::Builder::new().prefix("coffer-test-").tempdir().expect("tempdir");
        // Session workers run as each user's uid and must traverse to their area.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod tempdir");
        let root = dir.path().to_path_buf();
        let state = root.join("state");
        run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).arg("init"));
        if !opts.config_extra.is_empty() {
            let path = state.join("coffer.toml");
            let mut text = std::fs::read_to_string(&path).expect("read coffer.toml");
            text = merge_toml(&text, &opts.config_extra);
            std::fs::write(&path, text).expect("write coffer.toml");
        }
        for user in &opts.users {
            let home = root.join("clients").join(user);
            std::fs::create_dir_all(home.join(".ssh")).expect("client home");
            let key = home.join(".ssh/id_ed25519");
            run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", user, "-f"]).arg(&key));
            run_ok(Command::new(coffer_bin()).arg("--state").arg(&state).args(["user", "add", user, "--key"]).arg(key.with_extension("pub")));
        }
        let mut server = Coffer { _dir: dir, root, state, port: 0, child: None, log: PathBuf::new(), nofile: None };
        server.spawn();
        server
    }

    /// Starts (or restarts) the server process on a free port.
    pub fn spawn(&mut self) {
        let runs = std::fs::read_dir(&self.root).map(|d| d.count()).unwrap_or(0);
        let log = self.root.join(format!("serve-{runs}.log"));
        // prlimit sets the limit and execs the server, so the child is the server.
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(coffer_bin());
                c
            }
            None => Command::new(coffer_bin()),
        };
        let mut child = cmd
            .arg("--state")
            .arg(&self.state)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start coffer serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read listening line");
        let addr = line
            .trim()
            .strip_prefix("coffer: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from coffer serve: {line:?}; log: {}", std::fs::read_to_string(&log).unwrap_or_default()));
        self.port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        self.child = Some(child);
        self.log = log;
        for user in self.users() {
            self.write_client_config(&user);
        }
    }

    fn users(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("clients"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    fn write_client_config(&self, user: &str) {
        let home = self.root.join("clients").join(user);
        let host_pub = std::fs::read_to_string(self.state.join("host-keys/ssh_host_ed25519_key.pub")).expect("host key");
        std::fs::write(home.join(".ssh/known_hosts"), format!("[127.0.0.1]:{} {}", self.port, host_pub)).expect("known_hosts");
        let config = format!(
            "Host coffer 127.0.0.1\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {home}/.ssh/id_ed25519\n  IdentitiesOnly yes\n  UserKnownHostsFile {home}/.ssh/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n",
            port = self.port,
            home = home.display()
        );
        std::fs::write(home.join(".ssh/config"), config).expect("ssh config");
    }

    pub fn client(&self, user: &str) -> Client {
        let home = self.root.join("clients").join(user);
        Client { home, user: user.to_string(), port: self.port }
    }

    /// The user's data area on the server's disk.
    pub fn area(&self, user: &str) -> PathBuf {
        self.state.join("data").join(user)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("server running")
    }

    /// Sends SIGTERM and waits for the server to exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        run_ok(Command::new("kill").arg("-TERM").arg(child.id().to_string()));
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "coffer serve did not stop within 40s after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Coffer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- coffer serve log\n{}", self.log());
        }
    }
}

/// Appends `extra` to a TOML document, replacing keys of sections that exist.
fn merge_toml(base: &str, extra: &str) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    let mut section = String::new();
    for line in extra.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_string();
            continue;
        }
        let Some((key, _)) = t.split_once('=') else { continue };
        let key = key.trim();
        // Find the key within its section and replace it.
        let mut cur = String::new();
        let mut replaced = false;
        for l in &mut lines {
            let lt = l.trim().to_string();
            if lt.starts_with('[') {
                cur = lt;
                continue;
            }
            if cur == section && lt.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
                *l = t.to_string();
                replaced = true;
            }
        }
        assert!(replaced, "config key {section} {key} not found in defaults");
    }
    lines.join("\n") + "\n"
}

/// Stock duplicity as this client runs it against the appliance or a
/// server: its GnuPG home, the key `fpr` for encryption and signing, the
/// client's ssh config, 1 MiB volumes. Not yet started.
pub fn duplicity_command(client: &Client, fpr: &str, action: &[&str], tail: &[&str]) -> Command {
    let mut cmd = client.command("duplicity");
    cmd.env("GNUPGHOME", client.home.join(".gnupg"))
        .env("PASSPHRASE", "")
        .env("SIGN_PASSPHRASE", "")
        .args(action)
        .args(["--encrypt-key", fpr, "--sign-key", fpr])
        .arg(format!("--ssh-options=-F {}", client.ssh_config().display()))
        .args(["--num-retries", "2", "--volsize", "1", "-v", "warning"])
        .args(tail);
    cmd
}

/// One user's client side: a home directory with keys and ssh config.
pub struct Client {
    pub home: PathBuf,
    pub user: String,
    pub port: u16,
}

impl Client {
    pub fn ssh_config(&self) -> PathBuf {
        self.home.join(".ssh/config")
    }

    /// A command with HOME pointing at the client home and cwd there.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("HOME", &self.home).current_dir(&self.home);
        c
    }

    /// `sftp -b -` with the given batch; returns the output (status not checked).
    pub fn sftp_batch(&self, batch: &str) -> Output {
        let mut child = self
            .command("sftp")
            .arg("-F")
            .arg(self.ssh_config())
            .args(["-b", "-", "coffer"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sftp");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), batch.as_bytes()).expect("batch");
        drop(child.stdin.take());
        child.wait_with_output().expect("sftp output")
    }

    /// `ssh coffer CMD`.
    pub fn ssh(&self, remote: &str) -> Output {
        self.command("ssh").arg("-F").arg(self.ssh_config()).arg("coffer").arg(remote).output().expect("ssh")
    }

    pub fn ssh_with_stdin(&self, remote: &str, input: &[u8]) -> Output {
        let mut child = self
            .command("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .arg("coffer")
            .arg(remote)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), input).expect("stdin");
        drop(child.stdin.take());
        child.wait_with_output().expect("ssh output")
    }

    /// `scp -F config ARGS…`.
    pub fn scp(&self, args: &[&str]) -> Output {
        self.command("scp").arg("-F").arg(self.ssh_config()).args(args).output().expect("scp")
    }
}

/// Output as text, for assertions.
pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Reads a whole pipe, for helpers that stream.
pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}
