//! Firmware updates: `update status|apply|rollback` on the box, and the
//! build host's `update keygen|make-bundle`.
//!
//! `apply` verifies the whole bundle (signature by the update key baked into
//! the image, sizes, hashes, board) and refuses a version older than the
//! running slot's unless `--allow-downgrade` before it writes a byte, writes the
//! slot that is not running with read-back, then arms it for one trial
//! boot. The supervisor of the new slot marks it good once healthy; until
//! then any failure boots the old slot again (see `coffer-slots`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use coffer_hal::SysRoot;
use coffer_bundle::VersionChange;
use coffer_slots::{EspMount, Slot, edit};
use coffer_runtime::Paths;
use coffer_runtime::event::{self, Event};
use coffer_supervisor::ESP_PARTITION;

/// The files that make a slot.
const SLOT_FILES: [&str; 2] = ["vmlinuz", "initrd.zst"];
/// Bundles larger than this are refused before they are read whole.
const MAX_BUNDLE: u64 = 128 << 20;

fn booted(sys: &SysRoot) -> Result<Slot> {
    let cmdline = sys.kernel_cmdline().context("reading the kernel command line")?;
    cmdline.get("coffer.slot").and_then(Slot::parse).context("this system was not booted from a Coffer slot (no coffer.slot= on the kernel command line)")
}

fn mount_esp(sys: &SysRoot, write: bool) -> Result<EspMount> {
    let part = sys
        .partition_named(ESP_PARTITION)
        .context("listing partitions")?
        .with_context(|| format!("no partition named {ESP_PARTITION}: this is not a Coffer boot disk"))?;
    Ok(EspMount::mount(&sys.dev_node(&part.name), &Paths::appliance().esp_mount_point(), write)?)
}

pub(crate) fn status() -> Result<()> {
    let sys = SysRoot::system();
    let booted = booted(&sys)?;
    // Read-write like every other user of the ESP: the kernel refuses a
    // read-write mount while a read-only one of the same file system exists.
    let mount = mount_esp(&sys, true)?;
    let esp = mount.esp();
    let record = esp.record();
    let slot = crate::slot_record::slot_json();
    println!("running   slot {booted} ({}), firmware {}", slot["state"].as_str().unwrap_or("unknown"), env!("CARGO_PKG_VERSION"));
    for s in [Slot::A, Slot::B] {
        let version = std::fs::read_to_string(esp.slot_file(s, "version")).map(|v| v.trim().to_string()).unwrap_or_else(|_| "unknown".into());
        let mut marks = Vec::new();
        if record.good == Some(s) {
            marks.push("good, boots by default");
        }
        if record.trying == Some(s) {
            marks.push("armed for one trial boot");
        }
        if record.failed == Some(s) {
            marks.push("its last trial failed");
        }
        println!("slot {s}    version {version}{}", if marks.is_empty() { String::new() } else { format!("  ({})", marks.join("; ")) });
    }
    if let Some(failed) = slot["failed"].as_str() {
        println!("note      slot {failed} was tried and did not come up; this boot fell back to slot {booted}");
    }
    Ok(())
}

/// The running firmware's version: the booted slot's `version` file (what
/// its signed bundle, or the image, said), else this binary's own.
fn running_version(esp: &coffer_slots::Esp, booted: Slot) -> String {
    std::fs::read_to_string(esp.slot_file(booted, "version"))
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}

pub(crate) fn apply(reboot: bool, allow_downgrade: bool) -> Result<()> {
    let mut bundle = Vec::new();
    std::io::stdin().lock().take(MAX_BUNDLE + 1).read_to_end(&mut bundle).context("reading the bundle from standard input")?;
    if bundle.is_empty() {
        bail!("no bundle on standard input: ssh admin@coffer update apply < coffer-BOARD.bundle");
    }
    // The public update certificate and the board name, baked into the image.
    let paths = Paths::appliance();
    let cert = std::fs::read_to_string(paths.update_key())
        .with_context(|| format!("this firmware has no update key ({}); flash an image built with --update-key", paths.update_key().display()))?;
    let refused = |e: coffer_bundle::BundleError| anyhow!("update refused: {e}; nothing was changed");
    let verified = coffer_bundle::open_update(&bundle, &cert).map_err(refused)?;
    drop(bundle);
    let board = crate::board::name(&paths)?;
    verified.require_board(&board).map_err(refused)?;
    verified.require_files(&SLOT_FILES).map_err(refused)?;
    let sys = SysRoot::system();
    let booted = booted(&sys)?;
    if crate::slot_record::slot_state() == "trial" {
        bail!("update refused: slot {booted} is itself still on trial; wait until `update status` shows it good (or reboot to go back), then apply again");
    }
    let target = booted.other();
    let version = verified.meta().version.clone();
    let mount = mount_esp(&sys, true)?;
    let esp = mount.esp();
    let record = esp.record();
    if record.trying == Some(booted) || record.good.is_some_and(|g| g != booted) {
        bail!("update refused: slot {booted} is not yet marked good (the slot record says {record:?}); wait for `update status` to show it good, or reboot");
    }
    // A validly signed old release may have flaws fixed since: going back
    // takes an explicit --allow-downgrade.
    let running = running_version(esp, booted);
    match verified.require_version(&running, allow_downgrade).map_err(refused)? {
        VersionChange::Upgrade => {}
        VersionChange::Reinstall => println!("coffer: firmware {version} is the running version; writing it to slot {target} again"),
        VersionChange::AllowedDowngrade => {
            println!("coffer: warning: firmware {version} is older than (or not comparable with) the running {running}; installing it because --allow-downgrade was given");
        }
    }
    // First make sure nothing boots the target slot (an earlier apply may
    // have armed it), then free its space: the ESP holds two slots, not
    // three. A cut from here on leaves the running slot booting as before.
    esp.apply(&edit::make_good(&esp.loader_files()?, booted, esp.record())).context("disarming the other slot")?;
    for name in SLOT_FILES.iter().chain(&["version"]) {
        let path = esp.slot_file(target, name);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e).with_context(|| format!("removing {}", path.display()));
        }
    }
    for name in SLOT_FILES {
        let bytes = verified.file(name).context("file vanished from the verified bundle")?;
        esp.replace(&format!("coffer/{target}/{name}"), bytes).with_context(|| format!("writing slot {target}"))?;
    }
    esp.replace(&format!("coffer/{target}/version"), format!("{version}\n").as_bytes())?;
    esp.apply(&edit::arm_trial(&esp.loader_files()?, target, booted)).context("arming the new slot")?;
    drop(mount);
    event::emit(&Event::UpdateArmed { slot: target.name().to_string(), version: version.to_string(), from: running.to_string() });
    println!("coffer: firmware {version} is written to slot {target} and verified; the next boot tries it once");
    println!("coffer: it becomes the default only after it runs healthily; otherwise the box comes back on slot {booted} by itself");
    if reboot {
        crate::power::request(true)
    } else {
        println!("coffer: reboot to switch (`reboot`)");
        Ok(())
    }
}

pub(crate) fn rollback(reboot: bool) -> Result<()> {
    let sys = SysRoot::system();
    let booted = booted(&sys)?;
    let other = booted.other();
    let mount = mount_esp(&sys, true)?;
    let esp = mount.esp();
    for name in SLOT_FILES {
        if !esp.slot_file(other, name).exists() {
            bail!("slot {other} has no {name}: there is nothing to go back to");
        }
    }
    let record = esp.record();
    if record.trying == Some(other) {
        // An applied update not yet tried: going back means not trying it.
        esp.apply(&edit::make_good(&esp.loader_files()?, booted, record))?;
        drop(mount);
        event::emit(&Event::UpdateCancelled { slot: other.name().to_string() });
        println!("coffer: the update in slot {other} is cancelled; slot {booted} stays the default");
        return Ok(());
    }
    if record.failed == Some(other) {
        bail!("slot {other} failed its last trial; refusing to boot it again");
    }
    // The other slot is tried once like an update, never promoted blind: a
    // slot whose writing was cut short falls back here by itself.
    esp.apply(&edit::arm_trial(&esp.loader_files()?, other, booted))?;
    drop(mount);
    event::emit(&Event::UpdateRollback { slot: other.name().to_string() });
    println!("coffer: slot {other} boots next, once; it becomes the default again when it runs healthily");
    if reboot { crate::power::request(true) } else {
        println!("coffer: reboot to switch (`reboot`)");
        Ok(())
    }
}

/// Build host: a new update signing key; the public half goes into images
/// (`build-image --update-key DIR`), the secret half signs bundles.
pub(crate) fn keygen(out_dir: &Path) -> Result<()> {
    let (secret, public) = coffer_bundle::generate_update_key("Coffer firmware updates").map_err(|e| anyhow!("{e}"))?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let secret_path = out_dir.join("update-key.secret.asc");
    let public_path = out_dir.join("update-key.asc");
    for p in [&secret_path, &public_path] {
        if p.exists() {
            bail!("{} exists; refusing to replace an update key (boxes in the field trust the old one)", p.display());
        }
    }
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&secret_path)?;
        f.write_all(secret.as_bytes())?;
    }
    std::fs::write(&public_path, public)?;
    println!("coffer: secret key {} (keep it safe), public key {}", secret_path.display(), public_path.display());
    Ok(())
}

/// Build host: signs the slot files in `boot_dir` into an update bundle.
pub(crate) fn make_bundle(board: &str, version: &str, boot_dir: &Path, key: &Path, out: &Path) -> Result<()> {
    let secret = std::fs::read_to_string(key).with_context(|| format!("reading the update signing key {}", key.display()))?;
    let mut files = Vec::new();
    for name in SLOT_FILES {
        let path: PathBuf = boot_dir.join(name);
        files.push((name.to_string(), std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?));
    }
    let created = coffer_runtime::clock::now();
    let info = coffer_bundle::UpdateInfo { board: board.to_string(), version: version.to_string(), created };
    let bundle = coffer_bundle::sign_update(&secret, &info, &files).map_err(|e| anyhow!("{e}"))?;
    std::fs::write(out, &bundle).with_context(|| format!("writing {}", out.display()))?;
    println!("coffer: wrote {} ({} bytes, board {board}, version {version})", out.display(), bundle.len());
    Ok(())
}
