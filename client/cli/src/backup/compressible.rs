//! Whether a plain volume is worth compressing before it is encrypted.
//! GnuPG compresses everything but what it recognises as compressed
//! already; a household's bytes are mostly photos, videos and archives,
//! which ZLIB cannot shrink but costs a third of a backup's CPU to try (and
//! the restore as much again to inflate). So a few evenly spaced samples
//! of the volume are deflated first, and a volume that does not shrink by
//! a tenth goes into its OpenPGP message without a compression packet,
//! which GnuPG and sequoia read as they read any other message.

use std::io::{self, Read, Seek, SeekFrom, Write};

use flate2::write::ZlibEncoder;

/// Samples taken, and the length of each.
const SAMPLES: u64 = 16;
const SAMPLE_LEN: usize = 64 * 1024;

/// Compress when the samples shrink to at most this share of their size.
const WORTH: f64 = 0.9;

/// Whether the `len` bytes of `volume` compress by a tenth or more; leaves
/// the reader anywhere.
pub(super) fn worth_compressing<R: Read + Seek>(volume: &mut R, len: u64) -> io::Result<bool> {
    let mut sample = vec![0u8; SAMPLE_LEN];
    let mut raw = 0usize;
    let mut encoder = ZlibEncoder::new(Counter::default(), flate2::Compression::fast());
    let step = len / SAMPLES;
    for i in 0..SAMPLES {
        volume.seek(SeekFrom::Start(i * step))?;
        let n = coffer_archive::read_full(volume, &mut sample)?;
        encoder.write_all(&sample[..n])?;
        // Each sample on its own: no match reaches across a gap.
        encoder.flush()?;
        raw += n;
        if n < SAMPLE_LEN {
            break;
        }
    }
    let compressed = encoder.finish()?.0;
    Ok(raw > 0 && (compressed as f64) <= WORTH * raw as f64)
}

/// Counts bytes written and keeps none.
#[derive(Default)]
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// Incompressible bytes: SHA-1 digests of a counter.
    fn random(len: usize, seed: u64) -> Vec<u8> {
        use sha1::{Digest, Sha1};
        let mut out: Vec<u8> = (0u64..).take(len / 20 + 1).flat_map(|i| Sha1::digest([seed.to_le_bytes(), i.to_le_bytes()].concat())).collect();
        out.truncate(len);
        out
    }

    fn text(len: usize) -> Vec<u8> {
        b"Dear diary, the backup ran again tonight and nothing was lost. "
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    fn worth(data: &[u8]) -> bool {
        worth_compressing(&mut Cursor::new(data), data.len() as u64).unwrap()
    }

    #[test]
    fn random_bytes_are_not_worth_it_and_text_is() {
        assert!(!worth(&random(8 << 20, 7)));
        assert!(worth(&text(8 << 20)));
    }

    #[test]
    fn a_volume_half_text_is_worth_it() {
        let mut mixed = random(4 << 20, 3);
        mixed.extend(text(4 << 20));
        assert!(worth(&mixed));
    }

    #[test]
    fn small_and_empty_volumes_are_judged_on_what_there_is() {
        assert!(worth(&text(1000)));
        assert!(!worth(&random(1000, 5)));
        assert!(!worth(&[]));
    }
}
