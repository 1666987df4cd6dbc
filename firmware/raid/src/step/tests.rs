use super::*;
use crate::SmartReport;
use coffer_alert::Severity;
use coffer_hal::MdMember;

const NOW: u64 = 1_700_000_000;

fn member(kname: &str, slot: u32, state: &str, present: bool) -> MdMember {
    MdMember { kname: kname.into(), slot: Some(slot), state: vec![state.into()], present, errors: 0 }
}

fn mirror(degraded: u32, action: &str, members: Vec<MdMember>) -> MdArray {
    MdArray {
        kname: "md127".into(),
        name: Some("data".into()),
        uuid: Some("0a1b2c3d".into()),
        level: "raid1".into(),
        array_state: "clean".into(),
        raid_disks: 2,
        degraded,
        sync_action: action.into(),
        sync_completed: None,
        mismatch_cnt: 0,
        members,
    }
}

fn snap(a: MdArray) -> Snapshot {
    let serials = [("vdb", "disk0"), ("vdc", "disk1")].iter().map(|(k, s)| (k.to_string(), s.to_string())).collect();
    Snapshot { arrays: vec![a], free_disks: vec![], serials }
}

fn healthy() -> MdArray {
    mirror(0, "idle", vec![member("vdb", 0, "in_sync", true), member("vdc", 1, "in_sync", true)])
}

fn degraded() -> MdArray {
    mirror(1, "idle", vec![member("vdb", 0, "in_sync", true)])
}

fn reading(kname: &str, serial: &str, smart_passed: bool) -> DiskReading {
    let smart = SmartReport { passed: Some(smart_passed), ..SmartReport::default() };
    DiskReading { kname: kname.into(), serial: Some(serial.into()), smart: Some(smart), ..DiskReading::default() }
}

fn look(w: &mut WatchState, s: &Snapshot, readings: &[DiskReading]) -> Effects {
    w.step(WatchInput { snapshot: s, readings, controller: None, scrub_request: None, clock_trusted: true, now: NOW })
}

fn watcher() -> WatchState {
    WatchState::new(RaidPolicy::default(), ScrubRecord::default().at_start(false, NOW as i64), None)
}

/// Alert keys in order, `+` raised and `-` resolved.
fn keys(e: &Effects) -> Vec<String> {
    e.alerts().map(|a| format!("{}{}", if a.resolved { "-" } else { "+" }, a.key)).collect()
}

fn codes(e: &Effects) -> Vec<&'static str> {
    e.events().map(|e| e.kind.code()).collect()
}

#[test]
fn a_critical_disk_keeps_the_alarm_on_until_it_leaves_the_mirror() {
    let mut w = watcher();
    let fine = [reading("vdb", "disk0", true), reading("vdc", "disk1", true)];
    let first = look(&mut w, &snap(healthy()), &fine);
    assert_eq!(first.led(), Some(LedPattern::Steady));
    assert_eq!(keys(&first), ["-raid:data:degraded", "-raid:data:failed"], "a healthy mirror at first sight resolves old problems");

    let failing = [reading("vdb", "disk0", true), reading("vdc", "disk1", false)];
    let e = look(&mut w, &snap(healthy()), &failing);
    assert_eq!(e.led(), Some(LedPattern::Alarm), "a healthy mirror, but a disk about to fail");
    assert_eq!(codes(&e), ["disk.health-critical"]);
    let alert = e.alerts().next().expect("test fixture");
    assert_eq!((alert.key.as_str(), alert.severity, alert.title.as_str()), ("disk:disk1:smart-failing", Severity::Critical, "disk disk1 (vdc): smart-failing"));
    assert_eq!(alert.body, "SMART says the disk is failing: replace it now.");
    assert_eq!(e.list.iter().filter(|x| matches!(x, Effect::Publish(_))).count(), 1);
    let view = e.list.iter().find_map(|x| if let Effect::Publish(v) = x { Some(v.clone()) } else { None }).expect("test fixture");
    assert_eq!(view, json!({ "led": "alarm", "problems": { "disk1": ["smart-failing"] } }));

    let e = look(&mut w, &snap(healthy()), &failing);
    assert_eq!((e.led(), e.alerts().count()), (None, 0), "said once, the LED stays");

    // The failing disk is replaced: the mirror is degraded, the alarm goes.
    let e = look(&mut w, &snap(degraded()), &[reading("vdb", "disk0", true)]);
    assert_eq!(e.led(), Some(LedPattern::SlowBlink));
    assert_eq!(keys(&e), ["+raid:data:degraded"]);
}

#[test]
fn mirror_events_raise_and_resolve_alerts_by_key() {
    let mut w = watcher();
    look(&mut w, &snap(healthy()), &[]);
    let e = look(&mut w, &snap(degraded()), &[]);
    assert_eq!(keys(&e), ["+raid:data:degraded"]);
    let a = e.alerts().next().expect("test fixture");
    assert_eq!((a.severity, a.title.as_str(), a.time), (Severity::Critical, "mirror data is degraded: the right disk is missing", NOW));
    assert_eq!(
        a.body,
        "replace the disk with serial disk1 in the right bay with a blank disk; the mirror rebuilds by itself.\nThe data is safe on the other disk until it fails too."
    );
    assert_eq!(e.list.iter().filter(|x| **x == Effect::DataUnavailable(false)).count(), 1);

    let gone = mirror(2, "idle", vec![member("vdb", 0, "faulty", true)]);
    let e = look(&mut w, &snap(gone), &[]);
    assert_eq!(codes(&e), ["raid.member-failed", "raid.failed"]);
    assert_eq!(keys(&e), ["+raid:data:failed"]);
    assert_eq!(e.led(), Some(LedPattern::Alarm));
    assert!(e.list.contains(&Effect::DataUnavailable(true)), "the endpoint refuses sessions");
    assert_eq!(e.actions().collect::<Vec<_>>(), [&RaidAction::RemoveFailed { array: "md127".into() }]);

    let e = look(&mut w, &snap(degraded()), &[]);
    assert_eq!(keys(&e), ["+raid:data:degraded"]);
    let e = look(&mut w, &snap(healthy()), &[]);
    assert_eq!(codes(&e), ["raid.rebuild-started", "raid.rebuild-finished", "raid.spare-active", "raid.healthy"]);
    assert_eq!(keys(&e), ["-raid:data:degraded", "-raid:data:failed"]);
    assert!(e.alerts().all(|a| a.severity == Severity::Info && a.title == "mirror data is healthy again" && a.body == "Both disks are in sync."));
}

#[test]
fn rising_counters_are_warnings_keyed_by_serial_and_what() {
    let mut w = watcher();
    let errors = |n| DiskReading { kname: "vdc".into(), serial: Some("disk1".into()), counters: [("md-corrected-errors", n)].into_iter().collect(), ..DiskReading::default() };
    look(&mut w, &snap(healthy()), &[errors(3)]);
    let e = look(&mut w, &snap(healthy()), &[errors(5)]);
    assert_eq!(codes(&e), ["disk.health-warning"]);
    let event = e.events().next().expect("test fixture");
    assert_eq!((event.fields["disk"].as_str(), event.fields["serial"].as_str(), event.fields["what"].as_str()), (Some("vdc"), Some("disk1"), Some("md-corrected-errors")));
    let a = e.alerts().next().expect("test fixture");
    assert_eq!((a.key.as_str(), a.severity, a.title.as_str()), ("disk:disk1:md-corrected-errors", Severity::Warning, "disk disk1 (vdc): md-corrected-errors"));
    assert_eq!(e.led(), None, "a warning leaves the LED as it is");

    // A 3ware port's health event carries its own alert title.
    let port = RaidEvent::of(RaidKind::DiskHealthCritical).with("disk", "port 1").with("serial", "WD-9").with("what", "smart-failing").with("guidance", "replace it");
    let a = &alerts_for(&port, NOW)[0];
    assert_eq!((a.key.as_str(), a.severity, a.title.as_str(), a.body.as_str()), ("disk:WD-9:smart-failing", Severity::Critical, "disk WD-9: smart-failing", "replace it."));
}

#[test]
fn a_requested_check_starts_and_its_mismatches_are_an_alert() {
    let mut w = watcher();
    look(&mut w, &snap(healthy()), &[]);
    let e = w.step(WatchInput { snapshot: &snap(healthy()), readings: &[], controller: None, scrub_request: Some(ScrubRequest::Check), clock_trusted: true, now: NOW });
    assert_eq!(e.list, [Effect::DataUnavailable(false), Effect::StartScrub { array: "md127".into(), label: "data".into(), from_sector: 0 }]);
    let started = w.scrub_started("data", 0, NOW);
    assert_eq!((started.kind.code(), started.fields["from-sector"].as_u64()), ("raid.scrub-started", Some(0)));
    let mut done = healthy();
    done.mismatch_cnt = 8;
    let e = look(&mut w, &snap(done), &[]);
    assert_eq!(codes(&e), ["raid.scrub-finished"]);
    assert!(e.list.contains(&Effect::FinishScrub { array: "md127".into() }));
    assert_eq!(keys(&e), ["+raid:data:mismatches"]);
    let stop = w.step(WatchInput { snapshot: &snap(healthy()), readings: &[], controller: None, scrub_request: Some(ScrubRequest::Stop), clock_trusted: true, now: NOW });
    assert_eq!(codes(&stop), ["raid.scrub-stopped"]);
    assert!(stop.save_scrub_now && !stop.list.iter().any(|x| matches!(x, Effect::StopScrub { .. })), "an idle mirror has no check to stop");
}

/// A snapshot of a tree captured from a real kernel (coffer-hal's fixtures).
fn captured(state: &str) -> Snapshot {
    let dir = tempfile::tempdir().expect("test fixture");
    let root = coffer_hal::fixture::md_state(state, dir.path()).expect("test fixture");
    let serials = root.block_devices().expect("test fixture").into_iter().filter_map(|d| Some((d.name, d.serial?))).collect();
    Snapshot { arrays: root.md_arrays().expect("test fixture"), free_disks: vec![], serials }
}

/// One look's expected answer: the tree, the LED when it changes, event
/// codes, alert keys, mdadm actions, whether to look again soon.
type Expected<'a> = (&'a str, Option<LedPattern>, &'a [&'a str], &'a [&'a str], &'a [RaidAction], bool);

/// The ten captured trees in the order they were captured, through one
/// watcher: what the LED shows (when it changes), which events, alerts
/// (`+` raised, `-` resolved) and mdadm actions each look gives, and
/// whether the watcher looks again soon.
#[test]
fn the_captured_trees_replay_through_the_step() {
    use LedPattern::*;
    let fail_detached = RaidAction::FailDetached { array: "md127".into() };
    let remove_failed = RaidAction::RemoveFailed { array: "md127".into() };
    let resolved: &[&str] = &["-raid:data:degraded", "-raid:data:failed"];
    #[rustfmt::skip]
    let want: [Expected<'_>; 10] = [
        ("resync", Some(FastBlink), &["raid.state"], &[], &[], true),
        ("clean", Some(Steady), &["raid.state"], resolved, &[], false),
        ("clean-with-spare", None, &[], &[], &[], false),
        ("faulty-recovering-onto-spare", Some(FastBlink), &["raid.member-failed", "raid.rebuild-started", "raid.rebuild-progress"], &[], std::slice::from_ref(&remove_failed), true),
        ("faulty-member", Some(Steady), &["raid.rebuild-finished", "raid.spare-active", "raid.healthy"], resolved, &[], false),
        // md still counts the pulled member: the LED stays steady until it is failed out.
        ("disk-pulled-idle", None, &["raid.member-failed"], &[], std::slice::from_ref(&fail_detached), true),
        ("degraded", Some(SlowBlink), &["raid.degraded"], &["+raid:data:degraded"], &[], false),
        ("recovering", Some(FastBlink), &["raid.rebuild-started", "raid.rebuild-progress"], &[], &[], true),
        // An inactive array has no level: no mirror at all, the alarm.
        ("inactive", Some(Alarm), &[], &[], &[], false),
        ("resync-delayed", Some(FastBlink), &["raid.state", "raid.state"], &[], &[], true),
    ];
    assert_eq!(want.map(|w| w.0), coffer_hal::fixture::MD_STATES);
    let mut w = watcher();
    for (state, led, events, alerts, actions, soon) in want {
        let e = look(&mut w, &captured(state), &[]);
        assert_eq!(e.led(), led, "{state}: LED");
        assert_eq!(codes(&e), events, "{state}: events");
        assert_eq!(keys(&e), alerts, "{state}: alerts");
        assert_eq!(e.actions().cloned().collect::<Vec<_>>(), actions, "{state}: actions");
        assert_eq!(e.look_soon, soon, "{state}: look again soon");
    }
}
