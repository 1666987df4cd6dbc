//! What a logged-in key may do now, decided from the current user database
//! rather than from the moment of login: a connection can stay open for
//! hours (multiplexed OpenSSH, rclone), and the stolen-laptop procedure
//! (`user key-remove`, `user lock`, a profile or quota change) must reach it.

use coffer_config::{KeyProfile, Role, UserDb};
use russh::keys::PublicKey;

use crate::keys::parse_authorized_key;

/// A key's rights as the database gives them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) profile: KeyProfile,
    pub(crate) limits: coffer_quota::Limits,
    pub(crate) admin: bool,
}

/// Why a logged-in key may no longer do anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Revoked {
    #[error("the user was removed")]
    UserRemoved,
    #[error("the user is locked")]
    UserLocked,
    #[error("the key was removed from the user")]
    KeyRemoved,
}

impl Revoked {
    /// Short word for events.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Revoked::UserRemoved => "user-removed",
            Revoked::UserLocked => "user-locked",
            Revoked::KeyRemoved => "key-removed",
        }
    }
}

/// The rights of `key` for `user` in `db`.
pub(crate) fn access(db: &UserDb, user: &str, key: &PublicKey) -> Result<Access, Revoked> {
    let u = db.get(user).ok_or(Revoked::UserRemoved)?;
    if u.locked {
        return Err(Revoked::UserLocked);
    }
    let profile = u
        .keys
        .iter()
        .find_map(|k| parse_authorized_key(&k.key).ok().filter(|p| p.key_data() == key.key_data()).map(|_| k.profile))
        .ok_or(Revoked::KeyRemoved)?;
    Ok(Access {
        uid: u.uid,
        gid: u.gid,
        profile,
        limits: coffer_quota::Limits { bytes: u.quota_bytes, files: u.quota_files },
        admin: u.role == Role::Admin,
    })
}

/// How much a profile allows, so a change can be told apart as a downgrade.
fn rank(p: KeyProfile) -> u8 {
    match p {
        KeyProfile::ReadOnly => 0,
        KeyProfile::AppendOnly => 1,
        KeyProfile::Full => 2,
    }
}

/// True if a session started under `running` does things `now` forbids.
pub(crate) fn exceeds(running: KeyProfile, now: KeyProfile) -> bool {
    rank(running) > rank(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_config::{AuthorizedKey, UserName};

    const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINXV0oQTHtJ6ZIlDYxUbbW1SulESCrCA4ELtS/95YQDa a";
    const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICXaanqBr/tSHWGYCAcl9F61Tr3kHN1Ji7cUUSY0gvBN b";

    fn db(profile: KeyProfile, locked: bool) -> UserDb {
        let mut db = UserDb::default();
        let name = UserName::try_from("alice".to_string()).expect("valid name");
        db.add_key(name, AuthorizedKey { key: KEY_A.into(), profile });
        let u = db.get_mut("alice").expect("added");
        u.locked = locked;
        u.quota_bytes = Some(1 << 20);
        db
    }

    fn key(line: &str) -> PublicKey {
        parse_authorized_key(line).expect("test key parses")
    }

    #[test]
    fn current_profile_and_limits_come_from_the_database() {
        let a = access(&db(KeyProfile::ReadOnly, false), "alice", &key(KEY_A)).expect("allowed");
        assert_eq!(a.profile, KeyProfile::ReadOnly);
        assert_eq!(a.limits.bytes, Some(1 << 20));
    }

    #[test]
    fn removal_lock_and_key_removal_revoke() {
        assert_eq!(access(&db(KeyProfile::Full, false), "bob", &key(KEY_A)), Err(Revoked::UserRemoved));
        assert_eq!(access(&db(KeyProfile::Full, true), "alice", &key(KEY_A)), Err(Revoked::UserLocked));
        assert_eq!(access(&db(KeyProfile::Full, false), "alice", &key(KEY_B)), Err(Revoked::KeyRemoved));
    }

    #[test]
    fn only_narrower_profiles_end_sessions() {
        use KeyProfile::*;
        let table = [
            (Full, AppendOnly, true),
            (Full, ReadOnly, true),
            (AppendOnly, ReadOnly, true),
            (AppendOnly, Full, false),
            (ReadOnly, AppendOnly, false),
            (Full, Full, false),
        ];
        for (running, now, ends) in table {
            assert_eq!(exceeds(running, now), ends, "{running:?} -> {now:?}");
        }
    }
}
