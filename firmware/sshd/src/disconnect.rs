//! Ending a connection from the server's side (login grace time exceeded, a
//! removed key or a locked user): the client is told why, and the socket is
//! closed whether or not the client closes its side.

use std::sync::Arc;
use std::time::Duration;

/// Tells the client why it is disconnected, then closes the socket whether
/// or not the client closes its side.
pub(crate) fn cut(handle: russh::server::Handle, socket: Arc<std::net::TcpStream>, why: String) {
    tokio::spawn(async move {
        let _ = handle.disconnect(russh::Disconnect::ByApplication, why, "en".into()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = socket.shutdown(std::net::Shutdown::Both);
    });
}
