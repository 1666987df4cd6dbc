//! Mapping of operating-system errors to SFTP status codes and messages,
//! the same mapping OpenSSH's sftp-server uses (clients depend on it: see
//! the status table in the real-clients note).

use coffer_sftp_proto::StatusCode;

/// The SFTP status and a message for an I/O error.
pub fn io_status(e: &std::io::Error) -> (StatusCode, String) {
    let code = match e.raw_os_error() {
        Some(2) | Some(20) => StatusCode::NoSuchFile, // ENOENT, ENOTDIR
        Some(1) | Some(13) | Some(18) | Some(30) => StatusCode::PermissionDenied, // EPERM, EACCES, EXDEV, EROFS
        _ if e.kind() == std::io::ErrorKind::NotFound => StatusCode::NoSuchFile,
        _ if e.kind() == std::io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    };
    let message = match code {
        StatusCode::NoSuchFile => "No such file".to_string(),
        StatusCode::PermissionDenied => "Permission denied".to_string(),
        _ => strip_os_error(e),
    };
    (code, message)
}

/// "File exists (os error 17)" → "File exists".
pub(crate) fn strip_os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
