//! Kernel uevents (`NETLINK_KOBJECT_UEVENT`): how the appliance hears about
//! disks arriving and leaving without udev. The parser is pure; the socket
//! is a thin wrapper.

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType, netlink, recv, sockopt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `change`, `bind`, ...
    pub action: String,
    pub subsystem: String,
    /// Kernel name (`vdb`), when the device has a node.
    pub devname: Option<String>,
    /// `disk` or `partition` for block devices.
    pub devtype: Option<String>,
}

/// One kernel uevent: `ACTION@DEVPATH\0KEY=VALUE\0...`. Messages from
/// udev's own multicast group (`libudev` header) are not kernel events and
/// give `None`, as does anything malformed.
pub fn parse_uevent(bytes: &[u8]) -> Option<Uevent> {
    let mut parts = bytes.split(|b| *b == 0).filter(|p| !p.is_empty()).map(|p| std::str::from_utf8(p).ok());
    let header = parts.next()??;
    let (action_in_header, _devpath) = header.split_once('@')?;
    let mut ev = Uevent { action: action_in_header.to_string(), subsystem: String::new(), devname: None, devtype: None };
    for part in parts.flatten() {
        let Some((k, v)) = part.split_once('=') else { continue };
        match k {
            "ACTION" => ev.action = v.to_string(),
            "SUBSYSTEM" => ev.subsystem = v.to_string(),
            "DEVNAME" => ev.devname = Some(v.trim_start_matches("/dev/").to_string()),
            "DEVTYPE" => ev.devtype = Some(v.to_string()),
            _ => {}
        }
    }
    Some(ev)
}

/// A socket subscribed to the kernel's uevent broadcasts.
pub struct UeventSocket {
    fd: OwnedFd,
}

impl UeventSocket {
    pub fn open() -> std::io::Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::KOBJECT_UEVENT),
        )?;
        // Group 1: events straight from the kernel.
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 1))?;
        sockopt::set_socket_recv_buffer_size(&fd, 1 << 20)?;
        Ok(UeventSocket { fd })
    }

    /// The next uevent, or `None` when `timeout` passes first.
    pub fn recv(&self, timeout: Duration) -> std::io::Result<Option<Uevent>> {
        sockopt::set_socket_timeout(&self.fd, sockopt::Timeout::Recv, Some(timeout))?;
        let mut buf = vec![0u8; 8192];
        loop {
            match recv(&self.fd, &mut buf, RecvFlags::empty()) {
                Ok((n, _)) => {
                    if let Some(ev) = parse_uevent(&buf[..n]) {
                        return Ok(Some(ev));
                    }
                }
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_block_remove() {
        let msg = b"remove@/devices/pci0000:00/0000:00:05.0/virtio2/block/vdc\0ACTION=remove\0DEVPATH=/devices/pci0000:00/0000:00:05.0/virtio2/block/vdc\0SUBSYSTEM=block\0MAJOR=254\0MINOR=32\0DEVNAME=vdc\0DEVTYPE=disk\0SEQNUM=1234\0";
        let ev = parse_uevent(msg).unwrap();
        assert_eq!(ev, Uevent { action: "remove".into(), subsystem: "block".into(), devname: Some("vdc".into()), devtype: Some("disk".into()) });
    }

    #[test]
    fn junk_is_none() {
        assert_eq!(parse_uevent(b""), None);
        assert_eq!(parse_uevent(b"libudev\0\xfe\xed"), None);
        assert_eq!(parse_uevent(b"\xff\xfe@x\0"), None);
    }
}
