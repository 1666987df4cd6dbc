//! POSIX shell word splitting for the quoting forms clients send: single
//! quotes (duplicity), backslashes (rclone), double quotes; `$NAME` and
//! `${NAME}` expand to nothing since no environment is shared with clients.
//! Anything that would make a shell do more than run one command (pipes,
//! lists, redirections, substitutions) is refused.

use thiserror::Error;

/// A command line a shell would not split into plain words.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WordsError {
    #[error("unterminated quote in command line")]
    UnterminatedQuote,
    #[error("shell syntax {0:?} is not supported (Coffer runs no shell)")]
    ShellSyntax(String),
}

/// Splits `line` into words.
pub fn words(line: &[u8]) -> Result<Vec<Vec<u8>>, WordsError> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut in_word = false;
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        match c {
            b' ' | b'\t' | b'\n' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            b'\'' => {
                in_word = true;
                let end = line[i + 1..].iter().position(|&b| b == b'\'').ok_or(WordsError::UnterminatedQuote)?;
                cur.extend_from_slice(&line[i + 1..i + 1 + end]);
                i += end + 1;
            }
            b'"' => {
                in_word = true;
                i += 1;
                loop {
                    let Some(&d) = line.get(i) else { return Err(WordsError::UnterminatedQuote) };
                    match d {
                        b'"' => break,
                        b'\\' if matches!(line.get(i + 1), Some(b'"' | b'\\' | b'$' | b'`')) => {
                            cur.push(line[i + 1]);
                            i += 1;
                        }
                        b'\\' if line.get(i + 1) == Some(&b'\n') => i += 1,
                        b'$' | b'`' => return Err(WordsError::ShellSyntax((d as char).to_string())),
                        _ => cur.push(d),
                    }
                    i += 1;
                }
            }
            b'\\' => {
                match line.get(i + 1) {
                    Some(b'\n') => {}
                    Some(&n) => {
                        in_word = true;
                        cur.push(n);
                    }
                    None => return Err(WordsError::UnterminatedQuote),
                }
                i += 1;
            }
            b'$' => {
                in_word = true;
                i = skip_variable(line, i)?;
                continue;
            }
            b';' | b'|' | b'&' | b'<' | b'>' | b'(' | b')' | b'`' => {
                return Err(WordsError::ShellSyntax((c as char).to_string()));
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
        i += 1;
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Skips `$NAME` or `${NAME}` starting at `i` (which holds `$`) and returns
/// the index after it. `$(`, `$((` and other expansions are refused.
fn skip_variable(line: &[u8], i: usize) -> Result<usize, WordsError> {
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match line.get(i + 1) {
        Some(b'{') => {
            let rest = &line[i + 2..];
            let end = rest.iter().position(|&b| b == b'}').ok_or(WordsError::UnterminatedQuote)?;
            if end == 0 || !rest[..end].iter().all(|&b| is_name(b)) {
                return Err(WordsError::ShellSyntax("${…}".into()));
            }
            Ok(i + 2 + end + 1)
        }
        Some(&b) if is_name(b) => {
            let mut j = i + 1;
            while j < line.len() && is_name(line[j]) {
                j += 1;
            }
            Ok(j)
        }
        _ => Err(WordsError::ShellSyntax("$".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        words(s.as_bytes()).unwrap().into_iter().map(|b| String::from_utf8(b).unwrap()).collect()
    }

    #[test]
    fn quoting_table() {
        assert_eq!(w("a b  c"), ["a", "b", "c"]);
        assert_eq!(w("'a b' c"), ["a b", "c"]);
        assert_eq!(w("a\\ b"), ["a b"]);
        assert_eq!(w("\"a \\\"b\\\" c\""), ["a \"b\" c"]);
        assert_eq!(w("x'y'z"), ["xyz"]);
        assert_eq!(w("''"), [""]);
        assert_eq!(w("emoji-\\🎉\\ party"), ["emoji-🎉 party"]);
        assert_eq!(w("quote\\'single"), ["quote'single"]);
        assert_eq!(w("'\n'"), ["\n"]);
        assert_eq!(w("$HOME/x"), ["/x"]);
    }

    #[test]
    fn refused_syntax() {
        for bad in ["a;b", "a|b", "a && b", "a > f", "$(id)", "`id`", "'open", "\"open", "x\\", "\"$(id)\""] {
            assert!(words(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
