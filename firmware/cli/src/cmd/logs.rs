//! `logs`, `events`: the appliance's own log.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// `30m`, `2h`, `1d`, `45s` or plain seconds.
pub(crate) fn parse_since(text: &str) -> Result<u64> {
    let text = text.trim();
    let (num, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let n: u64 = num.parse().with_context(|| format!("invalid --since {text:?}: use 30m, 2h, 1d or seconds"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("invalid --since {text:?}: the unit must be s, m, h or d"),
    };
    Ok(n.saturating_mul(mult))
}

/// One log line as shown: `2026-11-27 10:00:00 TEXT`, or for events the JSON alone.
fn shown(line: &str, cutoff: Option<u64>, events_only: bool) -> Option<String> {
    let (stamp, text) = line.strip_prefix('@').and_then(|l| l.split_once(' ')).map_or((None, line), |(s, t)| (s.parse::<u64>().ok(), t));
    if let (Some(cut), Some(t)) = (cutoff, stamp)
        && t < cut
    {
        return None;
    }
    if events_only {
        // Only the line's own start: a logged user name may contain the marker.
        let json = text.strip_prefix(coffer_runtime::event::PREFIX)?;
        return Some(json.to_string());
    }
    let when = stamp.map_or_else(String::new, |t| {
        let (y, mo, d, h, mi, s) = coffer_duplicity::civil_from_unix(t as i64);
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} ")
    });
    Some(format!("{when}{text}"))
}

pub(crate) fn logs(follow: bool, since: Option<&str>, events_only: bool) -> Result<()> {
    let cutoff = match since {
        Some(s) => Some((coffer_runtime::clock::now()).saturating_sub(parse_since(s)?)),
        None => None,
    };
    // The supervisor's log (lines `@SECONDS TEXT`), rotated to `log.1`.
    let path = coffer_runtime::Paths::appliance().log();
    let path = path.as_path();
    if !path.exists() {
        bail!("no appliance log at {}: this command reads the log of a running Coffer appliance", path.display());
    }
    let mut out = std::io::stdout().lock();
    let older = path.with_extension("1");
    for p in [older.as_path(), path] {
        if let Ok(f) = std::fs::File::open(p) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if let Some(l) = shown(&line, cutoff, events_only) {
                    std::io::Write::write_all(&mut out, format!("{l}\n").as_bytes())?;
                }
            }
        }
    }
    std::io::Write::flush(&mut out)?;
    if !follow {
        return Ok(());
    }
    // Follow: poll for growth; a rotation (the file shrank) starts over at 0.
    let mut pos = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut pending = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let Ok(mut f) = std::fs::File::open(path) else { continue };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < pos {
            pos = 0;
        }
        if len == pos {
            continue;
        }
        f.seek(SeekFrom::Start(pos))?;
        let mut chunk = String::new();
        let n = std::io::Read::read_to_string(&mut f, &mut chunk)?;
        pos += n as u64;
        pending.push_str(&chunk);
        while let Some(i) = pending.find('\n') {
            let line: String = pending.drain(..=i).collect();
            if let Some(l) = shown(line.trim_end_matches('\n'), None, events_only) {
                std::io::Write::write_all(&mut out, format!("{l}\n").as_bytes())?;
            }
        }
        // A closed connection ends the follow (the write fails).
        std::io::Write::flush(&mut out)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_values() {
        assert_eq!(parse_since("90").unwrap(), 90);
        assert_eq!(parse_since("30m").unwrap(), 1800);
        assert_eq!(parse_since("2h").unwrap(), 7200);
        assert_eq!(parse_since("1d").unwrap(), 86_400);
        assert!(parse_since("2 weeks").is_err());
        assert!(parse_since("h").is_err());
    }

    #[test]
    fn lines_are_shown_with_their_time() {
        assert_eq!(shown("@0 coffer: hello", None, false).as_deref(), Some("1970-01-01 00:00:00 coffer: hello"));
        assert_eq!(shown("@10 x", Some(11), false), None);
        assert_eq!(shown("@10 coffer-event {\"kind\":\"a\"}", None, true).as_deref(), Some("{\"kind\":\"a\"}"));
        assert_eq!(shown("@10 plain", None, true), None);
        assert_eq!(shown("no stamp", Some(5), false).as_deref(), Some("no stamp"));
    }
}
