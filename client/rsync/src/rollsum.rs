//! librsync's rolling checksum ("rollsum", the weak sum of MD4 signatures):
//! an Adler-32-like pair of 16-bit sums over the bytes plus `CHAR_OFFSET`,
//! which can be slid along the data one byte at a time. librsync keeps the
//! sums in wider integers and truncates them only in the digest, so all
//! arithmetic here wraps and only the low 16 bits of each sum matter.

/// librsync's `ROLLSUM_CHAR_OFFSET`, added to every byte.
const CHAR_OFFSET: u32 = 31;

/// The weak sum over a window of `count` bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rollsum {
    count: usize,
    s1: u32,
    s2: u32,
}

impl Rollsum {
    /// The sum over `data`.
    pub(crate) fn of(data: &[u8]) -> Self {
        let mut s1: u32 = 0;
        let mut s2: u32 = 0;
        for &b in data {
            s1 = s1.wrapping_add(u32::from(b));
            s2 = s2.wrapping_add(s1);
        }
        // The offset adds CHAR_OFFSET per byte to s1, and to s2 once per
        // byte for every byte at or before it: len * (len + 1) / 2 times.
        // Only the low 16 bits survive, so truncating the length is exact.
        let len = data.len() as u64;
        let triangle = (len.wrapping_mul(len.wrapping_add(1)) / 2) as u32;
        Self {
            count: data.len(),
            s1: s1.wrapping_add((len as u32).wrapping_mul(CHAR_OFFSET)),
            s2: s2.wrapping_add(triangle.wrapping_mul(CHAR_OFFSET)),
        }
    }

    /// Slides the window one byte: `out` leaves at the front, `inp` enters at the back.
    #[inline]
    pub(crate) fn rotate(&mut self, out: u8, inp: u8) {
        self.s1 = self.s1.wrapping_add(u32::from(inp)).wrapping_sub(u32::from(out));
        let out_weight = (self.count as u32).wrapping_mul(u32::from(out) + CHAR_OFFSET);
        self.s2 = self.s2.wrapping_add(self.s1).wrapping_sub(out_weight);
    }

    /// Shrinks the window by its first byte, `out` (used at the end of the
    /// new file, where librsync tries ever shorter tails against the basis's
    /// short last block).
    #[inline]
    pub(crate) fn rollout(&mut self, out: u8) {
        let weighted = u32::from(out) + CHAR_OFFSET;
        self.s1 = self.s1.wrapping_sub(weighted);
        self.s2 = self.s2.wrapping_sub((self.count as u32).wrapping_mul(weighted));
        self.count -= 1;
    }

    /// How many bytes the window holds (0: no window yet).
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The 32-bit weak sum stored in signatures: s2 in the high half, s1 in the low.
    #[inline]
    pub(crate) fn digest(&self) -> u32 {
        (self.s2 << 16) | (self.s1 & 0xffff)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_digest_of_hello() {
        // From an rdiff signature of "hello\n" (shared notes, §7.5).
        assert_eq!(Rollsum::of(b"hello\n").digest(), 0x0ad0_02d8);
        assert_eq!(Rollsum::of(b"").digest(), 0);
    }

    proptest! {
        #[test]
        fn rotating_equals_summing_afresh(data in proptest::collection::vec(any::<u8>(), 1..600), window in 1usize..64) {
            let window = window.min(data.len());
            let mut sum = Rollsum::of(&data[..window]);
            for start in 1..=data.len() - window {
                sum.rotate(data[start - 1], data[start + window - 1]);
                prop_assert_eq!(sum.digest(), Rollsum::of(&data[start..start + window]).digest());
            }
        }

        #[test]
        fn rolling_out_equals_summing_the_tail(data in proptest::collection::vec(any::<u8>(), 1..300)) {
            let mut sum = Rollsum::of(&data);
            for start in 1..data.len() {
                sum.rollout(data[start - 1]);
                prop_assert_eq!(sum.count(), data.len() - start);
                prop_assert_eq!(sum.digest(), Rollsum::of(&data[start..]).digest());
            }
        }
    }
}
