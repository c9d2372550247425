//! The server key ring of `[crypto] keys`: the first key seals, every key opens.
//! (Stub: to be implemented.)

use crate::secret::SecretString;

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

/// The server keys, primary first.
#[derive(Clone)]
pub struct KeyRing {}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing([redacted])")
    }
}

impl KeyRing {
    /// Parses `"<kid>:<base64 32 bytes>"` entries.
    pub fn from_config(_entries: &[SecretString]) -> Result<Self, KeyRingError> {
        todo!()
    }

    /// A fresh `"<kid>:<base64>"` entry for `ward keygen`.
    pub fn generate_entry() -> String {
        todo!()
    }

    /// The key id of the sealing key.
    pub fn primary_kid(&self) -> &str {
        todo!()
    }
}
