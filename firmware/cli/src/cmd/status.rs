//! `status [--json]`: the appliance at a glance.

use std::path::Path;

use anyhow::Result;
use coffer_status::Style;

use crate::status_gather::gather;

pub(crate) fn show(dir: &Path, json: bool) -> Result<()> {
    let status = gather(dir)?;
    if json {
        let mut v = serde_json::to_value(&status)?;
        v["health"] = serde_json::to_value(status.overall())?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", coffer_status::render(&status, Style { colour: terminal() }));
    }
    Ok(())
}

/// Whether output goes to a person's terminal (`ssh -t`): colour and alignment then.
fn terminal() -> bool {
    std::env::var_os("COFFER_TERMINAL").is_some() || std::io::IsTerminal::is_terminal(&std::io::stdout())
}
