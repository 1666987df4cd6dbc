//! Administration over SSH on a host server: the admin role, the same
//! grammar as the local CLI, status in text and JSON, the user lifecycle,
//! config show/set, refusals for non-admins and for appliance internals,
//! and the "no backup for N days" mark and alert.

use std::time::{Duration, SystemTime};

use coffer_tests::{Coffer, coffer_ok, text};

fn admin_server() -> Coffer {
    let server = Coffer::start();
    coffer_ok(&server.state, &["user", "set", "alice", "--role", "admin"]);
    server
}

#[test]
fn status_in_text_and_json_for_admins_only() {
    let server = admin_server();
    let alice = server.client("alice");
    let out = alice.ssh("status");
    assert!(out.status.success(), "{}", text(&out));
    let screen = text(&out);
    let host_pub = std::fs::read_to_string(server.state.join("host-keys/ssh_host_ed25519_key.pub")).unwrap();
    let fp = String::from_utf8_lossy(
        &std::process::Command::new("ssh-keygen").args(["-l", "-E", "sha256", "-f"]).arg(server.state.join("host-keys/ssh_host_ed25519_key.pub")).output().unwrap().stdout,
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_string();
    assert!(screen.contains(&fp), "host key fingerprint {fp} ({host_pub}) on the status screen:\n{screen}");
    assert!(screen.contains("alice") && screen.contains("bob") && screen.contains("(admin)"), "{screen}");
    assert!(!screen.contains('\x1b'), "no colour without a terminal");

    let out = alice.ssh("status --json");
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["users"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["health"].is_string() && v["host-keys"][0].as_str().unwrap().contains(&fp), "{v}");

    let bob = server.client("bob");
    let out = bob.ssh("status");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("administrator command"), "{}", text(&out));
    // bob's backups are untouched by the refusal: his exec emulation still works.
    assert!(bob.ssh("mkdir -p backup").status.success());
}

#[test]
fn user_lifecycle_over_ssh() {
    let server = admin_server();
    let alice = server.client("alice");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("carol");
    coffer_tests::run_ok(std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "carol", "-f"]).arg(&key));
    let public = std::fs::read(key.with_extension("pub")).unwrap();
    let out = alice.ssh_with_stdin("user add carol --key - --quota 1G --profile append-only", &public);
    assert!(out.status.success(), "{}", text(&out));
    let list = text(&alice.ssh("user list"));
    assert!(list.contains("carol"), "{list}");
    let keys = text(&alice.ssh("user keys carol"));
    assert!(keys.contains("append-only") && keys.contains("SHA256:"), "{keys}");
    let fp = keys.split_whitespace().next().unwrap().to_string();

    assert!(alice.ssh("user lock carol").status.success());
    assert!(text(&alice.ssh("user list")).contains("(locked)"));
    assert!(alice.ssh("user unlock carol").status.success());
    assert!(alice.ssh(&format!("user key-remove carol {fp}")).status.success());
    assert!(text(&alice.ssh("user keys carol")).trim().is_empty());
    let out = alice.ssh("user remove carol --purge");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&alice.ssh("user list")).contains("carol"));

    // The last administrator cannot lock themselves out.
    let out = alice.ssh("user lock alice");
    assert!(!out.status.success() && text(&out).contains("only administrator"), "{}", text(&out));
    let out = alice.ssh("user set alice --role user");
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn locked_users_cannot_log_in() {
    let server = admin_server();
    assert!(server.client("alice").ssh("user lock bob").status.success());
    let out = server.client("bob").ssh("ls -1");
    assert!(!out.status.success(), "a locked user logged in: {}", text(&out));
    assert!(server.client("alice").ssh("user unlock bob").status.success());
    assert!(server.client("bob").ssh("ls -1").status.success());
}

#[test]
fn config_show_and_set_validate_and_hide_secrets() {
    let server = admin_server();
    let alice = server.client("alice");
    assert!(alice.ssh("config set raid.scrub-interval-days 14").status.success());
    assert!(text(&alice.ssh("config show")).contains("scrub-interval-days = 14"));
    let out = alice.ssh("config set raid.scrub-intervall-days 14");
    assert!(!out.status.success() && text(&out).contains("scrub-intervall-days"), "the bad key is named: {}", text(&out));
    let out = alice.ssh("config set alerts.webhook.url https://ntfy.example.org/coffer");
    assert!(!out.status.success() && text(&out).contains("kind"), "a half section is refused: {}", text(&out));
    let out = alice.ssh("config set alerts.webhook.url ftp://x alerts.webhook.kind ntfy");
    assert!(!out.status.success() && text(&out).contains("http"), "{}", text(&out));
    let out = alice.ssh("config set alerts.webhook.url https://ntfy.example.org/coffer alerts.webhook.kind ntfy alerts.webhook.token s3cret-token");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("s3cret-token"));
    let out = alice.ssh("config set server.data-dir /");
    assert!(!out.status.success() && text(&out).contains("data-dir"), "the data area cannot be moved over SSH: {}", text(&out));
    let shown = text(&alice.ssh("config show"));
    assert!(shown.contains("ntfy.example.org") && !shown.contains("s3cret-token") && !shown.contains("/coffer\""), "{shown}");
    assert!(!server.log().contains("s3cret-token"), "secrets never logged");
    // `none` is a value (no TLS), `config unset` removes a whole section.
    let out = alice.ssh("config set alerts.email.server smtp.example.org alerts.email.from c@example.org alerts.email.to '[\"o@example.org\"]' alerts.email.security none");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&alice.ssh("config show")).contains("security = \"none\""));
    let out = alice.ssh("config unset alerts.webhook");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&alice.ssh("config show")).contains("ntfy.example.org"));
    let out = alice.ssh("config unset alerts.webhook");
    assert!(!out.status.success() && text(&out).contains("not set"), "{}", text(&out));
}

#[test]
fn appliance_internals_and_state_are_refused() {
    let server = admin_server();
    let alice = server.client("alice");
    for (line, expect) in [
        ("serve", "not available"),
        ("alert run", "not over SSH"),
        ("raid watch", "not over SSH"),
        ("status --state /tmp", "--state"),
        ("reboot", "not a Coffer appliance"),
        ("status --frobnicate", "unexpected argument"),
        ("frobnicate", "not available"),
    ] {
        let out = alice.ssh(line);
        assert!(!out.status.success(), "{line}: {}", text(&out));
        assert!(text(&out).contains(expect), "{line}: {}", text(&out));
    }
    let help = alice.ssh("help");
    assert!(help.status.success() && text(&help).contains("status"), "{}", text(&help));
}

#[test]
fn users_without_recent_backups_are_marked_and_alerted() {
    let mut server = admin_server();
    let alice = server.client("alice");
    assert!(alice.ssh("mkdir -p backup").status.success());
    let old = server.area("bob").join("old-backup");
    std::fs::write(&old, "x").unwrap();
    let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 86_400);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(ten_days_ago).unwrap();
    std::fs::write(server.area("alice").join("fresh"), "x").unwrap();
    // The hourly check runs at start.
    server.stop();
    server.spawn();
    let v: serde_json::Value = serde_json::from_slice(&server.client("alice").ssh("status --json").stdout).unwrap();
    let users = v["users"].as_array().unwrap();
    let stale = |name: &str| users.iter().find(|u| u["name"] == name).unwrap()["stale"].as_bool().unwrap();
    assert!(stale("bob") && !stale("alice"), "{v}");
    assert_eq!(v["health"], "warning");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !server.log().contains("\"kind\":\"backup.stale\"") {
        assert!(std::time::Instant::now() < deadline, "no backup.stale event: {}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.log().contains("\"user\":\"bob\""));
    let spool = std::fs::read_dir(server.state.join("alerts/spool")).unwrap().count();
    assert!(spool >= 1, "an alert is queued for bob");
}

/// `config export` from one box, `config import` into a fresh one: the
/// second box then has the first one's host key and users. GnuPG reads the
/// export, and a wrong passphrase or a damaged bundle changes nothing.
#[test]
fn config_export_then_import_carries_the_identity() {
    let old = admin_server();
    let bundle = old.client("alice").ssh_with_stdin("config export --passphrase-stdin", b"correct horse battery\n");
    assert!(bundle.status.success(), "{}", text(&bundle));
    let bundle = bundle.stdout;
    let listing = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.pgp");
        std::fs::write(&path, &bundle).unwrap();
        let out = std::process::Command::new("gpg")
            .env("GNUPGHOME", dir.path())
            .args(["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "correct horse battery", "-d"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg: {}", String::from_utf8_lossy(&out.stderr));
        let mut names = Vec::new();
        for e in tar::Archive::new(out.stdout.as_slice()).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
        }
        names
    };
    assert!(listing.contains(&"host-keys/ssh_host_ed25519_key".to_string()) && listing.contains(&"users.toml".to_string()), "{listing:?}");

    let mut new = admin_server();
    let new_admin = new.client("alice");
    let host_key = |c: &Coffer| std::fs::read_to_string(c.state.join("host-keys/ssh_host_ed25519_key.pub")).unwrap();
    assert_ne!(host_key(&old), host_key(&new));
    let before = host_key(&new);
    let mut wrong = b"wrong passphrase\n".to_vec();
    wrong.extend_from_slice(&bundle);
    let out = new_admin.ssh_with_stdin("config import --passphrase-stdin", &wrong);
    assert!(!out.status.success() && text(&out).contains("wrong passphrase") && text(&out).contains("nothing was changed"), "{}", text(&out));
    let mut damaged = b"correct horse battery\n".to_vec();
    damaged.extend_from_slice(&bundle);
    let last = damaged.len() - 20;
    damaged[last] ^= 0x40;
    let out = new_admin.ssh_with_stdin("config import --passphrase-stdin", &damaged);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(host_key(&new), before, "a refused import changes nothing");

    let mut good = b"correct horse battery\n".to_vec();
    good.extend_from_slice(&bundle);
    let out = new_admin.ssh_with_stdin("config import --passphrase-stdin", &good);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(host_key(&new), host_key(&old));
    // After a restart the new box answers with the old host key; the old
    // box's clients (their known_hosts) connect without a warning.
    // alice's key from the old box logs in to the new one.
    new.stop();
    for f in ["id_ed25519", "id_ed25519.pub"] {
        std::fs::copy(old.root.join("clients/alice/.ssh").join(f), new.root.join("clients/alice/.ssh").join(f)).unwrap();
    }
    new.spawn();
    let out = new.client("alice").ssh("status --json");
    assert!(out.status.success(), "{}", text(&out));
}

/// `ssh -t`: the administrator's client has a terminal in raw mode, so the
/// status screen comes in colour with CR LF line ends; without `-t` it is
/// plain text. Backup users get no terminal at all.
#[test]
fn a_terminal_gets_colour_and_crlf() {
    let server = admin_server();
    let alice = server.client("alice");
    let out = alice.command("ssh").arg("-F").arg(alice.ssh_config()).args(["-tt", "coffer", "status"]).stdin(std::process::Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("\x1b[1;") && screen.contains("\r\n"), "{screen:?}");
    let plain = alice.ssh("status");
    assert!(!String::from_utf8_lossy(&plain.stdout).contains('\r'));
    let bob = server.client("bob");
    let out = bob.command("ssh").arg("-F").arg(bob.ssh_config()).args(["-tt", "coffer", "ls -1"]).stdin(std::process::Stdio::null()).output().unwrap();
    assert!(text(&out).contains("PTY allocation request failed"), "{}", text(&out));
}

/// Over SSH, `help`, `COMMAND --help` and the usage after a mistake show
/// only what an administrator can run there, in the `ssh admin@box` form;
/// the local `coffer help` still lists everything.
#[test]
fn help_over_ssh_shows_only_what_runs_there() {
    let server = admin_server();
    let alice = server.client("alice");
    let help = alice.ssh("help");
    assert!(help.status.success(), "{}", text(&help));
    let screen = text(&help);
    for word in ["status", "user", "retention", "config", "update", "reboot", "host-keys", "Usage: ssh admin@box"] {
        assert!(screen.contains(word), "{word} missing from the SSH help:\n{screen}");
    }
    for word in ["--state", "COFFER_STATE", "serve", "mdns", "time", "init", "session-worker", "Usage: coffer"] {
        assert!(!screen.contains(word), "{word} in the SSH help:\n{screen}");
    }

    let user = alice.ssh("user --help");
    assert!(user.status.success() && text(&user).contains("key-remove") && !text(&user).contains("--state"), "{}", text(&user));
    let add = alice.ssh("user add --help");
    assert!(add.status.success() && text(&add).contains("ssh admin@box user add <NAME> --key -"), "{}", text(&add));
    let raid = alice.ssh("help raid");
    assert!(raid.status.success() && text(&raid).contains("scrub") && !text(&raid).contains("watch"), "{}", text(&raid));

    let mistake = alice.ssh("user add");
    assert_eq!(mistake.status.code(), Some(2), "{}", text(&mistake));
    assert!(text(&mistake).contains("Usage: ssh admin@box user add") && !text(&mistake).contains("--state"), "{}", text(&mistake));
    for line in ["raid watch --help", "help alert run"] {
        let out = alice.ssh(line);
        assert!(!out.status.success() && text(&out).contains("not over SSH"), "{line}: {}", text(&out));
    }

    let local = text(&coffer_ok(&server.state, &["help"]));
    for word in ["serve", "mdns", "--state", "Usage: coffer"] {
        assert!(local.contains(word), "{word} missing from the local help:\n{local}");
    }
}
