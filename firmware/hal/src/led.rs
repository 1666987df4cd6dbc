//! Front-panel LEDs through the kernel LED class (`/sys/class/leds/NAME`):
//! steady with `trigger=none` and `brightness`, blinking with the `timer`
//! trigger and its `delay_on`/`delay_off`.

use crate::SysRoot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedSetting {
    Off,
    On,
    Blink { on_ms: u32, off_ms: u32 },
}

impl SysRoot {
    /// The LED whose name matches `pattern`: exact, or `*suffix` (names
    /// like `input0::capslock` carry a number that depends on probe order).
    pub fn find_led(&self, pattern: &str) -> Option<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("sys/class/leds"))
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        match pattern.strip_prefix('*') {
            Some(suffix) => names.into_iter().find(|n| n.ends_with(suffix)),
            None => names.into_iter().find(|n| n == pattern),
        }
    }

    pub fn set_led(&self, name: &str, setting: LedSetting) -> std::io::Result<()> {
        let base = self.path("sys/class/leds").join(name);
        let write = |file: &str, value: &str| std::fs::write(base.join(file), value);
        match setting {
            LedSetting::Off => {
                write("trigger", "none")?;
                write("brightness", "0")
            }
            LedSetting::On => {
                write("trigger", "none")?;
                let max = std::fs::read_to_string(base.join("max_brightness")).map(|s| s.trim().to_string()).unwrap_or_else(|_| "1".into());
                write("brightness", &max)
            }
            LedSetting::Blink { on_ms, off_ms } => {
                // The kernel creates delay_on/delay_off when the timer trigger is chosen.
                write("trigger", "timer")?;
                write("delay_on", &on_ms.to_string())?;
                write("delay_off", &off_ms.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn finds_and_sets_leds() {
        let dir = tempfile::tempdir().unwrap();
        let led = dir.path().join("sys/class/leds/input3::capslock");
        fs::create_dir_all(&led).unwrap();
        fs::create_dir_all(dir.path().join("sys/class/leds/input3::numlock")).unwrap();
        fs::write(led.join("max_brightness"), "1\n").unwrap();
        let sys = SysRoot::at(dir.path());
        assert_eq!(sys.find_led("*::capslock").as_deref(), Some("input3::capslock"));
        assert_eq!(sys.find_led("input3::numlock").as_deref(), Some("input3::numlock"));
        assert_eq!(sys.find_led("*::scrolllock"), None);
        sys.set_led("input3::capslock", LedSetting::Blink { on_ms: 1000, off_ms: 1000 }).unwrap();
        assert_eq!(fs::read_to_string(led.join("trigger")).unwrap(), "timer");
        assert_eq!(fs::read_to_string(led.join("delay_off")).unwrap(), "1000");
        sys.set_led("input3::capslock", LedSetting::On).unwrap();
        assert_eq!(fs::read_to_string(led.join("trigger")).unwrap(), "none");
        assert_eq!(fs::read_to_string(led.join("brightness")).unwrap(), "1");
    }
}
