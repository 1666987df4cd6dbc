//! The hardware watchdog: opening `/dev/watchdog` arms it, each write pets
//! it, and writing `V` before closing disarms it (the "magic close"). The
//! supervisor pets from its main loop and only while the services are
//! healthy, so a hung loop or a sick appliance gets reset by the hardware.
//! The timeout is the driver's module parameter (the board's modules list).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

pub(crate) struct Watchdog {
    file: File,
}

impl Watchdog {
    /// Arms the watchdog if the board has one.
    pub(crate) fn open(path: &Path) -> Option<Watchdog> {
        if !path.exists() {
            return None;
        }
        match OpenOptions::new().write(true).open(path) {
            Ok(file) => Some(Watchdog { file }),
            Err(e) => {
                log::warn!("opening {}: {e}", path.display());
                None
            }
        }
    }

    pub(crate) fn pet(&mut self) {
        if let Err(e) = self.file.write_all(b"\0") {
            log::warn!("petting the watchdog: {e}");
        }
    }

    /// Disarms it for an orderly power-off or reboot.
    pub(crate) fn disarm(mut self) {
        let _ = self.file.write_all(b"V");
    }
}
