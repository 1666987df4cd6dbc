//! `coffer-client status URL`: the target's chains, sets and volumes, in
//! the shape of `duplicity collection-status`, from file names alone.

use std::fmt::Write as _;

use coffer_duplicity::{BackupSet, Collection, SetKind, format_stamp};

fn row(out: &mut String, set: &BackupSet) {
    let kind = match set.kind {
        SetKind::Full => "Full",
        SetKind::Incremental => "Incremental",
    };
    let _ = writeln!(out, " {kind:>19}   {}   {:>12}", format_stamp(set.end), set.volumes.len());
}

/// The report for a target's collection.
pub(crate) fn render(collection: &Collection) -> String {
    let mut out = String::new();
    let chains = &collection.chains;
    if chains.is_empty() {
        out.push_str("No backup chains at the target.\n");
    }
    for (n, chain) in chains.iter().enumerate() {
        let first = &collection.sets[chain.sets[0]];
        let last = &collection.sets[*chain.sets.last().unwrap_or(&chain.sets[0])];
        let label = if n + 1 == chains.len() { "Primary backup chain" } else { "Secondary backup chain" };
        let _ = writeln!(out, "{label}:");
        let _ = writeln!(out, "Chain start time: {}", format_stamp(first.end));
        let _ = writeln!(out, "Chain end time: {}", format_stamp(last.end));
        let _ = writeln!(out, "Number of contained backup sets: {}", chain.sets.len());
        let volumes: usize = chain.sets.iter().map(|&i| collection.sets[i].volumes.len()).sum();
        let _ = writeln!(out, "Total number of contained volumes: {volumes}");
        let _ = writeln!(out, " Type of backup set:   Time:              Num volumes:");
        for &i in &chain.sets {
            row(&mut out, &collection.sets[i]);
        }
        out.push_str("-------------------------\n");
    }
    let odd: Vec<&BackupSet> = collection.orphans.iter().chain(&collection.incomplete).map(|&i| &collection.sets[i]).collect();
    if odd.is_empty() {
        out.push_str("No orphaned or incomplete backup sets found.\n");
    } else {
        let _ = writeln!(out, "Orphaned or incomplete backup sets (not restorable; the next backup clears incomplete ones):");
        for set in odd {
            let state = if set.is_complete() { "orphaned: its chain's earlier sets are missing" } else { "incomplete: no manifest" };
            let _ = writeln!(out, "  {} ({state}, {} volume(s))", set.key(), set.volumes.len());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_duplicity::FileInfo;

    #[test]
    fn chains_sets_and_leftovers() {
        let s = format_stamp;
        let (a, b) = (1_795_737_600, 1_795_824_000);
        let names = [
            format!("duplicity-full.{}.manifest.gz", s(a)),
            format!("duplicity-full.{}.vol1.difftar.gz", s(a)),
            format!("duplicity-full.{}.vol2.difftar.gz", s(a)),
            format!("duplicity-inc.{}.to.{}.manifest", s(a), s(b)),
            format!("duplicity-inc.{}.to.{}.vol1.difftar.gz", s(a), s(b)),
            format!("duplicity-full.{}.vol1.difftar.gz", s(b + 60)),
        ];
        let files: Vec<FileInfo> = names.iter().map(|n| FileInfo { name: n.clone(), mtime: 0, ctime: 0, size: 1 }).collect();
        let text = render(&Collection::from_files(&files));
        assert!(text.contains("Primary backup chain:\nChain start time: 20261127T000000Z\nChain end time: 20261128T000000Z"), "{text}");
        assert!(text.contains("Number of contained backup sets: 2\nTotal number of contained volumes: 3"), "{text}");
        assert!(text.contains("full.20261128T000100Z (incomplete: no manifest, 1 volume(s))"), "{text}");
        assert_eq!(render(&Collection::default()), "No backup chains at the target.\nNo orphaned or incomplete backup sets found.\n");
    }
}
