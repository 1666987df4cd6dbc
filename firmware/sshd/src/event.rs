//! Machine-readable state-change lines: `coffer-event {json}` on stderr,
//! one per line, read by tests and people alike.

use serde_json::{Map, Value};

/// Emits `coffer-event {"kind":KIND, ...fields}`.
pub fn emit(kind: &str, fields: &[(&str, Value)]) {
    let mut m = Map::new();
    m.insert("kind".into(), Value::from(kind));
    for (k, v) in fields {
        m.insert((*k).into(), v.clone());
    }
    eprintln!("coffer-event {}", Value::Object(m));
}
