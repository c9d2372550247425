//! The server key ring of `[crypto] keys`: the first key seals, every key opens.
//!
//! An entry is `"<kid>:<base64 of 32 bytes>"`. The key id travels in every sealed record
//! (so a record finds its key after rotation) and is not secret; the key bytes never leave
//! [`KeyBytes`], whose `Debug` redacts, and no error message quotes an entry.

use std::sync::Arc;

use aws_lc_rs::{hkdf, hmac};
use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use zeroize::Zeroizing;

use crate::random;
use crate::secret::SecretString;

/// Longest key id accepted; it is stored in every record, so it stays short.
pub const MAX_KID_LEN: usize = 32;

/// Length of a server key in bytes (AES-256 / HKDF-SHA256 input).
pub const KEY_LEN: usize = 32;

/// HKDF `info` separating the index-hashing key from record keys.
const INDEX_KEY_INFO: &[u8] = b"ward/v1/index";

/// Why the configured keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// No key configured.
    #[error("at least one key is required")]
    Empty,
    /// One entry is malformed; `index` is its position, the text never includes key material.
    #[error("key #{index}: {reason}")]
    Malformed {
        /// Position in `[crypto] keys`.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Raw server key bytes. `Debug` prints nothing of them; they are read only inside `session`
/// and zeroed when the ring that holds them is dropped.
#[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub(crate) struct KeyBytes([u8; KEY_LEN]);

impl KeyBytes {
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyBytes([redacted])")
    }
}

/// One server key: its id, its bytes and the HMAC key it derives for index entries.
pub(crate) struct ServerKey {
    kid: String,
    secret: KeyBytes,
    index_key: hmac::Key,
}

impl ServerKey {
    fn new(kid: String, secret: &[u8; KEY_LEN]) -> Self {
        let index_key = hkdf::Salt::new(hkdf::HKDF_SHA256, &[])
            .extract(secret)
            .expand(&[INDEX_KEY_INFO], hmac::HMAC_SHA256)
            .map(hmac::Key::from)
            .expect("HKDF-SHA256 expands to one HMAC-SHA256 key");
        Self {
            kid,
            secret: KeyBytes(*secret),
            index_key,
        }
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn secret(&self) -> &KeyBytes {
        &self.secret
    }

    /// The key that turns `sub`/`sid` values into index entries.
    pub(crate) fn index_key(&self) -> &hmac::Key {
        &self.index_key
    }
}

/// The server keys, primary first.
///
/// Invariant: non-empty, and key ids are distinct (a record's kid names one key).
#[derive(Clone)]
pub struct KeyRing {
    keys: Arc<[ServerKey]>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing([redacted])")
    }
}

impl KeyRing {
    /// Parses `"<kid>:<base64 32 bytes>"` entries (standard or url-safe base64, padding
    /// optional; kid of 1 to 32 characters from `A-Z a-z 0-9 _ -`), primary first.
    pub fn from_config(entries: &[SecretString]) -> Result<Self, KeyRingError> {
        if entries.is_empty() {
            return Err(KeyRingError::Empty);
        }
        let mut keys: Vec<ServerKey> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let malformed = |reason| KeyRingError::Malformed { index, reason };
            let (kid, secret) = parse_entry(entry.expose()).map_err(malformed)?;
            if keys.iter().any(|k| k.kid == kid) {
                return Err(malformed("duplicate key id"));
            }
            keys.push(ServerKey::new(kid, &secret));
        }
        Ok(Self { keys: keys.into() })
    }

    /// A fresh `"k<8 hex>:<base64 of 32 random bytes>"` entry for `ward keygen`. The random
    /// kid keeps two keys generated the same day from colliding in one ring.
    pub fn generate_entry() -> String {
        let kid: String = random::bytes::<4>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = Zeroizing::new(random::bytes::<KEY_LEN>());
        format!("k{kid}:{}", STANDARD.encode(key.as_slice()))
    }

    /// The key id of the sealing key.
    pub fn primary_kid(&self) -> &str {
        &self.primary().kid
    }

    /// Every key id, primary first (ids are not secret: for logs and `ward check`).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    pub(crate) fn primary(&self) -> &ServerKey {
        // The invariant (non-empty) is established by `from_config`, the only constructor.
        &self.keys[0]
    }

    /// The key named `kid`, if configured.
    pub(crate) fn find(&self, kid: &[u8]) -> Option<&ServerKey> {
        self.keys.iter().find(|k| k.kid.as_bytes() == kid)
    }

    pub(crate) fn keys(&self) -> &[ServerKey] {
        &self.keys
    }
}

/// Splits and checks one entry. Reasons are fixed strings: nothing of the entry is echoed.
fn parse_entry(entry: &str) -> Result<(String, Zeroizing<[u8; KEY_LEN]>), &'static str> {
    let Some((kid, encoded)) = entry.trim().split_once(':') else {
        return Err("expected \"<kid>:<base64 of 32 bytes>\"");
    };
    if !valid_kid(kid) {
        return Err("key id must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-'");
    }
    let bytes = decode_base64(encoded).ok_or("key is not valid base64")?;
    let secret: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| "key must decode to exactly 32 bytes")?;
    Ok((kid.to_owned(), Zeroizing::new(secret)))
}

fn valid_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Standard or url-safe alphabet, with or without padding.
fn decode_base64(encoded: &str) -> Option<Zeroizing<Vec<u8>>> {
    let lenient =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [
        GeneralPurpose::new(&alphabet::STANDARD, lenient),
        GeneralPurpose::new(&alphabet::URL_SAFE, lenient),
    ]
    .iter()
    .find_map(|engine| engine.decode(encoded).ok())
    .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};

    const KEY: [u8; KEY_LEN] = [0xfb; KEY_LEN];

    fn ring(entries: &[String]) -> Result<KeyRing, KeyRingError> {
        let entries: Vec<SecretString> = entries.iter().cloned().map(SecretString::from).collect();
        KeyRing::from_config(&entries)
    }

    #[test]
    fn every_base64_flavour_is_accepted() {
        for encoded in [
            STANDARD.encode(KEY),
            STANDARD.encode(KEY).trim_end_matches('=').to_owned(),
            URL_SAFE.encode(KEY),
            URL_SAFE_NO_PAD.encode(KEY),
        ] {
            let ring = ring(&[format!("k1:{encoded}")]).expect("accepted");
            assert_eq!(ring.primary().secret().expose(), &KEY);
        }
    }

    #[test]
    fn first_key_is_primary_and_all_kids_are_listed() {
        let ring = ring(&[
            format!("new_2:{}", STANDARD.encode([1; 32])),
            format!("old-1:{}", STANDARD.encode([2; 32])),
        ])
        .unwrap();
        assert_eq!(ring.primary_kid(), "new_2");
        assert_eq!(ring.kids().collect::<Vec<_>>(), ["new_2", "old-1"]);
        assert!(ring.find(b"old-1").is_some());
        assert!(ring.find(b"old").is_none());
    }

    #[test]
    fn malformed_entries_are_rejected_without_echoing_key_material() {
        let secretish = STANDARD.encode([0x5a; 31]); // one byte short
        let long_kid = "k".repeat(MAX_KID_LEN + 1);
        let cases = [
            secretish.clone(),                              // no kid
            format!(":{secretish}"),                        // empty kid
            format!("{long_kid}:{}", STANDARD.encode(KEY)), // kid too long
            format!("k 1:{}", STANDARD.encode(KEY)),        // space in kid
            format!("k1:{secretish}"),                      // 31 bytes
            format!("k1:{}", STANDARD.encode([0x5a; 33])),  // 33 bytes
            format!("k1:{}!", &secretish[..10]),            // not base64
        ];
        for (i, entry) in cases.iter().enumerate() {
            let error = ring(std::slice::from_ref(entry)).expect_err(&format!("case {i} accepted"));
            let shown = format!("{error} {error:?}");
            assert!(
                !shown.contains(&secretish[..8]),
                "case {i} echoes key material: {shown}"
            );
            assert!(shown.contains("key #0"), "case {i}: {shown}");
        }
    }

    #[test]
    fn duplicate_kids_and_empty_rings_are_rejected() {
        let entry = format!("k1:{}", STANDARD.encode(KEY));
        assert!(matches!(
            ring(&[entry.clone(), entry]),
            Err(KeyRingError::Malformed { index: 1, .. })
        ));
        assert!(matches!(ring(&[]), Err(KeyRingError::Empty)));
    }

    #[test]
    fn generated_entries_parse_and_differ() {
        let (a, b) = (KeyRing::generate_entry(), KeyRing::generate_entry());
        assert_ne!(a, b);
        let ring = ring(&[a.clone(), b]).expect("generated entries parse together");
        assert!(a.starts_with('k') && a.starts_with(ring.primary_kid()));
        assert_eq!(ring.primary_kid().len(), 9);
    }

    #[test]
    fn debug_of_ring_and_key_bytes_redacts() {
        let ring = ring(&[format!("k1:{}", STANDARD.encode(KEY))]).unwrap();
        assert_eq!(format!("{ring:?}"), "KeyRing([redacted])");
        assert!(!format!("{:?}", ring.primary().secret()).contains("251"));
    }
}
