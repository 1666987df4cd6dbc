//! What a user (or the default) keeps.

use serde::{Deserialize, Serialize};

use crate::duration::format_duration;

/// A retention policy. Absent rules keep nothing by themselves; a policy
/// with no rule at all deletes no chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep every restore point newer than this many seconds.
    pub keep_within: Option<i64>,
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// Incomplete sets (no manifest) untouched for this long are removed.
    pub incomplete_grace: Option<i64>,
    /// Opt-in: files that are not duplicity archives and older than this are removed.
    pub max_age: Option<i64>,
}

/// The period rules, in the order they are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    Within,
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Within => "keep-within",
            Rule::Last => "keep-last",
            Rule::Hourly => "keep-hourly",
            Rule::Daily => "keep-daily",
            Rule::Weekly => "keep-weekly",
            Rule::Monthly => "keep-monthly",
            Rule::Yearly => "keep-yearly",
        }
    }
}

/// Default grace for incomplete sets: a day.
pub const DEFAULT_INCOMPLETE_GRACE: i64 = 86_400;

impl RetentionPolicy {
    /// True when no rule selects anything: then no chain is deleted.
    pub fn keeps_everything(&self) -> bool {
        self.keep_within.is_none()
            && self.keep_last.is_none()
            && self.keep_hourly.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
            && self.keep_yearly.is_none()
    }

    /// The count rules that are set, in application order.
    pub fn count_rules(&self) -> Vec<(Rule, u32)> {
        [
            (Rule::Last, self.keep_last),
            (Rule::Hourly, self.keep_hourly),
            (Rule::Daily, self.keep_daily),
            (Rule::Weekly, self.keep_weekly),
            (Rule::Monthly, self.keep_monthly),
            (Rule::Yearly, self.keep_yearly),
        ]
        .into_iter()
        .filter_map(|(r, n)| n.map(|n| (r, n)))
        .collect()
    }

    pub fn incomplete_grace(&self) -> i64 {
        self.incomplete_grace.unwrap_or(DEFAULT_INCOMPLETE_GRACE)
    }

    /// The rules in the words of the command line (`keep-within 7D,
    /// keep-daily 7`), as `retention show` and `user show` print them.
    pub fn describe(&self) -> String {
        if self.keeps_everything() {
            return "keep everything (no rule set)".into();
        }
        let mut parts = Vec::new();
        if let Some(w) = self.keep_within {
            parts.push(format!("{} {}", Rule::Within.name(), format_duration(w)));
        }
        for (rule, n) in self.count_rules() {
            parts.push(format!("{} {n}", rule.name()));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_in_the_words_of_the_command_line() {
        assert_eq!(RetentionPolicy::default().describe(), "keep everything (no rule set)");
        let p = RetentionPolicy { keep_within: Some(7 * 86_400), keep_daily: Some(7), keep_monthly: Some(12), ..Default::default() };
        assert_eq!(p.describe(), format!("keep-within {}, keep-daily 7, keep-monthly 12", format_duration(7 * 86_400)));
    }
}
