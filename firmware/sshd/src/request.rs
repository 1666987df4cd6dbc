//! What a channel asks for and what the endpoint answers: pure decisions
//! the handler applies. A channel becomes an SFTP session, a backup client's
//! exec, or an administrator's command line, or it is refused with a message
//! the client sees on stderr.

use coffer_config::KeyProfile;

use crate::access::{Access, Revoked};
use crate::admission;

/// What a channel asked the endpoint to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChannelRequest {
    Sftp,
    /// A backup client's command line (`scp -t …`, `rsync --server …`).
    Exec(Vec<u8>),
    /// An administrator command (`status`, `user …`), not a backup client's.
    Admin(Vec<u8>),
}

impl ChannelRequest {
    /// The request an exec line makes, or `None` for one no program may
    /// receive (a NUL byte cannot be passed as an argument).
    pub(crate) fn from_exec(line: &[u8]) -> Option<Self> {
        if line.contains(&0) {
            None
        } else if coffer_command::is_admin_command(line) {
            Some(ChannelRequest::Admin(line.to_vec()))
        } else {
            Some(ChannelRequest::Exec(line.to_vec()))
        }
    }

    /// The request a subsystem name makes, or `None` for one not served.
    pub(crate) fn from_subsystem(name: &str) -> Option<Self> {
        (name == "sftp").then_some(ChannelRequest::Sftp)
    }

    /// Whether the session's output is a command's (stderr goes to the
    /// client) rather than an SFTP worker's (stderr is its log).
    pub(crate) fn is_command(&self) -> bool {
        !matches!(self, ChannelRequest::Sftp)
    }

    /// The request as the log shows it.
    pub(crate) fn describe(&self) -> String {
        match self {
            ChannelRequest::Sftp => "sftp".into(),
            ChannelRequest::Exec(line) => format!("exec {:?}", String::from_utf8_lossy(line)),
            // Arguments may hold secrets (`config set alerts.email.password …`): log the command words only.
            ChannelRequest::Admin(line) => format!("admin {:?}", coffer_command::admin_command_summary(line)),
        }
    }
}

/// Why a channel is refused; [`Refusal::message`] is what the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A shell: the endpoint serves backups and commands only.
    Shell,
    /// The data area is unusable; the text is the mirror watcher's reason.
    DataUnavailable(String),
    /// users.toml no longer lets the connection's key log in.
    Revoked(Revoked),
    /// A session limit is reached.
    Busy(admission::Refusal),
    /// An administrator command from a key that may not administer; the
    /// first word of the command line.
    NotAdministrator(String),
}

impl Refusal {
    /// The line the client sees on stderr, ended for a terminal in raw mode.
    pub(crate) fn message(&self) -> String {
        match self {
            Refusal::Shell => "This Coffer account serves backups only (SFTP, scp, rsync-free); no shell is available.\r\n".into(),
            Refusal::DataUnavailable(why) => format!("coffer: {why}\r\n"),
            Refusal::Revoked(why) => format!("coffer: this key may no longer log in ({why})\r\n"),
            Refusal::Busy(refusal) => format!("coffer: {refusal}\r\n"),
            Refusal::NotAdministrator(word) => format!(
                "coffer: `{word}` is an administrator command; this key may only back up (log in with an administrator's full key, for example ssh admin@…)\r\n"
            ),
        }
    }
}

/// The refusal of `request` while the data area is unusable (the text of
/// the data-unavailable marker, if it exists). Administrator commands still
/// run: they are how the box is repaired.
pub(crate) fn refuse_without_data(request: &ChannelRequest, marker: Option<&str>) -> Option<Refusal> {
    match (request, marker) {
        (ChannelRequest::Admin(_), _) | (_, None) => None,
        (_, Some(why)) => Some(Refusal::DataUnavailable(why.trim().to_string())),
    }
}

/// Whether `rights` may run administrator commands. An administrator's
/// append-only or read-only key (a backup job's) must not administer: a
/// stolen server would undo what the profile protects.
pub(crate) fn may_administer(rights: &Access) -> bool {
    rights.admin && rights.profile == KeyProfile::Full
}

/// Whether `request` may run with `rights`.
pub(crate) fn check_rights(request: &ChannelRequest, rights: &Access) -> Result<(), Refusal> {
    match request {
        ChannelRequest::Admin(line) if !may_administer(rights) => {
            let word = coffer_command::words(line).ok().and_then(|w| w.into_iter().next()).unwrap_or_default();
            Err(Refusal::NotAdministrator(String::from_utf8_lossy(&word).into_owned()))
        }
        _ => Ok(()),
    }
}

/// Whether a pty request is acknowledged. No pseudo-terminal is ever
/// allocated; an administrator's `ssh -t` is acknowledged so their commands
/// can use colour and alignment (output then ends lines with CR LF, as a
/// terminal in raw mode needs).
pub(crate) fn acknowledge_terminal(rights: Option<&Access>) -> bool {
    rights.is_some_and(|r| r.admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rights(admin: bool, profile: KeyProfile) -> Access {
        Access { uid: 1000, gid: 1000, profile, limits: coffer_quota::Limits { bytes: None, files: None }, admin }
    }

    #[test]
    fn exec_lines_are_classified() {
        let cases: &[(&[u8], Option<ChannelRequest>)] = &[
            (b"scp -t /backups", Some(ChannelRequest::Exec(b"scp -t /backups".to_vec()))),
            (b"status", Some(ChannelRequest::Admin(b"status".to_vec()))),
            (b"user add alice", Some(ChannelRequest::Admin(b"user add alice".to_vec()))),
            (b"ls\0status", None),
            (b"", Some(ChannelRequest::Exec(Vec::new()))),
        ];
        for (line, expect) in cases {
            assert_eq!(&ChannelRequest::from_exec(line), expect, "exec {:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn only_sftp_is_a_subsystem() {
        assert_eq!(ChannelRequest::from_subsystem("sftp"), Some(ChannelRequest::Sftp));
        for name in ["SFTP", "netconf", "sftp ", ""] {
            assert_eq!(ChannelRequest::from_subsystem(name), None, "{name:?}");
        }
    }

    #[test]
    fn missing_data_refuses_all_but_administration() {
        let why = Some("the data mirror has failed\n");
        let refused = Some(Refusal::DataUnavailable("the data mirror has failed".into()));
        let cases = [
            (ChannelRequest::Sftp, why, refused.clone()),
            (ChannelRequest::Exec(b"scp -f x".to_vec()), why, refused),
            (ChannelRequest::Admin(b"status".to_vec()), why, None),
            (ChannelRequest::Sftp, None, None),
            (ChannelRequest::Exec(b"scp -f x".to_vec()), None, None),
        ];
        for (request, marker, expect) in cases {
            assert_eq!(refuse_without_data(&request, marker), expect, "{request:?} with {marker:?}");
        }
    }

    #[test]
    fn administration_needs_an_administrators_full_key() {
        let admin_line = ChannelRequest::Admin(b"user lock bob".to_vec());
        let not_admin = Err(Refusal::NotAdministrator("user".into()));
        let cases = [
            (rights(true, KeyProfile::Full), &admin_line, Ok(())),
            (rights(true, KeyProfile::AppendOnly), &admin_line, not_admin.clone()),
            (rights(true, KeyProfile::ReadOnly), &admin_line, not_admin.clone()),
            (rights(false, KeyProfile::Full), &admin_line, not_admin),
            (rights(false, KeyProfile::AppendOnly), &ChannelRequest::Sftp, Ok(())),
            (rights(false, KeyProfile::ReadOnly), &ChannelRequest::Exec(b"scp -f x".to_vec()), Ok(())),
        ];
        for (rights, request, expect) in cases {
            assert_eq!(check_rights(request, &rights), expect, "{request:?} with {rights:?}");
        }
    }

    #[test]
    fn terminals_are_for_administrators() {
        assert!(acknowledge_terminal(Some(&rights(true, KeyProfile::Full))));
        assert!(acknowledge_terminal(Some(&rights(true, KeyProfile::AppendOnly))));
        assert!(!acknowledge_terminal(Some(&rights(false, KeyProfile::Full))));
        assert!(!acknowledge_terminal(None));
    }

    #[test]
    fn refusals_tell_the_client_why() {
        let cases = [
            (Refusal::Shell, "This Coffer account serves backups only (SFTP, scp, rsync-free); no shell is available.\r\n"),
            (Refusal::DataUnavailable("mirror failed".into()), "coffer: mirror failed\r\n"),
            (Refusal::Revoked(Revoked::UserLocked), "coffer: this key may no longer log in (the user is locked)\r\n"),
            (
                Refusal::NotAdministrator("status".into()),
                "coffer: `status` is an administrator command; this key may only back up (log in with an administrator's full key, for example ssh admin@…)\r\n",
            ),
            (
                Refusal::Busy(admission::Refusal::ServerWorkers { held: 4, limit: 4 }),
                "coffer: the server runs 4 sessions, its limit (server.max-sessions is 4); retry later\r\n",
            ),
        ];
        for (refusal, expect) in cases {
            assert_eq!(refusal.message(), expect);
        }
    }

    #[test]
    fn administrator_lines_are_logged_without_their_operands() {
        let described = ChannelRequest::Admin(b"config set alerts.email.password hunter2".to_vec()).describe();
        assert!(!described.contains("hunter2"), "{described}");
        assert_eq!(ChannelRequest::Sftp.describe(), "sftp");
        assert_eq!(ChannelRequest::Exec(b"scp -t x".to_vec()).describe(), "exec \"scp -t x\"");
    }
}
