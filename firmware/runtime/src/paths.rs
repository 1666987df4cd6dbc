//! Where the processes meet: one method per file they share at run time.
//! The appliance's roots are fixed; tests put all of them under a
//! temporary directory with [`Paths::under`].

use std::path::{Path, PathBuf};

/// Written at boot and by the services; gone at power-off (a tmpfs).
const APPLIANCE_RUN: &str = "/run/coffer";
/// Laid out by the image build; read-only on the appliance.
const APPLIANCE_ETC: &str = "/etc/coffer";
/// Where the supervisor mounts the state partition.
const APPLIANCE_STATE: &str = "/state";

/// The run root, the etc root and the state directory, and every runtime
/// file under them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    run: PathBuf,
    etc: PathBuf,
    state: PathBuf,
}

impl Paths {
    /// The appliance's own roots.
    pub fn appliance() -> Self {
        Paths { run: APPLIANCE_RUN.into(), etc: APPLIANCE_ETC.into(), state: APPLIANCE_STATE.into() }
    }

    /// The same layout under `root` (`root/run/coffer`, `root/etc/coffer`,
    /// `root/state`), for tests.
    pub fn under(root: &Path) -> Self {
        let inside = |p: &str| root.join(p.trim_start_matches('/'));
        Paths { run: inside(APPLIANCE_RUN), etc: inside(APPLIANCE_ETC), state: inside(APPLIANCE_STATE) }
    }

    /// These roots with another state directory (a command's `--state`).
    #[must_use]
    pub fn with_state(self, state: impl Into<PathBuf>) -> Self {
        Paths { state: state.into(), ..self }
    }

    pub fn run_dir(&self) -> &Path {
        &self.run
    }

    pub fn etc_dir(&self) -> &Path {
        &self.etc
    }

    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The board (`coffer_board::Board`: name, bays, status LED, ...),
    /// merged from `board/` by the image build; its presence is what marks a
    /// Coffer appliance.
    pub fn board(&self) -> PathBuf {
        self.etc.join("board.toml")
    }

    /// Whether this is a Coffer appliance (the image installed its board file).
    pub fn on_appliance(&self) -> bool {
        self.board().exists()
    }

    /// Kernel modules the supervisor loads at boot.
    pub fn modules_list(&self) -> PathBuf {
        self.etc.join("modules.list")
    }

    /// The administrator's key the image was built with.
    pub fn admin_keys(&self) -> PathBuf {
        self.etc.join("admin.pub")
    }

    /// The certificate that signs update bundles.
    pub fn update_key(&self) -> PathBuf {
        self.etc.join("update-key.asc")
    }

    /// The DHCP client's script (it writes [`Paths::dhcp_ntp`]).
    pub fn dhcp_script(&self) -> PathBuf {
        self.etc.join("udhcpc.script")
    }

    /// The console log the supervisor keeps (rotated to `log.1`).
    pub fn log(&self) -> PathBuf {
        self.run.join("log")
    }

    /// Which boot slot is running and in what state.
    pub fn slot(&self) -> PathBuf {
        self.run.join("slot.json")
    }

    /// This process's mount point for the ESP while it reads or changes it
    /// (`esp-PID`, so two processes never share one).
    pub fn esp_mount_point(&self) -> PathBuf {
        self.run.join(format!("esp-{}", std::process::id()))
    }

    /// The time service's record of its last good sync.
    pub fn clock(&self) -> PathBuf {
        self.run.join("clock.json")
    }

    /// Time servers offered by the DHCP server.
    pub fn dhcp_ntp(&self) -> PathBuf {
        self.run.join("dhcp-ntp")
    }

    /// What the mirror watcher last saw, for `status`.
    pub fn raid_watch(&self) -> PathBuf {
        self.run.join("raid-watch.json")
    }

    /// A scrub asked for by `raid scrub`, taken by the mirror watcher.
    pub fn scrub_request(&self) -> PathBuf {
        self.run.join("scrub-request")
    }

    /// Serials of disks being replaced (`raid replace`), one a line.
    pub fn raid_replacing(&self) -> PathBuf {
        self.run.join("raid-replacing")
    }

    /// Present while the data mirror is gone; its text is what the endpoint
    /// answers every session with.
    pub fn data_unavailable(&self) -> PathBuf {
        self.run.join("data-unavailable")
    }

    /// The alert spool: one synced file per alert not yet sent.
    pub fn alert_spool(&self) -> PathBuf {
        self.state.join("alerts")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_appliance_files_are_where_the_image_and_the_services_expect_them() {
        let paths = Paths::appliance();
        let files = [
            (paths.board(), "/etc/coffer/board.toml"),
            (paths.modules_list(), "/etc/coffer/modules.list"),
            (paths.admin_keys(), "/etc/coffer/admin.pub"),
            (paths.update_key(), "/etc/coffer/update-key.asc"),
            (paths.dhcp_script(), "/etc/coffer/udhcpc.script"),
            (paths.log(), "/run/coffer/log"),
            (paths.slot(), "/run/coffer/slot.json"),
            (paths.clock(), "/run/coffer/clock.json"),
            (paths.dhcp_ntp(), "/run/coffer/dhcp-ntp"),
            (paths.raid_watch(), "/run/coffer/raid-watch.json"),
            (paths.scrub_request(), "/run/coffer/scrub-request"),
            (paths.raid_replacing(), "/run/coffer/raid-replacing"),
            (paths.data_unavailable(), "/run/coffer/data-unavailable"),
            (paths.alert_spool(), "/state/alerts"),
        ];
        for (path, expected) in files {
            assert_eq!(path, Path::new(expected));
        }
        assert_eq!(paths.esp_mount_point(), PathBuf::from(format!("/run/coffer/esp-{}", std::process::id())));
    }

    #[test]
    fn a_test_root_holds_every_file_and_the_state_can_move() {
        let paths = Paths::under(Path::new("/tmp/t"));
        assert_eq!(paths.board(), Path::new("/tmp/t/etc/coffer/board.toml"));
        assert_eq!(paths.log(), Path::new("/tmp/t/run/coffer/log"));
        assert_eq!(paths.alert_spool(), Path::new("/tmp/t/state/alerts"));
        let moved = Paths::appliance().with_state("/var/lib/coffer");
        assert_eq!(moved.alert_spool(), Path::new("/var/lib/coffer/alerts"));
        assert_eq!(moved.clock(), Path::new("/run/coffer/clock.json"));
    }
}
