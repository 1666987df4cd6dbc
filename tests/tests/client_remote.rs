//! `coffer-remote` (the client's transport) against a real `coffer serve`
//! on loopback: round trips, interrupted uploads, relative and absolute
//! paths, OpenSSH's host-key rules with `known_hosts` files written here
//! (and hashed by the real `ssh-keygen -H`), and an append-only key.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use coffer_remote::{Remote, RemoteError, SshOptions};
use coffer_tests::{Client, Coffer, Options, coffer_bin, run_ok, text};

fn options(c: &Client) -> SshOptions {
    let mut o = SshOptions::for_home(&c.home, &c.user);
    // Only the files written here: the machine's own known_hosts is not
    // part of the test.
    o.known_hosts.truncate(1);
    o
}

fn url(c: &Client, path: &str) -> String {
    format!("sftp://{}@127.0.0.1:{}{path}", c.user, c.port)
}

fn open(c: &Client, path: &str, o: &SshOptions) -> Box<dyn Remote> {
    coffer_remote::open(&url(c, path), o).unwrap_or_else(|e| panic!("open {path}: {e}"))
}

fn open_err(c: &Client, o: &SshOptions) -> RemoteError {
    match coffer_remote::open(&url(c, "/x"), o) {
        Ok(_) => panic!("connected, but must have refused"),
        Err(e) => e,
    }
}

fn get(r: &dyn Remote, name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    r.get(name).unwrap_or_else(|e| panic!("get {name}: {e}")).read_to_end(&mut v).expect("read");
    v
}

fn sorted(r: &dyn Remote) -> Vec<(String, u64)> {
    let mut v: Vec<_> = r.list().expect("list").into_iter().map(|e| (e.name, e.size)).collect();
    v.sort();
    v
}

/// Bytes no two offsets of which repeat within 251, so misplaced blocks show.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn fingerprint(pub_file: &Path) -> String {
    let out = run_ok(Command::new("ssh-keygen").arg("-lf").arg(pub_file));
    String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).expect("fingerprint").to_string()
}

#[test]
fn put_list_get_delete_round_trips() {
    let server = Coffer::start();
    let c = server.client("alice");
    let r = open(&c, "/backups/laptop", &options(&c));
    r.create_dir().expect("mkdir -p");
    r.create_dir().expect("mkdir -p of what exists");
    let files = [("empty", Vec::new()), ("one", vec![42]), ("five", pattern(5 << 20))];
    for (name, data) in &files {
        assert_eq!(r.put(name, &mut &data[..]).expect("put"), data.len() as u64);
    }
    let area = server.area("alice").join("backups/laptop");
    for (name, data) in &files {
        assert_eq!(&get(&*r, name), data, "{name} via get");
        assert_eq!(&std::fs::read(area.join(name)).expect("on disk"), data, "{name} on disk");
    }
    assert_eq!(sorted(&*r), vec![("empty".into(), 0), ("five".into(), 5 << 20), ("one".into(), 1)]);
    // A download abandoned halfway does not disturb the session.
    let mut partial = r.get("five").expect("get");
    let mut head = vec![0u8; 1000];
    partial.read_exact(&mut head).expect("head");
    drop(partial);
    r.put("one", &mut &b"replaced"[..]).expect("replace");
    assert_eq!(get(&*r, "one"), b"replaced");
    for (name, _) in &files {
        r.delete(name).expect("delete");
    }
    assert!(sorted(&*r).is_empty());
    let err = r.delete("one").expect_err("already gone");
    assert!(err.is_not_found(), "{err}");
    let Err(err) = r.get("one") else { panic!("a deleted file opened") };
    assert!(err.is_not_found() && err.to_string().contains("one"), "{err}");
}

#[test]
fn an_interrupted_put_leaves_no_complete_looking_name() {
    struct DiesAfter(usize);
    impl Read for DiesAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("volume producer died"));
            }
            let n = self.0.min(buf.len());
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }
    let server = Coffer::start();
    let c = server.client("alice");
    let r = open(&c, "/b", &options(&c));
    r.create_dir().expect("mkdir");
    let name = "duplicity-full.20240101T000000Z.vol1.difftar.gpg";
    let err = r.put(name, &mut DiesAfter(3 << 20)).expect_err("source fails");
    assert!(err.to_string().contains("volume producer died"), "{err}");
    assert!(r.list().expect("list").is_empty());
    let on_disk: Vec<_> = std::fs::read_dir(server.area("alice").join("b")).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert!(on_disk.is_empty(), "{on_disk:?}");

    // The connection itself dies mid-upload (the whole server is killed,
    // so no CLOSE ever arrives): the server drops the upload.
    struct Slow(usize);
    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let n = self.0.min(buf.len()).min(64 << 10);
            buf[..n].fill(2);
            self.0 -= n;
            Ok(n)
        }
    }
    let r2 = open(&c, "/b", &options(&c));
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            run_ok(Command::new("kill").args(["-KILL", &server.pid().to_string()]));
        });
        // 64 MiB at 64 KiB per 5 ms takes five seconds: the kill comes first.
        let msg = r2.put(name, &mut Slow(64 << 20)).expect_err("the server died").to_string();
        assert!(msg.contains("closed") || msg.contains("SFTP with"), "{msg}");
    });
    let names: Vec<String> = std::fs::read_dir(server.area("alice").join("b"))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n == name), "{names:?}");
}

#[test]
fn relative_and_absolute_paths() {
    let server = Coffer::start();
    let c = server.client("alice");
    let o = options(&c);
    // scp://u@h/rel is relative to the login directory, scp://u@h//abs absolute;
    // on Coffer both end in the user's area, whose root is "/".
    for (path, dir) in [("/rel/dir", "rel/dir"), ("//abs/dir", "abs/dir"), ("", ""), ("/", "")] {
        let r = open(&c, path, &o);
        r.create_dir().expect("mkdir -p");
        r.put("f", &mut &path.as_bytes()[..]).expect("put");
        let on_disk = std::fs::read(server.area("alice").join(dir).join("f")).expect("on disk");
        assert_eq!(on_disk, path.as_bytes(), "{path:?}");
    }
    let url = format!("scp://alice@127.0.0.1:{}/rel/dir", c.port);
    let r = coffer_remote::open(&url, &o).expect("scp:// means the same");
    assert_eq!(get(&*r, "f"), b"/rel/dir");
}

#[test]
fn unknown_changed_revoked_and_hashed_host_keys() {
    let server = Coffer::start();
    let c = server.client("alice");
    let host_pub = server.state.join("host-keys/ssh_host_ed25519_key.pub");
    let host_fp = fingerprint(&host_pub);
    let host_key = std::fs::read_to_string(&host_pub).expect("host key");
    let host_key = host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let home = tempfile::tempdir().expect("temp HOME");
    std::fs::create_dir(home.path().join(".ssh")).expect(".ssh");
    std::fs::copy(c.home.join(".ssh/id_ed25519"), home.path().join(".ssh/id_ed25519")).expect("key");
    let kh = home.path().join(".ssh/known_hosts");
    let mut o = SshOptions::for_home(home.path(), "alice");
    o.known_hosts.truncate(1);
    let name = format!("[127.0.0.1]:{}", c.port);

    // Unknown: no file at all, then a file naming other hosts.
    for contents in [None, Some(format!("otherhost {host_key}\n[127.0.0.1]:1 {host_key}\n"))] {
        if let Some(t) = &contents {
            std::fs::write(&kh, t).expect("known_hosts");
        }
        let err = open_err(&c, &o);
        let msg = err.to_string();
        assert!(matches!(err, RemoteError::HostKeyUnknown { .. }), "{msg}");
        assert!(msg.contains(&host_fp) && msg.contains(&format!("{name} {host_key}")), "{msg}");
    }

    // Changed: another ed25519 key on record for this host and port.
    let other = home.path().join("other");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"]).arg(&other));
    let other_key = std::fs::read_to_string(other.with_extension("pub")).expect("other");
    std::fs::write(&kh, format!("# keys\n{name} {other_key}")).expect("known_hosts");
    let err = open_err(&c, &o);
    let msg = err.to_string();
    assert!(matches!(err, RemoteError::HostKeyChanged { .. }), "{msg}");
    assert!(msg.contains(&host_fp) && msg.contains("CHANGED") && msg.contains("known_hosts:2"), "{msg}");

    // Revoked, even with the right key on record.
    std::fs::write(&kh, format!("{name} {host_key}\n@revoked * {host_key}\n")).expect("known_hosts");
    let err = open_err(&c, &o);
    assert!(matches!(err, RemoteError::HostKeyRevoked { .. }), "{err}");

    // The right key, then the same file hashed by OpenSSH's own tool.
    std::fs::write(&kh, format!("{name} {host_key}\n")).expect("known_hosts");
    open(&c, "/x", &o).create_dir().expect("trusted plain entry");
    run_ok(Command::new("ssh-keygen").arg("-H").arg("-f").arg(&kh));
    let hashed = std::fs::read_to_string(&kh).expect("hashed");
    assert!(hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"), "{hashed}");
    open(&c, "/x", &o).create_dir().expect("trusted hashed entry");
}

#[test]
fn keys_as_openssh_finds_them() {
    let server = Coffer::start();
    let c = server.client("alice");
    // A key the server does not know, chosen with --ssh-key: refused, named.
    let stranger = c.home.join("stranger");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"]).arg(&stranger));
    let mut o = options(&c);
    o.key_file = Some(stranger.clone());
    let msg = open_err(&c, &o).to_string();
    assert!(msg.contains("logging in as alice") && msg.contains("stranger"), "{msg}");

    // An encrypted key: without its passphrase the error says what to do;
    // with it, the login works.
    let locked = c.home.join("locked");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "secret words", "-C", "", "-f"]).arg(&locked));
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&server.state).args(["user", "add", "alice", "--key"]).arg(locked.with_extension("pub")));
    o.key_file = Some(locked);
    let msg = open_err(&c, &o).to_string();
    assert!(msg.contains("is encrypted") && msg.contains("ssh-agent"), "{msg}");
    o.passphrase = Some("secret words".into());
    open(&c, "/x", &o).create_dir().expect("login with the passphrase");

    // ssh-agent (the real one) holding a key under a name no default
    // lookup finds: the login goes through the agent.
    let agent_key = c.home.join("agent-only");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ecdsa", "-N", "", "-C", "", "-f"]).arg(&agent_key));
    run_ok(Command::new(coffer_bin()).arg("--state").arg(&server.state).args(["user", "add", "alice", "--key"]).arg(agent_key.with_extension("pub")));
    let sock = c.home.join("agent.sock");
    let mut agent = Command::new("ssh-agent").arg("-D").arg("-a").arg(&sock).stdout(std::process::Stdio::null()).spawn().expect("ssh-agent");
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run_ok(Command::new("ssh-add").arg("-q").arg(&agent_key).env("SSH_AUTH_SOCK", &sock));
    let mut o = SshOptions::for_home(&c.home, "alice");
    o.known_hosts.truncate(1);
    o.ssh_dir = None;
    o.agent = Some(sock);
    let result = coffer_remote::open(&url(&c, "/x"), &o).map(|r| r.create_dir());
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(matches!(result, Ok(Ok(()))), "login through ssh-agent: {:?}", result.map(|_| ()));
}

#[test]
fn an_append_only_key_can_put_but_not_delete() {
    let server = Coffer::start_with(Options { users: vec!["alice"], ..Options::default() });
    let c = server.client("alice");
    let append = c.home.join(".ssh/id_append");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"]).arg(&append));
    let out = run_ok(
        Command::new(coffer_bin())
            .arg("--state")
            .arg(&server.state)
            .args(["user", "add", "alice", "--key"])
            .arg(append.with_extension("pub"))
            .args(["--profile", "append-only"]),
    );
    let _ = text(&out);
    let mut o = options(&c);
    o.key_file = Some(append);
    let r = open(&c, "/backups", &o);
    r.create_dir().expect("mkdir");
    let data = pattern(1 << 20);
    r.put("vol1", &mut &data[..]).expect("append-only put (temporary renamed into place)");
    drop(r);
    // A later session (the next backup run) may not delete or replace it.
    let r = open(&c, "/backups", &o);
    assert_eq!(get(&*r, "vol1"), data);
    let msg = r.delete("vol1").expect_err("delete refused").to_string();
    assert!(msg.contains("deleting vol1") && msg.contains("permission denied") && msg.contains("append-only"), "{msg}");
    let msg = r.put("vol1", &mut &b"other"[..]).expect_err("replace refused").to_string();
    assert!(msg.contains("append-only"), "{msg}");
    assert_eq!(std::fs::read(server.area("alice").join("backups/vol1")).expect("kept"), data);
    assert_eq!(r.list().expect("list").len(), 1, "no temporaries left visible");
}

/// Throughput on loopback, `coffer-remote` against OpenSSH's `sftp` on the
/// same server. It moves 4 GiB, so it runs when `COFFER_MEASURE` is set
/// (`scripts/test` sets it):
/// `COFFER_MEASURE=1 cargo test -p coffer-tests --test client_remote -- --nocapture throughput`.
#[test]
fn throughput_against_openssh_sftp() {
    if std::env::var_os("COFFER_MEASURE").is_none() {
        eprintln!("throughput_against_openssh_sftp: skipped, set COFFER_MEASURE=1 to measure");
        return;
    }
    const SIZE: usize = 1 << 30;
    let server = Coffer::start();
    let c = server.client("alice");
    let src = c.home.join("big.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&src).expect("create");
        let block: Vec<u8> = (0..1 << 20).map(|_| rand_byte()).collect();
        for i in 0..SIZE >> 20 {
            let mut b = block.clone();
            b[0] = i as u8;
            f.write_all(&b).expect("write");
        }
    }
    let mb = SIZE as f64 / 1e6;
    let r = open(&c, "/bench", &options(&c));
    r.create_dir().expect("mkdir");
    let t = Instant::now();
    r.put("ours.bin", &mut std::fs::File::open(&src).expect("open")).expect("put");
    let put = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let n = std::io::copy(&mut r.get("ours.bin").expect("get"), &mut std::io::sink()).expect("get");
    let get = t.elapsed().as_secs_f64();
    assert_eq!(n as usize, SIZE);

    let t = Instant::now();
    let out = c.sftp_batch(&format!("put {} bench/openssh.bin\n", src.display()));
    let sftp_put = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", text(&out));
    let t = Instant::now();
    let out = c.sftp_batch("get bench/openssh.bin /dev/null\n");
    let sftp_get = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", text(&out));
    println!("1 GiB on loopback, MB/s: coffer-remote put {:.0} get {:.0}; OpenSSH sftp put {:.0} get {:.0}", mb / put, mb / get, mb / sftp_put, mb / sftp_get);
}

/// Incompressible-looking bytes without a random-number crate.
fn rand_byte() -> u8 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) });
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 24) as u8
    })
}
