//! The appliance's state gathered into the snapshot that `coffer-status`
//! renders: shown by `status`, and read by `serve`'s check for users
//! without recent backups.

use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::Result;
use coffer_config::{QuotaRecord, Role};
use coffer_hal::SysRoot;
use coffer_runtime::Paths;
use coffer_status::{ArrayStatus, DiskStatus, MemberStatus, ScrubStatus, Space, Status, UnconfirmedSet, UserStatus};
use russh::keys::HashAlg;

use crate::state::State;

/// Walking a user's area stops after this many entries: status must stay quick.
const WALK_LIMIT: usize = 200_000;

pub(crate) fn gather(dir: &Path) -> Result<Status> {
    let state = State::open(dir)?;
    let sys = SysRoot::system();
    let now = coffer_runtime::clock::now() as i64;
    let cmdline = sys.kernel_cmdline().ok();
    let slot = cmdline.as_ref().and_then(|c| c.get("coffer.slot")).map(str::to_string);
    let watch = crate::watch_status::read();
    let scrub: coffer_raid::scrub::ScrubRecord =
        std::fs::read(state.paths.root().join("raid-scrub.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let bays = crate::board::bays();
    let devices = sys.block_devices().unwrap_or_default();
    let serial_of = |k: &str| devices.iter().find(|d| d.name == k).and_then(|d| d.serial.clone());
    let mut arrays = Vec::new();
    let mut disks = Vec::new();
    for a in sys.md_arrays().unwrap_or_default().into_iter().filter(|a| a.level == "raid1") {
        let members = a
            .members
            .iter()
            .map(|m| MemberStatus {
                serial: serial_of(&m.kname),
                bay: m.slot.and_then(|s| bays.get(s as usize).cloned()),
                device: m.kname.clone(),
                state: if m.present { m.state.clone() } else { vec!["missing".into()] },
            })
            .collect();
        for m in a.members.iter().filter(|m| m.present) {
            let serial = serial_of(&m.kname);
            let id = serial.clone().unwrap_or_else(|| m.kname.clone());
            let problems = watch["problems"][&id].as_array().map(|p| p.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
            disks.push(DiskStatus { serial, device: m.kname.clone(), problems });
        }
        let health = serde_json::to_value(coffer_raid::health(&a))?.as_str().unwrap_or("?").to_string();
        arrays.push(ArrayStatus {
            name: coffer_raid::array_label(&a),
            device: a.kname.clone(),
            health,
            sync_action: a.sync_action.clone(),
            progress_percent: a.sync_completed.filter(|(_, t)| *t > 0).map(|(d, t)| d as f64 * 100.0 / t as f64),
            mismatches: a.mismatch_cnt,
            last_scrub: scrub.finished_at.filter(|_| scrub.started_at.is_some()).map(|t| ScrubStatus { finished_at: t, mismatches: scrub.mismatches }),
            members,
        });
    }
    let data_dir = state.data_dir();
    let space = rustix::fs::statvfs(&data_dir).ok().map(|v| Space {
        total_bytes: v.f_blocks.saturating_mul(v.f_frsize),
        free_bytes: v.f_bavail.saturating_mul(v.f_frsize),
    });
    let mut users = Vec::new();
    let default_files = crate::file_limits::default_limit(&state.data_dir());
    for u in state.users()?.users {
        let name = u.name.to_string();
        let record = QuotaRecord::load(&state.paths.quota_dir(), &name).ok();
        let (unconfirmed, retention_held) = match crate::arrivals::observe(&state, &name) {
            Ok(o) => (
                o.dirs
                    .iter()
                    .flat_map(|d| {
                        d.unconfirmed().map(|i| UnconfirmedSet {
                            directory: d.shown.clone(),
                            set: crate::arrivals::describe_set(&d.col.sets[i]),
                            arrived: d.arrivals[i].at,
                        })
                    })
                    .collect(),
                o.held,
            ),
            Err(e) => {
                log::warn!("status: recording the backup sets of {name}: {e:#}");
                (Vec::new(), false)
            }
        };
        users.push(UserStatus {
            unconfirmed,
            retention_held,
            admin: u.role == Role::Admin,
            locked: u.locked,
            used_bytes: record.as_ref().map_or(0, |r| r.used_bytes),
            used_files: record.as_ref().map_or(0, |r| r.used_files),
            quota_bytes: u.quota_bytes,
            quota_files: u.quota_files.or(default_files),
            last_backup: last_backup(&data_dir.join(&name)),
            stale: false,
            name,
        });
    }
    let host_key = russh::keys::load_secret_key(state.paths.host_key(), None).ok();
    let mut status = Status {
        now,
        hostname: rustix::system::uname().nodename().to_string_lossy().into_owned(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        slot_state: slot.as_ref().map(|_| crate::slot_record::slot_state()),
        slot,
        uptime_secs: sys.uptime_secs().unwrap_or(0),
        host_keys: host_key.iter().map(|k| format!("{} {}", k.algorithm().as_str(), k.public_key().fingerprint(HashAlg::Sha256))).collect(),
        clock_trusted: coffer_runtime::clock::trusted(&Paths::appliance()),
        arrays,
        disks,
        led: watch["led"].as_str().map(str::to_string),
        space,
        users,
        stale_after_days: state.config.alerts.no_backup_days,
    };
    status.mark_stale();
    Ok(status)
}

/// When the user last backed up: the newest complete Duplicity set (its
/// manifest is written last), or else the newest file of any client.
fn last_backup(area: &Path) -> Option<i64> {
    let mut newest_manifest: Option<i64> = None;
    let mut newest_file: Option<i64> = None;
    let mut stack = vec![area.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            seen += 1;
            if seen > WALK_LIMIT {
                break;
            }
            let Ok(meta) = e.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".coffer-upload") {
                continue;
            }
            let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs() as i64);
            newest_file = newest_file.max(mtime);
            if coffer_duplicity::parse_name(&name).is_some_and(|n| n.role == coffer_duplicity::FileRole::Manifest && !n.partial) {
                newest_manifest = newest_manifest.max(mtime);
            }
        }
    }
    newest_manifest.or(newest_file)
}
