//! Alerts on the host, with a real SMTP server (aiosmtpd, AUTH) and a real
//! HTTP server on loopback: `coffer alert test` reaches every sink; the
//! alert service sends a spooled problem once per sink, not again for a
//! duplicate, retries a failing webhook until it works, and sends
//! "resolved" when the problem clears.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use coffer_tests::sinks::AlertSinks;
use coffer_tests::{coffer_bin, coffer_ok, text};

fn state_with_sinks(dir: &std::path::Path, smtp: u16, http: u16, path: &str) -> std::path::PathBuf {
    let state = dir.join("state");
    coffer_ok(&state, &["init"]);
    let mut config = std::fs::read_to_string(state.join("coffer.toml")).unwrap();
    config.push_str(&format!(
        "\n[alerts.email]\nserver = \"127.0.0.1\"\nport = {smtp}\nsecurity = \"none\"\nusername = \"coffer\"\npassword = \"s3cret\"\nfrom = \"coffer@box.invalid\"\nto = [\"owner@home.invalid\"]\n\n[alerts.webhook]\nurl = \"http://127.0.0.1:{http}{path}\"\nkind = \"json\"\n"
    ));
    std::fs::write(state.join("coffer.toml"), config).unwrap();
    state
}

fn spool(state: &std::path::Path, name: &str, json: &str) {
    let dir = state.join("alerts/spool");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), json).unwrap();
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// The host's sinks listen on fixed ports below Linux's ephemeral range
// (32768-60999), so no outgoing connection of a test running beside them
// can hold one.
#[test]
fn alert_test_reaches_every_sink_and_names_failures() {
    let sinks = AlertSinks::start(31125, 31180);
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_sinks(dir.path(), 31125, 31180, "/hook");
    let out = coffer_ok(&state, &["alert", "test"]);
    assert!(text(&out).contains("email: sent") && text(&out).contains("webhook: sent"), "{}", text(&out));
    let mail = sinks.wait_for("smtp", "Test alert", Duration::from_secs(5));
    assert_eq!(mail["auth"], true, "logged in with the configured user");
    let hook = sinks.wait_for("http", "Test alert", Duration::from_secs(5));
    assert_eq!(hook["path"], "/hook");

    // A sink that fails is named, with what failed, and no secret.
    let state2 = state_with_sinks(&dir.path().join("b"), 31199, 31180, "/fail");
    let out = Command::new(coffer_bin()).arg("--state").arg(&state2).args(["alert", "test"]).output().unwrap();
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(shown.contains("email: FAILED") && shown.contains("127.0.0.1:31199"), "{shown}");
    assert!(shown.contains("webhook: FAILED"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[test]
fn service_sends_once_retries_and_resolves() {
    let sinks = AlertSinks::start(31225, 31280);
    let dir = tempfile::tempdir().unwrap();
    // The webhook fails at first (HTTP 500 on /fail...): the service keeps it and retries.
    let state = state_with_sinks(dir.path(), 31225, 31280, "/fail-then-ok");
    let problem = r#"{"key":"raid:data:degraded","severity":"critical","title":"mirror data is degraded","body":"replace the disk","time":1}"#;
    spool(&state, "1.json", problem);
    spool(&state, "2.json", problem);
    let service = Service(
        Command::new(coffer_bin()).arg("--state").arg(&state).args(["alert", "run"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap(),
    );
    sinks.wait_for("smtp", "CRITICAL: mirror data is degraded", Duration::from_secs(10));
    sinks.wait_for("http", "mirror data is degraded", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    let mails = sinks.received().into_iter().filter(|v| v["sink"] == "smtp").count();
    assert_eq!(mails, 1, "the duplicate is not mailed again");
    assert!(std::fs::read_dir(state.join("alerts/spool")).unwrap().next().is_none(), "spool taken in");
    let saved = std::fs::read_to_string(state.join("alerts/dispatch.json")).unwrap();
    assert!(saved.contains("webhook"), "the failed webhook delivery is kept for a retry: {saved}");
    drop(service);

    // Fix the webhook; a restarted service still has the pending delivery and the open problem.
    let config = std::fs::read_to_string(state.join("coffer.toml")).unwrap().replace("/fail-then-ok", "/ok");
    std::fs::write(state.join("coffer.toml"), config).unwrap();
    let _service = Service(
        Command::new(coffer_bin()).arg("--state").arg(&state).args(["alert", "run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    let resolved = r#"{"key":"raid:data:degraded","severity":"info","title":"mirror data is healthy again","body":"ok","resolved":true,"time":2}"#;
    spool(&state, "3.json", resolved);
    sinks.wait_for("smtp", "RESOLVED: mirror data is healthy again", Duration::from_secs(10));
    // The first retry is due 30 s after the failure.
    let retried = sinks.wait_for_where("http", r#"\"resolved\":false"#, Duration::from_secs(60), |v| v["path"] == "/ok");
    assert!(retried["body"].as_str().unwrap().contains("mirror data is degraded"), "{retried}");
}

/// E-mail over STARTTLS to a server whose certificate a private CA signed:
/// with `ca-file` naming that CA the message goes through (and AUTH only
/// after TLS); without it the certificate is refused and the error says so.
#[test]
fn email_over_starttls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ssl = |args: &[&str]| coffer_tests::run_ok(Command::new("openssl").current_dir(d).args(args));
    ssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Coffer test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
    ssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    ssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext"]);
    let sinks = AlertSinks::start_with_tls(31325, 31380, Some((&d.join("server.pem"), &d.join("server.key"))));

    let state = state_with_sinks(&d.join("a"), 31325, 31380, "/hook");
    let config = std::fs::read_to_string(state.join("coffer.toml")).unwrap();
    let with_ca = config.replace("security = \"none\"", &format!("security = \"starttls\"\nca-file = \"{}\"", d.join("ca.pem").display()));
    std::fs::write(state.join("coffer.toml"), &with_ca).unwrap();
    let out = coffer_ok(&state, &["alert", "test"]);
    assert!(text(&out).contains("email: sent"), "{}", text(&out));
    let mail = sinks.wait_for("smtp", "Test alert", Duration::from_secs(5));
    assert_eq!(mail["auth"], true, "AUTH after STARTTLS");

    let without_ca = config.replace("security = \"none\"", "security = \"starttls\"");
    std::fs::write(state.join("coffer.toml"), without_ca).unwrap();
    let out = Command::new(coffer_bin()).arg("--state").arg(&state).args(["alert", "test"]).output().unwrap();
    let shown = text(&out);
    assert!(!out.status.success() && shown.contains("email: FAILED") && shown.to_lowercase().contains("certificate"), "{shown}");
}
