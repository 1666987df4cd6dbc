//! The rules a merged board must keep beyond its types: names that can
//! stand in file names and LED lookups, a target that matches the
//! architecture, and the two bays of the data mirror.

use std::collections::BTreeSet;

use crate::{Board, Problem};

/// The data mirror is RAID1 of two disks; the bays name its member slots.
const MIRROR_MEMBERS: usize = 2;

/// Every problem of `board`, in the order of its keys; empty when it is valid.
pub(crate) fn problems(board: &Board) -> Vec<Problem> {
    let mut found = Vec::new();
    if !is_board_name(&board.name) {
        found.push(Problem::BadName(board.name.clone()));
    }
    let target_matches = board.rust_target.strip_prefix(&board.arch).is_some_and(|rest| rest.starts_with('-') && rest.ends_with("-musl"));
    if !target_matches {
        found.push(Problem::TargetNotOfArch { target: board.rust_target.clone(), arch: board.arch.clone() });
    }
    if let (Some(cpu), None) = (&board.rust_cpu, &board.c_compiler) {
        found.push(Problem::CpuWithoutCompiler(cpu.clone()));
    }
    if !board.bios && !board.uefi {
        found.push(Problem::NoFirmware);
    }
    let bays = &board.disks.bays;
    if bays.len() != MIRROR_MEMBERS {
        found.push(Problem::BayCount(bays.len()));
    }
    let mut seen = BTreeSet::new();
    for bay in bays {
        if !is_bay_name(bay) {
            found.push(Problem::BadBay(bay.clone()));
        } else if !seen.insert(bay.as_str()) {
            found.push(Problem::DuplicateBay(bay.clone()));
        }
    }
    if !is_led_name(&board.leds.status) {
        found.push(Problem::BadLed(board.leds.status.clone()));
    }
    found
}

/// A board name becomes part of image, bundle and UUID names.
fn is_board_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Bays are shown in `status` and alerts; "port 0" is a fine name.
fn is_bay_name(bay: &str) -> bool {
    !bay.is_empty() && bay.trim() == bay && !bay.chars().any(char::is_control)
}

/// A name under `/sys/class/leds` (a single path component), or `*` and a
/// non-empty suffix of one; empty means no LED.
fn is_led_name(led: &str) -> bool {
    let name = led.strip_prefix('*').unwrap_or(led);
    if led.is_empty() {
        return true;
    }
    !name.is_empty() && name != "." && name != ".." && !name.chars().any(|c| c == '/' || c == '*' || c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Disks, Leds};

    fn valid() -> Board {
        Board {
            name: "qemu-x86_64".into(),
            arch: "x86_64".into(),
            debian_arch: "amd64".into(),
            kernel_package: "linux-image-amd64".into(),
            rust_target: "x86_64-unknown-linux-musl".into(),
            rust_cpu: None,
            c_compiler: None,
            bios: true,
            uefi: true,
            cmdline: "panic=10".into(),
            watchdog: None,
            disks: Disks { bays: vec!["left".into(), "right".into()], bus: None },
            leds: Leds { status: "*::capslock".into() },
        }
    }

    fn check(change: impl FnOnce(&mut Board), expected: &[Problem]) {
        let mut board = valid();
        change(&mut board);
        assert_eq!(problems(&board), expected, "{board:?}");
    }

    #[test]
    fn a_valid_board_has_no_problems() {
        check(|_| {}, &[]);
        check(|b| b.leds.status = String::new(), &[]);
        check(|b| b.leds.status = "apu2:green:led1".into(), &[]);
        check(|b| b.disks.bays = vec!["port 0".into(), "port 1".into()], &[]);
        check(
            |b| {
                b.arch = "i686".into();
                b.rust_target = "i686-unknown-linux-musl".into();
                b.rust_cpu = Some("pentium3".into());
                b.c_compiler = Some("image/cc-i686-no-sse2".into());
                b.uefi = false;
            },
            &[],
        );
    }

    #[test]
    fn each_rule_names_its_key() {
        type Change = Box<dyn FnOnce(&mut Board)>;
        let cases: Vec<(&str, Change, Vec<Problem>)> = vec![
            ("empty name", Box::new(|b| b.name = String::new()), vec![Problem::BadName(String::new())]),
            ("name with a slash", Box::new(|b| b.name = "qemu/x".into()), vec![Problem::BadName("qemu/x".into())]),
            ("hidden name", Box::new(|b| b.name = ".x".into()), vec![Problem::BadName(".x".into())]),
            (
                "target of another arch",
                Box::new(|b| b.arch = "i686".into()),
                vec![Problem::TargetNotOfArch { target: "x86_64-unknown-linux-musl".into(), arch: "i686".into() }],
            ),
            (
                "glibc target",
                Box::new(|b| b.rust_target = "x86_64-unknown-linux-gnu".into()),
                vec![Problem::TargetNotOfArch { target: "x86_64-unknown-linux-gnu".into(), arch: "x86_64".into() }],
            ),
            ("cpu without compiler", Box::new(|b| b.rust_cpu = Some("pentium3".into())), vec![Problem::CpuWithoutCompiler("pentium3".into())]),
            (
                "no firmware",
                Box::new(|b| {
                    b.bios = false;
                    b.uefi = false;
                }),
                vec![Problem::NoFirmware],
            ),
            ("one bay", Box::new(|b| b.disks.bays.truncate(1)), vec![Problem::BayCount(1)]),
            ("three bays", Box::new(|b| b.disks.bays.push("middle".into())), vec![Problem::BayCount(3)]),
            ("bay named twice", Box::new(|b| b.disks.bays[1] = "left".into()), vec![Problem::DuplicateBay("left".into())]),
            ("empty bay", Box::new(|b| b.disks.bays[0] = String::new()), vec![Problem::BadBay(String::new())]),
            ("padded bay", Box::new(|b| b.disks.bays[0] = " left".into()), vec![Problem::BadBay(" left".into())]),
            ("bay with a newline", Box::new(|b| b.disks.bays[0] = "le\nft".into()), vec![Problem::BadBay("le\nft".into())]),
            ("led path", Box::new(|b| b.leds.status = "../x".into()), vec![Problem::BadLed("../x".into())]),
            ("led star alone", Box::new(|b| b.leds.status = "*".into()), vec![Problem::BadLed("*".into())]),
            ("led star inside", Box::new(|b| b.leds.status = "a*b".into()), vec![Problem::BadLed("a*b".into())]),
            ("led with a space", Box::new(|b| b.leds.status = "caps lock".into()), vec![Problem::BadLed("caps lock".into())]),
            (
                "every problem at once",
                Box::new(|b| {
                    b.name = String::new();
                    b.disks.bays = vec!["x".into(), "x".into(), "x".into()];
                    b.leds.status = "/".into();
                }),
                vec![Problem::BadName(String::new()), Problem::BayCount(3), Problem::DuplicateBay("x".into()), Problem::DuplicateBay("x".into()), Problem::BadLed("/".into())],
            ),
        ];
        for (what, change, expected) in cases {
            let mut board = valid();
            change(&mut board);
            assert_eq!(problems(&board), expected, "{what}");
        }
    }
}
