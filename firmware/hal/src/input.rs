//! Input devices from `/proc/bus/input/devices`: the appliance listens to
//! the ACPI power button so a press (or QEMU's `system_powerdown`) shuts it
//! down in order.

use crate::{HalError, SysRoot};

/// Event nodes (`/dev/input/eventN`) of every device named "Power Button".
pub fn power_button_handlers(root: &SysRoot) -> Result<Vec<std::path::PathBuf>, HalError> {
    let text = root.read("proc/bus/input/devices")?;
    Ok(parse_power_buttons(&text).into_iter().map(|e| root.path("dev/input").join(e)).collect())
}

fn parse_power_buttons(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|block| block.lines().any(|l| l.starts_with("N: Name=\"Power Button\"")))
        .filter_map(|block| {
            let handlers = block.lines().find_map(|l| l.strip_prefix("H: Handlers="))?;
            handlers.split_whitespace().find(|h| h.starts_with("event")).map(str::to_string)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_button_event_nodes() {
        let text = "I: Bus=0019 Vendor=0000 Product=0001 Version=0000\nN: Name=\"Power Button\"\nP: Phys=LNXPWRBN/button/input0\nH: Handlers=kbd event0 \nB: EV=3\n\nI: Bus=0011\nN: Name=\"AT Translated Set 2 keyboard\"\nH: Handlers=sysrq kbd event1 leds \n";
        assert_eq!(parse_power_buttons(text), ["event0"]);
        assert!(parse_power_buttons("").is_empty());
    }
}
