//! Boots the appliance image in QEMU the way a user would: the whole disk
//! through SeaBIOS or OVMF, or kernel + initramfs directly for speed, with
//! two blank data disks, SSH forwarded to a loopback port, the serial
//! console captured (and written to stdin on test images), and QMP for
//! power cuts and the power button.
//!
//! The image comes from `scripts/test`, which builds `out/test/` with the
//! fixture state and keys (see [`TestImage`]). KVM is used only when the CPU
//! advertises VMX/SVM and a probe boot works; otherwise TCG. Timeouts scale
//! with `COFFER_QEMU_TIMEOUT_MULT`. The serial log of a failed test is kept
//! under `target/qemu-logs/`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Client, run_ok};

/// The image and fixtures `scripts/test` prepares in `out/test/`.
pub struct TestImage {
    pub dir: PathBuf,
    pub image: PathBuf,
    pub boot_dir: PathBuf,
    /// The state directory the image was seeded from (`--state-from`).
    pub state: PathBuf,
    /// Private keys by user name: `admin` (from `--admin-key`) and `alice` (from the seeded state).
    pub keys: PathBuf,
}

impl TestImage {
    /// The image of a board (`scripts/build-test-image` builds all three).
    pub fn image_of(&self, board: Board) -> PathBuf {
        self.dir.join(format!("coffer-{}.img", board.name()))
    }

    /// The kernel, initramfs and command line of a board's image, for direct boots.
    pub fn boot_dir_of(&self, board: Board) -> PathBuf {
        self.dir.join(format!("coffer-{}-boot", board.name()))
    }

    pub fn get() -> &'static TestImage {
        static IMAGE: OnceLock<TestImage> = OnceLock::new();
        IMAGE.get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
            let dir = std::env::var_os("COFFER_TEST_IMAGE_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("out/test"));
            let image = dir.join("coffer-qemu-x86_64.img");
            assert!(
                image.exists(),
                "{} is missing: scripts/test builds it (scripts/build-image qemu-x86_64 --out-dir out/test --state-from out/test/state --admin-key out/test/keys/admin.pub)",
                image.display()
            );
            TestImage { boot_dir: dir.join("coffer-qemu-x86_64-boot"), state: dir.join("state"), keys: dir.join("keys"), image, dir }
        })
    }
}

/// How the guest is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// `-kernel vmlinux -initrd initrd.zst`: the fastest boot (PVH, no decompression).
    Direct,
    /// The whole disk image through SeaBIOS and syslinux.
    SeaBios,
    /// The whole disk image through OVMF and systemd-boot.
    Ovmf,
}

/// Which board's image, on the machine QEMU offers for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// `qemu-x86_64`: `pc`, virtio disks and NIC.
    Qemu,
    /// `generic-x86_64`: `q35` with AHCI disks and an e1000e NIC, like a Mini-ITX PC.
    Generic,
    /// `epia-ml8000a` on `qemu-system-i386 -cpu pentium3` (no SSE2), 512 MB, BIOS only: QEMU has no
    /// VIA NIC or 3ware card, so the test image adds `ata_piix` and `e1000` (`--modules-extra`).
    Epia,
}

impl Board {
    fn name(self) -> &'static str {
        match self {
            Board::Qemu => "qemu-x86_64",
            Board::Generic => "generic-x86_64",
            Board::Epia => "epia-ml8000a",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BootOptions {
    pub firmware: Firmware,
    /// Let the watchdog reset the guest (no `-no-reboot`).
    pub allow_reset: bool,
    pub board: Board,
    /// A sector of data disk 0 whose next read fails once (QEMU's blkdebug).
    pub read_error_d0: Option<u64>,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions { firmware: Firmware::Direct, allow_reset: false, board: Board::Qemu, read_error_d0: None }
    }
}

/// One guest at a time: two TCG guests on a 2-core machine slow each other
/// past any sensible timeout, and boot times would mean nothing.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Appends a measurement to `target/qemu-logs/boot-times.txt`, which
/// `scripts/test` prints at the end (test output is captured).
pub fn record_time(what: &str, took: Duration) {
    let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/qemu-logs");
    let _ = std::fs::create_dir_all(&logs);
    let line = format!("{what}: {:.1} s\n", took.as_secs_f64());
    eprint!("{line}");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(logs.join("boot-times.txt")) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Multiplies every timeout (slow hosts): `COFFER_QEMU_TIMEOUT_MULT`.
pub fn timeout(secs: u64) -> Duration {
    let mult: f64 = std::env::var("COFFER_QEMU_TIMEOUT_MULT").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    Duration::from_secs_f64(secs as f64 * mult)
}

/// `-accel kvm -cpu host` only where KVM can really run a guest; TCG otherwise.
fn accel_args() -> &'static [&'static str] {
    static ACCEL: OnceLock<&'static [&'static str]> = OnceLock::new();
    ACCEL.get_or_init(|| {
        if let Ok(forced) = std::env::var("COFFER_QEMU_ACCEL") {
            return if forced == "kvm" { &["-accel", "kvm", "-cpu", "host"] } else { &["-accel", "tcg", "-cpu", "max"] };
        }
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let virt = cpuinfo.lines().any(|l| l.starts_with("flags") && (l.contains(" vmx") || l.contains(" svm")));
        if virt && Path::new("/dev/kvm").exists() && kvm_probe() {
            &["-accel", "kvm", "-cpu", "host"]
        } else {
            eprintln!("qemu: KVM unavailable or unable to boot a kernel here; using TCG");
            &["-accel", "tcg", "-cpu", "max"]
        }
    })
}

/// Boots the test kernel under KVM for a few seconds and looks for its banner.
fn kvm_probe() -> bool {
    let img = TestImage::get();
    let child = Command::new("timeout")
        .args(["20", "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults", "-display", "none"])
        .args(["-no-reboot", "-serial", "stdio", "-kernel"])
        .arg(img.boot_dir.join("vmlinux"))
        .args(["-append", "console=ttyS0 panic=-1 loglevel=7 init=/nonexistent"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    child.map(|o| String::from_utf8_lossy(&o.stdout).contains("Linux version")).unwrap_or(false)
}

/// A running (or stopped) appliance with its own copies of the boot image and data disks.
pub struct Appliance {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub opts: BootOptions,
    qemu: Option<Child>,
    stdin: Option<ChildStdin>,
    serial: Arc<Mutex<String>>,
    /// Byte offset in the serial log up to which events were consumed.
    cursor: usize,
    /// The PS/2 keyboard's LED states as QEMU traced them, with arrival times.
    leds: Arc<Mutex<Vec<(Instant, u32)>>>,
    pub started: Instant,
}

impl Appliance {
    /// A freshly flashed boot disk and two blank 64 MiB data disks, powered on.
    pub fn boot(opts: BootOptions) -> Self {
        let mut a = Self::prepare(opts);
        a.start();
        a
    }

    /// The disks of [`Appliance::boot`], powered off (to change them first).
    pub fn prepare(opts: BootOptions) -> Self {
        let img = TestImage::get();
        let dir = tempfile::Builder::new().prefix("coffer-qemu-").tempdir().expect("tempdir");
        std::fs::copy(img.image_of(opts.board), dir.path().join("boot.img")).expect("copy image");
        for d in ["d0.img", "d1.img"] {
            let f = std::fs::File::create(dir.path().join(d)).expect("data disk");
            f.set_len(64 << 20).expect("size data disk");
        }
        Appliance { dir, port: 0, opts, qemu: None, stdin: None, serial: Arc::default(), cursor: 0, leds: Arc::default(), started: Instant::now() }
    }

    /// Starts QEMU on the existing disks (power on).
    pub fn start(&mut self) {
        let img = TestImage::get();
        let d = self.dir.path();
        self.port = free_port();
        let mut cmd = match self.opts.board {
            // Always emulated: the point is the old CPU model.
            Board::Epia => {
                let mut cmd = Command::new("qemu-system-i386");
                cmd.args(["-accel", "tcg", "-cpu", "pentium3"]);
                cmd
            }
            _ => {
                let mut cmd = Command::new("qemu-system-x86_64");
                cmd.args(accel_args());
                cmd
            }
        };
        cmd.args(["-m", "512", "-smp", "1", "-nodefaults", "-display", "none", "-serial", "stdio", "-monitor", "none"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", self.qmp_path().display()))
            .args(["-device", "i6300esb", "-action", "watchdog=reset"])
            // The keyboard LEDs stand for the front panel: QEMU reports each change on stderr.
            .args(["-trace", "ps2_set_ledstate"])
            .arg("-netdev")
            .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{}-:22", self.port));
        match self.opts.board {
            Board::Qemu => cmd.args(["-device", "virtio-net-pci,netdev=n0"]),
            Board::Generic => cmd.args(["-machine", "q35", "-device", "e1000e,netdev=n0"]),
            Board::Epia => cmd.args(["-device", "e1000,netdev=n0"]),
        };
        if !self.opts.allow_reset {
            cmd.arg("-no-reboot");
        }
        match self.opts.firmware {
            Firmware::Direct => {
                let boot_dir = img.boot_dir_of(self.opts.board);
                let cmdline = std::fs::read_to_string(boot_dir.join("cmdline")).expect("cmdline");
                cmd.arg("-kernel")
                    .arg(boot_dir.join("vmlinux"))
                    .arg("-initrd")
                    .arg(boot_dir.join("initrd.zst"))
                    .arg("-append")
                    .arg(format!("{} coffer.slot=a coffer.debug=1", cmdline.trim()));
            }
            Firmware::SeaBios => {}
            Firmware::Ovmf => {
                cmd.args(["-bios", "/usr/share/ovmf/OVMF.fd"]);
            }
        }
        for (n, (id, file, serial)) in [("boot", "boot.img", "boot0"), ("d0", "d0.img", "disk0"), ("d1", "d1.img", "disk1")].into_iter().enumerate() {
            let bootindex = if id == "boot" && self.opts.firmware != Firmware::Direct { ",bootindex=0" } else { "" };
            let device = match self.opts.board {
                Board::Qemu => format!("virtio-blk-pci,drive={id},id=dev-{id},serial={serial}{bootindex}"),
                // q35's built-in AHCI controller, one port per disk.
                Board::Generic => format!("ide-hd,drive={id},bus=ide.{n},serial={serial}{bootindex}"),
                // The `pc` machine's PIIX IDE: two buses, master and slave.
                Board::Epia => format!("ide-hd,drive={id},bus=ide.{},unit={},serial={serial}{bootindex}", n / 2, n % 2),
            };
            let drive = match self.opts.read_error_d0.filter(|_| id == "d0") {
                Some(sector) => {
                    let config = d.join("blkdebug.cfg");
                    std::fs::write(&config, format!("[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"{sector}\"\nonce = \"on\"\n"))
                        .expect("blkdebug config");
                    format!("if=none,id={id},format=raw,file.driver=blkdebug,file.config={},file.image.filename={}", config.display(), d.join(file).display())
                }
                None => format!("if=none,id={id},file={},format=raw", d.join(file).display()),
            };
            cmd.arg("-drive").arg(drive).arg("-device").arg(device);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        self.started = Instant::now();
        let mut child = cmd.spawn().expect("start qemu-system-x86_64 (scripts/setup-host installs it)");
        self.stdin = child.stdin.take();
        for pipe in [child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>), child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)]
            .into_iter()
            .flatten()
        {
            let serial = self.serial.clone();
            let leds = self.leds.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut buf = Vec::new();
                while reader.read_until(b'\n', &mut buf).map(|n| n > 0).unwrap_or(false) {
                    let text = clean_console(&String::from_utf8_lossy(&buf));
                    if text.contains("ps2_set_ledstate")
                        && let Some(state) = text.split_whitespace().last().and_then(|w| w.parse().ok())
                            && let Ok(mut l) = leds.lock() {
                                l.push((Instant::now(), state));
                            }
                    if let Ok(mut s) = serial.lock() {
                        s.push_str(&text);
                    }
                    buf.clear();
                }
            });
        }
        self.qemu = Some(child);
    }

    fn qmp_path(&self) -> PathBuf {
        self.dir.path().join("qmp.sock")
    }

    /// Everything the console printed so far (all boots).
    pub fn serial(&self) -> String {
        self.serial.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for the next `coffer-event` of `kind` after those already consumed.
    pub fn wait_event(&mut self, kind: &str, within: Duration) -> Value {
        self.wait_event_where(kind, within, |_| true)
    }

    pub fn wait_event_where(&mut self, kind: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let text = self.serial();
            let mut offset = self.cursor;
            for line in text[self.cursor.min(text.len())..].split_inclusive('\n') {
                offset += line.len();
                if !line.ends_with('\n') {
                    break;
                }
                let Some(json) = line.trim().strip_prefix("coffer-event ") else { continue };
                let Ok(v) = serde_json::from_str::<Value>(json) else { continue };
                if v["kind"] == kind && pred(&v) {
                    self.cursor = offset;
                    return v;
                }
            }
            if Instant::now() >= deadline {
                panic!("no coffer-event {kind} within {within:?}\n--- serial tail\n{}", tail(&text, 60));
            }
            if let Some(status) = self.qemu.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                // QEMU exited: no further events can come.
                let text = self.serial();
                if !text[self.cursor.min(text.len())..].contains(&format!("\"kind\":\"{kind}\"")) {
                    panic!("QEMU exited ({status}) before coffer-event {kind}\n--- serial tail\n{}", tail(&text, 60));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Watches the Caps Lock LED (the QEMU board's status LED) for `window`
    /// and returns how many times it turned on or off.
    pub fn caps_led_changes(&self, window: Duration) -> usize {
        let from = Instant::now();
        std::thread::sleep(window);
        let leds = self.leds.lock().map(|l| l.clone()).unwrap_or_default();
        let mut last = leds.iter().rev().find(|(t, _)| *t < from).map(|(_, s)| s & 4);
        let mut changes = 0;
        for (_, s) in leds.iter().filter(|(t, _)| *t >= from) {
            if last.is_some_and(|l| l != s & 4) {
                changes += 1;
            }
            last = Some(s & 4);
        }
        changes
    }

    /// Every event so far, in order.
    /// The first event of `kind` on the console, whether it came before or
    /// after the cursor, waiting up to `within` for it: for events whose order
    /// against the ones a test waits for is not fixed.
    pub fn any_event(&self, kind: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| e["kind"] == kind) {
                return e;
            }
            assert!(Instant::now() < deadline, "no coffer-event {kind} within {within:?}\n--- serial tail\n{}", tail(&self.serial(), 60));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn events(&self) -> Vec<Value> {
        self.serial()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("coffer-event ").and_then(|j| serde_json::from_str(j).ok()))
            .collect()
    }

    /// A line typed on the serial console (test images accept debug commands).
    pub fn console(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("qemu running");
        stdin.write_all(format!("{line}\n").as_bytes()).expect("write to serial console");
        stdin.flush().expect("flush serial console");
    }

    /// Sends one QMP command and returns its answer.
    pub fn qmp(&self, command: &str) -> Value {
        self.qmp_with(command, Value::Null)
    }

    /// A QMP command with arguments; panics on a QMP error.
    pub fn qmp_ok(&self, command: &str, arguments: Value) -> Value {
        let reply = self.qmp_with(command, arguments);
        assert!(reply.get("error").is_none(), "QMP {command}: {reply}");
        reply
    }

    fn qmp_with(&self, command: &str, arguments: Value) -> Value {
        let stream = UnixStream::connect(self.qmp_path()).expect("connect to QMP");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("QMP timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("QMP clone"));
        let mut writer = stream;
        let read_reply = |reader: &mut BufReader<UnixStream>| loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return Value::Null;
            }
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v.get("return").is_some() || v.get("error").is_some() || v.get("QMP").is_some() {
                return v;
            }
        };
        read_reply(&mut reader);
        writeln!(writer, "{{\"execute\":\"qmp_capabilities\"}}").expect("QMP write");
        read_reply(&mut reader);
        let mut request = serde_json::json!({ "execute": command });
        if !arguments.is_null() {
            request["arguments"] = arguments;
        }
        writeln!(writer, "{request}").expect("QMP write");
        read_reply(&mut reader)
    }

    /// Pulls a data disk out of the running machine (`d0` or `d1`, or one plugged later).
    pub fn unplug_disk(&self, id: &str) {
        self.qmp_ok("device_del", serde_json::json!({ "id": format!("dev-{id}") }));
    }

    /// Plugs a new blank disk of `bytes` into the running machine.
    pub fn plug_blank_disk(&self, id: &str, serial: &str, bytes: u64) {
        let file = self.dir.path().join(format!("{id}.img"));
        std::fs::File::create(&file).expect("disk file").set_len(bytes).expect("disk size");
        self.qmp_ok(
            "blockdev-add",
            serde_json::json!({ "driver": "raw", "node-name": id, "file": { "driver": "file", "filename": file } }),
        );
        self.qmp_ok("device_add", serde_json::json!({ "driver": "virtio-blk-pci", "drive": id, "id": format!("dev-{id}"), "serial": serial }));
    }

    /// Pulls the plug: QEMU quits at once, nothing is flushed or unmounted.
    pub fn power_cut(&mut self) {
        self.qmp("quit");
        self.wait_exit(timeout(20));
    }

    /// Waits for QEMU to exit (power-off, or `-no-reboot` after a reset).
    pub fn wait_exit(&mut self, within: Duration) {
        let mut child = self.qemu.take().expect("qemu running");
        let deadline = Instant::now() + within;
        loop {
            if child.try_wait().expect("wait qemu").is_some() {
                self.stdin = None;
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(200));
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("QEMU did not exit within {within:?}\n--- serial tail\n{}", tail(&self.serial(), 40));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A client home for `user` with its key and the appliance's host key in known_hosts.
    pub fn client(&self, user: &str) -> Client {
        let img = TestImage::get();
        let home = self.dir.path().join("clients").join(user);
        std::fs::create_dir_all(home.join(".ssh")).expect("client home");
        let key = home.join(".ssh/id_ed25519");
        if !key.exists() {
            std::fs::copy(img.keys.join(user), &key).expect("client key");
        }
        let host_pub = std::fs::read_to_string(img.state.join("host-keys/ssh_host_ed25519_key.pub")).expect("host key");
        std::fs::write(home.join(".ssh/known_hosts"), format!("[127.0.0.1]:{} {}", self.port, host_pub)).expect("known_hosts");
        let config = format!(
            "Host coffer 127.0.0.1\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {home}/.ssh/id_ed25519\n  IdentitiesOnly yes\n  UserKnownHostsFile {home}/.ssh/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 10\n",
            port = self.port,
            home = home.display()
        );
        std::fs::write(home.join(".ssh/config"), config).expect("ssh config");
        Client { home, user: user.to_string(), port: self.port }
    }

    /// Retries an SSH login (`ls -1`) until it works; returns the time since QEMU started.
    /// Each try gets a short deadline: before the guest has an address, QEMU's
    /// forwarder accepts the connection and then leaves it hanging.
    pub fn wait_ssh(&self, user: &str, within: Duration) -> Duration {
        let client = self.client(user);
        let deadline = Instant::now() + within;
        let mut last_err = String::new();
        // No address, no login: tries before the DHCP lease would only hang in QEMU's forwarder.
        while !self.serial().contains("\"kind\":\"network.lease\"") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        loop {
            let mut child = client
                .command("ssh")
                .arg("-F")
                .arg(client.ssh_config())
                .args(["coffer", "ls -1"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("ssh");
            let try_until = Instant::now() + timeout(3);
            let status = loop {
                if let Some(status) = child.try_wait().expect("wait ssh") {
                    break Some(status);
                }
                if Instant::now() >= try_until {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if status.is_some_and(|s| s.success()) {
                return self.started.elapsed();
            }
            if let Some(mut err) = child.stderr.take() {
                last_err.clear();
                let _ = err.read_to_string(&mut last_err);
            }
            if Instant::now() >= deadline {
                panic!("no SSH login as {user} within {within:?}: {last_err}\n--- serial tail\n{}", tail(&self.serial(), 40));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Rewrites a file on the boot disk's ESP (as a flashing tool or an update would).
    pub fn write_esp_file(&self, esp_path: &str, contents: &str) {
        let local = self.dir.path().join("esp-file");
        std::fs::write(&local, contents).expect("esp file");
        let image = format!("{}@@1M", self.dir.path().join("boot.img").display());
        run_ok(Command::new("mcopy").env("MTOOLS_SKIP_CHECK", "1").args(["-o", "-i", &image]).arg(&local).arg(format!("::{esp_path}")));
    }

    pub fn rename_esp_file(&self, from: &str, to: &str) {
        let image = format!("{}@@1M", self.dir.path().join("boot.img").display());
        run_ok(Command::new("mren").env("MTOOLS_SKIP_CHECK", "1").args(["-i", &image]).arg(format!("::{from}")).arg(format!("::{to}")));
    }

    pub fn list_esp_dir(&self, esp_dir: &str) -> Vec<String> {
        let image = format!("{}@@1M", self.dir.path().join("boot.img").display());
        let out = run_ok(Command::new("mdir").env("MTOOLS_SKIP_CHECK", "1").args(["-b", "-i", &image]).arg(format!("::{esp_dir}")));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.rsplit('/').next().unwrap_or(l).to_string()).collect()
    }

    /// Writes the freshly built image over the boot disk again (a new boot SSD).
    pub fn reflash(&self) {
        std::fs::copy(TestImage::get().image_of(self.opts.board), self.dir.path().join("boot.img")).expect("copy image");
    }

    /// Copies a file off the ESP (binary safe).
    pub fn read_esp_bytes(&self, esp_path: &str) -> Vec<u8> {
        let image = format!("{}@@1M", self.dir.path().join("boot.img").display());
        let local = self.dir.path().join("esp-read");
        let _ = std::fs::remove_file(&local);
        run_ok(Command::new("mcopy").env("MTOOLS_SKIP_CHECK", "1").args(["-n", "-i", &image]).arg(format!("::{esp_path}")).arg(&local));
        std::fs::read(&local).expect("esp file copied")
    }

    pub fn read_esp_file(&self, esp_path: &str) -> String {
        let image = format!("{}@@1M", self.dir.path().join("boot.img").display());
        let out = run_ok(Command::new("mtype").env("MTOOLS_SKIP_CHECK", "1").args(["-i", &image]).arg(format!("::{esp_path}")));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut c) = self.qemu.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/qemu-logs");
            let _ = std::fs::create_dir_all(&logs);
            let name = std::thread::current().name().unwrap_or("qemu").replace("::", "-");
            let path = logs.join(format!("{name}.log"));
            let _ = std::fs::write(&path, self.serial());
            eprintln!("serial log kept in {}", path.display());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// OVMF and the kernel write CRLF and ANSI escapes: keep plain lines.
fn clean_console(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for n in chars.by_ref() {
                        if n.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
