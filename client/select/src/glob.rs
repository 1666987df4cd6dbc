//! Duplicity's glob patterns on byte paths: `?` one byte but `/`, `*` any
//! run without `/`, `**` any run, `[…]` a class (`!` or `^` negates, `a-z`
//! ranges), anything else literal. A pattern matches a path when it matches
//! the whole path or one of its parent directories (duplicity's
//! `^glob($|/)`), so excluding a directory excludes its contents. A trailing
//! `/` matches directories only.

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("--exclude {0:?}: an empty pattern matches nothing; give a path or a pattern such as **/.cache")]
    Empty(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    AnyByte,
    AnyInName,
    AnyInPath,
    Class { negated: bool, ranges: Vec<(u8, u8)> },
}

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    directories_only: bool,
}

impl Glob {
    /// Compiles `pattern`, an absolute pattern (`/home/anna/.cache`,
    /// `**/node_modules`) as duplicity takes them.
    pub fn new(pattern: &[u8]) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty(String::from_utf8_lossy(pattern).into_owned()));
        }
        let (body, directories_only) = match pattern {
            b"/" => (&b"/**"[..], false),
            [rest @ .., b'/'] => (rest, true),
            _ => (pattern, false),
        };
        Ok(Glob { tokens: tokenize(body), directories_only })
    }

    /// Whether the pattern takes `path` (absolute, without a trailing `/`):
    /// the path itself, or one of its parent directories, matches.
    /// `is_dir` says whether `path` itself is a directory.
    pub fn matches(&self, path: &[u8], is_dir: bool) -> bool {
        // Every prefix that ends at a component boundary, shortest first.
        let mut ends: Vec<usize> = path.iter().enumerate().filter(|&(i, &b)| b == b'/' && i > 0).map(|(i, _)| i).collect();
        ends.push(path.len());
        ends.into_iter().any(|end| {
            let whole = end == path.len();
            // A parent of `path` is always a directory.
            (!self.directories_only || !whole || is_dir) && match_here(&self.tokens, &path[..end])
        })
    }
}

fn tokenize(p: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' if p.get(i + 1) == Some(&b'*') => {
                out.push(Token::AnyInPath);
                i += 2;
            }
            b'*' => {
                out.push(Token::AnyInName);
                i += 1;
            }
            b'?' => {
                out.push(Token::AnyByte);
                i += 1;
            }
            b'[' => match class(&p[i + 1..]) {
                Some((token, used)) => {
                    out.push(token);
                    i += 1 + used;
                }
                // No closing bracket: a literal `[`, as duplicity does.
                None => {
                    out.push(Token::Byte(b'['));
                    i += 1;
                }
            },
            b => {
                out.push(Token::Byte(b));
                i += 1;
            }
        }
    }
    out
}

/// A class after its `[`: the token and the bytes used, `]` included.
fn class(p: &[u8]) -> Option<(Token, usize)> {
    let mut j = 0;
    let negated = matches!(p.first(), Some(b'!' | b'^'));
    if negated {
        j += 1;
    }
    let start = j;
    // A `]` right after the opening (or the negation) is a member.
    if p.get(j) == Some(&b']') {
        j += 1;
    }
    while p.get(j).is_some_and(|&b| b != b']') {
        j += 1;
    }
    if j >= p.len() {
        return None;
    }
    let members = &p[start..j];
    let mut ranges = Vec::new();
    let mut k = 0;
    while k < members.len() {
        if k + 2 < members.len() && members[k + 1] == b'-' {
            ranges.push((members[k], members[k + 2]));
            k += 3;
        } else {
            ranges.push((members[k], members[k]));
            k += 1;
        }
    }
    Some((Token::Class { negated, ranges }, j + 1))
}

/// Whether `tokens` match all of `s`, by backtracking: patterns come from
/// the person running the backup and are short, paths are bounded by
/// PATH_MAX.
fn match_here(tokens: &[Token], s: &[u8]) -> bool {
    match tokens.split_first() {
        None => s.is_empty(),
        Some((Token::AnyInPath, rest)) => (0..=s.len()).any(|k| match_here(rest, &s[k..])),
        Some((Token::AnyInName, rest)) => {
            let run = s.iter().position(|&b| b == b'/').unwrap_or(s.len());
            (0..=run).any(|k| match_here(rest, &s[k..]))
        }
        Some((t, rest)) => match s.split_first() {
            Some((&b, tail)) if single(t, b) => match_here(rest, tail),
            _ => false,
        },
    }
}

fn single(t: &Token, b: u8) -> bool {
    match t {
        Token::Byte(x) => *x == b,
        Token::AnyByte => b != b'/',
        Token::Class { negated, ranges } => b != b'/' && (ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi) != *negated),
        Token::AnyInName | Token::AnyInPath => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Glob::new(pattern.as_bytes()).unwrap().matches(path.as_bytes(), false)
    }

    #[test]
    fn duplicity_semantics() {
        let table: &[(&str, &str, bool)] = &[
            ("/home/anna/.cache", "/home/anna/.cache", true),
            ("/home/anna/.cache", "/home/anna/.cache/x/y", true),
            ("/home/anna/.cache", "/home/anna/.cache2", false),
            ("/home/anna/.cache", "/home/anna", false),
            ("/home/*/.cache", "/home/anna/.cache/f", true),
            ("/home/*/.cache", "/home/a/b/.cache", false),
            ("**/.cache", "/home/a/b/.cache", true),
            ("**/node_modules", "/src/x/node_modules/left-pad/index.js", true),
            ("**.o", "/src/main.o", true),
            ("/src/*.o", "/src/main.o", true),
            ("/src/*.o", "/src/sub/main.o", false),
            ("/src/?.c", "/src/a.c", true),
            ("/src/?.c", "/src/ab.c", false),
            ("/src/[ab].c", "/src/b.c", true),
            ("/src/[!ab].c", "/src/b.c", false),
            ("/src/[!ab].c", "/src/c.c", true),
            ("/src/[a-c]x", "/src/bx", true),
            ("/src/[a-c]x", "/src/dx", false),
            ("/src/[x", "/src/[x", true),
            ("/", "/anything/at/all", true),
            ("/src/a b", "/src/a b/c", true),
        ];
        for (pattern, path, expected) in table {
            assert_eq!(m(pattern, path), *expected, "{pattern} on {path}");
        }
    }

    #[test]
    fn a_trailing_slash_takes_directories_only() {
        let g = Glob::new(b"/src/build/").unwrap();
        assert!(g.matches(b"/src/build", true));
        assert!(!g.matches(b"/src/build", false));
        assert!(g.matches(b"/src/build/out.o", false), "its contents, whose parent is a directory");
    }

    #[test]
    fn names_are_bytes() {
        let g = Glob::new(b"/src/\xff*").unwrap();
        assert!(g.matches(b"/src/\xff\xfe", false));
        assert!(!g.matches(b"/src/a\xff", false));
    }

    #[test]
    fn an_empty_pattern_is_refused() {
        assert!(Glob::new(b"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(pattern in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..12), path in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24)) {
            let _ = Glob::new(&pattern).unwrap().matches(&path, true);
        }

        #[test]
        fn a_literal_path_matches_itself_and_its_contents(name in "[a-z.]{1,8}", child in "[a-z]{1,8}") {
            let path = format!("/d/{name}");
            proptest::prop_assert!(m(&path, &path));
            let inside = format!("{path}/{child}");
            proptest::prop_assert!(m(&path, &inside));
        }
    }
}
