//! The house rules a newcomer relies on, checked by reading the source (no
//! cargo, no build): no crate's top-level modules import each other in a
//! cycle, the binary's commands (`cmd/`) and services (`svc/`) never import
//! each other, every crate directory has its row in ARCHITECTURE.md's crate
//! table, and events are printed only as typed `coffer_runtime::event::Event`
//! values. Each failure says how to fix the layout.

#![allow(clippy::unwrap_used, reason = "test code: an unreadable source file fails the test")]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the repository").to_path_buf()
}

/// Every crate of the repository: directories holding a Cargo.toml and a
/// `src/` under firmware/ and client/, plus the test crate itself.
fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("tests")];
    for group in ["firmware", "client"] {
        dirs.extend(crate_dirs_in(&root.join(group)));
    }
    dirs.retain(|d| d.join("src").is_dir());
    dirs
}

/// Directories directly under `group` that hold a Cargo.toml (none when
/// `group` does not exist).
fn crate_dirs_in(group: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(group) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.join("Cargo.toml").is_file()).collect();
    dirs.sort();
    dirs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Source text with comments, string and character literals blanked out
/// (newlines kept, so line numbers still match), so a path named in a doc
/// comment or a message is not mistaken for an import.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        if rest.starts_with(&['/', '/']) {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if rest.starts_with(&['/', '*']) {
            let mut depth = 0;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i..].starts_with(&['/', '*']) {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i..].starts_with(&['*', '/']) {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(rest).filter(|_| i == 0 || !is_ident(chars[i - 1])) {
            // r"…", r#"…"#, br#"…"#: ends at a quote followed by as many '#'.
            let open = rest.iter().position(|&c| c == '"').unwrap() + 1;
            for _ in 0..open {
                out.push(' ');
            }
            i += open;
            while i < chars.len() {
                if chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if chars[i] == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let step = if chars[i] == '\\' { 2 } else { 1 };
                for c in chars.iter().skip(i).take(step) {
                    out.push(blank(*c));
                }
                i += step;
            }
            out.push(' ');
            i += 1;
        } else if chars[i] == '\'' && char_literal_len(rest).is_some() {
            let len = char_literal_len(rest).unwrap();
            for _ in 0..len {
                out.push(' ');
            }
            i += len;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The number of '#' of a raw string starting here (`r"`, `r#"`, `br#"`),
/// unless the `r` is the end of an identifier.
fn raw_string_start(rest: &[char]) -> Option<usize> {
    let after_prefix = match rest {
        ['b', 'r', tail @ ..] | ['r', tail @ ..] => tail,
        _ => return None,
    };
    let hashes = after_prefix.iter().take_while(|&&c| c == '#').count();
    (after_prefix.get(hashes) == Some(&'"')).then_some(hashes)
}

/// The length of a character literal starting here ('a', '\n', '\u{1F600}'),
/// or None for a lifetime ('a).
fn char_literal_len(rest: &[char]) -> Option<usize> {
    if rest.get(1) == Some(&'\\') {
        rest.iter().skip(2).position(|&c| c == '\'').map(|p| p + 3)
    } else {
        (rest.get(2) == Some(&'\'')).then_some(3)
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// One reference from a top-level module to another, with where it was seen.
#[derive(Debug, Clone)]
struct Reference {
    from: String,
    to: String,
    file: PathBuf,
    line: usize,
    text: String,
}

/// The top-level module a file belongs to and its module path inside the
/// crate (`src/raid/scrub.rs` → `["raid", "scrub"]`); None for the crate
/// root (`main.rs`, `lib.rs`), whose items every module may use.
fn module_path(src: &Path, file: &Path) -> Option<Vec<String>> {
    let relative = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && !(parts.is_empty() && (stem == "main" || stem == "lib")) {
        parts.push(stem.to_string());
    }
    (!parts.is_empty()).then_some(parts)
}

/// Every `crate::x` and `super::…::x` in a file that leads from its
/// top-level module to another one. `use crate::{a, b::c}` names both `a`
/// and `b`; `super::` is resolved against the file's module path and the
/// inline `mod name { … }` blocks around it.
fn references(src: &Path, file: &Path, modules: &BTreeSet<String>) -> Vec<Reference> {
    let Some(file_path) = module_path(src, file) else { return Vec::new() };
    let original = std::fs::read_to_string(file).unwrap();
    let code: Vec<char> = code_only(&original).chars().collect();
    let lines: Vec<&str> = original.lines().collect();
    let from = file_path[0].clone();
    let mut found = Vec::new();
    let mut push = |at: usize, target: &str, code: &[char]| {
        if target != from && modules.contains(target) {
            let line = code[..at].iter().filter(|&&c| c == '\n').count() + 1;
            found.push(Reference {
                from: from.clone(),
                to: target.to_string(),
                file: file.to_path_buf(),
                line,
                text: lines.get(line - 1).unwrap_or(&"").trim().to_string(),
            });
        }
    };

    // Inline modules open with `mod name {`: their depth tells which
    // closing brace ends them.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < code.len() {
        let c = code[i];
        let at_word = i == 0 || !is_ident(code[i - 1]);
        if c == '{' {
            depth += 1;
        } else if c == '}' {
            depth = depth.saturating_sub(1);
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
        } else if at_word && word_at(&code, i) == "mod" {
            let mut j = i + 3;
            skip_space(&code, &mut j);
            let name = word_at(&code, j);
            j += name.chars().count();
            skip_space(&code, &mut j);
            if code.get(j) == Some(&'{') {
                inline.push((name, depth));
            }
        } else if at_word && (word_at(&code, i) == "crate" || word_at(&code, i) == "super") {
            let (segments, end) = path_at(&code, i);
            let mut here: Vec<String> = file_path.clone();
            here.extend(inline.iter().map(|(n, _)| n.clone()));
            let mut rest = segments.as_slice();
            if rest.first().map(String::as_str) == Some("crate") {
                here.clear();
                rest = &rest[1..];
            }
            while rest.first().map(String::as_str) == Some("super") {
                here.pop();
                rest = &rest[1..];
            }
            if here.is_empty() {
                // At the crate root: the next segment, or each name of a
                // `{…}` group, is an item of the root or a top-level module.
                match rest.first() {
                    Some(first) => push(i, first, &code),
                    None => {
                        for name in group_heads(&code, end) {
                            push(i, &name, &code);
                        }
                    }
                }
            } else if here[0] != from {
                push(i, &here[0].clone(), &code);
            }
            i = end;
            continue;
        }
        i += 1;
    }
    found
}

fn word_at(code: &[char], at: usize) -> String {
    code[at..].iter().take_while(|&&c| is_ident(c)).collect()
}

fn skip_space(code: &[char], at: &mut usize) {
    while code.get(*at).is_some_and(|c| c.is_whitespace()) {
        *at += 1;
    }
}

/// The `a::b::c` path starting at `at` (stopping before a `{` group or any
/// other token) and where it ends.
fn path_at(code: &[char], at: usize) -> (Vec<String>, usize) {
    let mut segments = Vec::new();
    let mut i = at;
    loop {
        let word = word_at(code, i);
        if word.is_empty() {
            break;
        }
        i += word.chars().count();
        segments.push(word);
        let mut j = i;
        skip_space(code, &mut j);
        if code[j..].starts_with(&[':', ':']) {
            j += 2;
            skip_space(code, &mut j);
            i = j;
        } else {
            break;
        }
    }
    (segments, i)
}

/// The first segment of each path in a `{a, b::c, d::{e, f}}` group that
/// starts at `at`.
fn group_heads(code: &[char], at: usize) -> Vec<String> {
    let mut heads = Vec::new();
    if code.get(at) != Some(&'{') {
        return heads;
    }
    let mut depth = 0;
    let mut expect_head = true;
    for (offset, &c) in code[at..].iter().enumerate() {
        match c {
            '{' => {
                depth += 1;
                expect_head = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            c if expect_head && depth == 1 && is_ident(c) => {
                heads.push(word_at(code, at + offset));
                expect_head = false;
            }
            _ => {}
        }
    }
    heads
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        found: Vec<Vec<String>>,
    }
    impl Walk<'_> {
        fn visit(&mut self, node: &str) {
            let n = self.index.len();
            self.index.insert(node.to_string(), n);
            self.low.insert(node.to_string(), n);
            self.stack.push(node.to_string());
            for next in self.edges.get(node).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node.to_string(), low);
                } else if self.stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node.to_string(), low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                loop {
                    let top = self.stack.pop().unwrap();
                    let done = top == node;
                    component.push(top);
                    if done {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for node in edges.keys() {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    walk.found
}

/// What is wrong with one crate's module graph, as a message that names each
/// cycle, the lines that close it, and the fix; None when there is no cycle.
fn module_cycles(root: &Path, crate_dir: &Path) -> Option<String> {
    let src = crate_dir.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_path(&src, f)).map(|p| p[0].clone()).collect();
    let refs: Vec<Reference> = files.iter().flat_map(|f| references(&src, f, &modules)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &refs {
        edges.entry(r.from.clone()).or_default().insert(r.to.clone());
    }
    let found = cycles(&edges);
    if found.is_empty() {
        return None;
    }
    let name = crate_dir.strip_prefix(root).unwrap().display().to_string();
    let mut message = String::new();
    for component in found {
        let members: BTreeSet<&String> = component.iter().collect();
        writeln!(message, "{name}: the modules {{{}}} import each other in a cycle:", component.join(", ")).unwrap();
        let mut shown = BTreeSet::new();
        for r in refs.iter().filter(|r| members.contains(&r.from) && members.contains(&r.to)) {
            if !shown.insert((&r.file, r.line, &r.to)) {
                continue;
            }
            let file = r.file.strip_prefix(root).unwrap().display();
            writeln!(message, "  {} -> {}   {file}:{}: {}", r.from, r.to, r.line, r.text).unwrap();
        }
    }
    message.push_str(
        "Fix: an item that several modules share belongs to none of them. Move it (a helper, a constant, a \
         type) into a module whose job it is, for example `clock`, `logging`, `power`, `paths`, and import \
         it from there, so every dependency between modules runs one way.\n",
    );
    Some(message)
}

#[test]
fn no_crate_has_modules_that_import_each_other_in_a_cycle() {
    let root = repo_root();
    let problems: Vec<String> = crate_dirs(&root).iter().filter_map(|c| module_cycles(&root, c)).collect();
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Every reference between the binary's commands (`cmd/`) and its services
/// (`svc/`), either way.
fn commands_and_services_crossing(root: &Path) -> Vec<String> {
    let src = root.join("firmware/cli/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_path(&src, f)).map(|p| p[0].clone()).collect();
    files
        .iter()
        .flat_map(|f| references(&src, f, &modules))
        .filter(|r| matches!((r.from.as_str(), r.to.as_str()), ("cmd", "svc") | ("svc", "cmd")))
        .map(|r| format!("  {} -> {}   {}:{}: {}", r.from, r.to, r.file.strip_prefix(root).unwrap().display(), r.line, r.text))
        .collect()
}

#[test]
fn commands_and_services_never_import_each_other() {
    let crossing = commands_and_services_crossing(&repo_root());
    assert!(
        crossing.is_empty(),
        "\nfirmware/cli: a command and a service import each other:\n{}\nFix: what a command and a service \
         both need is neither's job. Move it to a top-level module of the binary (as `state`, `mirror`, \
         `quota_book`, `retention_run` are), or into a library crate when it is a decision, and import it \
         from there.\n",
        crossing.join("\n")
    );
}

/// The `name` of a Cargo.toml's `[package]`.
fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap();
    let package = text.split("[package]").nth(1).expect("a [package] section");
    let line = package.lines().find(|l| l.trim_start().starts_with("name")).expect("a package name");
    line.split('"').nth(1).unwrap().to_string()
}

/// The crate table's rows as (crate, directory): "| `coffer-x` | `firmware/x` | …".
fn architecture_table(root: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let unquote = |s: &str| s.strip_prefix('`').and_then(|s| s.strip_suffix('`')).map(str::to_string);
            Some((unquote(cells.get(2)?)?, unquote(cells.get(1)?)?))
        })
        .collect()
}

#[test]
fn every_crate_has_a_row_in_the_architecture_table() {
    let root = repo_root();
    let table = architecture_table(&root);
    let mut missing = Vec::new();
    for group in ["firmware", "client"] {
        for dir in crate_dirs_in(&root.join(group)) {
            let relative = dir.strip_prefix(&root).unwrap().display().to_string();
            let name = package_name(&dir.join("Cargo.toml"));
            match table.get(&relative) {
                Some(listed) if *listed == name => {}
                Some(listed) => missing.push(format!("{relative}: the table calls it `{listed}`, Cargo.toml `{name}`")),
                None => missing.push(format!("{relative} (`{name}`) has no row")),
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's crate table does not match the crates:\n  {}\nFix: add a row \
         \"| `coffer-x` | `firmware/x` | its job | what it touches |\" for each crate (or correct the name), so a \
         newcomer finds every crate in one place.",
        missing.join("\n  ")
    );
}

#[test]
fn the_reference_reader_sees_imports_and_skips_comments_and_strings() {
    let code = code_only("use crate::a; // crate::b\nlet s = \"crate::c\"; let r = r#\"crate::d\"#; let c = '\"'; crate::e::f();");
    assert!(code.contains("crate::a") && code.contains("crate::e::f"));
    assert!(!code.contains("crate::b") && !code.contains("crate::c") && !code.contains("crate::d"));
    assert_eq!(code.lines().count(), 2);

    let chars: Vec<char> = "{a, b::c, d::{e, f}}".chars().collect();
    assert_eq!(group_heads(&chars, 0), ["a", "b", "d"]);

    let edges: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
        .into_iter()
        .fold(BTreeMap::new(), |mut m, (x, y)| {
            m.entry(x.to_string()).or_default().insert(y.to_string());
            m
        });
    assert_eq!(cycles(&edges), [["a", "b", "c"]]);
}

/// Crates that may read the system clock themselves, and why.
const CLOCK_READERS: [(&str, &str); 3] = [
    ("firmware/time", "SNTP timestamps its own exchange (send and receive instants) and is what sets the clock"),
    ("client/cli", "the client runs on a household machine, not the appliance: its clock names the backup sets it writes"),
    ("tests", "the harness ages files and backups against the host's clock; it is not appliance code"),
];

/// Production source of a file: everything before its `#[cfg(test)]`
/// module (test code may build any time or path it needs).
fn production_part(source: &str) -> &str {
    source.split("#[cfg(test)]").next().unwrap_or(source)
}

/// Lines outside coffer-runtime that write a runtime path literal or read
/// the system clock, with the crate they are in.
fn runtime_contract_breaches(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for crate_dir in crate_dirs(root) {
        let name = crate_dir.strip_prefix(root).unwrap().display().to_string();
        if name == "firmware/runtime" {
            continue;
        }
        let may_read_clock = CLOCK_READERS.iter().any(|(c, _)| *c == name);
        let mut files = Vec::new();
        rust_files(&crate_dir.join("src"), &mut files);
        files.sort();
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            let production = production_part(&source);
            let code = code_only(production);
            let shown = file.strip_prefix(root).unwrap().display();
            for (n, (text, code)) in production.lines().zip(code.lines()).enumerate() {
                let comment = text.trim_start().starts_with("//");
                if !comment && (text.contains("\"/run/coffer") || text.contains("\"/etc/coffer")) {
                    found.push(format!("{shown}:{}: a runtime path literal: {}", n + 1, text.trim()));
                }
                if !may_read_clock && code.contains("SystemTime::now") {
                    found.push(format!("{shown}:{}: reads the system clock: {}", n + 1, text.trim()));
                }
            }
        }
    }
    found
}

/// Lines outside coffer-runtime (and the test harness, which reads events
/// as a user does) that spell the event prefix or print an event by a
/// string kind rather than a `coffer_runtime::event::Event` variant.
fn untyped_events(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for crate_dir in crate_dirs(root) {
        let name = crate_dir.strip_prefix(root).unwrap().display().to_string();
        if name == "firmware/runtime" || name == "tests" {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&crate_dir.join("src"), &mut files);
        files.sort();
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            let shown = file.strip_prefix(root).unwrap().display();
            for (n, text) in production_part(&source).lines().enumerate() {
                if text.trim_start().starts_with("//") {
                    continue;
                }
                if text.contains("\"coffer-event") || ["emit(\"", "event(\"", "event::line(\""].iter().any(|call| text.contains(call)) {
                    found.push(format!("{shown}:{}: {}", n + 1, text.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn events_are_printed_only_as_typed_values_through_coffer_runtime() {
    let found = untyped_events(&repo_root());
    assert!(
        found.is_empty(),
        "an event is printed or spelled outside coffer-runtime:\n  {}\nFix: print it as a variant of \
         `coffer_runtime::event::Event` with `event::emit(&Event::...)` (the supervisor: `console::event`), adding \
         the variant and its pinned line in firmware/runtime/src/event.rs if the kind is new; read event lines by \
         `coffer_runtime::event::PREFIX`.",
        found.join("\n  ")
    );
}

#[test]
fn only_coffer_runtime_names_runtime_paths_and_reads_the_clock() {
    let found = runtime_contract_breaches(&repo_root());
    let allowed: Vec<String> = CLOCK_READERS.iter().map(|(c, why)| format!("{c}: {why}")).collect();
    assert!(
        found.is_empty(),
        "the runtime contract is written outside coffer-runtime:\n  {}\nFix: name a file under /run/coffer or \
         /etc/coffer through `coffer_runtime::Paths` (add a method there if the file is new), and read the time \
         through `coffer_runtime::clock` (`now`, `system_now`, `trusted`), so every file the processes share and \
         every clock read is found in one crate. Crates that may read the clock themselves:\n  {}",
        found.join("\n  "),
        allowed.join("\n  ")
    );
}
