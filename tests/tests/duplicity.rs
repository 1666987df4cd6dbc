//! Stock duplicity 0.8 against Coffer through all four SSH backends, with a
//! throw-away GnuPG key: full, incremental, verify, status, listings,
//! restores (whole and one file at an earlier time) and chain removal.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use coffer_tests::{Client, Coffer, run_ok, text, tree};

struct Duplicity<'a> {
    client: &'a Client,
    url: String,
    fpr: String,
}

const DAY: u64 = 86_400;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

impl Duplicity<'_> {
    fn cmd(&self, action: &[&str], time: Option<u64>) -> Command {
        let c = self.client;
        let mut cmd = c.command("duplicity");
        cmd.env("GNUPGHOME", c.home.join(".gnupg"))
            .env("PASSPHRASE", "")
            .env("SIGN_PASSPHRASE", "")
            .args(action)
            .args(["--encrypt-key", &self.fpr, "--sign-key", &self.fpr])
            .arg(format!("--ssh-options=-F {}", c.ssh_config().display()))
            .args(["--num-retries", "1", "--volsize", "1", "-v", "warning"]);
        if let Some(t) = time {
            cmd.args(["--current-time", &t.to_string()]);
        }
        cmd
    }

    fn ok(&self, action: &[&str], time: Option<u64>, tail: &[&Path]) -> Output {
        let mut cmd = self.cmd(action, time);
        for p in tail {
            cmd.arg(p);
        }
        run_ok(&mut cmd)
    }

    fn backup(&self, kind: &str, src: &Path, time: u64) {
        let mut cmd = self.cmd(&[kind], Some(time));
        run_ok(cmd.arg(src).arg(&self.url));
    }

    fn on_url(&self, action: &[&str]) -> Output {
        let mut cmd = self.cmd(action, None);
        run_ok(cmd.arg(&self.url))
    }

    fn restore(&self, extra: &[&str], dest: &Path) {
        let mut cmd = self.cmd(&["restore"], None);
        run_ok(cmd.args(extra).arg(&self.url).arg(dest));
    }
}

fn remote_files(server: &Coffer, user: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(server.area(user).join("backup/home"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn stamp(t: u64) -> String {
    let out = Command::new("date").args(["-u", "-d", &format!("@{t}"), "+%Y%m%dT%H%M%SZ"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn full_cycle(scheme: &str) {
    let server = Coffer::start();
    let client = server.client("alice");
    let fpr = coffer_tests::gpg_key(&client.home);
    let src = client.home.join("home-me");
    tree::make_source(&src);
    let d = Duplicity { client: &client, url: format!("{scheme}://alice@127.0.0.1:{}/backup/home", server.port), fpr };
    let t0 = now();
    let (t_full1, t_inc, t_full2) = (t0 - 4 * DAY, t0 - 2 * DAY, t0 - DAY);

    d.backup("full", &src, t_full1);
    let v1 = client.home.join("v1");
    std::fs::create_dir_all(&v1).unwrap();
    run_ok(Command::new("cp").arg("-a").arg(&src).arg(&v1));
    tree::modify_source(&src);
    d.backup("incremental", &src, t_inc);

    // verify --compare-data reads every volume back and compares with the source.
    d.ok(&["verify", "--compare-data"], None, &[Path::new(&d.url), &src]);
    let status = text(&d.on_url(&["collection-status"]));
    assert!(status.contains("Full") && status.contains("Incremental"), "{status}");
    let listing = text(&d.on_url(&["list-current-files"]));
    assert!(listing.contains("docs/new.txt") && !listing.contains("small-007"), "{listing}");

    let whole = client.home.join("restored");
    d.restore(&[], &whole);
    tree::assert_same(&src, &whole, true);

    // One file as it was three days ago (before the incremental).
    let one = client.home.join("a-3-days-ago.txt");
    d.restore(&["--time", "3D", "--file-to-restore", "docs/a.txt"], &one);
    assert_eq!(std::fs::read(&one).unwrap(), b"version 1 of a\n");

    // A second chain, then drop the first one; the newest chain stays whole.
    d.backup("full", &src, t_full2);
    let before = remote_files(&server, "alice");
    assert!(before.iter().any(|f| f.contains(&stamp(t_full1))), "{before:?}");
    d.on_url(&["remove-older-than", "36h", "--force"]);
    let after = remote_files(&server, "alice");
    assert!(after.iter().all(|f| !f.contains(&stamp(t_full1))), "first chain not removed: {after:?}");
    assert!(after.iter().any(|f| f.contains(&format!("duplicity-full.{}.manifest", stamp(t_full2)))), "{after:?}");

    d.backup("full", &src, t0);
    d.on_url(&["remove-all-but-n-full", "1", "--force"]);
    let last = remote_files(&server, "alice");
    assert!(last.iter().all(|f| !f.contains(&stamp(t_full2))), "{last:?}");
    let status = text(&d.on_url(&["collection-status"]));
    assert!(status.contains("Found 0 secondary backup chains") || !status.contains("Secondary chain"), "{status}");
    let again = client.home.join("restored-again");
    d.restore(&[], &again);
    tree::assert_same(&src, &again, true);
    // Nothing half-written anywhere.
    assert!(last.iter().all(|f| !f.starts_with(".coffer-upload-")), "{last:?}");
}

#[test]
fn duplicity_scp() {
    full_cycle("scp");
}

#[test]
fn duplicity_sftp() {
    full_cycle("sftp");
}

#[test]
fn duplicity_pexpect_scp() {
    full_cycle("pexpect+scp");
}

#[test]
fn duplicity_pexpect_sftp() {
    full_cycle("pexpect+sftp");
}
