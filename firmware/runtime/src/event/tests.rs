//! Every kind's exact line, pinned: kinds and field names are read by the
//! QEMU and end-to-end tests, by README's examples and by people's scripts,
//! so a change here is a change of the format.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

fn s(text: &str) -> String {
    text.to_string()
}

/// One example of every variant and the line it prints.
fn table() -> Vec<(Event, &'static str)> {
    vec![
        (Event::BootStart { version: s("0.1.0"), slot: s("a") }, r#"{"kind":"boot.start","slot":"a","version":"0.1.0"}"#),
        (
            Event::BootModules { loaded: 12, failed: vec![s("uleds")], ms: 340, slowest: vec![(s("raid1"), 120)] },
            r#"{"failed":["uleds"],"kind":"boot.modules","loaded":12,"ms":340,"slowest":[["raid1",120]]}"#,
        ),
        (Event::BootHostKeys { fingerprints: vec![s("256 SHA256:abc (ED25519)")] }, r#"{"fingerprints":["256 SHA256:abc (ED25519)"],"kind":"boot.host-keys"}"#),
        (Event::BootFailed { step: s("data"), message: s("no disks") }, r#"{"kind":"boot.failed","message":"no disks","step":"data"}"#),
        (Event::BootDone { uptime_secs: 4.5, watchdog: true }, r#"{"kind":"boot.done","uptime-secs":4.5,"watchdog":true}"#),
        (Event::StateMounted { device: s("vda3"), path: s("/state") }, r#"{"device":"vda3","kind":"state.mounted","path":"/state"}"#),
        (Event::StateAdminAdded { user: s("admin") }, r#"{"kind":"state.admin-added","user":"admin"}"#),
        (Event::FsCheckFailed { device: s("/dev/md127"), detail: s("UNEXPECTED INCONSISTENCY") }, r#"{"detail":"UNEXPECTED INCONSISTENCY","device":"/dev/md127","kind":"fs.check-failed"}"#),
        (Event::DataDiskNotBlank { disk: s("vdb"), serial: Some(s("D1")) }, r#"{"disk":"vdb","kind":"data.disk-not-blank","serial":"D1"}"#),
        (Event::DataDiskNotBlank { disk: s("sda"), serial: None }, r#"{"disk":"sda","kind":"data.disk-not-blank","serial":null}"#),
        (
            Event::DataCreating { disks: vec![s("/dev/vdb"), s("/dev/vdc")], serials: vec![Some(s("D1")), None] },
            r#"{"disks":["/dev/vdb","/dev/vdc"],"kind":"data.creating","serials":["D1",null]}"#,
        ),
        (Event::DataCreated { array: s("/dev/md/data") }, r#"{"array":"/dev/md/data","kind":"data.created"}"#),
        (Event::DataMounted { array: s("/dev/md/data"), path: s("/data") }, r#"{"array":"/dev/md/data","kind":"data.mounted","path":"/data"}"#),
        (Event::NetworkNoInterface, r#"{"kind":"network.no-interface"}"#),
        (Event::NetworkUp { interface: s("eth0"), method: s("dhcp"), address: None }, r#"{"interface":"eth0","kind":"network.up","method":"dhcp"}"#),
        (
            Event::NetworkUp { interface: s("eth0"), method: s("static"), address: Some(s("10.0.0.2/24")) },
            r#"{"address":"10.0.0.2/24","interface":"eth0","kind":"network.up","method":"static"}"#,
        ),
        (Event::NetworkWaiting { interface: s("eth0") }, r#"{"interface":"eth0","kind":"network.waiting"}"#),
        (Event::Health { healthy: false }, r#"{"healthy":false,"kind":"health"}"#),
        (Event::ServiceStarted { service: s("endpoint"), pid: 412 }, r#"{"kind":"service.started","pid":412,"service":"endpoint"}"#),
        (Event::ServiceReady { service: s("raid") }, r#"{"kind":"service.ready","service":"raid"}"#),
        (
            Event::ServiceExited { service: Some(s("endpoint")), status: s("signal 9"), restart_in_secs: Some(1.0) },
            r#"{"kind":"service.exited","restart-in-secs":1.0,"service":"endpoint","status":"signal 9"}"#,
        ),
        (
            Event::ServiceExited { service: None, status: s("exit status 125"), restart_in_secs: None },
            r#"{"kind":"service.exited","restart-in-secs":null,"service":null,"status":"exit status 125"}"#,
        ),
        (Event::ServiceFlapping { service: s("mdns") }, r#"{"kind":"service.flapping","service":"mdns"}"#),
        (Event::ServiceStopped { service: s("endpoint"), status: s("exit status 0") }, r#"{"kind":"service.stopped","service":"endpoint","status":"exit status 0"}"#),
        (Event::ServiceKilled { service: s("endpoint") }, r#"{"kind":"service.killed","service":"endpoint"}"#),
        (Event::UpdateTrial { slot: s("b"), mark_good_after_secs: 300 }, r#"{"kind":"update.trial","mark-good-after-secs":300,"slot":"b"}"#),
        (Event::UpdateRolledBack { slot: s("a"), failed: s("b") }, r#"{"failed":"b","kind":"update.rolled-back","slot":"a"}"#),
        (Event::UpdateMarkedGood { slot: s("b") }, r#"{"kind":"update.marked-good","slot":"b"}"#),
        (
            Event::UpdateTrialFailed { slot: s("b"), reason: s("services were not healthy in time") },
            r#"{"kind":"update.trial-failed","reason":"services were not healthy in time","slot":"b"}"#,
        ),
        (Event::DebugKill { service: s("endpoint"), pid: 412 }, r#"{"kind":"debug.kill","pid":412,"service":"endpoint"}"#),
        (Event::DebugHang, r#"{"kind":"debug.hang"}"#),
        (Event::ShutdownStart { reason: s("power button"), reboot: false }, r#"{"kind":"shutdown.start","reason":"power button","reboot":false}"#),
        (Event::ShutdownDone { reboot: true }, r#"{"kind":"shutdown.done","reboot":true}"#),
        (Event::ServerListening { address: s("127.0.0.1:2222") }, r#"{"address":"127.0.0.1:2222","kind":"server.listening"}"#),
        (Event::ServerStopped, r#"{"kind":"server.stopped"}"#),
        (Event::LoginBanned { address: s("192.0.2.7"), seconds: 60 }, r#"{"address":"192.0.2.7","kind":"login.banned","seconds":60}"#),
        (
            Event::SessionRevoked { user: s("alice"), key: s("SHA256:k"), reason: s("key-removed"), address: s("192.0.2.7:5000") },
            r#"{"address":"192.0.2.7:5000","key":"SHA256:k","kind":"session.revoked","reason":"key-removed","user":"alice"}"#,
        ),
        (
            Event::SessionNarrowed { user: s("alice"), key: s("SHA256:k"), profile: s("append-only"), sessions: 2 },
            r#"{"key":"SHA256:k","kind":"session.narrowed","profile":"append-only","sessions":2,"user":"alice"}"#,
        ),
        (
            Event::QuotaWarning { user: s("alice"), percent: 90, used: 900, limit: 1000 },
            r#"{"kind":"quota.warning","limit":1000,"percent":90,"used":900,"user":"alice"}"#,
        ),
        (
            Event::QuotaCountFailed { user: s("alice"), error: s("permission denied"), retry_secs: 30 },
            r#"{"error":"permission denied","kind":"quota.count_failed","retry_secs":30,"user":"alice"}"#,
        ),
        (Event::RetentionDeleted { user: s("alice"), sets: 3, bytes: 4096 }, r#"{"bytes":4096,"kind":"retention.deleted","sets":3,"user":"alice"}"#),
        (
            Event::RetentionHeld { user: s("alice"), would_delete: vec![s("duplicity full 2024-01-01")] },
            r#"{"kind":"retention.held","user":"alice","would-delete":["duplicity full 2024-01-01"]}"#,
        ),
        (Event::RetentionAdopted { user: s("alice"), sets: 12 }, r#"{"kind":"retention.adopted","sets":12,"user":"alice"}"#),
        (Event::BackupStale { user: s("bob"), days: 7 }, r#"{"days":7,"kind":"backup.stale","user":"bob"}"#),
        (Event::AlertRunning { sinks: vec![s("log"), s("email")] }, r#"{"kind":"alert.running","sinks":["log","email"]}"#),
        (
            Event::AlertSent { key: s("raid:data:degraded"), sink: s("email"), resolved: false, reminder: true },
            r#"{"key":"raid:data:degraded","kind":"alert.sent","reminder":true,"resolved":false,"sink":"email"}"#,
        ),
        (
            Event::AlertFailed { key: s("raid:data:degraded"), sink: s("webhook"), error: s("timed out") },
            r#"{"error":"timed out","key":"raid:data:degraded","kind":"alert.failed","sink":"webhook"}"#,
        ),
        (Event::TimeRunning { servers: vec![s("pool.ntp.org")] }, r#"{"kind":"time.running","servers":["pool.ntp.org"]}"#),
        (
            Event::TimeSynced { server: s("pool.ntp.org"), offset_ms: -3, rtc: true },
            r#"{"kind":"time.synced","offset-ms":-3,"rtc":true,"server":"pool.ntp.org"}"#,
        ),
        (Event::MdnsAdvertising { name: s("coffer.local"), address: s("10.0.0.2") }, r#"{"address":"10.0.0.2","kind":"mdns.advertising","name":"coffer.local"}"#),
        (Event::StateImported { files: 5 }, r#"{"files":5,"kind":"state.imported"}"#),
        (Event::UpdateArmed { slot: s("b"), version: s("0.2.0"), from: s("0.1.0") }, r#"{"from":"0.1.0","kind":"update.armed","slot":"b","version":"0.2.0"}"#),
        (Event::UpdateCancelled { slot: s("b") }, r#"{"kind":"update.cancelled","slot":"b"}"#),
        (Event::UpdateRollback { slot: s("a") }, r#"{"kind":"update.rollback","slot":"a"}"#),
        (Event::RaidWatching { status_led: Some(s("input0::capslock")) }, r#"{"kind":"raid.watching","status-led":"input0::capslock"}"#),
        (Event::RaidWatching { status_led: None }, r#"{"kind":"raid.watching","status-led":null}"#),
        (Event::RaidReplaceRequested { serial: s("D1"), disk: s("vdb") }, r#"{"disk":"vdb","kind":"raid.replace-requested","serial":"D1"}"#),
        (
            Event::LedPattern { pattern: s("slow-blink"), led: Some(s("input0::capslock")) },
            r#"{"kind":"led.pattern","led":"input0::capslock","pattern":"slow-blink"}"#,
        ),
        (
            Event::RaidAction { action: s("add"), detail: s("Add { array: \"md127\", disk: \"vdd\" }"), ok: true },
            r#"{"action":"add","detail":"Add { array: \"md127\", disk: \"vdd\" }","kind":"raid.action","ok":true}"#,
        ),
        (
            Event::Mirror(MirrorEvent {
                kind: "raid.degraded",
                fields: BTreeMap::from([("array", json!("data")), ("missing", json!(1)), ("slot", json!(1)), ("bay", json!("right")), ("serial", Value::Null)]),
            }),
            r#"{"array":"data","bay":"right","kind":"raid.degraded","missing":1,"serial":null,"slot":1}"#,
        ),
    ]
}

#[test]
fn every_kind_prints_its_pinned_line() {
    for (event, json) in table() {
        assert_eq!(line(&event), format!("coffer-event {json}"), "{event:?}");
    }
}

/// Strings are JSON-escaped, never pasted: a quote in a message cannot end the object.
#[test]
fn text_with_quotes_and_newlines_stays_one_json_line() {
    let text = line(&Event::BootFailed { step: s("state"), message: s("say \"no\"\nthen stop") });
    assert_eq!(text, r#"coffer-event {"kind":"boot.failed","message":"say \"no\"\nthen stop","step":"state"}"#);
}
