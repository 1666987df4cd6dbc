//! The hash table deltas look blocks up in: at every byte of the new file
//! the window's weak sum is looked up, so a miss must cost one or two memory
//! reads and no allocation. Blocks are grouped by bucket (a mix of the weak
//! sum, as librsync mixes rollsums before hashing), sorted inside a bucket by
//! weak sum, strong sum and block number, and blocks repeating an earlier
//! block's sums are dropped, so a lookup finds librsync's choice (the first
//! such block) and a file of identical blocks cannot make lookups slow.
//! A filter of 8 bits per bucket (a quarter of the table's bytes), small enough to stay in
//! cache, turns away most weak sums that match nothing before the table is read.

/// Bucketed block numbers.
pub(crate) struct BlockIndex {
    mask: u32,
    /// One bit per mixed weak sum modulo its length: set if some block has it.
    filter: Vec<u64>,
    filter_mask: u32,
    /// `entries[starts[b]..starts[b + 1]]` are bucket `b`'s blocks, as
    /// (weak sum, block number), so a lookup reads one place.
    starts: Vec<u32>,
    entries: Vec<(u32, u32)>,
}

/// murmur3's finaliser (librsync's `mix32`): rollsums cluster in their low
/// bits, which would crowd a few buckets.
#[inline]
fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

impl BlockIndex {
    /// Indexes blocks whose weak sums are `weak` and whose strong sums are
    /// `strong` (`strong_len` bytes each). `weak.len()` must fit in `u32`.
    pub(crate) fn build(weak: &[u32], strong: &[u8], strong_len: usize) -> Self {
        // About two buckets per block keeps chains short.
        let buckets = (weak.len().max(1) * 2).next_power_of_two();
        let mask = (buckets - 1) as u32;
        let bucket = |i: u32| mix32(weak[i as usize]) & mask;
        let strong_of = |i: u32| &strong[i as usize * strong_len..(i as usize + 1) * strong_len];
        let mut entries: Vec<u32> = (0..weak.len() as u32).collect();
        entries.sort_unstable_by(|&a, &b| {
            bucket(a)
                .cmp(&bucket(b))
                .then(weak[a as usize].cmp(&weak[b as usize]))
                .then_with(|| strong_of(a).cmp(strong_of(b)))
                .then(a.cmp(&b))
        });
        entries.dedup_by(|later, first| {
            weak[*later as usize] == weak[*first as usize] && strong_of(*later) == strong_of(*first)
        });
        let filter_bits = (buckets * 8).max(64);
        let filter_mask = (filter_bits - 1) as u32;
        let mut filter = vec![0u64; filter_bits / 64];
        let mut starts = vec![0u32; buckets + 1];
        for &e in &entries {
            let bit = mix32(weak[e as usize]) & filter_mask;
            filter[(bit / 64) as usize] |= 1 << (bit % 64);
            starts[bucket(e) as usize + 1] += 1;
        }
        for b in 0..buckets {
            starts[b + 1] += starts[b];
        }
        let entries = entries.into_iter().map(|e| (weak[e as usize], e)).collect();
        Self { mask, filter, filter_mask, starts, entries }
    }

    /// False if no block has weak sum `weak`; true if one may.
    #[inline]
    pub(crate) fn may_contain(&self, weak: u32) -> bool {
        let bit = mix32(weak) & self.filter_mask;
        let word = self.filter.get((bit / 64) as usize).copied().unwrap_or(0);
        word & (1 << (bit % 64)) != 0
    }

    /// (weak sum, block number) of the blocks in `weak`'s bucket (some may
    /// have other weak sums); usually empty without reading the table.
    #[inline]
    pub(crate) fn candidates(&self, weak: u32) -> &[(u32, u32)] {
        let mixed = mix32(weak);
        let bit = mixed & self.filter_mask;
        let word = self.filter.get((bit / 64) as usize).copied().unwrap_or(0);
        if word & (1 << (bit % 64)) == 0 {
            return &[];
        }
        let b = (mixed & self.mask) as usize;
        match (self.starts.get(b), self.starts.get(b + 1)) {
            (Some(&from), Some(&to)) => self.entries.get(from as usize..to as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_keep_the_first_block_and_every_block_is_found() {
        let weak = [7, 7, 9, 7, 7];
        let strong = [1, 1, 2, 3, 1];
        let index = BlockIndex::build(&weak, &strong, 1);
        let mut sevens: Vec<u32> = index.candidates(7).iter().filter(|e| e.0 == 7).map(|e| e.1).collect();
        sevens.sort_unstable();
        assert_eq!(sevens, [0, 3]);
        assert!(index.candidates(9).contains(&(9, 2)));
        assert_eq!(index.entries.len(), 3);
    }

    #[test]
    fn an_empty_index_finds_nothing() {
        let index = BlockIndex::build(&[], &[], 8);
        assert!(index.candidates(0).is_empty());
        assert!(index.candidates(u32::MAX).is_empty());
    }
}
