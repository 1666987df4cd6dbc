//! SFTP semantics that clients depend on, probed with paramiko (duplicity's
//! SFTP library): status codes, EOF, EXCL, APPEND, truncation, renames,
//! pipelined requests on several handles.

use std::process::Command;

use coffer_tests::{Client, Coffer, text};

pub fn probe(c: &Client, args: &[&str]) -> Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/sftp_probe.py");
    let mut cmd = c.command("/usr/bin/python3");
    cmd.arg(script)
        .arg(c.port.to_string())
        .arg(&c.user)
        .arg(c.home.join(".ssh/id_ed25519"))
        .arg(c.home.join(".ssh/known_hosts"))
        .args(args);
    cmd
}

#[test]
fn paramiko_semantics() {
    let server = Coffer::start();
    let c = server.client("alice");
    let out = probe(&c, &["semantics"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("semantics OK"));
}
