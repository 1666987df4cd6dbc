//! A whole SFTP session fed arbitrary client bytes, over a real jail in a
//! temporary directory: no input may panic the server or escape the jail.
#![no_main]

use std::sync::OnceLock;

use coffer_storage::UserJail;
use libfuzzer_sys::fuzz_target;

fn area() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(d.path().join("jail")).expect("jail");
        std::fs::write(d.path().join("outside"), b"must stay").expect("outside");
        d
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let root = area();
    let jail = UserJail::open(&root.join("jail")).expect("open jail");
    let ctx = coffer_session::sftp::SessionContext {
        jail,
        user: "fuzz".into(),
        profile: coffer_session::profile::Profile::Full,
        quota: Box::new(coffer_session::quota::Unlimited),
    };
    let _ = coffer_session::sftp::serve(ctx, data, std::io::sink());
    assert_eq!(std::fs::read(root.join("outside")).expect("outside"), b"must stay");
});
