//! The supervisor's effects: boot in order, then one loop that starts
//! services when the table says so, hears exits from the reaper, output
//! from the services, signals, the power button and (on test images) the
//! serial console, and pets the watchdog while healthy. Shutdown stops the
//! services, unmounts, stops the array and powers off.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use coffer_alert::Severity;
use coffer_config::{Config, StatePaths, UserDb};
use coffer_hal::SysRoot;
use coffer_runtime::Paths;
use coffer_runtime::alert::{raise, stamped};
use coffer_runtime::event::Event;
use rustix::process::{Pid, Signal, kill_process_group};
use rustix::system::RebootCommand;

use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

use crate::boot::{self, STATE_DIR, STATE_PARTITION};
use crate::console::{self, DebugCommand, event};
use crate::reaper::{Exit, Reaper};
use crate::services::{Action, RestartPolicy, ServiceTable};
use crate::slots::SlotKeeper;
use crate::watchdog::Watchdog;
use crate::{data, net};

const TICK: Duration = Duration::from_secs(1);
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The endpoint starts alone: on a slow single-core box, five services (and
/// the host key fingerprints) starting at once would each delay the one a
/// user is waiting for.
const AFTER_ENDPOINT: Duration = Duration::from_secs(1);

enum Msg {
    Exited(Exit),
    Output { service: String, line: String },
    Shutdown { reason: &'static str, reboot: bool },
    Debug(DebugCommand),
    /// Networking finished; DHCP keeps running on this interface.
    DhcpInterface(String),
}

/// What the boot achieved; decides which services can run.
struct Booted {
    exe: PathBuf,
    state_ok: bool,
    data_ok: bool,
    /// Networking starts as soon as the configuration is read.
    network_started: bool,
}

pub fn run_as_init() -> ! {
    std::panic::set_hook(Box::new(|info| {
        console::line(&format!("coffer: supervisor panic: {info}; rebooting"));
        rustix::fs::sync();
        let _ = rustix::system::reboot(RebootCommand::Restart);
    }));
    let sys = SysRoot::system();
    if let Err(e) = boot::mount_kernel_filesystems(&sys) {
        console::line(&format!("coffer: {e}"));
    }
    let _ = console::open_log(&Paths::appliance().log());
    // Ctrl-Alt-Del becomes SIGINT to us instead of an immediate reboot.
    let _ = rustix::system::reboot(RebootCommand::CadOff);

    let reaper = Arc::new(Reaper::default());
    let (tx, rx) = channel();
    start_signal_thread(reaper.clone(), tx.clone());
    let cmdline = sys.kernel_cmdline().unwrap_or_default();
    let slot = cmdline.get("coffer.slot").unwrap_or("a").to_string();
    event(&Event::BootStart { version: env!("CARGO_PKG_VERSION").to_string(), slot });

    let booted = boot_steps(&sys, &reaper, &tx);
    let mut slots = SlotKeeper::at_boot(&sys, &cmdline);
    if booted.state_ok {
        let (reaper, exe) = (reaper.clone(), booted.exe.clone());
        std::thread::spawn(move || {
            std::thread::sleep(AFTER_ENDPOINT);
            show_host_keys(&reaper, &exe);
        });
    }
    let mut table = ServiceTable::new(RestartPolicy::default());
    let now = Instant::now();
    let exe = booted.exe.to_string_lossy().into_owned();
    if booted.state_ok && booted.data_ok {
        let argv = [&exe, "--state", STATE_DIR, "serve", "--listen", "0.0.0.0:22"].map(String::from).to_vec();
        table.add("endpoint", argv, Some("coffer: listening on"), true, now);
        let argv = [&exe, "--state", STATE_DIR, "raid", "watch"].map(String::from).to_vec();
        table.add("raid", argv, Some("\"kind\":\"raid.watching\""), true, now + AFTER_ENDPOINT);
    }
    if booted.state_ok {
        let argv = [&exe, "--state", STATE_DIR, "alert", "run"].map(String::from).to_vec();
        table.add("alert", argv, Some("\"kind\":\"alert.running\""), false, now + AFTER_ENDPOINT);
        let argv = [&exe, "--state", STATE_DIR, "time", "sync"].map(String::from).to_vec();
        table.add("time", argv, Some("\"kind\":\"time.running\""), false, now + AFTER_ENDPOINT);
        let argv = [&exe, "--state", STATE_DIR, "mdns"].map(String::from).to_vec();
        table.add("mdns", argv, None, false, now + AFTER_ENDPOINT);
    }
    if !booted.network_started {
        start_network_thread(sys.clone(), reaper.clone(), coffer_config::NetworkConfig::default(), tx.clone());
    }
    for button in coffer_hal::power_button_handlers(&sys).unwrap_or_default() {
        start_power_button_thread(button, tx.clone());
    }
    if cmdline.flag("coffer.debug") {
        start_debug_console_thread(tx.clone());
    }
    let mut watchdog = Watchdog::open(&sys.dev_node("watchdog"));
    event(&Event::BootDone { uptime_secs: uptime(), watchdog: watchdog.is_some() });
    let services_ok = booted.state_ok && booted.data_ok;
    let (reason, reboot) = supervise(&mut table, &reaper, &tx, &rx, &mut watchdog, &mut slots, services_ok);
    shutdown(&mut table, &reaper, &rx, watchdog, reason, reboot)
}

fn boot_steps(sys: &SysRoot, reaper: &Arc<Reaper>, tx: &Sender<Msg>) -> Booted {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/bin/coffer"));
    let mut booted = Booted { exe: exe.clone(), state_ok: false, data_ok: false, network_started: false };
    let t0 = Instant::now();
    let modules = boot::load_modules(&Paths::appliance().modules_list());
    event(&Event::BootModules {
        loaded: modules.loaded as u64,
        failed: modules.failed,
        ms: t0.elapsed().as_millis() as u64,
        slowest: modules.slowest,
    });

    let Some(state_part) = boot::wait_for_partition(sys, STATE_PARTITION, Duration::from_secs(10)) else {
        fail("state", &format!("no partition named {STATE_PARTITION} on any disk: flash the Coffer image to the boot disk"));
        return booted;
    };
    if let Err(e) = boot::mount_ext4(reaper, &sys.dev_node(&state_part.name), Path::new(STATE_DIR), boot::Fsck::Check) {
        fail("state", &e.to_string());
        return booted;
    }
    event(&Event::StateMounted { device: state_part.name.clone(), path: STATE_DIR.to_string() });
    let paths = StatePaths::new(Path::new(STATE_DIR));
    if !paths.config().exists() && !coffer(reaper, &exe, &["init"]) {
        fail("state", "coffer init failed on the state partition");
        return booted;
    }
    let config = match Config::load(&paths.config()) {
        Ok(c) => c,
        Err(e) => {
            fail("state", &format!("{e}; the endpoint stays off until coffer.toml is fixed"));
            return booted;
        }
    };
    booted.state_ok = true;
    boot::set_hostname(&config.network.hostname);
    // The DHCP lease is got while the data area is made ready.
    start_network_thread(sys.clone(), reaper.clone(), config.network.clone(), tx.clone());
    booted.network_started = true;

    let boot_disk = state_part.parent.clone().unwrap_or_default();
    match data::prepare(sys, reaper, &boot_disk, &paths.data_dir(&config.server.data_dir)) {
        Ok(()) => booted.data_ok = true,
        Err(e) => fail("data", &format!("{e}; the endpoint stays off so no backup lands on the boot disk")),
    }
    if booted.data_ok {
        add_admin(reaper, &exe, &paths);
    }
    booted
}

/// Networking runs beside the services: the endpoint listens on every
/// address, so it need not wait for a DHCP answer.
fn start_network_thread(sys: SysRoot, reaper: Arc<Reaper>, config: coffer_config::NetworkConfig, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        if let net::NetworkOutcome::Dhcp { interface } | net::NetworkOutcome::Waiting { interface } =
            net::bring_up(&sys, &reaper, &config)
        {
            let _ = tx.send(Msg::DhcpInterface(interface));
        }
    });
}

fn fail(step: &str, message: &str) {
    log::error!("{step}: {message}");
    event(&Event::BootFailed { step: step.to_string(), message: message.to_string() });
    // Without the state partition there is no spool (and no alert service).
    if step != "state" {
        raise(&Paths::appliance(), &stamped(&format!("boot:{step}"), Severity::Critical, &format!("the appliance started without its {step}"), message, false));
    }
}

/// Runs `coffer --state /state ARGS` and reports a failure with its stderr.
fn coffer(reaper: &Reaper, exe: &Path, args: &[&str]) -> bool {
    let mut full = vec!["--state", STATE_DIR];
    full.extend_from_slice(args);
    match reaper.run(&exe.to_string_lossy(), &full) {
        Ok(out) if out.exit.success() => true,
        Ok(out) => {
            log::error!("coffer {}: {}", args.join(" "), out.stderr.trim());
            false
        }
        Err(e) => {
            log::error!("coffer {}: {e}", args.join(" "));
            false
        }
    }
}

/// Prints the host key fingerprints on the console, so the first SSH
/// connection can be checked against them.
fn show_host_keys(reaper: &Reaper, exe: &Path) {
    let full = ["--state", STATE_DIR, "host-keys"];
    if let Ok(out) = reaper.run(&exe.to_string_lossy(), &full)
        && out.exit.success()
    {
        for line in out.stdout.lines() {
            console::line(&format!("coffer: host key {line}"));
        }
        event(&Event::BootHostKeys { fingerprints: out.stdout.lines().map(str::to_string).collect() });
    }
}

/// The image's baked-in administrator key becomes user `admin` on first boot.
fn add_admin(reaper: &Reaper, exe: &Path, paths: &StatePaths) {
    let admin_keys = Paths::appliance().admin_keys();
    if !admin_keys.exists() {
        return;
    }
    let admin_keys = admin_keys.to_string_lossy();
    let admin = UserDb::load(&paths.users()).ok().and_then(|db| db.get("admin").map(|u| u.role));
    match admin {
        None => {
            if coffer(reaper, exe, &["user", "add", "admin", "--key", &admin_keys, "--role", "admin"]) {
                event(&Event::StateAdminAdded { user: "admin".to_string() });
            }
        }
        // Made by a firmware that had no roles yet.
        Some(coffer_config::Role::User) => {
            coffer(reaper, exe, &["user", "set", "admin", "--role", "admin"]);
        }
        Some(coffer_config::Role::Admin) => {}
    }
}

fn uptime() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn supervise(
    table: &mut ServiceTable,
    reaper: &Reaper,
    tx: &Sender<Msg>,
    rx: &Receiver<Msg>,
    watchdog: &mut Option<Watchdog>,
    slots: &mut Option<SlotKeeper>,
    services_ok: bool,
) -> (&'static str, bool) {
    let mut last_pet = Instant::now() - TICK;
    let mut was_healthy = None;
    let mut healthy_since: Option<Instant> = None;
    let mut flapping: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    loop {
        let now = Instant::now();
        for Action::Start(name) in table.plan(now) {
            start_service(table, reaper, tx, &name, now);
        }
        let healthy = table.healthy(now);
        if was_healthy != Some(healthy) {
            event(&Event::Health { healthy });
            was_healthy = Some(healthy);
            healthy_since = healthy.then_some(now);
        }
        if let Some(keeper) = slots.as_mut()
            && keeper.tick(healthy_since.map(|t| now - t), Duration::from_secs_f64(uptime()), services_ok)
        {
            return ("the new firmware slot did not become healthy", true);
        }
        if healthy && now.duration_since(last_pet) >= TICK {
            if let Some(w) = watchdog.as_mut() {
                w.pet();
            }
            last_pet = now;
        }
        let wait = table.next_start().map_or(TICK, |t| t.saturating_duration_since(now).min(TICK));
        match rx.recv_timeout(wait) {
            Ok(Msg::Exited(exit)) => {
                let name = table.by_pid(exit.pid).map(|s| s.name.clone());
                if let Some(outcome) = table.exited(exit.pid, Instant::now()) {
                    event(&Event::ServiceExited { service: name, status: exit.describe(), restart_in_secs: outcome.restart_in.map(|d| d.as_secs_f64()) });
                    if outcome.at_cap && flapping.insert(outcome.service.clone()) {
                        event(&Event::ServiceFlapping { service: outcome.service.clone() });
                        raise(
                            &Paths::appliance(),
                            &stamped(
                                &format!("service:{}:flapping", outcome.service),
                                Severity::Critical,
                                &format!("service {} keeps failing", outcome.service),
                                "It is restarted once a minute. `ssh admin@coffer logs` shows why; a reboot or a firmware rollback may help.",
                                false,
                            ),
                        );
                    }
                }
            }
            Ok(Msg::Output { service, line }) => {
                if table.output_line(&service, &line, Instant::now()) {
                    event(&Event::ServiceReady { service: service.clone() });
                    if flapping.remove(&service) {
                        raise(&Paths::appliance(), &stamped(&format!("service:{service}:flapping"), Severity::Critical, &format!("service {service} runs again"), "", true));
                    }
                }
            }
            Ok(Msg::Shutdown { reason, reboot }) => return (reason, reboot),
            Ok(Msg::DhcpInterface(interface)) => {
                table.add("dhcp", net::dhcp_client_argv(&interface), None, false, Instant::now());
            }
            Ok(Msg::Debug(DebugCommand::Kill(name))) => {
                if let Some(crate::ServiceState::Running { pid, .. }) = table.get(&name).map(|s| s.state.clone()) {
                    event(&Event::DebugKill { service: name.clone(), pid });
                    signal_group(pid, Signal::KILL);
                }
            }
            Ok(Msg::Debug(DebugCommand::Hang)) => {
                event(&Event::DebugHang);
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            Ok(Msg::Debug(DebugCommand::PowerOff)) => return ("debug console", false),
            Ok(Msg::Debug(DebugCommand::Reboot)) => return ("debug console", true),
            Err(_) => {
                // Safety net: a lost SIGCHLD must not leave zombies.
                reap_orphans(reaper);
            }
        }
    }
}

fn start_service(table: &mut ServiceTable, reaper: &Reaper, tx: &Sender<Msg>, name: &str, now: Instant) {
    let Some(argv) = table.get(name).map(|s| s.argv.clone()) else { return };
    let (exit_tx, exit_rx) = channel::<Exit>();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    match reaper.spawn(&mut cmd, exit_tx) {
        Ok(mut child) => {
            let pid = child.id() as i32;
            table.started(name, pid, now);
            event(&Event::ServiceStarted { service: name.to_string(), pid });
            if let Some(out) = child.stdout.take() {
                forward_output(name, out, tx.clone());
            }
            if let Some(err) = child.stderr.take() {
                forward_output(name, err, tx.clone());
            }
            let tx = tx.clone();
            std::thread::spawn(move || {
                if let Ok(exit) = exit_rx.recv() {
                    let _ = tx.send(Msg::Exited(exit));
                }
            });
        }
        Err(e) => {
            log::error!("starting {name} ({}): {e}", argv[0]);
            if let Some(outcome) = table.spawn_failed(name, now) {
                event(&Event::ServiceExited { service: Some(name.to_string()), status: format!("not started: {e}"), restart_in_secs: outcome.restart_in.map(|d| d.as_secs_f64()) });
            }
        }
    }
}

/// Copies a service's output line by line to the console and tells the loop.
fn forward_output(name: &str, pipe: impl Read + Send + 'static, tx: Sender<Msg>) {
    let name = name.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            console::line(&line);
            let _ = tx.send(Msg::Output { service: name.clone(), line });
        }
    });
}

fn reap_orphans(reaper: &Reaper) {
    for orphan in reaper.reap() {
        log::debug!("reaped orphan {} ({})", orphan.pid, orphan.describe());
    }
}

#[allow(non_snake_case)]
fn start_signal_thread(reaper: Arc<Reaper>, tx: Sender<Msg>) {
    // SIGPWR: a UPS daemon or the kernel asking for power-off.
    let SIGPWR = Signal::POWER.as_raw();
    let signals = signal_hook::iterator::Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGPWR, SIGUSR1, SIGUSR2]);
    let mut signals = match signals {
        Ok(s) => s,
        Err(e) => {
            console::line(&format!("coffer: cannot install signal handlers: {e}"));
            return;
        }
    };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGCHLD => reap_orphans(&reaper),
                SIGINT => {
                    let _ = tx.send(Msg::Shutdown { reason: "ctrl-alt-del", reboot: true });
                }
                SIGUSR2 => {
                    let _ = tx.send(Msg::Shutdown { reason: "SIGUSR2", reboot: true });
                }
                _ => {
                    let _ = tx.send(Msg::Shutdown { reason: "signal", reboot: false });
                }
            }
        }
    });
}

/// Reads the power button's input events; a press shuts the appliance down.
fn start_power_button_thread(node: PathBuf, tx: Sender<Msg>) {
    // struct input_event: a timeval, then u16 type, u16 code, i32 value.
    const TIMEVAL: usize = 2 * std::mem::size_of::<usize>();
    const EV_KEY: u16 = 1;
    const KEY_POWER: u16 = 116;
    std::thread::spawn(move || {
        let Ok(mut file) = std::fs::File::open(&node) else { return };
        let mut buf = [0u8; TIMEVAL + 8];
        while file.read_exact(&mut buf).is_ok() {
            let kind = u16::from_ne_bytes([buf[TIMEVAL], buf[TIMEVAL + 1]]);
            let code = u16::from_ne_bytes([buf[TIMEVAL + 2], buf[TIMEVAL + 3]]);
            let value = i32::from_ne_bytes([buf[TIMEVAL + 4], buf[TIMEVAL + 5], buf[TIMEVAL + 6], buf[TIMEVAL + 7]]);
            if kind == EV_KEY && code == KEY_POWER && value == 1 {
                let _ = tx.send(Msg::Shutdown { reason: "power button", reboot: false });
            }
        }
    });
}

fn start_debug_console_thread(tx: Sender<Msg>) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match DebugCommand::parse(&line) {
                Some(cmd) => {
                    let _ = tx.send(Msg::Debug(cmd));
                }
                None if line.trim().is_empty() => {}
                None => console::line(&format!("coffer: unknown debug command {:?}", line.trim())),
            }
        }
    });
}

fn signal_group(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid)
        && let Err(e) = kill_process_group(pid, signal) {
            log::warn!("signalling process group {}: {e}", pid.as_raw_nonzero());
        }
}

fn shutdown(
    table: &mut ServiceTable,
    reaper: &Reaper,
    rx: &Receiver<Msg>,
    watchdog: Option<Watchdog>,
    reason: &str,
    reboot: bool,
) -> ! {
    event(&Event::ShutdownStart { reason: reason.to_string(), reboot });
    let mut running = table.stop_all();
    for (_, pid) in &running {
        signal_group(*pid, Signal::TERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while !running.is_empty() && Instant::now() < deadline {
        if let Ok(Msg::Exited(exit)) = rx.recv_timeout(Duration::from_millis(200))
            && let Some(pos) = running.iter().position(|(_, p)| *p == exit.pid) {
                let (name, _) = running.remove(pos);
                event(&Event::ServiceStopped { service: name.clone(), status: exit.describe() });
            }
    }
    for (name, pid) in running {
        event(&Event::ServiceKilled { service: name.clone() });
        signal_group(pid, Signal::KILL);
    }
    rustix::fs::sync();
    let state = StatePaths::new(Path::new(STATE_DIR));
    if let Ok(config) = Config::load(&state.config()) {
        boot::unmount_quietly(&state.data_dir(&config.server.data_dir));
    }
    let _ = reaper.run("/sbin/mdadm", &["--stop", "--scan"]);
    boot::unmount_quietly(Path::new(STATE_DIR));
    rustix::fs::sync();
    if let Some(w) = watchdog {
        w.disarm();
    }
    event(&Event::ShutdownDone { reboot });
    let _ = rustix::system::reboot(if reboot { RebootCommand::Restart } else { RebootCommand::PowerOff });
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}
