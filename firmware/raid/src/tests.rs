use super::*;
use coffer_hal::MdMember;
use proptest::prelude::*;

fn member(kname: &str, slot: Option<u32>, state: &str, present: bool) -> MdMember {
    MdMember { kname: kname.into(), slot, state: state.split(',').map(str::to_string).collect(), present, errors: 0 }
}

fn array(degraded: u32, action: &str, completed: Option<(u64, u64)>, members: Vec<MdMember>) -> MdArray {
    MdArray {
        kname: "md127".into(),
        name: Some("data".into()),
        uuid: Some("0a1b2c3d-4e5f".into()),
        level: "raid1".into(),
        array_state: "clean".into(),
        raid_disks: 2,
        degraded,
        sync_action: action.into(),
        sync_completed: completed,
        mismatch_cnt: 0,
        members,
    }
}

fn snap(a: MdArray, free: Vec<FreeDisk>) -> Snapshot {
    let serials = [("vdb", "disk0"), ("vdc", "disk1"), ("vdd", "disk2")].iter().map(|(k, s)| (k.to_string(), s.to_string())).collect();
    Snapshot { arrays: vec![a], free_disks: free, serials }
}

fn codes(events: &[RaidEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.code()).collect()
}

fn healthy() -> MdArray {
    array(0, "idle", None, vec![member("vdb", Some(0), "in_sync", true), member("vdc", Some(1), "in_sync", true)])
}

#[test]
fn pull_insert_rebuild_lifecycle() {
    let mut m = Monitor::new(RaidPolicy::default());
    let (e, a) = m.observe(&snap(healthy(), vec![]));
    assert_eq!(codes(&e), ["raid.state"]);
    assert!(a.is_empty());

    // The right disk is pulled: its member is still listed but its device is gone.
    let pulled = array(0, "idle", None, vec![member("vdb", Some(0), "in_sync", true), member("vdc", Some(1), "in_sync", false)]);
    let (e, a) = m.observe(&snap(pulled, vec![]));
    assert_eq!(codes(&e), ["raid.member-failed"]);
    assert_eq!(e[0].fields["serial"], "disk1");
    assert_eq!(e[0].fields["bay"], "right");
    assert!(e[0].fields["guidance"].as_str().expect("test fixture").contains("serial disk1 in the right bay"));
    assert_eq!(a, vec![RaidAction::FailDetached { array: "md127".into() }]);

    // After mdadm -If: degraded, member gone. A blank disk is waiting.
    let degraded = array(1, "idle", None, vec![member("vdb", Some(0), "in_sync", true)]);
    let blank = FreeDisk { kname: "vdd".into(), serial: Some("disk2".into()), content: DiskContent::Blank };
    let (e, a) = m.observe(&snap(degraded.clone(), vec![blank.clone()]));
    assert_eq!(codes(&e), ["raid.degraded"]);
    let (_, again) = m.observe(&snap(degraded.clone(), vec![blank.clone()]));
    assert!(again.is_empty(), "a disk md did not take is not offered again while it stays: {again:?}");
    assert_eq!(e[0].fields["bay"], "right");
    assert_eq!(e[0].fields["serial"], "disk1", "the missing disk is named by the serial it had");
    assert_eq!(a, vec![RaidAction::Add { array: "md127".into(), disk: "vdd".into() }]);

    // Recovery runs: started, then one progress event per 10 % step crossed.
    let mut steps = Vec::new();
    for done in [0u64, 5, 12, 14, 35, 99] {
        let rebuilding = array(1, "recover", Some((done, 100)), vec![member("vdb", Some(0), "in_sync", true), member("vdd", Some(1), "spare", true)]);
        let (e, a) = m.observe(&snap(rebuilding, vec![]));
        assert!(a.is_empty());
        steps.extend(e.into_iter().map(|e| (e.kind.code(), e.fields.get("percent").cloned())));
    }
    assert_eq!(steps[0].0, "raid.rebuild-started");
    let percents: Vec<_> = steps[1..].iter().map(|(c, p)| (*c, p.clone().expect("test fixture").as_u64().expect("test fixture"))).collect();
    assert_eq!(percents, [("raid.rebuild-progress", 10), ("raid.rebuild-progress", 30), ("raid.rebuild-progress", 90)]);

    let done = array(0, "idle", None, vec![member("vdb", Some(0), "in_sync", true), member("vdd", Some(1), "in_sync", true)]);
    let (e, _) = m.observe(&snap(done, vec![]));
    assert_eq!(codes(&e), ["raid.rebuild-finished", "raid.spare-active", "raid.healthy"]);
    assert_eq!(e[1].fields["serial"], "disk2");
    assert_eq!(e[2].fields["resolved"], true);
}

#[test]
fn foreign_disks_are_left_alone_unless_allowed_and_former_members_are_re_added() {
    let degraded = || array(1, "idle", None, vec![member("vdb", Some(0), "in_sync", true)]);
    let foreign = FreeDisk { kname: "vdd".into(), serial: None, content: DiskContent::Foreign };
    let mut m = Monitor::new(RaidPolicy::default());
    let (e, a) = m.observe(&snap(degraded(), vec![foreign.clone()]));
    assert_eq!(codes(&e), ["raid.degraded", "raid.disk-ignored"]);
    assert!(a.is_empty());
    let (e, _) = m.observe(&snap(degraded(), vec![foreign.clone()]));
    assert!(e.is_empty(), "said once: {e:?}");

    let mut m = Monitor::new(RaidPolicy { auto_add_foreign: true, ..RaidPolicy::default() });
    let (_, a) = m.observe(&snap(degraded(), vec![foreign]));
    assert_eq!(a, vec![RaidAction::Add { array: "md127".into(), disk: "vdd".into() }]);

    let returning = FreeDisk { kname: "vdc".into(), serial: None, content: DiskContent::MemberOf("0a1b2c3d4e5f".into()) };
    let mut m = Monitor::new(RaidPolicy::default());
    let (_, a) = m.observe(&snap(degraded(), vec![returning]));
    assert_eq!(a, vec![RaidAction::ReAdd { array: "md127".into(), disk: "vdc".into() }]);
}

#[test]
fn both_gone_is_failed_and_faulty_members_are_removed() {
    let mut m = Monitor::new(RaidPolicy::default());
    m.observe(&snap(healthy(), vec![]));
    let failed = array(2, "idle", None, vec![member("vdb", Some(0), "faulty", true), member("vdc", Some(1), "faulty", true)]);
    let (e, a) = m.observe(&snap(failed, vec![]));
    assert_eq!(codes(&e), ["raid.member-failed", "raid.member-failed", "raid.failed"]);
    assert_eq!(a, vec![RaidAction::RemoveFailed { array: "md127".into() }]);
    let again = array(2, "idle", None, vec![member("vdb", Some(0), "faulty", true), member("vdc", Some(1), "faulty", true)]);
    let (e, a) = m.observe(&snap(again, vec![]));
    assert!(e.is_empty() && a.is_empty(), "nothing changed: nothing said or asked again ({e:?}, {a:?})");
}

fn arb_member() -> impl Strategy<Value = MdMember> {
    (prop::sample::select(vec!["vdb", "vdc", "vdd"]), prop::option::of(0u32..3), prop::sample::select(vec!["in_sync", "faulty", "spare", "in_sync,write_error", ""]), any::<bool>())
        .prop_map(|(k, slot, state, present)| member(k, slot, state, present))
}

fn arb_array() -> impl Strategy<Value = MdArray> {
    (0u32..3, prop::sample::select(vec!["idle", "recover", "resync", "check", "frozen"]), prop::option::of((0u64..200, 0u64..200)), prop::collection::vec(arb_member(), 0..4))
        .prop_map(|(d, act, c, ms)| array(d, act, c, ms))
}

fn arb_free() -> impl Strategy<Value = Vec<FreeDisk>> {
    let content = || prop::sample::select(vec![DiskContent::Blank, DiskContent::Foreign, DiskContent::MemberOf("ff".into())]);
    (prop::option::of(content()), prop::option::of(content())).prop_map(|(d, e)| {
        [("vdd", d), ("vde", e)]
            .into_iter()
            .filter_map(|(k, c)| c.map(|content| FreeDisk { kname: k.into(), serial: None, content }))
            .collect()
    })
}

proptest! {
    /// Any sequence of snapshots: never a panic, never a foreign disk added
    /// under the default policy, at most one disk added per look.
    #[test]
    fn never_adds_foreign_disks_by_default(seq in prop::collection::vec((arb_array(), arb_free()), 1..12)) {
        let mut m = Monitor::new(RaidPolicy::default());
        for (a, free) in seq {
            let (_, actions) = m.observe(&snap(a, free.clone()));
            let adds: Vec<_> = actions.iter().filter(|x| matches!(x, RaidAction::Add { .. } | RaidAction::ReAdd { .. })).collect();
            prop_assert!(adds.len() <= 1);
            for x in adds {
                if let RaidAction::Add { disk, .. } = x {
                    let d = free.iter().find(|d| d.kname == *disk).expect("test fixture");
                    prop_assert_eq!(&d.content, &DiskContent::Blank);
                }
            }
        }
    }
}

fn disk(name: &str, size: u64) -> BlockDevice {
    BlockDevice { name: name.into(), kind: DeviceKind::Disk, part_name: None, size, serial: None, parent: None, read_only: false }
}

#[test]
fn candidates_leave_out_the_boot_disk_and_tiny_or_readonly_ones() {
    let mut ro = disk("vde", 64 << 20);
    ro.read_only = true;
    let mut part = disk("vdb1", 64 << 20);
    part.kind = DeviceKind::Partition;
    let all = [disk("vda", 64 << 20), disk("vdb", 64 << 20), disk("vdc", 1 << 20), ro, part, disk("vdd", 1 << 30)];
    let names: Vec<_> = data_disk_candidates(&all, "vda").into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["vdb", "vdd"]);
}

#[test]
fn a_rebuild_finished_between_two_looks_is_still_reported() {
    let mut m = Monitor::new(RaidPolicy::default());
    m.observe(&snap(healthy(), vec![]));
    m.observe(&snap(array(1, "idle", None, vec![member("vdb", Some(0), "in_sync", true)]), vec![]));
    // The kernel reused the name vdc for the new disk (serial disk2).
    let mut s = snap(array(0, "idle", None, vec![member("vdb", Some(0), "in_sync", true), member("vdc", Some(1), "in_sync", true)]), vec![]);
    s.serials.insert("vdc".into(), "disk2".into());
    let (e, _) = m.observe(&s);
    assert_eq!(codes(&e), ["raid.rebuild-started", "raid.rebuild-finished", "raid.spare-active", "raid.healthy"]);
    assert_eq!(e[2].fields["serial"], "disk2");
}

#[test]
fn led_shows_the_worst_state() {
    use Health::*;
    assert_eq!(led_pattern(&[Healthy]), LedPattern::Steady);
    assert_eq!(led_pattern(&[Healthy, Rebuilding]), LedPattern::FastBlink);
    assert_eq!(led_pattern(&[Rebuilding, Degraded]), LedPattern::SlowBlink);
    assert_eq!(led_pattern(&[Degraded, Failed]), LedPattern::Alarm);
    assert_eq!(led_pattern(&[]), LedPattern::Alarm, "no mirror at all");
    assert_eq!(LedPattern::SlowBlink.timing(), Some((1000, 1000)));
}

/// A snapshot of a tree captured from a real kernel (coffer-hal's fixtures).
fn captured(state: &str) -> Snapshot {
    let dir = tempfile::tempdir().expect("test fixture");
    let root = coffer_hal::fixture::md_state(state, dir.path()).expect("test fixture");
    let serials = root.block_devices().expect("test fixture").into_iter().filter_map(|d| Some((d.name, d.serial?))).collect();
    Snapshot { arrays: root.md_arrays().expect("test fixture"), free_disks: vec![], serials }
}

#[test]
fn captured_states_have_the_health_md_meant() {
    for (state, want) in [
        ("resync", vec![Health::Syncing]),
        ("clean", vec![Health::Healthy]),
        ("clean-with-spare", vec![Health::Healthy]),
        ("faulty-recovering-onto-spare", vec![Health::Rebuilding]),
        ("faulty-member", vec![Health::Healthy]),
        // Until the pulled member is failed out, md still counts it.
        ("disk-pulled-idle", vec![Health::Healthy]),
        ("degraded", vec![Health::Degraded]),
        ("recovering", vec![Health::Rebuilding]),
        // Inactive: no level, so the monitor (raid1 only) does not take it for the mirror.
        ("inactive", vec![Health::Failed]),
        ("resync-delayed", vec![Health::Syncing, Health::Syncing]),
    ] {
        let got: Vec<Health> = captured(state).arrays.iter().map(health).collect();
        assert_eq!(got, want, "{state}");
    }
}

/// The captured sequence replayed through the monitor: a spare takes over a
/// faulty member, a pulled disk is failed out, a blank disk rebuilds.
#[test]
fn captured_failures_and_rebuilds_replay_into_events_and_actions() {
    let mut m = Monitor::new(RaidPolicy::default());
    let mut step = |state: &str| {
        let (e, a) = m.observe(&captured(state));
        (e.into_iter().map(|e| (e.kind.code(), e.fields)).collect::<Vec<_>>(), a)
    };
    let (e, a) = step("clean");
    assert_eq!((e.len(), e[0].0, e[0].1["health"].as_str()), (1, "raid.state", Some("healthy")));
    assert!(a.is_empty());
    assert_eq!(step("clean-with-spare"), (vec![], vec![]), "a spare changes nothing");

    let (e, a) = step("faulty-recovering-onto-spare");
    let codes: Vec<&str> = e.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, ["raid.member-failed", "raid.rebuild-started", "raid.rebuild-progress"]);
    assert_eq!((e[0].1["serial"].as_str(), e[0].1["bay"].as_str()), (Some("disk1"), Some("right")));
    assert_eq!(e[1].1["serial"], "disk2", "the rebuild goes onto the spare");
    assert_eq!(a, [RaidAction::RemoveFailed { array: "md127".into() }]);

    let (e, a) = step("faulty-member");
    let codes: Vec<&str> = e.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, ["raid.rebuild-finished", "raid.spare-active", "raid.healthy"]);
    assert!(a.is_empty(), "the faulty member's removal was already asked for");

    // The spare's disk is pulled while idle: failed out at once, by name.
    let (e, a) = step("disk-pulled-idle");
    assert_eq!(e.iter().map(|(c, _)| *c).collect::<Vec<_>>(), ["raid.member-failed"]);
    assert_eq!((e[0].1["serial"].as_str(), e[0].1["slot"].as_u64()), (Some("disk2"), Some(1)));
    assert_eq!(a, [RaidAction::FailDetached { array: "md127".into() }]);

    let (e, a) = step("degraded");
    assert_eq!(e.iter().map(|(c, _)| *c).collect::<Vec<_>>(), ["raid.degraded"]);
    assert!(e[0].1["guidance"].as_str().expect("test fixture").contains("disk2 in the right bay"), "{:?}", e[0].1);
    assert!(a.is_empty(), "no free disk to add");

    let (e, _) = step("recovering");
    assert_eq!(e.iter().map(|(c, _)| *c).collect::<Vec<_>>(), ["raid.rebuild-started", "raid.rebuild-progress"]);
    assert_eq!(e[0].1["serial"], "disk1");

    let (e, _) = step("clean");
    assert_eq!(e.iter().map(|(c, _)| *c).collect::<Vec<_>>(), ["raid.rebuild-finished", "raid.spare-active", "raid.healthy"]);
}

/// md marks the new disk in sync a moment before the array stops being
/// degraded; a look in between must not hide the end of the rebuild.
#[test]
fn a_rebuild_target_seen_in_sync_before_the_end_still_finishes_the_rebuild() {
    let mut m = Monitor::new(RaidPolicy::default());
    m.observe(&snap(healthy(), vec![]));
    m.observe(&snap(array(1, "idle", None, vec![member("vdb", Some(0), "in_sync", true)]), vec![]));
    let spare = |state| array(1, "recover", Some((90, 100)), vec![member("vdb", Some(0), "in_sync", true), member("vdd", Some(1), state, true)]);
    let (e, _) = m.observe(&snap(spare("spare"), vec![]));
    assert_eq!(codes(&e), ["raid.rebuild-started", "raid.rebuild-progress"]);
    let (e, _) = m.observe(&snap(spare("in_sync"), vec![]));
    assert!(e.is_empty(), "{:?}", codes(&e));
    let done = array(0, "idle", None, vec![member("vdb", Some(0), "in_sync", true), member("vdd", Some(1), "in_sync", true)]);
    let (e, _) = m.observe(&snap(done, vec![]));
    assert_eq!(codes(&e), ["raid.rebuild-finished", "raid.spare-active", "raid.healthy"]);
    assert_eq!(e[1].fields["serial"], "disk2");
}
