//! Whether a set's name can be believed.
//!
//! A duplicity set is ranked by the date in its file name, which the client
//! chooses. A key that may only add files (append-only) could otherwise name
//! sets in the future or back-date them into the gaps between real ones, and
//! the rules would pick those instead of real history. So every set also
//! carries when it arrived on the box (taken from the kernel's status change
//! time, which no client sets, and recorded when first seen). A set whose
//! name does not fit its arrival is *unconfirmed* until an administrator
//! adopts it.

/// How far a client's clock may run ahead of the box's: a set may be named
/// up to this long after its first file arrived.
pub const CLOCK_SKEW: i64 = 3600;

/// How long before its first file arrived a set may be named: duplicity
/// names a set by the time the backup started, and scanning a large tree
/// before the first volume goes out can take hours.
pub const MAX_ARRIVAL_LAG: i64 = 86_400;

/// Whether a set named `named` can have begun to arrive at `arrival`.
pub fn plausible(named: i64, arrival: i64) -> bool {
    named <= arrival.saturating_add(CLOCK_SKEW) && named >= arrival.saturating_sub(MAX_ARRIVAL_LAG)
}

/// What the box knows about a set beside its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// When its first file arrived, seconds since the epoch (as first recorded).
    pub at: i64,
    /// An administrator confirmed it (`retention adopt`) whatever its name says.
    pub adopted: bool,
}

impl Arrival {
    /// Whether a set named `named` that arrived so counts as real history.
    pub fn confirms(&self, named: i64) -> bool {
        self.adopted || plausible(named, self.at)
    }
}

/// How a set takes part in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A restore point the rules may count.
    Counted,
    /// Not counted by any rule, never the newest chain, never deleted: a
    /// set whose name does not fit its arrival, or (when measuring what new
    /// arrivals displace) a set that arrived since the last accepted run.
    Uncounted,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;
    const DAY: i64 = 86_400;

    #[test]
    fn plausibility_table() {
        let arrival = 1_796_000_000;
        for (named, ok) in [
            (arrival, true),
            (arrival - 5 * HOUR, true),
            (arrival - DAY, true),
            (arrival - DAY - 1, false),
            (arrival - 300 * DAY, false),
            (arrival + CLOCK_SKEW, true),
            (arrival + CLOCK_SKEW + 1, false),
            (arrival + 70 * 365 * DAY, false),
            (i64::MIN, false),
            (i64::MAX, false),
        ] {
            assert_eq!(plausible(named, arrival), ok, "named {named} arrival {arrival}");
        }
        let a = Arrival { at: arrival, adopted: false };
        assert!(!a.confirms(arrival + 100 * DAY));
        assert!(Arrival { adopted: true, ..a }.confirms(arrival + 100 * DAY));
    }

    proptest::proptest! {
        #[test]
        fn plausible_never_panics(named in proptest::num::i64::ANY, arrival in proptest::num::i64::ANY) {
            let _ = plausible(named, arrival);
        }
    }
}
