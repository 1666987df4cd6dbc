//! The board as a type: what `board/common/` and `board/NAME/` say about a
//! machine, merged by `image/build.py` into one `board.toml` and installed
//! as `/etc/coffer/board.toml`.
//!
//! [`Board::parse`] reads the merged file and refuses unknown keys and
//! inconsistent values ([`Problem`]), so the image build (`coffer board
//! check`) rejects a typo in `board/*/` before it reaches a box. Nothing here
//! touches the system beyond reading the one file given to [`Board::read`].

mod error;
mod schema;
mod validate;

pub use error::{BoardError, Problem};
pub use schema::{Board, Disks, Leds};
