//! `scripts/flash` against loop devices: it refuses what it must (not a
//! block device, a partition, a mounted disk, a disk too small, no
//! confirmation) and writes and verifies otherwise. Skipped, with a note,
//! where loop devices cannot be made.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use coffer_tests::qemu::TestImage;
use coffer_tests::{run_ok, text};

struct Loop(String);

impl Loop {
    fn new(file: &Path, partscan: bool) -> Option<Loop> {
        let mut cmd = Command::new("losetup");
        cmd.args(["-f", "--show"]);
        if partscan {
            cmd.arg("-P");
        }
        let out = cmd.arg(file).output().ok()?;
        out.status.success().then(|| Loop(String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn flash(image: &Path, device: &str, yes: bool) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/flash");
    let mut cmd = Command::new(script);
    cmd.arg(image).arg(device).stdin(Stdio::null());
    if yes {
        cmd.arg("--yes");
    }
    cmd.output().expect("run scripts/flash")
}

fn sized(dir: &Path, name: &str, bytes: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().set_len(bytes).unwrap();
    path
}

#[test]
fn flash_refuses_what_it_must_and_verifies_what_it_writes() {
    let image = &TestImage::get().image;
    let dir = tempfile::tempdir().unwrap();
    let not_a_device = sized(dir.path(), "file.img", 64 << 20);
    let out = flash(image, not_a_device.to_str().unwrap(), true);
    assert!(!out.status.success() && text(&out).contains("not a block device"), "{}", text(&out));

    let Some(small) = Loop::new(&sized(dir.path(), "small.img", 16 << 20), false) else {
        eprintln!("SKIPPED: loop devices unavailable here; scripts/flash tested only against a plain file");
        return;
    };
    let out = flash(image, &small.0, true);
    assert!(!out.status.success() && text(&out).contains("smaller than the image"), "{}", text(&out));

    let target_file = sized(dir.path(), "ssd.img", 64 << 20);
    let target = Loop::new(&target_file, true).expect("loop device");
    let out = flash(image, &target.0, false);
    assert!(!out.status.success() && text(&out).contains("not confirmed"), "{}", text(&out));
    let out = flash(image, &target.0, true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("written and verified"), "{}", text(&out));
    drop(target);
    let written = std::fs::read(&target_file).unwrap();
    assert_eq!(&written[..image.metadata().unwrap().len() as usize], &std::fs::read(image).unwrap()[..]);

    // Now it has partitions: a partition, and a disk with one mounted, are refused.
    let flashed = Loop::new(&target_file, true).expect("loop device");
    let part = format!("{}p2", flashed.0);
    if Path::new(&part).exists() {
        let out = flash(image, &part, true);
        assert!(!out.status.success() && text(&out).contains("is a partition"), "{}", text(&out));
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        if Command::new("mount").args(["-o", "ro", &part]).arg(&mnt).status().is_ok_and(|s| s.success()) {
            let out = flash(image, &flashed.0, true);
            run_ok(Command::new("umount").arg(&mnt));
            assert!(!out.status.success() && text(&out).contains("is mounted"), "{}", text(&out));
        } else {
            eprintln!("SKIPPED: cannot mount the state partition here; mounted-disk refusal untested");
        }
    }
}
