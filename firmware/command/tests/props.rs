//! Property tests: nothing a client sends panics the parsers, and quoted
//! words come back exactly.

use coffer_command::{ExecCommand, scp::ScpLine, words};
use proptest::prelude::*;

fn quote(word: &[u8]) -> Vec<u8> {
    let mut q = vec![b'\''];
    for &b in word {
        if b == b'\'' {
            q.extend_from_slice(b"'\\''");
        } else {
            q.push(b);
        }
    }
    q.push(b'\'');
    q
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = ExecCommand::parse(&bytes);
        let _ = ScpLine::parse(&bytes);
    }

    #[test]
    fn single_quoted_words_roundtrip(ws in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..6)) {
        let mut line = Vec::new();
        for w in &ws {
            line.extend(quote(w));
            line.push(b' ');
        }
        prop_assert_eq!(words(&line).unwrap(), ws);
    }

    #[test]
    fn scp_file_lines_roundtrip(mode in 0u32..0o7777, size in any::<u64>(), name in "[a-zA-Z0-9 ._-]{1,30}") {
        prop_assume!(name != "." && name != "..");
        let line = format!("C{mode:04o} {size} {name}");
        prop_assert_eq!(ScpLine::parse(line.as_bytes()).unwrap(), ScpLine::File { mode, size, name: name.into_bytes() });
    }
}
