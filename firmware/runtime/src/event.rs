//! Machine-readable state-change lines, `coffer-event {json}`, one per
//! line, read by tests and people alike. Every process prints them in this
//! one format: commands and services on stderr ([`emit`]), the supervisor on
//! the console and into its log ([`line`] gives it the text).

use serde_json::{Map, Value};

/// The line `coffer-event {"kind":KIND, ...fields}`, without a newline.
pub fn line(kind: &str, fields: &[(&str, Value)]) -> String {
    let mut m = Map::new();
    m.insert("kind".into(), Value::from(kind));
    for (k, v) in fields {
        m.insert((*k).into(), v.clone());
    }
    format!("coffer-event {}", Value::Object(m))
}

/// Prints the event's [`line`] on stderr.
pub fn emit(kind: &str, fields: &[(&str, Value)]) {
    eprintln!("{}", line(kind, fields));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_json_object_after_the_prefix_with_the_kind_and_the_fields() {
        let text = line("time.synced", &[("offset-ms", json!(-3)), ("rtc", json!(true)), ("server", json!("pool.ntp.org"))]);
        assert_eq!(text, r#"coffer-event {"kind":"time.synced","offset-ms":-3,"rtc":true,"server":"pool.ntp.org"}"#);
        assert_eq!(line("debug.hang", &[]), r#"coffer-event {"kind":"debug.hang"}"#);
    }
}
