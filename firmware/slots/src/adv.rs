//! syslinux's Auxiliary Data Vector: the boot-once label.
//!
//! The ADV is two identical 512-byte copies at the end of `ldlinux.sys`:
//! head magic, a checksum, 500 bytes of tag-length-value records, tail
//! magic. syslinux boots the `BOOTONCE` record's label, then clears the
//! record and writes the ADV back through the sector list the installer
//! patched into it, which is why the file must be rewritten in place.

/// Both copies.
pub const ADV_BYTES: usize = 1024;

const ADV_SIZE: usize = 512;
const MAGIC1: u32 = 0x5a2d_2fa5;
const MAGIC2: u32 = 0xa304_1767;
const MAGIC3: u32 = 0xdd28_bf64;
const TAG_END: u8 = 0;
const TAG_BOOTONCE: u8 = 1;

fn word(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

/// An ADV (both copies) whose only record is the boot-once `label`, or an
/// empty one for `None`. Labels longer than a record can hold are cut.
pub fn adv_with_boot_once(label: Option<&str>) -> [u8; ADV_BYTES] {
    let mut copy = [0u8; ADV_SIZE];
    if let Some(label) = label {
        let bytes = &label.as_bytes()[..label.len().min(255)];
        copy[8] = TAG_BOOTONCE;
        copy[9] = bytes.len() as u8;
        copy[10..10 + bytes.len()].copy_from_slice(bytes);
    }
    copy[0..4].copy_from_slice(&MAGIC1.to_le_bytes());
    let mut csum = MAGIC2;
    for at in (8..ADV_SIZE - 4).step_by(4) {
        csum = csum.wrapping_sub(word(&copy, at));
    }
    copy[4..8].copy_from_slice(&csum.to_le_bytes());
    copy[ADV_SIZE - 4..].copy_from_slice(&MAGIC3.to_le_bytes());
    let mut out = [0u8; ADV_BYTES];
    out[..ADV_SIZE].copy_from_slice(&copy);
    out[ADV_SIZE..].copy_from_slice(&copy);
    out
}

/// The boot-once label in an ADV (the first valid copy), `Ok(None)` when
/// there is none, `Err(())` when neither copy is a valid ADV.
#[allow(clippy::result_unit_err)]
pub fn adv_boot_once(adv: &[u8]) -> Result<Option<String>, ()> {
    for copy in adv.chunks(ADV_SIZE).take(2).filter(|c| c.len() == ADV_SIZE) {
        if word(copy, 0) != MAGIC1 || word(copy, ADV_SIZE - 4) != MAGIC3 {
            continue;
        }
        let mut csum = MAGIC2;
        for at in (8..ADV_SIZE - 4).step_by(4) {
            csum = csum.wrapping_sub(word(copy, at));
        }
        if csum != word(copy, 4) {
            continue;
        }
        let data = &copy[8..ADV_SIZE - 4];
        let mut at = 0;
        while let (Some(&tag), Some(&len)) = (data.get(at), data.get(at + 1)) {
            if tag == TAG_END {
                break;
            }
            let value = data.get(at + 2..at + 2 + len as usize).ok_or(())?;
            if tag == TAG_BOOTONCE {
                return Ok((!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned()));
            }
            at += 2 + len as usize;
        }
        return Ok(None);
    }
    Err(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_adv_matches_what_the_installer_writes() {
        // syslinux 6.04's installer leaves an empty ADV whose checksum is MAGIC2.
        let adv = adv_with_boot_once(None);
        assert_eq!(word(&adv, 4), MAGIC2);
        assert_eq!(&adv[..ADV_SIZE], &adv[ADV_SIZE..]);
        assert_eq!(adv_boot_once(&adv), Ok(None));
    }

    #[test]
    fn boot_once_round_trip() {
        let adv = adv_with_boot_once(Some("b"));
        assert_eq!(adv_boot_once(&adv), Ok(Some("b".into())));
        let mut broken = adv;
        broken[20] ^= 1;
        assert_eq!(adv_boot_once(&broken), Ok(Some("b".into())), "the second copy still counts");
        broken[ADV_SIZE + 20] ^= 1;
        assert_eq!(adv_boot_once(&broken), Err(()));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..1100)) {
            let _ = adv_boot_once(&bytes);
        }
    }
}
