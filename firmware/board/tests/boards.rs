//! Every board under `board/` merges into a valid [`Board`], layered the way
//! `image/build.py` (`load_board`, `merged_board_toml`) layers it: the
//! board's `board.toml` keys over `board/common/`'s with the command lines
//! joined, and its own `disks.toml` and `leds.toml` or else common's.

use std::path::{Path, PathBuf};

use coffer_board::Board;
use toml::{Table, Value};

fn boards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board")
}

fn table(path: &Path) -> Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn own_or_common(dir: &Path, file: &str) -> Table {
    let own = dir.join(file);
    table(&if own.is_file() { own } else { boards_dir().join("common").join(file) })
}

fn merged(dir: &Path) -> String {
    let mut board = table(&boards_dir().join("common/board.toml"));
    let mut own = table(&dir.join("board.toml"));
    let cmdline = |t: &Table| t.get("cmdline").and_then(Value::as_str).unwrap_or_default().to_string();
    let joined = format!("{} {}", cmdline(&board), cmdline(&own)).trim().to_string();
    own.remove("cmdline");
    board.extend(own);
    board.insert("cmdline".into(), joined.into());
    let name = dir.file_name().expect("a directory name").to_string_lossy().into_owned();
    board.insert("name".into(), name.into());
    board.insert("disks".into(), own_or_common(dir, "disks.toml").into());
    board.insert("leds".into(), own_or_common(dir, "leds.toml").into());
    toml::to_string(&board).expect("serialises")
}

fn board(name: &str) -> Board {
    let dir = boards_dir().join(name);
    Board::parse(&merged(&dir), &dir).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_board_parses_and_validates() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(boards_dir()).expect("board/") {
        let dir = entry.expect("an entry").path();
        if dir.join("board.toml").is_file() && !dir.ends_with("common") {
            let name = dir.file_name().expect("a name").to_string_lossy().into_owned();
            assert_eq!(board(&name).name, name);
            names.push(name);
        }
    }
    names.sort();
    assert_eq!(names, ["epia-ml8000a", "generic-x86_64", "qemu-x86_64"], "a new board: add its expectations below");
}

#[test]
fn the_boards_resolve_to_the_bays_and_leds_the_image_installed_before() {
    let qemu = board("qemu-x86_64");
    assert_eq!(qemu.disks.bays, ["left", "right"]);
    assert_eq!(qemu.status_led(), Some("*::capslock"));
    assert_eq!(qemu.cmdline, "panic=10 quiet loglevel=4 console=ttyS0,115200 acpi=noirq");
    let epia = board("epia-ml8000a");
    assert_eq!(epia.disks.bays, ["port 0", "port 1"]);
    assert_eq!(epia.status_led(), None);
    assert_eq!((epia.arch.as_str(), epia.rust_cpu.as_deref(), epia.uefi), ("i686", Some("pentium3"), false));
    let generic = board("generic-x86_64");
    assert_eq!(generic.disks.bays, ["left", "right"]);
    assert_eq!(generic.status_led(), None);
}
