//! Sealing records with AES-256-GCM before they reach any backend (SPEC §6).
//!
//! Sealed format v1: `[0x01][kid_len u8][kid][12-byte nonce][ciphertext ‖ 16-byte tag]`.
//!
//! - **Key.** HKDF-SHA256(ikm = server key, salt = `binding`, info = `ward/v1/record`): the
//!   binding is the cookie's per-record secret, so a copy of the store, even with the server
//!   keys, opens nothing without the browser's cookie.
//! - **Nonce.** 96 random bits per seal. Each record key is used for the few seals of one
//!   session, far below the birthday bound of random GCM nonces.
//! - **Associated data.** `ward/v1\0 ‖ kid ‖ \0 ‖ store_key`: a record moved to another store
//!   key, or whose kid was rewritten to another configured key, fails to open.
//!
//! Store keys are unkeyed hashes of the id (rotation does not move records); index entries
//! are keyed hashes under every server key (a dump yields no `sub` or `sid`).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use zeroize::Zeroizing;

use super::keyring::{KeyRing, ServerKey};
use crate::random;

/// First byte of every record sealed by this version.
const VERSION_1: u8 = 0x01;
/// Length of the AES-GCM tag that ends every sealed record.
const TAG_LEN: usize = 16;
/// HKDF `info` for record keys.
const RECORD_KEY_INFO: &[u8] = b"ward/v1/record";
/// Prefix of the associated data, so a v1 record never authenticates under another scheme.
const AAD_PREFIX: &[u8] = b"ward/v1\0";
/// Domain separation for store keys.
const STORE_KEY_DOMAIN: &[u8] = b"ward/v1/id\0";

/// Why a sealed record did not open. Callers treat every variant as "no such record".
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Unknown version byte or truncated record.
    #[error("unreadable sealed record")]
    Malformed,
    /// The key id in the record is not in the key ring (retired key).
    #[error("record sealed under a key no longer configured")]
    UnknownKey,
    /// Authentication failed: wrong key, wrong binding secret, moved or tampered record.
    #[error("sealed record failed authentication")]
    Forged,
}

/// A record that opened, and whether it should be re-sealed under the primary key.
#[derive(Debug)]
pub struct Opened {
    /// The plaintext, zeroed when dropped.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// `true` when sealed under a key other than the primary one.
    pub stale_key: bool,
}

/// Seals and opens records, derives store keys and index keys.
#[derive(Debug, Clone)]
pub struct Sealer {
    ring: KeyRing,
}

impl Sealer {
    /// A sealer over `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self { ring }
    }

    /// The key ring.
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// Seals `plaintext` for storage under `store_key`, with a key derived from the primary
    /// server key and `binding` (the cookie's per-record secret).
    ///
    /// Panics only if the OS CSPRNG fails or `plaintext` exceeds AES-GCM's 64 GiB limit.
    pub fn seal(&self, store_key: &str, binding: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let _span = crate::telemetry::spans::crypto("session seal").entered();
        let server_key = self.ring.primary();
        let kid = server_key.kid().as_bytes();
        let nonce = random::bytes::<NONCE_LEN>();

        let header_len = 2 + kid.len() + NONCE_LEN;
        let mut out = Vec::with_capacity(header_len + plaintext.len() + TAG_LEN);
        out.push(VERSION_1);
        // Key ids are at most MAX_KID_LEN (32) bytes, checked when the ring is built.
        out.push(kid.len() as u8);
        out.extend_from_slice(kid);
        out.extend_from_slice(&nonce);

        // Encrypted where it lies in `out`: no second plaintext copy is left to wipe.
        out.extend_from_slice(plaintext);
        let tag = record_key(server_key, binding)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(kid, store_key)),
                &mut out[header_len..],
            )
            .expect("AES-256-GCM seals any session-sized plaintext");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Opens what [`Sealer::seal`] produced for the same `store_key` and `binding`.
    pub fn open(
        &self,
        store_key: &str,
        binding: &[u8],
        sealed: &[u8],
    ) -> Result<Opened, SealError> {
        let _span = crate::telemetry::spans::crypto("session open").entered();
        let parts = Parts::parse(sealed)?;
        let server_key = self.ring.find(parts.kid).ok_or(SealError::UnknownKey)?;
        let mut body = Zeroizing::new(parts.body.to_vec());
        let plaintext_len = record_key(server_key, binding)
            .open_in_place(
                Nonce::assume_unique_for_key(parts.nonce),
                Aad::from(associated_data(parts.kid, store_key)),
                &mut body,
            )
            .map_err(|_| SealError::Forged)?
            .len();
        body.truncate(plaintext_len);
        Ok(Opened {
            plaintext: body,
            stale_key: server_key.kid() != self.ring.primary_kid(),
        })
    }

    /// The store key of record `id` in `namespace` (`"s"` session, `"t"` login transaction):
    /// a one-way hash, so a copy of the store yields no cookie.
    pub fn store_key(&self, namespace: &str, id: &[u8]) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(STORE_KEY_DOMAIN);
        ctx.update(namespace.as_bytes());
        ctx.update(b"\0");
        ctx.update(id);
        // Written in place: one allocation per key (it is made on every proxied request).
        let mut key = String::with_capacity(namespace.len() + 1 + 43);
        key.push_str(namespace);
        key.push(':');
        URL_SAFE_NO_PAD.encode_string(ctx.finish(), &mut key);
        key
    }

    /// Index entries for `kind` (`"sub"`, `"sid"`) = `value`: a keyed hash under every server
    /// key, primary first. Records are indexed under the first; lookups try all.
    pub fn index_keys(&self, kind: &str, value: &str) -> Vec<String> {
        self.ring
            .keys()
            .iter()
            .map(|key| {
                let mut ctx = hmac::Context::with_key(key.index_key());
                ctx.update(kind.as_bytes());
                ctx.update(b"\0");
                ctx.update(value.as_bytes());
                format!("i:{kind}:{}", URL_SAFE_NO_PAD.encode(ctx.sign()))
            })
            .collect()
    }
}

/// The regions of a v1 sealed record, borrowed from it.
struct Parts<'a> {
    kid: &'a [u8],
    nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the tag.
    body: &'a [u8],
}

impl<'a> Parts<'a> {
    fn parse(sealed: &'a [u8]) -> Result<Self, SealError> {
        let [version, kid_len, rest @ ..] = sealed else {
            return Err(SealError::Malformed);
        };
        if *version != VERSION_1 {
            return Err(SealError::Malformed);
        }
        let kid_len = usize::from(*kid_len);
        if kid_len == 0 || rest.len() < kid_len + NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let (kid, rest) = rest.split_at(kid_len);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = nonce.try_into().map_err(|_| SealError::Malformed)?;
        Ok(Self { kid, nonce, body })
    }
}

/// The AES-256-GCM key for one record: HKDF of the server key salted with the binding.
fn record_key(server_key: &ServerKey, binding: &[u8]) -> LessSafeKey {
    let unbound: UnboundKey = hkdf::Salt::new(hkdf::HKDF_SHA256, binding)
        .extract(server_key.secret().expose())
        .expand(&[RECORD_KEY_INFO], &AES_256_GCM)
        .map(UnboundKey::from)
        .expect("HKDF-SHA256 expands to one AES-256 key");
    LessSafeKey::new(unbound)
}

fn associated_data(kid: &[u8], store_key: &str) -> Vec<u8> {
    [AAD_PREFIX, kid, b"\0", store_key.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::secret::SecretString;

    const STORE_KEY: &str = "s:abc";
    const BINDING: &[u8] = &[7; 32];
    const PLAINTEXT: &[u8] = b"{\"access_token\":\"at-secret\"}";

    fn entry(kid: &str, byte: u8) -> SecretString {
        SecretString::new(format!("{kid}:{}", STANDARD.encode([byte; 32])))
    }

    fn sealer(entries: &[(&str, u8)]) -> Sealer {
        let entries: Vec<_> = entries.iter().map(|(kid, b)| entry(kid, *b)).collect();
        Sealer::new(KeyRing::from_config(&entries).expect("valid ring"))
    }

    fn a() -> Sealer {
        sealer(&[("ka", 0xa1)])
    }

    #[test]
    fn sealed_record_opens_to_its_plaintext_under_the_primary_key() {
        let sealer = a();
        let sealed = sealer.seal(STORE_KEY, BINDING, PLAINTEXT);
        let opened = sealer.open(STORE_KEY, BINDING, &sealed).expect("opens");
        assert_eq!(opened.plaintext.as_slice(), PLAINTEXT);
        assert!(!opened.stale_key);
        assert_eq!(sealed.len(), 2 + 2 + NONCE_LEN + PLAINTEXT.len() + TAG_LEN);
        assert_eq!(&sealed[..4], b"\x01\x02ka");
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let sealer = a();
        let sealed = sealer.seal(STORE_KEY, BINDING, b"");
        assert_eq!(
            sealer
                .open(STORE_KEY, BINDING, &sealed)
                .unwrap()
                .plaintext
                .as_slice(),
            b""
        );
    }

    #[test]
    fn sealed_record_does_not_contain_the_plaintext() {
        let sealed = a().seal(STORE_KEY, BINDING, PLAINTEXT);
        assert!(!sealed.windows(9).any(|w| w == b"at-secret"));
    }

    #[test]
    fn wrong_binding_fails_to_open() {
        let sealer = a();
        let sealed = sealer.seal(STORE_KEY, BINDING, PLAINTEXT);
        let other = [8u8; 32];
        assert!(matches!(
            sealer.open(STORE_KEY, &other, &sealed),
            Err(SealError::Forged)
        ));
        assert!(matches!(
            sealer.open(STORE_KEY, b"", &sealed),
            Err(SealError::Forged)
        ));
    }

    #[test]
    fn record_moved_to_another_store_key_fails_to_open() {
        let sealer = a();
        let sealed = sealer.seal(STORE_KEY, BINDING, PLAINTEXT);
        let moved = sealer.open("s:abd", BINDING, &sealed);
        assert!(matches!(moved, Err(SealError::Forged)));
    }

    #[test]
    fn same_server_key_under_another_kid_fails_to_open() {
        // Same key bytes, different kid: the kid is authenticated, not just a lookup hint.
        let sealed = sealer(&[("ka", 0xa1)]).seal(STORE_KEY, BINDING, PLAINTEXT);
        let mut relabelled = sealed.clone();
        relabelled[2..4].copy_from_slice(b"kb");
        let both = sealer(&[("ka", 0xa1), ("kb", 0xa1)]);
        assert!(both.open(STORE_KEY, BINDING, &sealed).is_ok());
        assert!(matches!(
            both.open(STORE_KEY, BINDING, &relabelled),
            Err(SealError::Forged)
        ));
    }

    #[test]
    fn a_flipped_bit_in_any_region_fails_to_open() {
        let sealer = sealer(&[("ka", 0xa1), ("kb", 0xb2)]);
        let sealed = sealer.seal(STORE_KEY, BINDING, PLAINTEXT);
        let nonce_at = 4;
        let body_at = nonce_at + NONCE_LEN;
        let tag_at = sealed.len() - TAG_LEN;
        let regions = [
            ("version", 0),
            ("kid length", 1),
            ("kid", 2),
            ("kid (to another configured kid)", 3),
            ("nonce", nonce_at),
            ("nonce end", body_at - 1),
            ("ciphertext", body_at),
            ("ciphertext end", tag_at - 1),
            ("tag", tag_at),
            ("tag end", sealed.len() - 1),
        ];
        for (region, at) in regions {
            let mut tampered = sealed.clone();
            tampered[at] ^= if region.contains("another") {
                b'a' ^ b'b'
            } else {
                0x01
            };
            let result = sealer.open(STORE_KEY, BINDING, &tampered);
            assert!(result.is_err(), "tampered {region} opened");
        }
        let mut version = sealed.clone();
        version[0] = 0x02;
        assert!(matches!(
            sealer.open(STORE_KEY, BINDING, &version),
            Err(SealError::Malformed)
        ));
        let mut kid = sealed;
        kid[3] = b'z';
        assert!(matches!(
            sealer.open(STORE_KEY, BINDING, &kid),
            Err(SealError::UnknownKey)
        ));
    }

    #[test]
    fn every_truncation_is_malformed_or_forged_never_a_panic() {
        let sealer = a();
        let sealed = sealer.seal(STORE_KEY, BINDING, PLAINTEXT);
        let shortest = 2 + 2 + NONCE_LEN + TAG_LEN;
        for cut in 0..sealed.len() {
            let result = sealer.open(STORE_KEY, BINDING, &sealed[..cut]);
            if cut < shortest {
                assert!(matches!(result, Err(SealError::Malformed)), "cut {cut}");
            } else {
                assert!(matches!(result, Err(SealError::Forged)), "cut {cut}");
            }
        }
    }

    #[test]
    fn rotation_keeps_old_records_readable_until_the_old_key_is_removed() {
        let sealed = a().seal(STORE_KEY, BINDING, PLAINTEXT);

        let rotated = sealer(&[("kb", 0xb2), ("ka", 0xa1)]);
        let opened = rotated
            .open(STORE_KEY, BINDING, &sealed)
            .expect("old key still opens");
        assert_eq!(opened.plaintext.as_slice(), PLAINTEXT);
        assert!(
            opened.stale_key,
            "record under a non-primary key not flagged"
        );
        let resealed = rotated.seal(STORE_KEY, BINDING, &opened.plaintext);
        assert!(
            !rotated
                .open(STORE_KEY, BINDING, &resealed)
                .unwrap()
                .stale_key
        );

        let retired = sealer(&[("kb", 0xb2)]);
        let result = retired.open(STORE_KEY, BINDING, &sealed);
        assert!(matches!(result, Err(SealError::UnknownKey)));
    }

    #[test]
    fn two_seals_of_the_same_plaintext_use_different_nonces() {
        let sealer = a();
        let one = sealer.seal(STORE_KEY, BINDING, PLAINTEXT);
        let two = sealer.seal(STORE_KEY, BINDING, PLAINTEXT);
        assert_ne!(one[4..4 + NONCE_LEN], two[4..4 + NONCE_LEN]);
        assert_ne!(one, two);
    }

    #[test]
    fn store_key_is_deterministic_namespaced_and_hides_the_id() {
        let id = b"session-id-0123456789";
        let key = a().store_key("s", id);
        assert_eq!(key, a().store_key("s", id));
        assert_eq!(
            key,
            sealer(&[("other", 0x33)]).store_key("s", id),
            "depends on server key"
        );
        assert!(key.starts_with("s:"));
        assert_eq!(key.len(), 2 + 43);
        assert!(!key.contains("session-id"));
        assert!(!key.contains(&URL_SAFE_NO_PAD.encode(id)));
        assert_ne!(a().store_key("t", id), format!("t:{}", &key[2..]));
        assert_ne!(a().store_key("s", b"session-id-0123456788"), key);
    }

    #[test]
    fn index_keys_are_keyed_per_server_key_primary_first() {
        let ring_a = a();
        let ring_b = sealer(&[("kb", 0xb2)]);
        let both = sealer(&[("kb", 0xb2), ("ka", 0xa1)]);
        let [under_a] = ring_a.index_keys("sub", "alice").try_into().unwrap();
        let [under_b] = ring_b.index_keys("sub", "alice").try_into().unwrap();
        assert_ne!(under_a, under_b);
        assert_eq!(both.index_keys("sub", "alice"), [under_b, under_a.clone()]);
        assert!(under_a.starts_with("i:sub:") && !under_a.contains("alice"));
        assert_eq!(
            ring_a.index_keys("sub", "alice"),
            std::slice::from_ref(&under_a)
        );
        assert_ne!(ring_a.index_keys("sid", "alice")[0][6..], under_a[6..]);
        assert_ne!(ring_a.index_keys("sub", "alicf")[0], under_a);
    }

    #[test]
    fn debug_of_a_sealer_shows_no_key_material() {
        assert_eq!(format!("{:?}", a()), "Sealer { ring: KeyRing([redacted]) }");
    }
}
