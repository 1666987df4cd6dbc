//! Signed firmware update bundles: what a build host signs and what the box
//! accepts before it writes anything to a boot slot.
//!
//! # Format (version 1)
//!
//! A bundle is a binary (not armored) OpenPGP message of exactly these
//! top-level packets, with nothing after them:
//!
//! ```text
//! One-Pass Signature  type binary, "last" flag 1
//! Literal Data        format 'b', no file name, date 0
//! Signature           type binary, by the update signing key
//! ```
//!
//! (Several signatures, nested the usual OpenPGP way as N One-Pass
//! Signatures, the literal, then N Signatures, are accepted when at least one
//! of them verifies against the box's update certificate; [`sign_update`]
//! makes one, with definite packet lengths.) The literal data, the signed
//! payload, is:
//!
//! ```text
//! magic     14 bytes  "coffer-update\n"
//! meta_len   4 bytes  big-endian u32, at most 64 KiB
//! meta       meta_len bytes of UTF-8 JSON, see below
//! contents   each file of meta.files in that order, exactly `size` bytes,
//!            back to back; nothing after the last one
//! ```
//!
//! ```json
//! {"format":1,"board":"qemu-x86_64","version":"1.4.0","created":1767225600,
//!  "files":[{"name":"vmlinuz","size":8912896,"sha256":"<64 lowercase hex>"},
//!           {"name":"initrd.zst","size":20971520,"sha256":"…"}]}
//! ```
//!
//! `format` is checked first, so a later format is refused as such, not as
//! bad JSON; unknown fields are refused. File names are 1–64 characters of
//! `[A-Za-z0-9._-]`, not starting with a dot; which files must be present is
//! the caller's business ([`VerifiedUpdate::require_files`]). By hand:
//! `gpg --import update.pub; gpg -d bundle > payload` verifies and unwraps it.
//!
//! # Why so strict
//!
//! An OpenPGP signature does not cover everything in the message (the
//! literal packet's name and date, the one-pass packet, the digest prefix),
//! so besides the signature this module checks that those parts are exactly
//! what [`sign_update`] writes. Any single changed byte is refused, and a
//! bundle is accepted only in the one shape this firmware makes.

use std::collections::HashSet;
use std::io::Read;
use std::time::SystemTime;

use openpgp::cert::prelude::*;
use openpgp::packet::prelude::*;
use openpgp::parse::stream::{
    GoodChecksum, MessageLayer, MessageStructure, VerificationError, VerificationHelper,
    VerifierBuilder,
};
use openpgp::parse::{Dearmor, PacketParserBuilder, PacketParserResult, Parse};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::{Marshal, SerializeInto};
use openpgp::types::{DataFormat, SignatureType};
use openpgp::{Cert, KeyHandle, Profile};
use sequoia_openpgp as openpgp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::BundleError;
use crate::version::{FirmwareVersion, VersionChange, check_version};

/// The payload format this crate writes and reads.
pub const FORMAT: u64 = 1;
/// Largest bundle [`open_update`] looks at (and [`sign_update`] makes).
pub const MAX_BUNDLE_SIZE: usize = 128 << 20;
/// Most files one bundle may carry.
pub const MAX_FILES: usize = 64;
/// Most signatures one bundle may carry.
const MAX_SIGNATURES: usize = 8;
/// Largest metadata document.
const MAX_META_SIZE: usize = 64 << 10;
/// Longest board, version or file name.
const MAX_NAME_LEN: usize = 64;
/// First bytes of the payload: says what it is when someone unwraps a bundle
/// by hand, and stops a signature over some other document from being taken
/// for an update.
const MAGIC: &[u8; 14] = b"coffer-update\n";

/// What the build host says about a release; [`sign_update`] adds the file
/// list with sizes and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateInfo {
    /// Board the images are built for (`qemu-x86_64`).
    pub board: String,
    /// Firmware version (`1.4.0`).
    pub version: String,
    /// When the bundle was made, unix seconds.
    pub created: u64,
}

/// The metadata document of a bundle, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeta {
    /// Always [`FORMAT`] in a verified bundle.
    pub format: u64,
    /// Board the images are built for.
    pub board: String,
    /// Firmware version.
    pub version: String,
    /// When the bundle was made, unix seconds.
    pub created: u64,
    /// The files, in the order their contents follow the metadata.
    pub files: Vec<FileMeta>,
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMeta {
    /// File name, no directories (`vmlinuz`, `initrd.zst`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, 64 lowercase hex digits.
    pub sha256: String,
}

/// A bundle whose signature, structure, metadata, sizes and hashes all
/// checked out. Only [`open_update`] makes one, so holding one means the
/// bytes inside are the ones the update key signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUpdate {
    meta: UpdateMeta,
    files: Vec<(String, Vec<u8>)>,
    signer: String,
}

impl VerifiedUpdate {
    /// The signed metadata.
    pub fn meta(&self) -> &UpdateMeta {
        &self.meta
    }

    /// The files in bundle order, `(name, content)`.
    pub fn files(&self) -> &[(String, Vec<u8>)] {
        &self.files
    }

    /// One file's content by name.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.as_slice())
    }

    /// Fingerprint (hex) of the key that made the good signature.
    pub fn signer(&self) -> &str {
        &self.signer
    }

    /// Refuses the update unless every named file is present (for a boot
    /// slot: `["vmlinuz", "initrd.zst"]`).
    pub fn require_files(&self, names: &[&str]) -> Result<(), BundleError> {
        match names.iter().find(|n| self.file(n).is_none()) {
            Some(missing) => Err(BundleError::MissingFile((*missing).to_owned())),
            None => Ok(()),
        }
    }

    /// Refuses the update unless it was built for `board`.
    pub fn require_board(&self, board: &str) -> Result<(), BundleError> {
        if self.meta.board == board {
            Ok(())
        } else {
            Err(BundleError::WrongBoard {
                bundle: self.meta.board.clone(),
                this: board.to_owned(),
            })
        }
    }

    /// Applies the downgrade rule ([`check_version`]) to this bundle's
    /// version against the running firmware's.
    pub fn require_version(
        &self,
        running: &str,
        allow_downgrade: bool,
    ) -> Result<VersionChange, BundleError> {
        check_version(running, &self.meta.version, allow_downgrade)
    }

    /// Takes the metadata and the files out.
    pub fn into_parts(self) -> (UpdateMeta, Vec<(String, Vec<u8>)>) {
        (self.meta, self.files)
    }
}

/// Makes a new update signing key: an ed25519 v4 certificate (RFC 4880
/// profile, so GnuPG 2.2 can import and check it too) with a
/// certification-only primary key and one signing subkey, no passphrase and
/// no expiry. Returns `(secret key, public certificate)`, both armored; the
/// certificate goes into the firmware, the secret key into the build
/// host's safe.
pub fn generate_update_key(user_id: &str) -> Result<(String, String), BundleError> {
    if user_id.trim().is_empty() {
        return Err(BundleError::InvalidInput("the user ID is empty".into()));
    }
    let (cert, _revocation) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_profile(Profile::RFC4880)
        .map_err(openpgp_error)?
        .set_validity_period(None)
        .add_userid(user_id)
        .add_signing_subkey()
        .generate()
        .map_err(openpgp_error)?;
    let secret = cert.as_tsk().armored().to_vec().map_err(openpgp_error)?;
    let public = cert.armored().to_vec().map_err(openpgp_error)?;
    Ok((armored_text(secret)?, armored_text(public)?))
}

/// Builds and signs an update bundle from `files` (`(name, content)`, in the
/// order they are to appear). Sizes and hashes are computed here; everything
/// [`open_update`] would refuse (bad names, duplicates, no files, too big) is
/// refused here first.
pub fn sign_update(
    secret_key_armored: &str,
    info: &UpdateInfo,
    files: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, BundleError> {
    let meta = UpdateMeta {
        format: FORMAT,
        board: info.board.clone(),
        version: info.version.clone(),
        created: info.created,
        files: files
            .iter()
            .map(|(name, content)| FileMeta {
                name: name.clone(),
                size: content.len() as u64,
                sha256: hex::encode(Sha256::digest(content)),
            })
            .collect(),
    };
    validate_meta(&meta).map_err(|e| BundleError::InvalidInput(e.to_string()))?;
    // Boxes refuse bundles whose version they cannot order (downgrade rule).
    if FirmwareVersion::parse(&info.version).is_none() {
        return Err(BundleError::InvalidInput(format!(
            "version {:?} is not a semantic version like 1.4.0 or 1.5.0-rc.1; boxes compare versions to refuse downgrades",
            info.version
        )));
    }
    let meta_json =
        serde_json::to_vec(&meta).map_err(|e| BundleError::InvalidInput(e.to_string()))?;
    let mut parts: Vec<&[u8]> = Vec::with_capacity(files.len() + 1);
    parts.push(&meta_json);
    parts.extend(files.iter().map(|(_, c)| c.as_slice()));
    let payload = frame(&parts)?;
    sign_payload(secret_key_armored, payload)
}

/// Opens a bundle, verifying at the current time (with sequoia's tolerance
/// for a little clock skew). See [`open_update_at`].
pub fn open_update(
    bundle: &[u8],
    update_cert_armored: &str,
) -> Result<VerifiedUpdate, BundleError> {
    open_at(bundle, update_cert_armored, None)
}

/// Opens a bundle: checks its size, its OpenPGP structure, that at least one
/// signature verifies against `update_cert_armored` (and only that
/// certificate) as of `time`, then the metadata, every file's size and
/// sha256, and that nothing is left over. Only then are the files returned.
///
/// The signing key must be valid at `time` and the signature must not be
/// dated after it, so a box whose clock is far behind refuses new bundles
/// ([`BundleError::SignerNotValid`]).
///
/// Memory: about three times the bundle's size at the peak (the input,
/// sequoia's buffer of the verified literal, the returned files).
pub fn open_update_at(
    bundle: &[u8],
    update_cert_armored: &str,
    time: SystemTime,
) -> Result<VerifiedUpdate, BundleError> {
    open_at(bundle, update_cert_armored, Some(time))
}

fn open_at(
    bundle: &[u8],
    update_cert_armored: &str,
    time: Option<SystemTime>,
) -> Result<VerifiedUpdate, BundleError> {
    if bundle.len() > MAX_BUNDLE_SIZE {
        return Err(BundleError::TooLarge {
            size: bundle.len() as u64,
            max: MAX_BUNDLE_SIZE as u64,
        });
    }
    let cert = Cert::from_bytes(update_cert_armored.as_bytes())
        .map_err(|e| BundleError::InvalidKey(format!("the update certificate: {e:#}")))?;
    check_packets(bundle)?;
    verify(bundle, &cert, time)
}

/// Signs `payload` as the literal data of a bundle. Separate from
/// [`sign_update`] so tests can sign payloads that lie.
fn sign_payload(secret_key_armored: &str, payload: Vec<u8>) -> Result<Vec<u8>, BundleError> {
    let policy = StandardPolicy::new();
    let cert = Cert::from_bytes(secret_key_armored.as_bytes())
        .map_err(|e| BundleError::InvalidKey(format!("the secret key: {e:#}")))?;
    let fingerprint = cert.fingerprint().to_hex();
    let key = cert
        .keys()
        .with_policy(&policy, None)
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .secret()
        .next()
        .ok_or_else(|| BundleError::NoSigningKey(fingerprint.clone()))?;
    let mut keypair = key.key().clone().into_keypair().map_err(|e| {
        BundleError::InvalidKey(format!(
            "the signing key of {fingerprint} cannot be used (is it passphrase-protected?): {e:#}"
        ))
    })?;

    let sig = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(&mut keypair, &payload)
        .map_err(openpgp_error)?;
    let mut ops = OnePassSig::try_from(&sig).map_err(openpgp_error)?;
    ops.set_last(true);
    // Binary, no file name, no date: exactly what `check_packets` demands,
    // because none of it is covered by the signature. Whole packets with
    // definite lengths (not the streaming writer's partial body chunks)
    // let the box read the literal in place rather than reassemble it.
    let mut literal = Literal::new(DataFormat::Binary);
    let mut sink = Vec::with_capacity(payload.len() + 1024);
    literal.set_body(payload);
    for packet in [Packet::from(ops), Packet::from(literal), Packet::from(sig)] {
        packet.serialize(&mut sink).map_err(openpgp_error)?;
    }
    if sink.len() > MAX_BUNDLE_SIZE {
        return Err(BundleError::TooLarge {
            size: sink.len() as u64,
            max: MAX_BUNDLE_SIZE as u64,
        });
    }
    Ok(sink)
}

/// Walks the top-level packets without any crypto and demands the one shape
/// a bundle has (see the module doc), including the parts the signature
/// does not cover. Gives the precise refusals ("not signed", "corrupt")
/// before the verifier is asked.
fn check_packets(bundle: &[u8]) -> Result<(), BundleError> {
    let corrupt = |e: openpgp::anyhow::Error| BundleError::Corrupt(format!("{e:#}"));
    if bundle.is_empty() {
        return Err(BundleError::Corrupt("the bundle is empty".into()));
    }
    let mut ppr = PacketParserBuilder::from_bytes(bundle)
        .map_err(corrupt)?
        .dearmor(Dearmor::Disabled)
        .automatic_hashing(false)
        .build()
        .map_err(corrupt)?;
    let mut packets = Vec::new();
    while let PacketParserResult::Some(pp) = ppr {
        if packets.len() > 2 * MAX_SIGNATURES + 1 {
            return Err(BundleError::Corrupt("too many packets".into()));
        }
        // `next` skips the literal body (and never enters containers, which
        // are refused below anyway).
        let (packet, next) = pp.next().map_err(corrupt)?;
        packets.push(packet);
        ppr = next;
    }
    if let PacketParserResult::EOF(eof) = &ppr {
        eof.is_message()
            .map_err(|e| BundleError::Corrupt(format!("not a valid OpenPGP message: {e:#}")))?;
    }

    for packet in &packets {
        match packet {
            Packet::Unknown(u) => {
                return Err(BundleError::Corrupt(format!(
                    "unreadable {} packet: {:#}",
                    u.tag(),
                    u.error()
                )));
            }
            Packet::OnePassSig(_) | Packet::Literal(_) | Packet::Signature(_) => {}
            Packet::CompressedData(_) => {
                return Err(BundleError::Corrupt(
                    "the bundle is compressed; bundles are signed uncompressed".into(),
                ));
            }
            Packet::SEIP(_) | Packet::PKESK(_) | Packet::SKESK(_) => {
                return Err(BundleError::Corrupt(
                    "the bundle is encrypted; bundles are only signed".into(),
                ));
            }
            other => {
                return Err(BundleError::Corrupt(format!(
                    "unexpected {} packet",
                    other.tag()
                )));
            }
        }
    }

    let n = packets
        .iter()
        .take_while(|p| matches!(p, Packet::OnePassSig(_)))
        .count();
    if n == 0 {
        return Err(match packets.as_slice() {
            [Packet::Literal(_)] => BundleError::NotSigned,
            _ if packets.iter().any(|p| matches!(p, Packet::Signature(_))) => BundleError::Corrupt(
                "signatures without one-pass headers are not used in bundles".into(),
            ),
            _ => BundleError::Corrupt("not a signed message".into()),
        });
    }
    if packets.len() != 2 * n + 1 {
        return Err(BundleError::Corrupt(format!(
            "{} packets where {} were expected (extra or missing data)",
            packets.len(),
            2 * n + 1
        )));
    }
    let Some(Packet::Literal(literal)) = packets.get(n) else {
        return Err(BundleError::Corrupt(
            "no signed content after the one-pass headers".into(),
        ));
    };
    if literal.format() != DataFormat::Binary
        || literal.filename().is_some()
        || literal.date().is_some()
    {
        return Err(BundleError::Corrupt(
            "the literal data header is not the one bundles use".into(),
        ));
    }
    for i in 0..n {
        // One-pass packets nest: the first one pairs with the last signature.
        let (Some(Packet::OnePassSig(ops)), Some(Packet::Signature(sig))) =
            (packets.get(i), packets.get(2 * n - i))
        else {
            return Err(BundleError::Corrupt("packets out of order".into()));
        };
        let last_flag = u8::from(i + 1 == n);
        let issuer_matches = sig.get_issuers().iter().any(|h| h.aliases(ops.issuer()));
        if ops.last_raw() != last_flag
            || ops.typ() != SignatureType::Binary
            || sig.typ() != SignatureType::Binary
            || ops.hash_algo() != sig.hash_algo()
            || ops.pk_algo() != sig.pk_algo()
            || !issuer_matches
        {
            return Err(BundleError::Corrupt(
                "a one-pass signature header does not match its signature".into(),
            ));
        }
        // The unhashed area is not signed; sequoia writes nothing there
        // that verification needs, so anything in it is foreign.
        if sig.unhashed_area().iter().next().is_some() {
            return Err(BundleError::Corrupt(
                "a signature carries unsigned subpackets".into(),
            ));
        }
    }
    Ok(())
}

/// Collects the verifier's verdict. The verifier is built to read the whole
/// message before it returns, so `check` has run (and every signature has
/// been verified) before a single payload byte is read out.
struct UpdateHelper<'c> {
    cert: &'c Cert,
    good: Option<String>,
}

impl VerificationHelper for UpdateHelper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        // Only the one update certificate, whatever the signature asks for.
        Ok(vec![self.cert.clone()])
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let expected = self.cert.fingerprint().to_hex();
        let mut refusal: Option<(u8, BundleError)> = None;
        // Keep the most telling reason: a bad signature by our key beats an
        // unknown signer, which beats a malformed signature.
        let mut note = |rank: u8, e: BundleError| {
            if refusal.as_ref().is_none_or(|(r, _)| rank > *r) {
                refusal = Some((rank, e));
            }
        };
        for layer in structure.into_iter() {
            let MessageLayer::SignatureGroup { results } = layer else {
                return Err(
                    BundleError::Corrupt("unexpected compression or encryption".into()).into(),
                );
            };
            for result in results {
                match result {
                    Ok(GoodChecksum { sig, ka }) => {
                        // The digest prefix is not covered by the signature;
                        // refuse one that does not match the digest.
                        if sig
                            .computed_digest()
                            .is_some_and(|d| d.starts_with(sig.digest_prefix()))
                        {
                            self.good = Some(ka.key().fingerprint().to_hex());
                        } else {
                            note(
                                4,
                                BundleError::BadSignature {
                                    signer: ka.key().fingerprint().to_hex(),
                                    reason: "digest prefix does not match".into(),
                                },
                            );
                        }
                    }
                    Err(VerificationError::MissingKey { sig }) => note(
                        2,
                        BundleError::UnknownSigner {
                            found: issuer_text(&sig.get_issuers()),
                            expected: expected.clone(),
                        },
                    ),
                    Err(VerificationError::BadSignature { ka, error, .. }) => note(
                        4,
                        BundleError::BadSignature {
                            signer: ka.key().fingerprint().to_hex(),
                            reason: format!("{error:#}"),
                        },
                    ),
                    Err(VerificationError::BadKey { ka, error, .. }) => note(
                        3,
                        BundleError::SignerNotValid {
                            signer: ka.key().fingerprint().to_hex(),
                            reason: format!("{error:#}"),
                        },
                    ),
                    Err(VerificationError::UnboundKey { error, .. }) => note(
                        3,
                        BundleError::SignerNotValid {
                            signer: expected.clone(),
                            reason: format!("{error:#}"),
                        },
                    ),
                    Err(e) => note(1, BundleError::Corrupt(format!("{e}"))),
                }
            }
        }
        if self.good.is_some() {
            Ok(())
        } else {
            Err(refusal.map_or(BundleError::NotSigned, |(_, e)| e).into())
        }
    }
}

/// Verifies the signatures, then reads the (now verified) payload.
fn verify(
    bundle: &[u8],
    cert: &Cert,
    time: Option<SystemTime>,
) -> Result<VerifiedUpdate, BundleError> {
    let policy = StandardPolicy::new();
    let helper = UpdateHelper { cert, good: None };
    let refused = |e: openpgp::anyhow::Error| match e.downcast::<BundleError>() {
        Ok(b) => b,
        Err(e) => BundleError::Corrupt(format!("{e:#}")),
    };
    // A buffer larger than any bundle makes the verifier consume the whole
    // message, and run `check`, inside `with_policy`: every signature is
    // verified before the first payload byte is read.
    let mut verifier = VerifierBuilder::from_bytes(bundle)
        .map_err(refused)?
        .buffer_size(MAX_BUNDLE_SIZE + 1)
        .with_policy(&policy, time, helper)
        .map_err(refused)?;
    let signer = match (&verifier.helper_ref().good, verifier.message_processed()) {
        (Some(signer), true) => signer.clone(),
        (None, _) => return Err(BundleError::NotSigned),
        (Some(_), false) => {
            return Err(BundleError::Corrupt(
                "the message was not fully verified".into(),
            ));
        }
    };
    // Read straight into the files rather than through one big payload
    // buffer: a bundle then costs about three times its size in memory
    // (input, the verifier's buffer, the files), not four.
    read_payload(&mut verifier, bundle.len(), signer)
}

/// Splits and checks the signed payload. Sizes come from the metadata, so
/// no allocation is larger than `limit` (the bundle's size), whatever the
/// metadata claims.
fn read_payload(
    payload: &mut impl Read,
    limit: usize,
    signer: String,
) -> Result<VerifiedUpdate, BundleError> {
    let invalid = |s: &str| BundleError::InvalidContent(s.to_owned());
    let mut magic = [0u8; MAGIC.len()];
    if !read_exact(payload, &mut magic)? || magic != *MAGIC {
        return Err(invalid("the signed content is not an update (wrong magic)"));
    }
    let mut len = [0u8; 4];
    if !read_exact(payload, &mut len)? {
        return Err(invalid("the metadata length is cut short"));
    }
    let meta_len = u32::from_be_bytes(len) as usize;
    if meta_len > MAX_META_SIZE {
        return Err(invalid("the metadata is too large"));
    }
    let mut meta_json = vec![0u8; meta_len];
    if !read_exact(payload, &mut meta_json)? {
        return Err(invalid("the metadata is cut short"));
    }

    // Format first, so a newer bundle is refused as newer, not as bad JSON.
    #[derive(Deserialize)]
    struct Probe {
        format: u64,
    }
    let probe: Probe = serde_json::from_slice(&meta_json)
        .map_err(|e| BundleError::InvalidContent(format!("metadata: {e}")))?;
    if probe.format != FORMAT {
        return Err(BundleError::UnknownFormat {
            found: probe.format,
            supported: FORMAT,
        });
    }
    let meta: UpdateMeta = serde_json::from_slice(&meta_json)
        .map_err(|e| BundleError::InvalidContent(format!("metadata: {e}")))?;
    validate_meta(&meta)?;

    let mut files = Vec::with_capacity(meta.files.len());
    for file in &meta.files {
        let capacity = usize::try_from(file.size).map_or(limit, |s| s.min(limit));
        let mut content = Vec::with_capacity(capacity);
        Read::take(&mut *payload, file.size)
            .read_to_end(&mut content)
            .map_err(read_error)?;
        if content.len() as u64 != file.size {
            return Err(BundleError::SizeMismatch {
                name: file.name.clone(),
                expected: file.size,
                actual: content.len() as u64,
            });
        }
        if hex::encode(Sha256::digest(&content)) != file.sha256 {
            return Err(BundleError::HashMismatch(file.name.clone()));
        }
        files.push((file.name.clone(), content));
    }
    let extra = std::io::copy(payload, &mut std::io::sink()).map_err(read_error)?;
    if extra > 0 {
        return Err(BundleError::InvalidContent(format!(
            "{extra} bytes after the last file"
        )));
    }
    Ok(VerifiedUpdate {
        meta,
        files,
        signer,
    })
}

/// Fills `buf`; `false` if the payload ended first.
fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, BundleError> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(read_error(e)),
    }
}

fn read_error(e: std::io::Error) -> BundleError {
    // The payload was verified and buffered already, so this is not
    // expected; treat it like damage.
    BundleError::Corrupt(e.to_string())
}

/// The rules both sides apply to metadata.
fn validate_meta(meta: &UpdateMeta) -> Result<(), BundleError> {
    let invalid = |s: String| Err(BundleError::InvalidContent(s));
    if meta.format != FORMAT {
        return Err(BundleError::UnknownFormat {
            found: meta.format,
            supported: FORMAT,
        });
    }
    for (what, value) in [("board", &meta.board), ("version", &meta.version)] {
        if value.is_empty()
            || value.len() > MAX_NAME_LEN
            || !value.chars().all(|c| c.is_ascii_graphic())
        {
            return invalid(format!(
                "{what} {value:?} must be 1-{MAX_NAME_LEN} printable ASCII characters without spaces"
            ));
        }
    }
    if meta.files.is_empty() {
        return invalid("the bundle has no files".into());
    }
    if meta.files.len() > MAX_FILES {
        return invalid(format!(
            "{} files; at most {MAX_FILES} are allowed",
            meta.files.len()
        ));
    }
    let mut seen = HashSet::new();
    for file in &meta.files {
        if !valid_file_name(&file.name) {
            return invalid(format!(
                "file name {:?} is not 1-{MAX_NAME_LEN} characters of [A-Za-z0-9._-] \
                 not starting with a dot",
                file.name
            ));
        }
        if !seen.insert(file.name.as_str()) {
            return Err(BundleError::DuplicateFile(file.name.clone()));
        }
        if file.sha256.len() != 64
            || !file
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return invalid(format!(
                "file {}: sha256 is not 64 lowercase hex digits",
                file.name
            ));
        }
    }
    Ok(())
}

fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Magic, metadata length, metadata, contents.
fn frame(parts: &[&[u8]]) -> Result<Vec<u8>, BundleError> {
    let Some((meta, contents)) = parts.split_first() else {
        return Err(BundleError::InvalidInput("no metadata".into()));
    };
    let meta_len = u32::try_from(meta.len())
        .ok()
        .filter(|l| *l as usize <= MAX_META_SIZE)
        .ok_or_else(|| BundleError::InvalidInput("the metadata is too large".into()))?;
    let total = parts
        .iter()
        .map(|p| p.len() as u64)
        .sum::<u64>()
        .saturating_add((MAGIC.len() + 4) as u64);
    if total > MAX_BUNDLE_SIZE as u64 {
        return Err(BundleError::TooLarge {
            size: total,
            max: MAX_BUNDLE_SIZE as u64,
        });
    }
    let mut payload = Vec::with_capacity(total as usize);
    payload.extend_from_slice(MAGIC);
    payload.extend_from_slice(&meta_len.to_be_bytes());
    payload.extend_from_slice(meta);
    for c in contents {
        payload.extend_from_slice(c);
    }
    Ok(payload)
}

fn issuer_text(issuers: &[KeyHandle]) -> String {
    // Prefer a full fingerprint over a 64-bit key ID.
    issuers
        .iter()
        .find(|h| matches!(h, KeyHandle::Fingerprint(_)))
        .or_else(|| issuers.first())
        .map_or_else(|| "none given".to_owned(), KeyHandle::to_hex)
}

fn armored_text(bytes: Vec<u8>) -> Result<String, BundleError> {
    String::from_utf8(bytes).map_err(|e| BundleError::OpenPgp(e.to_string()))
}

pub(crate) fn openpgp_error(e: openpgp::anyhow::Error) -> BundleError {
    BundleError::OpenPgp(format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::OnceLock;
    use std::time::{Duration, UNIX_EPOCH};

    use openpgp::serialize::stream::{Armorer, Compressor, LiteralWriter, Message, Signer};
    use proptest::prelude::*;

    use super::*;

    struct Keys {
        secret: String,
        public: String,
        other_secret: String,
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let (secret, public) = generate_update_key("Coffer updates <updates@example.org>")
                .expect("generate update key");
            let (other_secret, _) = generate_update_key("Somebody else <else@example.org>")
                .expect("generate other key");
            Keys {
                secret,
                public,
                other_secret,
            }
        })
    }

    fn info() -> UpdateInfo {
        UpdateInfo {
            board: "qemu-x86_64".into(),
            version: "1.4.0".into(),
            created: 1_767_225_600,
        }
    }

    fn slot_files() -> Vec<(String, Vec<u8>)> {
        vec![
            ("vmlinuz".into(), b"kernel image bytes".repeat(3)),
            (
                "initrd.zst".into(),
                vec![0x28, 0xb5, 0x2f, 0xfd, 0, 1, 2, 3],
            ),
        ]
    }

    /// A small valid bundle, made once (signatures are randomized, so each
    /// signing gives different bytes).
    fn bundle() -> &'static [u8] {
        static BUNDLE: OnceLock<Vec<u8>> = OnceLock::new();
        BUNDLE.get_or_init(|| sign_update(&keys().secret, &info(), &slot_files()).expect("sign"))
    }

    fn open(bytes: &[u8]) -> Result<VerifiedUpdate, BundleError> {
        open_update(bytes, &keys().public)
    }

    /// Signs a payload made of arbitrary metadata JSON and contents.
    fn sign_raw(meta: &serde_json::Value, contents: &[&[u8]]) -> Vec<u8> {
        let meta = serde_json::to_vec(meta).expect("json");
        let mut parts = vec![meta.as_slice()];
        parts.extend_from_slice(contents);
        sign_payload(&keys().secret, frame(&parts).expect("frame")).expect("sign")
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    #[test]
    fn round_trip() {
        let update = open(bundle()).expect("a good bundle opens");
        let meta = update.meta();
        assert_eq!(meta.format, 1);
        assert_eq!(meta.board, "qemu-x86_64");
        assert_eq!(meta.version, "1.4.0");
        assert_eq!(meta.created, 1_767_225_600);
        assert_eq!(meta.files.len(), 2);
        assert_eq!(meta.files[1].name, "initrd.zst");
        assert_eq!(meta.files[1].size, 8);
        assert_eq!(meta.files[1].sha256, sha(&slot_files()[1].1));
        assert_eq!(update.files(), slot_files().as_slice());
        assert_eq!(update.file("vmlinuz"), Some(slot_files()[0].1.as_slice()));
        update
            .require_files(&["vmlinuz", "initrd.zst"])
            .expect("both files");
        assert_eq!(
            update.require_files(&["vmlinuz", "rootfs.squashfs"]),
            Err(BundleError::MissingFile("rootfs.squashfs".into()))
        );
        update.require_board("qemu-x86_64").expect("board");
        assert!(matches!(
            update.require_board("apu2"),
            Err(BundleError::WrongBoard { .. })
        ));
        // The signed version 1.4.0 against the running firmware's.
        assert_eq!(update.require_version("1.3.9", false), Ok(VersionChange::Upgrade));
        assert_eq!(update.require_version("1.4.0", false), Ok(VersionChange::Reinstall));
        assert!(matches!(
            update.require_version("1.5.0", false),
            Err(BundleError::Downgrade { .. })
        ));
        assert_eq!(
            update.require_version("1.5.0", true),
            Ok(VersionChange::AllowedDowngrade)
        );
        assert_eq!(update.signer().len(), 40);
        let (_, files) = update.into_parts();
        assert_eq!(files, slot_files());
    }

    #[test]
    fn round_trip_empty_and_single_files() {
        let files = vec![("empty".to_owned(), Vec::new())];
        let bundle = sign_update(&keys().secret, &info(), &files).expect("sign");
        assert_eq!(open(&bundle).expect("open").files(), files.as_slice());
    }

    #[test]
    fn generated_key_is_ed25519_sign_only_without_expiry() {
        let cert = Cert::from_bytes(keys().public.as_bytes()).expect("cert");
        assert!(!cert.is_tsk());
        assert!(
            keys()
                .public
                .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        );
        assert!(
            keys()
                .secret
                .starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----")
        );
        let policy = StandardPolicy::new();
        let valid = cert.with_policy(&policy, None).expect("valid");
        assert_eq!(valid.primary_key().key().version(), 4);
        assert_eq!(valid.primary_key().key_expiration_time(), None);
        let signing: Vec<_> = valid.keys().for_signing().collect();
        assert_eq!(signing.len(), 1);
        assert_eq!(
            signing[0].key().pk_algo(),
            openpgp::types::PublicKeyAlgorithm::EdDSA
        );
        assert_eq!(valid.keys().for_transport_encryption().count(), 0);
        assert!(generate_update_key(" ").is_err());
    }

    #[test]
    fn unsigned_message_is_refused() {
        let mut sink = Vec::new();
        let mut w = LiteralWriter::new(Message::new(&mut sink))
            .format(DataFormat::Binary)
            .build()
            .expect("literal");
        w.write_all(b"coffer-update\n").expect("write");
        w.finalize().expect("finalize");
        assert_eq!(open(&sink), Err(BundleError::NotSigned));
    }

    #[test]
    fn other_key_is_refused_and_named() {
        let bundle = sign_update(&keys().other_secret, &info(), &slot_files()).expect("sign");
        let expected = Cert::from_bytes(keys().public.as_bytes())
            .expect("cert")
            .fingerprint()
            .to_hex();
        let other = Cert::from_bytes(keys().other_secret.as_bytes()).expect("other");
        let other_signing = other
            .keys()
            .subkeys()
            .next()
            .expect("signing subkey")
            .key()
            .fingerprint()
            .to_hex();
        let err = open(&bundle).expect_err("refused");
        assert_eq!(
            err,
            BundleError::UnknownSigner {
                found: other_signing.clone(),
                expected: expected.clone()
            }
        );
        let text = err.to_string();
        assert!(
            text.contains(&other_signing) && text.contains(&expected),
            "{text}"
        );
    }

    #[test]
    fn co_signature_by_an_unknown_key_does_not_matter() {
        let policy = StandardPolicy::new();
        let keypair = |armored: &str| {
            Cert::from_bytes(armored.as_bytes())
                .expect("cert")
                .keys()
                .with_policy(&policy, None)
                .for_signing()
                .secret()
                .next()
                .expect("signing key")
                .key()
                .clone()
                .into_keypair()
                .expect("keypair")
        };
        let payload = frame(&[
            &serde_json::to_vec(&UpdateMeta {
                format: 1,
                board: "b".into(),
                version: "v".into(),
                created: 0,
                files: vec![FileMeta {
                    name: "f".into(),
                    size: 1,
                    sha256: sha(b"x"),
                }],
            })
            .expect("json"),
            b"x",
        ])
        .expect("frame");
        for order in [
            [&keys().secret, &keys().other_secret],
            [&keys().other_secret, &keys().secret],
        ] {
            let mut sink = Vec::new();
            let signer = Signer::new(Message::new(&mut sink), keypair(order[0]))
                .expect("signer")
                .add_signer(keypair(order[1]))
                .expect("second signer")
                .build()
                .expect("build");
            let mut w = LiteralWriter::new(signer)
                .format(DataFormat::Binary)
                .build()
                .expect("literal");
            w.write_all(&payload).expect("write");
            w.finalize().expect("finalize");
            let update = open(&sink).expect("one good signature is enough");
            assert_eq!(update.file("f"), Some(&b"x"[..]));
        }
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let bundle = bundle();
        for pos in 0..bundle.len() {
            for bit in 0..8 {
                let mut bad = bundle.to_vec();
                bad[pos] ^= 1 << bit;
                if let Ok(u) = open(&bad) {
                    panic!(
                        "flipping bit {bit} of byte {pos} was accepted: {:?}",
                        u.meta()
                    );
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_changed_byte_is_refused(pos in any::<prop::sample::Index>(), x in 1u8..=255) {
            let mut bad = bundle().to_vec();
            let i = pos.index(bad.len());
            bad[i] ^= x;
            prop_assert!(open(&bad).is_err(), "byte {i} ^ {x:#x} accepted");
        }

        #[test]
        fn arbitrary_bytes_are_refused(data in prop::collection::vec(any::<u8>(), 0..512)) {
            prop_assert!(open(&data).is_err());
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let bundle = bundle();
        for len in 0..bundle.len() {
            let err = open(&bundle[..len]).expect_err("truncated bundle refused");
            assert!(
                matches!(err, BundleError::Corrupt(_) | BundleError::NotSigned),
                "at {len}: {err}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let bundle = bundle();
        let mut signature = Vec::new();
        let PacketParserResult::Some(pp) = PacketParserBuilder::from_bytes(bundle)
            .expect("parser")
            .build()
            .expect("build")
        else {
            panic!("empty");
        };
        let _ = pp;
        // The last packet of the bundle (the signature), appended again.
        let pile = openpgp::PacketPile::from_bytes(bundle).expect("pile");
        let last = pile.children().last().expect("a packet");
        openpgp::serialize::Serialize::serialize(last, &mut signature).expect("serialize");
        let marker = [0xca, 0x03, b'P', b'G', b'P'];
        for tail in [
            &b"\0"[..],
            b"\n",
            b"garbage after the end",
            &marker,
            &signature,
            bundle,
        ] {
            let mut bad = bundle.to_vec();
            bad.extend_from_slice(tail);
            let err = open(&bad).expect_err("trailing data refused");
            assert!(matches!(err, BundleError::Corrupt(_)), "{err}");
        }
    }

    #[test]
    fn armored_or_compressed_bundles_are_refused() {
        let mut armored = Vec::new();
        let mut w = Armorer::new(Message::new(&mut armored))
            .build()
            .expect("armor");
        w.write_all(bundle()).expect("write");
        w.finalize().expect("finalize");
        assert!(matches!(open(&armored), Err(BundleError::Corrupt(_))));

        let mut compressed = Vec::new();
        let mut w = Compressor::new(Message::new(&mut compressed))
            .build()
            .expect("compress");
        w.write_all(bundle()).expect("write");
        w.finalize().expect("finalize");
        assert!(matches!(open(&compressed), Err(BundleError::Corrupt(_))));
    }

    #[test]
    fn lying_metadata_is_refused() {
        let kernel: &[u8] = b"kernel";
        let initrd: &[u8] = b"initrd";
        let meta = |initrd_sha: String, initrd_size: u64| {
            serde_json::json!({
                "format": 1, "board": "qemu-x86_64", "version": "1", "created": 0,
                "files": [
                    {"name": "vmlinuz", "size": kernel.len(), "sha256": sha(kernel)},
                    {"name": "initrd.zst", "size": initrd_size, "sha256": initrd_sha},
                ]
            })
        };
        let good = sign_raw(&meta(sha(initrd), 6), &[kernel, initrd]);
        open(&good).expect("the honest version opens");

        let bad = sign_raw(&meta(sha(b"other"), 6), &[kernel, initrd]);
        let err = open(&bad).expect_err("hash mismatch");
        assert_eq!(err, BundleError::HashMismatch("initrd.zst".into()));
        assert_eq!(err.to_string(), "file initrd.zst: sha256 mismatch");

        let bad = sign_raw(&meta(sha(initrd), 7), &[kernel, initrd]);
        assert_eq!(
            open(&bad),
            Err(BundleError::SizeMismatch {
                name: "initrd.zst".into(),
                expected: 7,
                actual: 6
            })
        );

        let bad = sign_raw(&meta(sha(b"initr"), 5), &[kernel, initrd]);
        assert!(matches!(open(&bad), Err(BundleError::InvalidContent(_))));

        let bad = sign_raw(&meta(sha(initrd), u64::MAX), &[kernel, initrd]);
        assert!(matches!(open(&bad), Err(BundleError::SizeMismatch { .. })));
    }

    #[test]
    fn bad_metadata_is_refused() {
        let x: &[u8] = b"x";
        let file = |name: &str| serde_json::json!({"name": name, "size": 1, "sha256": sha(x)});
        let with_files = |files: Vec<serde_json::Value>| serde_json::json!({"format": 1, "board": "b", "version": "v", "created": 0, "files": files});

        let bad = sign_raw(&with_files(vec![file("a"), file("a")]), &[x, x]);
        assert_eq!(open(&bad), Err(BundleError::DuplicateFile("a".into())));

        let bad = sign_raw(&with_files(vec![]), &[]);
        assert!(matches!(open(&bad), Err(BundleError::InvalidContent(_))));

        for name in [
            "../etc/passwd",
            "a/b",
            ".hidden",
            "",
            "spa ce",
            &"n".repeat(65),
        ] {
            let bad = sign_raw(&with_files(vec![file(name)]), &[x]);
            assert!(
                matches!(open(&bad), Err(BundleError::InvalidContent(_))),
                "{name:?}"
            );
        }

        let mut extra = with_files(vec![file("a")]);
        extra["signed_by_santa"] = true.into();
        assert!(matches!(
            open(&sign_raw(&extra, &[x])),
            Err(BundleError::InvalidContent(_))
        ));

        let upper = serde_json::json!({"format": 1, "board": "b", "version": "v", "created": 0,
            "files": [{"name": "a", "size": 1, "sha256": sha(x).to_uppercase()}]});
        assert!(matches!(
            open(&sign_raw(&upper, &[x])),
            Err(BundleError::InvalidContent(_))
        ));

        let not_json =
            sign_payload(&keys().secret, frame(&[b"{nope", x]).expect("frame")).expect("sign");
        assert!(matches!(
            open(&not_json),
            Err(BundleError::InvalidContent(_))
        ));

        let no_magic =
            sign_payload(&keys().secret, b"just some signed text".to_vec()).expect("sign");
        assert!(matches!(
            open(&no_magic),
            Err(BundleError::InvalidContent(_))
        ));
    }

    #[test]
    fn unknown_format_is_refused() {
        let x: &[u8] = b"x";
        let meta = serde_json::json!({"format": 2, "board": "b", "version": "v", "created": 0,
            "files": [{"name": "a", "size": 1, "sha256": sha(x)}], "new_field": 1});
        let err = open(&sign_raw(&meta, &[x])).expect_err("format 2 refused");
        assert_eq!(
            err,
            BundleError::UnknownFormat {
                found: 2,
                supported: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown bundle format 2; this box understands format 1"
        );
    }

    #[test]
    fn sign_update_refuses_what_open_would_refuse() {
        let one = |name: &str| vec![(name.to_owned(), b"x".to_vec())];
        for files in [one("../x"), one(""), vec![], [one("a"), one("a")].concat()] {
            assert!(matches!(
                sign_update(&keys().secret, &info(), &files),
                Err(BundleError::InvalidInput(_))
            ));
        }
        let mut bad_info = info();
        bad_info.board = "has space".into();
        assert!(sign_update(&keys().secret, &bad_info, &one("a")).is_err());
        // A version boxes could not order against theirs (downgrade rule).
        for version in ["nightly", "1.4", "v1.4.0"] {
            let mut bad_info = info();
            bad_info.version = version.into();
            let err = sign_update(&keys().secret, &bad_info, &one("a")).expect_err(version);
            assert!(
                matches!(&err, BundleError::InvalidInput(m) if m.contains("semantic version")),
                "{version}: {err}"
            );
        }
        assert!(matches!(
            sign_update(&keys().public, &info(), &one("a")),
            Err(BundleError::NoSigningKey(_))
        ));
        assert!(matches!(
            sign_update("not a key", &info(), &one("a")),
            Err(BundleError::InvalidKey(_))
        ));
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let huge = vec![0u8; MAX_BUNDLE_SIZE + 1];
        assert!(matches!(open(&huge), Err(BundleError::TooLarge { .. })));
    }

    #[test]
    fn bad_update_cert_is_an_error() {
        assert!(matches!(
            open_update(bundle(), "not a certificate"),
            Err(BundleError::InvalidKey(_))
        ));
    }

    #[test]
    fn gpg_verifies_and_unwraps_bundle() {
        let Some(gpg) = crate::test_gpg::Gpg::new() else {
            return;
        };
        gpg.run(&["--import"], keys().public.as_bytes());
        let out = gpg.run(&["-d"], bundle());
        assert!(out.stdout.starts_with(MAGIC));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Good signature"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn verification_time_matters() {
        // Before the key existed the signature cannot be valid.
        let err = open_update_at(
            bundle(),
            &keys().public,
            UNIX_EPOCH + Duration::from_secs(1_000),
        )
        .expect_err("refused in 1970");
        assert!(
            matches!(
                err,
                BundleError::SignerNotValid { .. } | BundleError::BadSignature { .. }
            ),
            "{err}"
        );
        open_update_at(
            bundle(),
            &keys().public,
            SystemTime::now() + Duration::from_secs(3600),
        )
        .expect("valid an hour from now");
    }
}
