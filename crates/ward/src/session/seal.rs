//! Sealing records with AES-256-GCM before they reach any backend (SPEC §6).
//! (Stub: to be implemented.)

use super::keyring::KeyRing;

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
    /// The plaintext.
    pub plaintext: Vec<u8>,
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
    pub fn seal(&self, _store_key: &str, _binding: &[u8], _plaintext: &[u8]) -> Vec<u8> {
        todo!()
    }

    /// Opens what [`Sealer::seal`] produced for the same `store_key` and `binding`.
    pub fn open(
        &self,
        _store_key: &str,
        _binding: &[u8],
        _sealed: &[u8],
    ) -> Result<Opened, SealError> {
        todo!()
    }

    /// The store key of record `id` in `namespace` (`"s"` session, `"t"` login transaction):
    /// a one-way hash, so a copy of the store yields no cookie.
    pub fn store_key(&self, _namespace: &str, _id: &[u8]) -> String {
        todo!()
    }

    /// Index entries for `kind` (`"sub"`, `"sid"`) = `value`: a keyed hash under every server
    /// key, primary first. Records are indexed under the first; lookups try all.
    pub fn index_keys(&self, _kind: &str, _value: &str) -> Vec<String> {
        todo!()
    }
}
