//! Starting a session's process: a confined session worker (`coffer
//! session-worker`, under the user's uid, with the quota socket inherited)
//! or an administrator's command line (`coffer admin`, as root). What runs
//! is decided as a [`Launch`] value; [`Launch::spawn`] is the one place that
//! starts either.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use coffer_config::KeyProfile;

use crate::endpoint::WorkerCommand;
use crate::live::profile_word;
use crate::request::ChannelRequest;

/// The search path of a session worker.
const WORKER_PATH: &str = "/usr/bin:/bin";
/// The search path of an administrator's command, which runs system tools.
const ADMIN_PATH: &str = "/usr/bin:/bin:/sbin:/usr/sbin";

/// A process to start for a channel: program, arguments, environment,
/// credentials and the descriptor it inherits.
#[derive(Debug)]
pub(crate) struct Launch<'fd> {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    /// The whole environment: nothing of the server's own is passed on.
    pub(crate) env: Vec<(&'static str, &'static str)>,
    /// Uid and gid to run as; `None` keeps the server's.
    pub(crate) credentials: Option<(u32, u32)>,
    /// The quota socket, the only descriptor the process inherits.
    pub(crate) inherit: Option<BorrowedFd<'fd>>,
}

/// A worker's side of one session: who it serves and how.
#[derive(Debug)]
pub(crate) struct WorkerSession<'a> {
    pub(crate) user: &'a str,
    /// The user's data area, the worker's jail.
    pub(crate) area: &'a Path,
    pub(crate) profile: KeyProfile,
    pub(crate) log_level: &'a str,
    /// Run under this uid and gid (the server runs as root).
    pub(crate) credentials: Option<(u32, u32)>,
}

impl<'fd> Launch<'fd> {
    /// A session worker serving `request` (SFTP or a backup client's exec)
    /// for `session`, asking the front end's quota book over `quota`.
    pub(crate) fn worker(command: &WorkerCommand, session: &WorkerSession<'_>, request: &ChannelRequest, quota: BorrowedFd<'fd>) -> Self {
        let mut args: Vec<OsString> = command.args.iter().map(OsString::from).collect();
        args.extend(
            [
                "--jail".as_ref(),
                session.area.as_os_str(),
                "--user".as_ref(),
                session.user.as_ref(),
                "--profile".as_ref(),
                profile_word(session.profile).as_ref(),
                "--quota-fd".as_ref(),
                quota.as_raw_fd().to_string().as_ref(),
                "--log-level".as_ref(),
                session.log_level.as_ref(),
            ]
            .map(OsString::from),
        );
        match request {
            ChannelRequest::Sftp => args.push("sftp".into()),
            ChannelRequest::Exec(line) | ChannelRequest::Admin(line) => {
                args.extend(["exec".into(), "--".into(), std::ffi::OsStr::from_bytes(line).to_owned()]);
            }
        }
        Launch {
            program: command.program.clone(),
            args,
            env: vec![("PATH", WORKER_PATH)],
            credentials: session.credentials,
            inherit: Some(quota),
        }
    }

    /// An administrator's command `line`, parsed by `coffer admin` with the
    /// same grammar as the local command line; `terminal` when the client
    /// asked for one.
    pub(crate) fn admin(command: &WorkerCommand, user: &str, line: &[u8], terminal: bool) -> Self {
        let mut args: Vec<OsString> = command.args.iter().map(OsString::from).collect();
        args.extend(["--user".into(), user.into(), "--".into(), std::ffi::OsStr::from_bytes(line).to_owned()]);
        let mut env = vec![("PATH", ADMIN_PATH)];
        if terminal {
            env.push(("COFFER_TERMINAL", "1"));
        }
        Launch { program: command.program.clone(), args, env, credentials: None, inherit: None }
    }

    /// Starts the process with piped stdio, killed if its handle is dropped.
    pub(crate) fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some((uid, gid)) = self.credentials {
            cmd.uid(uid).gid(gid);
        }
        match self.inherit {
            Some(fd) => spawn_with_inherited(&mut cmd, fd),
            None => cmd.spawn(),
        }
    }
}

/// Spawns `cmd` with `fd` inherited (all other descriptors stay close-on-exec).
/// The descriptor is made inheritable only while holding a lock that every
/// such spawn takes, so no other user's worker can inherit it.
fn spawn_with_inherited(cmd: &mut tokio::process::Command, fd: BorrowedFd<'_>) -> std::io::Result<tokio::process::Child> {
    static SPAWN: Mutex<()> = Mutex::new(());
    let _guard = SPAWN.lock().map_err(|_| std::io::Error::other("spawn lock poisoned"))?;
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
    let child = cmd.spawn();
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    child
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    fn command(program: &str, args: &[&str]) -> WorkerCommand {
        WorkerCommand { program: program.into(), args: args.iter().map(ToString::to_string).collect() }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn workers_run_confined_with_the_quota_socket() {
        let (_ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socket pair");
        let fd = theirs.as_raw_fd().to_string();
        let session = WorkerSession {
            user: "alice",
            area: Path::new("/data/users/alice"),
            profile: KeyProfile::AppendOnly,
            log_level: "info",
            credentials: Some((1001, 1002)),
        };
        let leading = ["--jail", "/data/users/alice", "--user", "alice", "--profile", "append-only", "--quota-fd", &fd, "--log-level", "info"];
        let cases: [(ChannelRequest, &[&str]); 2] = [
            (ChannelRequest::Sftp, &["sftp"]),
            (ChannelRequest::Exec(b"scp -t 'a b'".to_vec()), &["exec", "--", "scp -t 'a b'"]),
        ];
        for (request, tail) in cases {
            let launch = Launch::worker(&command("/bin/coffer", &["session-worker"]), &session, &request, theirs.as_fd());
            let mut expect = vec!["session-worker"];
            expect.extend(leading);
            expect.extend(tail);
            assert_eq!(strings(&launch.args), expect, "{request:?}");
            assert_eq!(launch.program, PathBuf::from("/bin/coffer"));
            assert_eq!(launch.env, [("PATH", WORKER_PATH)]);
            assert_eq!(launch.credentials, Some((1001, 1002)));
            assert_eq!(launch.inherit.map(|f| f.as_raw_fd()), Some(theirs.as_raw_fd()));
        }
    }

    #[test]
    fn administrator_commands_run_as_root_without_descriptors() {
        let cases = [(false, vec![("PATH", ADMIN_PATH)]), (true, vec![("PATH", ADMIN_PATH), ("COFFER_TERMINAL", "1")])];
        for (terminal, env) in cases {
            let launch = Launch::admin(&command("/bin/coffer", &["admin"]), "root-admin", b"user add bob", terminal);
            assert_eq!(strings(&launch.args), ["admin", "--user", "root-admin", "--", "user add bob"]);
            assert_eq!(launch.env, env);
            assert_eq!(launch.credentials, None);
            assert!(launch.inherit.is_none());
        }
    }

    #[test]
    fn a_spawned_process_sees_only_the_given_environment() {
        let launch = Launch {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo \"$PATH|$HOME\"".into()],
            env: vec![("PATH", WORKER_PATH)],
            credentials: None,
            inherit: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let output = runtime.block_on(async { launch.spawn().expect("spawn").wait_with_output().await.expect("output") });
        assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{WORKER_PATH}|\n"));
    }
}
