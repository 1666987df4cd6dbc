//! Signed firmware updates on the booted appliance: bad (and older) bundles
//! are refused and change nothing; a good one is written to the other slot, tried once
//! and marked good, and `update rollback` goes back; a slot that never comes up falls back by itself under
//! BIOS (syslinux boot-once) and UEFI (systemd-boot boot counting).

use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_tests::qemu::{Appliance, BootOptions, Firmware, TestImage, exclusive, timeout};
use coffer_tests::{coffer_bin, run_ok, text};

/// Signs `vmlinuz` and `initrd` (a path, or the test image's) as version `version`.
fn bundle(dir: &Path, name: &str, version: &str, initrd: Option<&[u8]>, key_dir: &Path) -> PathBuf {
    let img = TestImage::get();
    let boot = dir.join(format!("{name}-boot"));
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::copy(img.boot_dir.join("vmlinuz"), boot.join("vmlinuz")).unwrap();
    match initrd {
        Some(bytes) => std::fs::write(boot.join("initrd.zst"), bytes).unwrap(),
        None => std::fs::copy(img.boot_dir.join("initrd.zst"), boot.join("initrd.zst")).map(|_| ()).unwrap(),
    }
    let out = dir.join(format!("{name}.bundle"));
    run_ok(
        Command::new(coffer_bin())
            .args(["update", "make-bundle", "--board", "qemu-x86_64", "--version", version, "--boot-dir"])
            .arg(&boot)
            .arg("--key")
            .arg(key_dir.join("update-key.secret.asc"))
            .arg("--out")
            .arg(&out),
    );
    out
}

fn test_key() -> PathBuf {
    TestImage::get().keys.join("update")
}

fn slot_version(a: &Appliance, slot: &str) -> String {
    a.read_esp_file(&format!("/coffer/{slot}/version")).trim().to_string()
}

#[test]
fn bad_bundles_are_refused_and_a_good_one_switches_slots() {
    let _one_guest = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let good = bundle(dir.path(), "good", "9.9.9-test", None, &test_key());
    let bytes = std::fs::read(&good).unwrap();
    let mut tampered = bytes.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let truncated = bytes[..bytes.len() / 2].to_vec();
    let other_key = dir.path().join("other-key");
    run_ok(Command::new(coffer_bin()).args(["update", "keygen", "--out-dir"]).arg(&other_key));
    let wrongly_signed = std::fs::read(bundle(dir.path(), "other", "6.6.6", None, &other_key)).unwrap();
    // Validly signed, but older than the image's version: a downgrade needs --allow-downgrade.
    let older = std::fs::read(bundle(dir.path(), "older", "0.0.1", None, &test_key())).unwrap();

    let mut a = Appliance::boot(BootOptions { firmware: Firmware::SeaBios, allow_reset: true, ..BootOptions::default() });
    a.wait_event("service.ready", timeout(120));
    a.wait_ssh("admin", timeout(60));
    let admin = a.client("admin");
    for (what, data, expect) in [
        ("tampered", tampered.as_slice(), "update refused"),
        ("truncated", truncated.as_slice(), "truncated"),
        ("wrongly signed", wrongly_signed.as_slice(), "update refused"),
        ("empty", &[][..], "no bundle"),
        ("older", older.as_slice(), "--allow-downgrade"),
    ] {
        let out = admin.ssh_with_stdin("update apply", data);
        assert!(!out.status.success(), "{what} bundle accepted: {}", text(&out));
        assert!(text(&out).contains(expect), "{what}: {}", text(&out));
    }
    let status = text(&admin.ssh("update status"));
    assert!(status.contains("slot a (good)") && !status.contains("armed"), "nothing changed: {status}");

    let out = admin.ssh_with_stdin("update apply", &bytes);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&admin.ssh("update status")).contains("armed for one trial boot"));
    // The box goes down only after the command has sent its exit status.
    let out = admin.ssh("reboot");
    assert!(out.status.success() && text(&out).contains("rebooting now"), "{}", text(&out));
    let start = a.wait_event_where("boot.start", timeout(180), |e| e["slot"] == "b");
    assert_eq!(start["slot"], "b");
    a.wait_event("update.trial", timeout(60));
    a.wait_event("update.marked-good", timeout(120));
    a.wait_ssh("admin", timeout(60));
    let status = a.client("admin").ssh("status --json");
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|_| panic!("{}", text(&status)));
    assert_eq!((v["slot"].as_str(), v["slot-state"].as_str()), (Some("b"), Some("good")), "{v}");
    // The supervisor unmounted the ESP after marking: the host may read it.
    assert!(a.read_esp_file("/syslinux/syslinux.cfg").contains("DEFAULT b"));
    assert!(a.read_esp_file("/loader/loader.conf").contains("default coffer-b.conf"));
    assert_eq!(slot_version(&a, "b"), "9.9.9-test");
    assert_eq!(coffer_slots::adv_boot_once(&tail_kib(&a.read_esp_bytes("/syslinux/ldlinux.sys"))), Ok(None), "syslinux used up its boot-once label");

    // And back: `update rollback` tries slot a once, then it is the default again.
    let out = a.client("admin").ssh("update rollback --reboot");
    assert!(out.status.success() && text(&out).contains("slot a boots next") && text(&out).contains("rebooting now"), "{}", text(&out));
    a.wait_event_where("boot.start", timeout(180), |e| e["slot"] == "a");
    a.wait_event("update.marked-good", timeout(120));
    a.wait_ssh("admin", timeout(120));
    let status = text(&a.client("admin").ssh("update status"));
    assert!(status.contains("running   slot a (good)") && status.contains("slot b    version 9.9.9-test"), "{status}");
    a.power_cut();
}

fn tail_kib(file: &[u8]) -> Vec<u8> {
    file[file.len() - coffer_slots::ADV_BYTES..].to_vec()
}

/// A correctly signed bundle whose initramfs does not boot: the kernel
/// panics, the box resets, and the boot loader takes the good slot again.
#[test]
fn a_slot_that_never_comes_up_falls_back_under_bios_and_uefi() {
    let _one_guest = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let broken = std::fs::read(bundle(dir.path(), "broken", "6.6.6-broken", Some(b"not an initramfs"), &test_key())).unwrap();
    for firmware in [Firmware::SeaBios, Firmware::Ovmf] {
        let mut a = Appliance::boot(BootOptions { firmware, allow_reset: true, ..BootOptions::default() });
        a.wait_event("service.ready", timeout(180));
        a.wait_ssh("admin", timeout(60));
        let out = a.client("admin").ssh_with_stdin("update apply --reboot", &broken);
        assert!(out.status.success() && text(&out).contains("rebooting now"), "{firmware:?}: {}", text(&out));
        let back = a.wait_event_where("update.rolled-back", timeout(300), |_| true);
        assert_eq!((back["slot"].as_str(), back["failed"].as_str()), (Some("a"), Some("b")), "{firmware:?}: {back}");
        assert!(a.serial().contains("Kernel panic"), "{firmware:?}: slot b was tried");
        a.wait_ssh("admin", timeout(60));
        let status = text(&a.client("admin").ssh("update status"));
        assert!(status.contains("did not come up") && status.contains("slot a (good)"), "{firmware:?}: {status}");
        a.power_cut();
        assert!(a.read_esp_file("/loader/loader.conf").contains("default coffer-a.conf"), "{firmware:?}");
        assert!(a.list_esp_dir("/loader/entries").iter().any(|e| e == "coffer-b.conf"), "{firmware:?}: the trial's counter is cleaned up");
    }
}
