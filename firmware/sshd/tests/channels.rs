//! The real handler driven in-process by a russh client over loopback:
//! what each channel request becomes for a backup key and for an
//! administrator's key. The worker and the administrator program are
//! stand-ins (`/bin/echo`), so a started session prints its own arguments.

use std::sync::Arc;
use std::time::Duration;

use coffer_config::{AuthorizedKey, KeyProfile, Role, UserDb, UserName};
use coffer_sshd::admission::AdmissionLimits;
use coffer_sshd::quota::QuotaBook;
use coffer_sshd::throttle::ThrottlePolicy;
use coffer_sshd::{Endpoint, EndpointConfig, WorkerCommand};
use russh::ChannelMsg;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};

// Keys made for this test only (ssh-keygen -t ed25519).
const HOST_KEY: &str = r"-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCoQEQhcFQAVKm7lVMnr6ba6RYXHnCM1gskwPbXxRQk+QAAAIg/zZrTP82a
0wAAAAtzc2gtZWQyNTUxOQAAACCoQEQhcFQAVKm7lVMnr6ba6RYXHnCM1gskwPbXxRQk+Q
AAAED8FYV1JifonfR3fex3go3qjdD9/fvbjTcWzwuzXYXOK6hARCFwVABUqbuVUyevptrp
FhcecIzWCyTA9tfFFCT5AAAABGhvc3QB
-----END OPENSSH PRIVATE KEY-----";
const ALICE_KEY: &str = r"-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDgOaSuBr8Xese8rMf2PDQvh+REjjR1v314yL2hmoAf+QAAAIi77F6ju+xe
owAAAAtzc2gtZWQyNTUxOQAAACDgOaSuBr8Xese8rMf2PDQvh+REjjR1v314yL2hmoAf+Q
AAAECg0S9ofExPKh5ER6PoDFeYIUiIB7JiiLrmHxLo9WcKOuA5pK4Gvxd6x7ysx/Y8NC+H
5ESONHW/fXjIvaGagB/5AAAABWFsaWNl
-----END OPENSSH PRIVATE KEY-----";
const ALICE_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOA5pK4Gvxd6x7ysx/Y8NC+H5ESONHW/fXjIvaGagB/5 alice";
const ADMIN_KEY: &str = r"-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACAPz1XjOvi+mz0y+m/zSXGQVd4hWMZ9+VJAGnxTZPFAbwAAAIhjyvZxY8r2
cQAAAAtzc2gtZWQyNTUxOQAAACAPz1XjOvi+mz0y+m/zSXGQVd4hWMZ9+VJAGnxTZPFAbw
AAAEAznQF5Xf8bTp0ey6fc5gdTCykqncHOU9MQwwQTHapayA/PVeM6+L6bPTL6b/NJcZBV
3iFYxn35UkAafFNk8UBvAAAABWFkbWlu
-----END OPENSSH PRIVATE KEY-----";
const ADMIN_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA/PVeM6+L6bPTL6b/NJcZBV3iFYxn35UkAafFNk8UBv admin";

/// A client that trusts the test server's host key.
struct Client;

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// What a channel request got back: the reply, what was written, the exit status.
#[derive(Debug, Default)]
struct Answer {
    accepted: Option<bool>,
    stdout: String,
    stderr: String,
    status: Option<u32>,
}

/// An endpoint on 127.0.0.1:0 with `alice` (an append-only backup key) and
/// `admin` (an administrator's full key); stops when dropped.
struct Server {
    address: std::net::SocketAddr,
    _stop: tokio::sync::watch::Sender<bool>,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut db = UserDb::default();
        for (name, key, profile, role) in [("alice", ALICE_PUB, KeyProfile::AppendOnly, Role::User), ("admin", ADMIN_PUB, KeyProfile::Full, Role::Admin)] {
            db.add_key(UserName::try_from(name.to_string()).expect("valid name"), AuthorizedKey { key: key.into(), profile });
            db.get_mut(name).expect("added").role = role;
        }
        let users_file = dir.path().join("users.toml");
        db.save(&users_file).expect("users.toml written");
        let echo = WorkerCommand { program: "/bin/echo".into(), args: Vec::new() };
        let config = EndpointConfig {
            host_key: PrivateKey::from_openssh(HOST_KEY).expect("host key"),
            users_file,
            data_dir: dir.path().join("data"),
            worker: echo.clone(),
            admin: echo,
            drop_privileges: false,
            throttle: ThrottlePolicy { max_failures: 100, window: Duration::from_secs(60), ban: Duration::from_secs(1), max_ban: Duration::from_secs(1) },
            idle_timeout: Duration::from_secs(30),
            login_grace: Duration::from_secs(30),
            max_connections: 8,
            admission: AdmissionLimits::default(),
            log_level: "info".into(),
            quota: Arc::new(QuotaBook::default()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listener");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let endpoint = Endpoint::new(config, stopped);
        tokio::spawn(async move { endpoint.run(listener, Duration::from_secs(1)).await });
        Server { address, _stop: stop, dir }
    }

    async fn login(&self, user: &str, key: &str) -> russh::client::Handle<Client> {
        let mut session = russh::client::connect(Arc::new(russh::client::Config::default()), self.address, Client).await.expect("connected");
        let key = PrivateKeyWithHashAlg::new(Arc::new(PrivateKey::from_openssh(key).expect("client key")), None);
        assert!(session.authenticate_publickey(user, key).await.expect("authentication ran").success(), "{user} logs in");
        session
    }
}

/// Opens a channel, optionally asks for a terminal, sends `request` and
/// collects the answer until the channel closes.
async fn ask(session: &russh::client::Handle<Client>, terminal: bool, request: Request<'_>) -> (Option<bool>, Answer) {
    let mut channel = session.channel_open_session().await.expect("channel opened");
    let mut pty = None;
    if terminal {
        channel.request_pty(true, "xterm", 80, 24, 0, 0, &[]).await.expect("pty sent");
        pty = match channel.wait().await {
            Some(ChannelMsg::Success) => Some(true),
            Some(ChannelMsg::Failure) => Some(false),
            other => panic!("pty answered with {other:?}"),
        };
    }
    match request {
        Request::Shell => channel.request_shell(true).await,
        Request::Exec(line) => channel.exec(true, line).await,
        Request::Subsystem(name) => channel.request_subsystem(true, name).await,
    }
    .expect("request sent");
    let mut answer = Answer::default();
    let collect = async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Success if answer.accepted.is_none() => answer.accepted = Some(true),
                ChannelMsg::Failure if answer.accepted.is_none() => {
                    answer.accepted = Some(false);
                    break;
                }
                ChannelMsg::Data { data } => answer.stdout.push_str(&String::from_utf8_lossy(&data)),
                ChannelMsg::ExtendedData { data, .. } => answer.stderr.push_str(&String::from_utf8_lossy(&data)),
                ChannelMsg::ExitStatus { exit_status } => answer.status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), collect).await.expect("channel answered in time");
    (pty, answer)
}

#[derive(Debug, Clone, Copy)]
enum Request<'a> {
    Shell,
    Exec(&'a [u8]),
    Subsystem(&'a str),
}

const NOT_ADMIN: &str = "coffer: `status` is an administrator command; this key may only back up (log in with an administrator's full key, for example ssh admin@…)\r\n";
const NO_SHELL: &str = "This Coffer account serves backups only (SFTP, scp, rsync-free); no shell is available.\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_key_gets_backup_sessions_only() {
    let server = Server::start().await;
    let alice = server.login("alice", ALICE_KEY).await;

    let (_, shell) = ask(&alice, false, Request::Shell).await;
    assert_eq!((shell.accepted, shell.stderr.as_str(), shell.status), (Some(true), NO_SHELL, Some(1)));

    let (_, admin) = ask(&alice, false, Request::Exec(b"status")).await;
    assert_eq!((admin.accepted, admin.stderr.as_str(), admin.status), (Some(true), NOT_ADMIN, Some(1)));

    let (_, nul) = ask(&alice, false, Request::Exec(b"scp -t x\0y")).await;
    assert_eq!(nul.accepted, Some(false));

    let (_, subsystem) = ask(&alice, false, Request::Subsystem("netconf")).await;
    assert_eq!(subsystem.accepted, Some(false));

    let (pty, _) = ask(&alice, true, Request::Exec(b"scp -t x")).await;
    assert_eq!(pty, Some(false), "no terminal for a backup key");

    let (_, exec) = ask(&alice, false, Request::Exec(b"scp -t backups")).await;
    assert_eq!((exec.accepted, exec.status), (Some(true), Some(0)));
    let jail = server.dir.path().join("data/alice");
    assert_eq!(
        exec.stdout,
        format!("--jail {} --user alice --profile append-only --quota-fd {} --log-level info exec -- scp -t backups\n", jail.display(), quota_fd(&exec.stdout))
    );

    let (_, sftp) = ask(&alice, false, Request::Subsystem("sftp")).await;
    assert!(sftp.stdout.ends_with("--log-level info sftp\n"), "{:?}", sftp.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrators_full_key_runs_commands_in_a_terminal() {
    let server = Server::start().await;
    let admin = server.login("admin", ADMIN_KEY).await;

    let (pty, status) = ask(&admin, true, Request::Exec(b"status")).await;
    assert_eq!(pty, Some(true));
    assert_eq!((status.accepted, status.stdout.as_str(), status.status), (Some(true), "--user admin -- status\r\n", Some(0)));

    let (_, plain) = ask(&admin, false, Request::Exec(b"user list")).await;
    assert_eq!(plain.stdout, "--user admin -- user list\n");
}

/// The descriptor number a worker was told to find the quota socket at.
fn quota_fd(args: &str) -> &str {
    args.split(' ').skip_while(|w| *w != "--quota-fd").nth(1).unwrap_or_default()
}
