//! The appliance booted in QEMU (TCG here): firmware boots, SSH readiness,
//! a real duplicity backup into it, the supervisor's restarts and watchdog,
//! a power cut mid-upload, and the A/B slot switch. Each asserts on the
//! `coffer-event` lines of the serial console and on real client results.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coffer_tests::qemu::{Appliance, Board, BootOptions, Firmware, TestImage, exclusive, record_time, timeout};
use coffer_tests::{Client, duplicity_command, gpg_key, run_ok, text, tree};

/// Boots, waits for the endpoint, and checks the seeded state carried over.
fn boot_and_login(firmware: Firmware) -> Appliance {
    let mut a = Appliance::boot(BootOptions { firmware, ..BootOptions::default() });
    let start = a.wait_event("boot.start", timeout(120));
    assert_eq!(start["slot"], "a");
    a.wait_event("data.created", timeout(60));
    a.wait_event("service.ready", timeout(60));
    let ready = a.wait_ssh("admin", timeout(60));
    record_time(&format!("{firmware:?} boot, QEMU start to first SSH login (first boot, mirror created)"), ready);
    // The user made on the host with `coffer user add` logs in too, with the same host key.
    a.wait_ssh("alice", timeout(30));
    a
}

#[test]
fn boots_under_seabios_and_ovmf_and_powers_off_on_the_button() {
    let _one_guest = exclusive();
    for firmware in [Firmware::SeaBios, Firmware::Ovmf] {
        let mut a = boot_and_login(firmware);
        let events = a.events();
        assert!(events.iter().any(|e| e["kind"] == "state.admin-added"), "admin key from the image became user admin");
        assert!(events.iter().any(|e| e["kind"] == "boot.done" && e["watchdog"] == true), "watchdog armed: {events:?}");
        a.qmp("system_powerdown");
        let start = a.wait_event("shutdown.start", timeout(30));
        assert_eq!(start["reason"], "power button");
        a.wait_event("service.stopped", timeout(30));
        a.wait_event("shutdown.done", timeout(30));
        a.wait_exit(timeout(30));
    }
}

fn duplicity(client: &Client, fpr: &str, action: &[&str], tail: &[&str]) -> std::process::Output {
    duplicity_command(client, fpr, action, tail).output().expect("run duplicity")
}

fn url(client: &Client) -> String {
    format!("sftp://{}@127.0.0.1:{}/backup/home", client.user, client.port)
}

#[test]
fn duplicity_backup_and_restore_byte_for_byte() {
    let _one_guest = exclusive();
    let mut a = Appliance::boot(BootOptions::default());
    a.wait_event("service.ready", timeout(120));
    let ready = a.wait_ssh("alice", timeout(60));
    record_time("Direct kernel boot, QEMU start to first SSH login (first boot, mirror created)", ready);
    let client = a.client("alice");
    let fpr = gpg_key(&client.home);
    let src = a.dir.path().join("src");
    tree::make_source(&src);
    let out = duplicity(&client, &fpr, &["full"], &[src.to_str().unwrap(), &url(&client)]);
    assert!(out.status.success(), "duplicity full: {}", text(&out));
    let dest = a.dir.path().join("restored");
    let out = duplicity(&client, &fpr, &["restore"], &[&url(&client), dest.to_str().unwrap()]);
    assert!(out.status.success(), "duplicity restore: {}", text(&out));
    tree::assert_same(&src, &dest, true);
    let out = duplicity(&client, &fpr, &["verify", "--compare-data"], &[&url(&client), src.to_str().unwrap()]);
    assert!(out.status.success(), "duplicity verify: {}", text(&out));
}

#[test]
fn supervisor_restarts_the_endpoint_and_the_watchdog_resets_a_hung_supervisor() {
    let _one_guest = exclusive();
    let mut a = Appliance::boot(BootOptions { allow_reset: true, ..BootOptions::default() });
    let first = a.wait_event("service.started", timeout(120));
    a.wait_event("service.ready", timeout(60));
    a.wait_ssh("alice", timeout(60));

    a.console("kill endpoint");
    a.wait_event("debug.kill", timeout(20));
    let exited = a.wait_event("service.exited", timeout(20));
    assert_eq!(exited["service"], "endpoint");
    let again = a.wait_event_where("service.started", timeout(30), |e| e["service"] == "endpoint");
    assert_ne!(again["pid"], first["pid"], "a new process");
    a.wait_event("service.ready", timeout(60));
    // A client retrying succeeds.
    a.wait_ssh("alice", timeout(30));

    // Stop the loop that pets the watchdog: the i6300esb resets the guest.
    a.console("hang");
    a.wait_event("debug.hang", timeout(20));
    let hung = Instant::now();
    let start = a.wait_event("boot.start", timeout(120));
    record_time("watchdog reset, hang to next boot", hung.elapsed());
    assert_eq!(start["slot"], "a");
    // The second boot assembles the mirror it made the first time.
    a.wait_event("data.mounted", timeout(60));
    a.wait_event("service.ready", timeout(60));
    a.wait_ssh("alice", timeout(60));
    let created = a.events().iter().filter(|e| e["kind"] == "data.created").count();
    assert_eq!(created, 1, "the array is made once and assembled afterwards");
}

#[test]
fn power_cut_mid_upload_loses_no_completed_backup() {
    let _one_guest = exclusive();
    let mut a = Appliance::boot(BootOptions::default());
    a.wait_event("service.ready", timeout(120));
    a.wait_ssh("alice", timeout(60));
    let client = a.client("alice");
    let fpr = gpg_key(&client.home);
    let src = a.dir.path().join("src");
    tree::make_source(&src);
    let out = duplicity(&client, &fpr, &["full"], &[src.to_str().unwrap(), &url(&client)]);
    assert!(out.status.success(), "duplicity full: {}", text(&out));
    let snapshot = a.dir.path().join("snapshot");
    run_ok(Command::new("cp").arg("-a").arg(&src).arg(&snapshot));

    // A big incompressible file makes the incremental many volumes long.
    std::fs::write(src.join("big.bin"), tree::bytes(7, 24 << 20)).unwrap();
    let mut inc = duplicity_command(&client, &fpr, &["incremental"], &[src.to_str().unwrap(), &url(&client)]);
    inc.stdout(Stdio::null()).stderr(Stdio::null());
    let mut running = inc.spawn().expect("duplicity incremental");
    // Cut the power once a few volumes of the incremental have landed.
    let deadline = Instant::now() + timeout(180);
    loop {
        let listing = text(&client.ssh("ls -1 backup/home"));
        if listing.lines().filter(|l| l.contains("duplicity-inc.") && l.contains(".difftar")).count() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the incremental never uploaded 3 volumes: {listing}");
        std::thread::sleep(Duration::from_millis(200));
    }
    a.power_cut();
    let _ = running.kill();
    let _ = running.wait();

    a.start();
    a.wait_event("data.mounted", timeout(120));
    a.wait_event("service.ready", timeout(60));
    a.wait_ssh("alice", timeout(60));
    let client = a.client("alice");
    // The completed full backup restores exactly what was backed up.
    let dest = a.dir.path().join("restored");
    let out = duplicity(&client, &fpr, &["restore"], &[&url(&client), dest.to_str().unwrap()]);
    assert!(out.status.success(), "restore after power cut: {}", text(&out));
    tree::assert_same(&snapshot, &dest, true);
    // The interrupted incremental is incomplete, not corrupt: no half-written
    // file looks complete, and the next run finishes the job.
    let listing = text(&client.ssh("ls -1 backup/home"));
    assert!(!listing.contains(".coffer-upload"), "temporary upload names are never listed: {listing}");
    let status = duplicity(&client, &fpr, &["collection-status"], &[&url(&client)]);
    assert!(status.status.success(), "collection-status: {}", text(&status));
    let out = duplicity(&client, &fpr, &["incremental"], &[src.to_str().unwrap(), &url(&client)]);
    assert!(out.status.success(), "incremental after the power cut: {}", text(&out));
    let out = duplicity(&client, &fpr, &["verify", "--compare-data"], &[&url(&client), src.to_str().unwrap()]);
    assert!(out.status.success(), "verify after the power cut: {}", text(&out));
}

#[test]
fn boots_from_slot_b_after_switching_under_bios_and_uefi() {
    let _one_guest = exclusive();
    for firmware in [Firmware::SeaBios, Firmware::Ovmf] {
        let mut a = Appliance::prepare(BootOptions { firmware, ..BootOptions::default() });
        let syslinux = a.read_esp_file("/syslinux/syslinux.cfg");
        assert!(syslinux.contains("DEFAULT a"), "{syslinux}");
        a.write_esp_file("/syslinux/syslinux.cfg", &syslinux.replace("DEFAULT a", "DEFAULT b"));
        a.write_esp_file("/loader/loader.conf", &a.read_esp_file("/loader/loader.conf").replace("coffer-a.conf", "coffer-b.conf"));
        a.start();
        let start = a.wait_event("boot.start", timeout(120));
        assert_eq!(start["slot"], "b", "{firmware:?}");
        a.wait_event("service.ready", timeout(60));
        a.wait_ssh("alice", timeout(60));
    }
    // The image's sha256 file matches the image the tests booted.
    let img = TestImage::get();
    let sums = std::fs::read_to_string(img.image.with_extension("img.sha256")).unwrap();
    let out = run_ok(Command::new("sha256sum").arg(&img.image));
    assert_eq!(text(&out).split_whitespace().next(), sums.split_whitespace().next());
    assert!(Path::new(&img.image).metadata().unwrap().len() < 48 << 20, "image under 48 MiB");
}

/// UEFI: slot B armed with one try (systemd-boot boot counting, the entry
/// renamed `coffer-b+1.conf`) whose initramfs is broken: the kernel panics,
/// the box reboots, systemd-boot finds B's tries used up and boots A.
#[test]
fn uefi_falls_back_to_slot_a_when_b_does_not_come_up() {
    let _one_guest = exclusive();
    let mut a = Appliance::prepare(BootOptions { firmware: Firmware::Ovmf, allow_reset: true, ..BootOptions::default() });
    a.write_esp_file("/loader/loader.conf", &a.read_esp_file("/loader/loader.conf").replace("coffer-a.conf", "coffer-b.conf"));
    a.rename_esp_file("/loader/entries/coffer-b.conf", "/loader/entries/coffer-b+1.conf");
    a.write_esp_file("/coffer/b/initrd.zst", "not an initramfs");
    a.start();
    let start = a.wait_event("boot.start", timeout(180));
    assert_eq!(start["slot"], "a", "fell back to A");
    assert!(a.serial().contains("Kernel panic"), "B was tried first and failed");
    a.wait_event("service.ready", timeout(60));
    a.wait_ssh("alice", timeout(60));
    a.power_cut();
    let entries = a.list_esp_dir("/loader/entries");
    assert!(entries.iter().any(|e| e == "coffer-b+0-1.conf"), "B's try was counted: {entries:?}");
}

/// The generic-x86_64 image on a PC-like machine (q35: AHCI disks, e1000e
/// NIC) through SeaBIOS: its modules find the disks and the network, the
/// SATA disks are named by serial, and SFTP works.
#[test]
fn generic_board_boots_on_ahci_and_e1000e() {
    let _one_guest = exclusive();
    let mut a = Appliance::boot(BootOptions { firmware: Firmware::SeaBios, board: Board::Generic, ..BootOptions::default() });
    let creating = a.wait_event("data.creating", timeout(120));
    assert_eq!(creating["serials"], serde_json::json!(["disk0", "disk1"]), "{creating}");
    a.wait_event("service.ready", timeout(60));
    a.wait_ssh("alice", timeout(60));
    let client = a.client("alice");
    let out = client.sftp_batch("put /etc/hostname h\nls -l\n");
    assert!(out.status.success(), "{}", text(&out));
}

/// The epia-ml8000a image (32-bit, built for a CPU without SSE2) on
/// `qemu-system-i386 -cpu pentium3 -m 512` through SeaBIOS: it makes the
/// mirror with the i386 mdadm and serves SFTP both ways byte for byte. (QEMU's
/// TCG runs SSE2 instructions even for a pentium3 model, so the build's
/// instruction check, not this boot, is what keeps SSE2 out of the binary.)
#[test]
fn epia_board_boots_on_a_pentium3_and_serves_sftp() {
    let _one_guest = exclusive();
    let mut a = Appliance::boot(BootOptions { firmware: Firmware::SeaBios, board: Board::Epia, ..BootOptions::default() });
    a.wait_event("boot.start", timeout(180));
    a.wait_event("data.created", timeout(120));
    a.wait_event("service.ready", timeout(90));
    let ready = a.wait_ssh("alice", timeout(120));
    record_time("epia-ml8000a (i686, pentium3, SeaBIOS) QEMU start to first SSH login", ready);
    let client = a.client("alice");
    let local = a.dir.path().join("payload.bin");
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&local, &payload).expect("payload");
    let back = a.dir.path().join("back.bin");
    let out = client.sftp_batch(&format!("put {} payload.bin\nget payload.bin {}\n", local.display(), back.display()));
    assert!(out.status.success(), "{}", text(&out));
    assert!(std::fs::read(&back).expect("downloaded") == payload, "the file came back different");
}
