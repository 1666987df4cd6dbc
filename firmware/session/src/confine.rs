//! Second wall around a session worker: Landlock limits the process to the
//! user's own area, so even a bug in path handling cannot reach another
//! user's files or the state directory.

use std::path::Path;

use landlock::{ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, path_beneath_rules};

/// How far the kernel confined the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    Full,
    Partial,
    Unavailable,
}

/// Restricts this process to `root` for every file-system access Landlock
/// knows. Must be called after the jail's directory descriptor is open.
pub fn restrict_to(root: &Path) -> Result<Confinement, String> {
    let abi = ABI::V3;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules([root], AccessFs::from_all(abi))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Confinement::Full,
        RulesetStatus::PartiallyEnforced => Confinement::Partial,
        RulesetStatus::NotEnforced => Confinement::Unavailable,
    })
}
