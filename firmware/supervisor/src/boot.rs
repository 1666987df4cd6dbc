//! The init work before any service runs: kernel file systems, modules,
//! host name, and the state partition. Each step reports one event.

use std::ffi::CString;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use coffer_hal::{BlockDevice, SysRoot};
use coffer_runtime::event::Event;
use rustix::mount::{MountFlags, UnmountFlags, mount, unmount};

use crate::console::event;
use crate::reaper::Reaper;
use crate::SupervisorError;

/// GPT name of the state partition on the boot disk.
pub(crate) const STATE_PARTITION: &str = "coffer-state";
/// Where the state partition is mounted; `coffer --state` points here.
pub(crate) const STATE_DIR: &str = "/state";

/// proc, sys, devtmpfs, run and tmp; each only if not mounted already
/// (a restart of the supervisor, or a kernel that mounted devtmpfs itself).
pub(crate) fn mount_kernel_filesystems(sys: &SysRoot) -> Result<(), SupervisorError> {
    let nosuid = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let table: [(&str, &str, &str, MountFlags, &str); 5] = [
        ("proc", "/proc", "proc", nosuid, ""),
        ("sysfs", "/sys", "sysfs", nosuid, ""),
        ("devtmpfs", "/dev", "devtmpfs", MountFlags::NOSUID, "mode=0755"),
        ("tmpfs", "/run", "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, "mode=0755"),
        ("tmpfs", "/tmp", "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, "mode=1777"),
    ];
    for (source, target, fstype, flags, data) in table {
        std::fs::create_dir_all(target).map_err(|e| SupervisorError::io(format!("creating {target}"), e))?;
        // /proc is needed to ask what is mounted; before it exists nothing is.
        if target != "/proc" && sys.is_mounted(Path::new(target)).unwrap_or(false) {
            continue;
        }
        let data = CString::new(data).map_err(|_| SupervisorError::Boot("mount options contain NUL".into()))?;
        match mount(source, target, fstype, flags, data.as_c_str()) {
            Ok(()) => {}
            Err(rustix::io::Errno::BUSY) => {}
            Err(e) => return Err(SupervisorError::io(format!("mounting {fstype} on {target}"), e.into())),
        }
    }
    Ok(())
}

/// One line of the image's `/etc/coffer/modules.list`: a module file and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModuleLine {
    pub(crate) path: String,
    pub(crate) params: String,
}

/// Parses `modules.list`: one module per line in load order, `#` comments.
pub(crate) fn parse_modules_list(text: &str) -> Vec<ModuleLine> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((path, params)) => ModuleLine { path: path.into(), params: params.trim().into() },
            None => ModuleLine { path: l.into(), params: String::new() },
        })
        .collect()
}

/// Loads the modules in order with `finit_module`; a module that is
/// already loaded or built in is fine, a missing one is reported and skipped.
///
/// ENODEV means "no such hardware here" (efivarfs on a BIOS boot, a
/// watchdog driver on a board without that chip): skipped, not failed.
pub(crate) fn load_modules(list: &Path) -> ModulesLoaded {
    let mut out = ModulesLoaded::default();
    let Ok(text) = std::fs::read_to_string(list) else { return out };
    for m in parse_modules_list(&text) {
        let started = Instant::now();
        let result = File::open(&m.path).map_err(|e| e.to_string()).and_then(|file| {
            let params = CString::new(m.params.clone()).map_err(|_| "parameters contain NUL".to_string())?;
            match rustix::system::finit_module(&file, &params, 0) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
                Err(rustix::io::Errno::NODEV) => {
                    log::info!("module {} found no device; skipped", m.path);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        });
        let name = Path::new(&m.path).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        out.slowest.push((name, started.elapsed().as_millis() as u64));
        match result {
            Ok(()) => out.loaded += 1,
            Err(e) => {
                log::warn!("loading module {}: {e}", m.path);
                out.failed.push(m.path);
            }
        }
    }
    out.slowest.sort_by_key(|m| std::cmp::Reverse(m.1));
    out.slowest.truncate(5);
    out
}

/// What loading the board's modules did; the slowest few go into the boot
/// event, where boot time is looked at.
#[derive(Debug, Default)]
pub(crate) struct ModulesLoaded {
    pub(crate) loaded: usize,
    pub(crate) failed: Vec<String>,
    /// Module name and milliseconds, slowest first.
    pub(crate) slowest: Vec<(String, u64)>,
}

/// Waits for the partition named `name` to appear (devices probe asynchronously).
pub(crate) fn wait_for_partition(sys: &SysRoot, name: &str, timeout: Duration) -> Option<BlockDevice> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(dev)) = sys.partition_named(name) {
            return Some(dev);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether [`mount_ext4`] checks the file system first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fsck {
    Check,
    /// `mke2fs` made it a moment ago.
    JustMade,
}

/// Checks (`e2fsck -p`) and mounts an ext4 file system.
pub(crate) fn mount_ext4(reaper: &Reaper, device: &Path, target: &Path, fsck: Fsck) -> Result<(), SupervisorError> {
    let dev = device.to_string_lossy();
    if fsck == Fsck::Check {
        check_ext4(reaper, &dev)?;
    }
    std::fs::create_dir_all(target).map_err(|e| SupervisorError::io(format!("creating {}", target.display()), e))?;
    mount(device, target, "ext4", MountFlags::NOATIME | MountFlags::NODEV | MountFlags::NOSUID, None)
        .map_err(|e| SupervisorError::io(format!("mounting {dev} on {}", target.display()), e.into()))
}

fn check_ext4(reaper: &Reaper, dev: &str) -> Result<(), SupervisorError> {
    let fsck = reaper.run("/sbin/e2fsck", &["-p", dev]).map_err(|e| SupervisorError::io("running e2fsck".into(), e))?;
    // 0 clean, 1 errors fixed, 2 fixed and reboot advised; 4 and up are not fixed.
    match fsck.exit.code {
        Some(0..=2) => {}
        _ => {
            event(&Event::FsCheckFailed { device: dev.to_string(), detail: fsck.stdout.trim().to_string() + fsck.stderr.trim() });
            return Err(SupervisorError::Boot(format!(
                "{dev} has file system errors e2fsck -p could not fix ({}); run e2fsck by hand",
                fsck.exit.describe()
            )));
        }
    }
    Ok(())
}

/// Unmounts, falling back to a lazy detach so shutdown never hangs on a busy mount.
pub(crate) fn unmount_quietly(target: &Path) {
    if unmount(target, UnmountFlags::empty()).is_err() {
        let _ = unmount(target, UnmountFlags::DETACH);
    }
}

pub(crate) fn set_hostname(name: &str) {
    if let Err(e) = rustix::system::sethostname(name.as_bytes()) {
        log::warn!("setting host name {name}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_partition_is_mounted_where_the_runtime_contract_puts_the_state() {
        assert_eq!(coffer_runtime::Paths::appliance().state(), std::path::Path::new(STATE_DIR));
    }

    #[test]
    fn modules_list_lines() {
        let text = "# virtio first\n/lib/modules/v/virtio.ko\n\n/lib/modules/v/i6300esb.ko heartbeat=20 nowayout=0 # pets\n";
        assert_eq!(
            parse_modules_list(text),
            vec![
                ModuleLine { path: "/lib/modules/v/virtio.ko".into(), params: String::new() },
                ModuleLine { path: "/lib/modules/v/i6300esb.ko".into(), params: "heartbeat=20 nowayout=0".into() },
            ]
        );
    }
}
