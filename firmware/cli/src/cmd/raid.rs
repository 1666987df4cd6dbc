//! `raid scrub` and `raid replace`: requests to the mirror's watcher, and
//! taking a disk out so it can be pulled.

use anyhow::{Context, Result};
use coffer_hal::SysRoot;
use coffer_raid::Health;
use coffer_runtime::Paths;
use coffer_runtime::event::{self, Event};

use crate::mirror::{mdadm, snapshot};

/// `raid scrub`: asks the watcher to start or stop a check now.
pub(crate) fn scrub_now(stop: bool) -> Result<()> {
    let sys = SysRoot::system();
    let arrays = sys.md_arrays().context("reading md arrays")?;
    let Some(a) = arrays.iter().find(|a| a.level == "raid1") else {
        anyhow::bail!("there is no mirror on this machine");
    };
    if !stop && coffer_raid::health(a) != Health::Healthy {
        anyhow::bail!("mirror {} is {:?} ({}); a check needs both disks in sync", coffer_raid::array_label(a), coffer_raid::health(a), a.sync_action);
    }
    let request_file = Paths::appliance().scrub_request();
    if let Some(dir) = request_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&request_file, if stop { "stop\n" } else { "check\n" }).with_context(|| format!("writing {}", request_file.display()))?;
    if stop {
        println!("coffer: the check of {} stops within seconds", coffer_raid::array_label(a));
    } else {
        println!("coffer: the check of {} starts within seconds; `status` shows its progress, `events` its result", coffer_raid::array_label(a));
    }
    Ok(())
}

/// `raid replace SERIAL`: fails and removes that disk so it can be pulled.
pub(crate) fn replace(serial: &str) -> Result<()> {
    let sys = SysRoot::system();
    let snap = snapshot(&sys)?;
    let Some(kname) = snap.serials.iter().find(|(_, s)| s.as_str() == serial).map(|(k, _)| k.clone()) else {
        let known: Vec<&str> = snap.serials.values().map(String::as_str).collect();
        anyhow::bail!("no disk with serial {serial}; disks here: {}", known.join(", "));
    };
    let Some(a) = snap.arrays.iter().find(|a| a.members.iter().any(|m| m.kname == kname)) else {
        anyhow::bail!("disk {serial} ({kname}) is in no mirror; it can be pulled as it is");
    };
    let others_in_sync = a.members.iter().filter(|m| m.kname != kname && m.present && m.has("in_sync") && !m.has("faulty")).count();
    if others_in_sync == 0 {
        anyhow::bail!("refusing: disk {serial} holds the only in-sync copy of mirror {}; wait for the rebuild to finish", coffer_raid::array_label(a));
    }
    // Serials taken out with `raid replace`: never added back by the watcher until the next boot.
    let replacing_file = Paths::appliance().raid_replacing();
    let mut replacing = std::fs::read_to_string(&replacing_file).unwrap_or_default();
    replacing.push_str(serial);
    replacing.push('\n');
    if let Some(dir) = replacing_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&replacing_file, replacing).with_context(|| format!("writing {}", replacing_file.display()))?;
    let dev = sys.dev_node(&a.kname).to_string_lossy().into_owned();
    let disk = sys.dev_node(&kname).to_string_lossy().into_owned();
    if !mdadm(&[&dev, "--fail", &disk, "--remove", &disk]) {
        anyhow::bail!("mdadm could not take {disk} out of {dev}; see `logs`");
    }
    event::emit(&Event::RaidReplaceRequested { serial: serial.to_string(), disk: kname.to_string() });
    println!("coffer: disk {serial} ({kname}) is out of the mirror; pull it and put a blank disk in its bay: the rebuild starts by itself");
    Ok(())
}
