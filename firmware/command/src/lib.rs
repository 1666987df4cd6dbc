//! The exec side of the backup endpoint, as pure parsers.
//!
//! Backup clients send a handful of shell command lines over SSH exec
//! (duplicity `scp://`, legacy `scp -O`, rclone's hash checks). Coffer never
//! runs a shell: [`words`] undoes POSIX quoting, [`ExecCommand::parse`] maps
//! the words onto the few commands it emulates, and [`scp`] parses the legacy
//! scp protocol's control lines.

mod admin;
pub mod scp;
mod words;

pub use admin::{ADMIN_WORDS, admin_command_summary, is_admin_command};

pub use words::{WordsError, words};

use thiserror::Error;

/// A command Coffer emulates. Paths are raw bytes as the client sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecCommand {
    /// `mkdir -p DIR…` (also without `-p`).
    Mkdir { parents: bool, paths: Vec<Vec<u8>> },
    /// `ls -1 [PATH…]`.
    List { paths: Vec<Vec<u8>> },
    /// `rm [-f] [-r] PATH…`.
    Remove { force: bool, recursive: bool, paths: Vec<Vec<u8>> },
    /// `scp -t TARGET`: the client sends files to us.
    ScpSink { recursive: bool, preserve: bool, target_is_dir: bool, target: Vec<u8> },
    /// `scp -f PATH…`: we send files to the client.
    ScpSource { recursive: bool, preserve: bool, paths: Vec<Vec<u8>> },
    /// `md5sum`/`sha1sum`/`sha256sum [PATH…]`; no path means standard input.
    HashSum { algorithm: HashAlgorithm, paths: Vec<Vec<u8>> },
    /// `echo WORD…` (rclone's shell probe `echo ${ShellId}%ComSpec%`).
    Echo { words: Vec<Vec<u8>> },
}

/// Digest used by a hash-sum command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
}

impl HashAlgorithm {
    pub fn command_name(self) -> &'static str {
        match self {
            HashAlgorithm::Md5 => "md5sum",
            HashAlgorithm::Sha1 => "sha1sum",
            HashAlgorithm::Sha256 => "sha256sum",
        }
    }
}

/// Why a command line is refused. Every variant ends as exit status 127
/// with the message on stderr.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    #[error("{0}")]
    Syntax(#[from] WordsError),
    #[error("empty command")]
    Empty,
    #[error("command not available on this server: {0} (Coffer accepts SFTP, scp, mkdir -p, ls -1, rm, md5sum, sha1sum and sha256sum)")]
    NotSupported(String),
    #[error("{command}: unsupported option {option}")]
    BadOption { command: String, option: String },
    #[error("{0}: missing operand")]
    MissingOperand(String),
}

impl ExecCommand {
    /// Parses a command line as a POSIX shell would split it, then
    /// recognises one of the emulated commands.
    pub fn parse(line: &[u8]) -> Result<Self, CommandError> {
        let words = words(line)?;
        let (program, args) = words.split_first().ok_or(CommandError::Empty)?;
        let name = String::from_utf8_lossy(program).into_owned();
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        match base.as_str() {
            "mkdir" => {
                let (flags, paths) = split_flags(&base, args, "p")?;
                need_operand(&base, &paths)?;
                Ok(ExecCommand::Mkdir { parents: flags.contains(&'p'), paths })
            }
            "ls" => {
                let (_, paths) = split_flags(&base, args, "1")?;
                Ok(ExecCommand::List { paths })
            }
            "rm" => {
                let (flags, paths) = split_flags(&base, args, "frR")?;
                need_operand(&base, &paths)?;
                Ok(ExecCommand::Remove {
                    force: flags.contains(&'f'),
                    recursive: flags.contains(&'r') || flags.contains(&'R'),
                    paths,
                })
            }
            "scp" => parse_scp(args),
            "md5sum" | "sha1sum" | "sha256sum" => {
                let algorithm = match base.as_str() {
                    "md5sum" => HashAlgorithm::Md5,
                    "sha1sum" => HashAlgorithm::Sha1,
                    _ => HashAlgorithm::Sha256,
                };
                let (_, paths) = split_flags(&base, args, "")?;
                Ok(ExecCommand::HashSum { algorithm, paths })
            }
            "echo" => Ok(ExecCommand::Echo { words: args.to_vec() }),
            _ => Err(CommandError::NotSupported(name)),
        }
    }
}

fn need_operand(command: &str, paths: &[Vec<u8>]) -> Result<(), CommandError> {
    if paths.is_empty() { Err(CommandError::MissingOperand(command.into())) } else { Ok(()) }
}

/// Splits leading `-xyz` flag words (up to `--`) from operands, allowing only `allowed` letters.
fn split_flags(command: &str, args: &[Vec<u8>], allowed: &str) -> Result<(Vec<char>, Vec<Vec<u8>>), CommandError> {
    let mut flags = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        for &c in &a[1..] {
            let c = c as char;
            if !allowed.contains(c) {
                return Err(CommandError::BadOption {
                    command: command.into(),
                    option: format!("-{c}"),
                });
            }
            flags.push(c);
        }
        i += 1;
    }
    Ok((flags, args[i..].to_vec()))
}

fn parse_scp(args: &[Vec<u8>]) -> Result<ExecCommand, CommandError> {
    let (flags, paths) = split_flags("scp", args, "tfrpdvqE")?;
    let recursive = flags.contains(&'r');
    let preserve = flags.contains(&'p');
    match (flags.contains(&'t'), flags.contains(&'f')) {
        (true, false) => {
            let mut paths = paths;
            if paths.len() != 1 {
                return Err(CommandError::MissingOperand("scp -t".into()));
            }
            let target = paths.remove(0);
            Ok(ExecCommand::ScpSink { recursive, preserve, target_is_dir: flags.contains(&'d'), target })
        }
        (false, true) => {
            need_operand("scp -f", &paths)?;
            Ok(ExecCommand::ScpSource { recursive, preserve, paths })
        }
        _ => Err(CommandError::NotSupported(
            "scp without exactly one of -t or -f (Coffer only serves as the remote end of scp)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn duplicity_scp_backend_commands() {
        let table: &[(&str, ExecCommand)] = &[
            ("mkdir -p 'backup/home'", ExecCommand::Mkdir { parents: true, paths: vec![v("backup/home")] }),
            ("ls -1 'backup/home'", ExecCommand::List { paths: vec![v("backup/home")] }),
            ("scp -t 'backup/home'", ExecCommand::ScpSink { recursive: false, preserve: false, target_is_dir: false, target: v("backup/home") }),
            ("scp -f 'backup/home/duplicity-full.20261127T052936Z.manifest'", ExecCommand::ScpSource { recursive: false, preserve: false, paths: vec![v("backup/home/duplicity-full.20261127T052936Z.manifest")] }),
            ("rm 'backup/home/a b'", ExecCommand::Remove { force: false, recursive: false, paths: vec![v("backup/home/a b")] }),
            ("scp -r -p -d -t dir", ExecCommand::ScpSink { recursive: true, preserve: true, target_is_dir: true, target: v("dir") }),
            ("md5sum /x/a\\ b", ExecCommand::HashSum { algorithm: HashAlgorithm::Md5, paths: vec![v("/x/a b")] }),
            ("sha1sum", ExecCommand::HashSum { algorithm: HashAlgorithm::Sha1, paths: vec![] }),
            ("echo ${ShellId}%ComSpec%", ExecCommand::Echo { words: vec![v("%ComSpec%")] }),
        ];
        for (line, want) in table {
            assert_eq!(&ExecCommand::parse(line.as_bytes()).unwrap(), want, "{line}");
        }
    }

    #[test]
    fn refusals() {
        assert!(matches!(ExecCommand::parse(b"bash -i"), Err(CommandError::NotSupported(_))));
        assert!(matches!(ExecCommand::parse(b"ls; cat /etc/passwd"), Err(CommandError::Syntax(_))));
        assert!(matches!(ExecCommand::parse(b"rm -x a"), Err(CommandError::BadOption { .. })));
        assert!(matches!(ExecCommand::parse(b"   "), Err(CommandError::Empty)));
        assert!(matches!(ExecCommand::parse(b"scp -t"), Err(CommandError::MissingOperand(_))));
        assert!(matches!(ExecCommand::parse(b"cat $(id)"), Err(CommandError::Syntax(_))));
    }
}
