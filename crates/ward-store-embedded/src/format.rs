//! The on-disk encoding of one record, versioned by its first byte.
//!
//! Format 1: `[0x01][expires_at u64 BE][created_at u64 BE][updated_at u64 BE]`
//! `[index count u32 BE]{[len u32 BE][utf-8 bytes]}*[value]`.
//! The value runs to the end, so it needs no length. A reader meeting another first byte
//! refuses the record ([`FormatError::UnknownFormat`]) rather than guessing.

use ward_store::{Record, UnixTime};

const FORMAT_V1: u8 = 1;

/// Why stored bytes are not a record this build can read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Written by another (newer) version of Ward.
    #[error("record in unknown format {0}")]
    UnknownFormat(u8),
    /// Shorter than its own lengths say.
    #[error("record truncated")]
    Truncated,
    /// An index name that is not UTF-8.
    #[error("record index is not UTF-8")]
    IndexNotUtf8,
}

/// Encodes `record` in the current format.
pub fn encode(record: &Record) -> Vec<u8> {
    let index_bytes: usize = record.indexes.iter().map(|i| 4 + i.len()).sum();
    let mut out = Vec::with_capacity(1 + 24 + 4 + index_bytes + record.value.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&record.expires_at.to_be_bytes());
    out.extend_from_slice(&record.created_at.to_be_bytes());
    out.extend_from_slice(&record.updated_at.to_be_bytes());
    out.extend_from_slice(&len_u32(record.indexes.len()).to_be_bytes());
    for index in &record.indexes {
        out.extend_from_slice(&len_u32(index.len()).to_be_bytes());
        out.extend_from_slice(index.as_bytes());
    }
    out.extend_from_slice(&record.value);
    out
}

/// Lengths are bounded far below 4 GiB by the session record size; saturating keeps the
/// encoder total, and such a record would then fail to decode instead of mis-decoding.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Decodes what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Record, FormatError> {
    let mut rest = Reader(bytes);
    match rest.take(1)?[0] {
        FORMAT_V1 => {}
        other => return Err(FormatError::UnknownFormat(other)),
    }
    let expires_at = rest.u64()?;
    let created_at = rest.u64()?;
    let updated_at = rest.u64()?;
    let count = rest.u32()?;
    // Each index takes at least 4 bytes: refuse counts the input cannot hold before allocating.
    if usize::try_from(count).map_or(true, |c| c > rest.0.len() / 4) {
        return Err(FormatError::Truncated);
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = rest.u32()? as usize;
        let raw = rest.take(len)?;
        let index = std::str::from_utf8(raw).map_err(|_| FormatError::IndexNotUtf8)?;
        indexes.push(index.to_owned());
    }
    Ok(Record {
        value: rest.0.to_vec(),
        expires_at,
        indexes,
        created_at,
        updated_at,
    })
}

/// Reads only the expiry, for the read paths that may skip decoding the rest.
pub fn expires_at(bytes: &[u8]) -> Result<UnixTime, FormatError> {
    let mut rest = Reader(bytes);
    match rest.take(1)?[0] {
        FORMAT_V1 => rest.u64(),
        other => Err(FormatError::UnknownFormat(other)),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.0.len() < n {
            return Err(FormatError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        let mut buf = [0u8; 4];
        buf.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(buf))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            value: b"sealed\0bytes".to_vec(),
            expires_at: 1_700_000_600,
            created_at: 1_700_000_000,
            updated_at: 1_700_000_300,
            indexes: vec!["i:sub:abc".into(), "i:sid:ü".into()],
        }
    }

    #[test]
    fn encoded_record_decodes_to_itself() {
        let record = sample();
        let bytes = encode(&record);
        assert_eq!(decode(&bytes).unwrap(), record);
        assert_eq!(expires_at(&bytes).unwrap(), record.expires_at);
    }

    #[test]
    fn unknown_format_byte_is_refused() {
        let mut bytes = encode(&sample());
        bytes[0] = 2;
        assert!(matches!(decode(&bytes), Err(FormatError::UnknownFormat(2))));
        assert!(matches!(
            expires_at(&bytes),
            Err(FormatError::UnknownFormat(2))
        ));
    }

    #[test]
    fn every_truncation_fails_without_panicking() {
        let bytes = encode(&Record {
            value: Vec::new(),
            ..sample()
        });
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn huge_index_count_is_refused_before_allocating() {
        let mut bytes = vec![FORMAT_V1];
        bytes.extend_from_slice(&[0u8; 24]);
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(&bytes), Err(FormatError::Truncated)));
    }
}
