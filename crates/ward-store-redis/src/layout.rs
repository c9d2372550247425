//! Where things live in Redis, and the encodings this backend reads and writes.
//!
//! Under the configured prefix `P` (store keys and index strings are opaque bytes to Redis):
//!
//! | Redis key   | type | holds |
//! | ----------- | ---- | ----- |
//! | `P r:<key>`   | HASH | one record: `f` format (`1`), `exp`, `c`, `u` (unix seconds), `g` write generation, `idx` its index list, `v` the sealed value; native TTL ≈ `exp` |
//! | `P i:<index>` | ZSET | member `<generation><key>`, score `exp`; TTL ≥ its longest-lived member |
//! | `P x`         | ZSET | member `<key>`, score `exp`: the candidates of [`sweep_expired`] |
//! | `P q:<key>`   | HASH | a rate limit's sliding window: field = sub-window index, value = hits; native TTL = until it counts nothing |
//!
//! Format 1 is the `f` field; a record with another or no `f` is refused as corrupt, never
//! guessed at. The generation is 16 lowercase hex digits, fixed width, so an index member
//! splits without a separator.
//!
//! [`sweep_expired`]: ward_store::Sweep::sweep_expired

use redis::Value;
use ward_store::UnixTime;

/// The value of a record's `f` field in the format this build writes.
pub(crate) const FORMAT: &str = "1";

/// Width of an encoded generation.
const GENERATION_LEN: usize = 16;

/// Why bytes read from Redis are not something this build wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// A record whose `f` field is missing or names a format this build does not know.
    #[error("record in an unknown format")]
    UnknownFormat,
    /// A field that should hold a number of seconds does not.
    #[error("record time is not a number")]
    BadNumber,
    /// An index list or index member shorter than its own lengths say, or not UTF-8.
    #[error("index data malformed")]
    BadIndex,
    /// Redis answered with a shape the scripts never return.
    #[error("unexpected reply shape from Redis")]
    UnexpectedReply,
}

/// The Redis key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.as_bytes().to_vec(),
        }
    }

    fn join(&self, tag: &[u8], name: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + tag.len() + name.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(tag);
        out.extend_from_slice(name);
        out
    }

    /// The HASH holding the record stored under `key`.
    pub(crate) fn record(&self, key: &str) -> Vec<u8> {
        self.join(b"r:", key.as_bytes())
    }

    /// The ZSET of the records carrying `index`.
    pub(crate) fn index(&self, index: &str) -> Vec<u8> {
        self.join(b"i:", index.as_bytes())
    }

    /// The HASH of the sliding window of rate-limit key `key` (`ward_store::rate`).
    pub(crate) fn rate(&self, key: &str) -> Vec<u8> {
        self.join(b"q:", key.as_bytes())
    }

    /// The ZSET the sweep reads.
    pub(crate) fn expiry(&self) -> Vec<u8> {
        self.join(b"x", b"")
    }
}

/// A fresh write generation: random, so two writers never share one.
pub(crate) fn new_generation() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The index member naming `key` as written by generation `generation`.
pub(crate) fn member(generation: &str, key: &str) -> Vec<u8> {
    [generation.as_bytes(), key.as_bytes()].concat()
}

/// Splits a member into (generation, key).
pub(crate) fn split_member(member: &[u8]) -> Result<(&str, &str), FormatError> {
    if member.len() < GENERATION_LEN {
        return Err(FormatError::BadIndex);
    }
    let (generation, key) = member.split_at(GENERATION_LEN);
    let generation = std::str::from_utf8(generation).map_err(|_| FormatError::BadIndex)?;
    let key = std::str::from_utf8(key).map_err(|_| FormatError::BadIndex)?;
    Ok((generation, key))
}

/// Encodes a record's index list as `{[len u32 BE][utf-8 bytes]}*`.
pub(crate) fn encode_indexes(indexes: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(indexes.iter().map(|i| 4 + i.len()).sum());
    for index in indexes {
        // An index string over 4 GiB cannot reach here (Redis refuses 512 MiB arguments).
        let len = u32::try_from(index.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(index.as_bytes());
    }
    out
}

/// Decodes what [`encode_indexes`] wrote.
pub(crate) fn decode_indexes(mut bytes: &[u8]) -> Result<Vec<String>, FormatError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or(FormatError::BadIndex)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(FormatError::BadIndex);
        }
        let (index, rest) = rest.split_at(len);
        out.push(
            std::str::from_utf8(index)
                .map_err(|_| FormatError::BadIndex)?
                .to_owned(),
        );
        bytes = rest;
    }
    Ok(out)
}

/// The index strings of `indexes` without repeats, in first-seen order.
pub(crate) fn distinct(indexes: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(indexes.len());
    for index in indexes {
        if !out.contains(&index.as_str()) {
            out.push(index);
        }
    }
    out
}

/// Reads a reply field that is either nil or a byte string.
pub(crate) fn bytes(value: &Value) -> Result<Option<&[u8]>, FormatError> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b)),
        Value::SimpleString(s) => Ok(Some(s.as_bytes())),
        _ => Err(FormatError::UnexpectedReply),
    }
}

/// Reads a reply field that must be a byte string.
pub(crate) fn required(value: &Value) -> Result<&[u8], FormatError> {
    bytes(value)?.ok_or(FormatError::UnknownFormat)
}

/// Parses unix seconds stored as decimal text.
pub(crate) fn seconds(value: &Value) -> Result<UnixTime, FormatError> {
    std::str::from_utf8(required(value)?)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(FormatError::BadNumber)
}

/// Reads an integer reply.
pub(crate) fn int(value: &Value) -> Result<i64, FormatError> {
    match value {
        Value::Int(i) => Ok(*i),
        _ => Err(FormatError::UnexpectedReply),
    }
}

/// Reads an array reply.
pub(crate) fn array(value: &Value) -> Result<&[Value], FormatError> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(FormatError::UnexpectedReply),
    }
}

/// Checks that `value` (the `f` field) names [`FORMAT`].
pub(crate) fn check_format(value: &Value) -> Result<(), FormatError> {
    match bytes(value)? {
        Some(f) if f == FORMAT.as_bytes() => Ok(()),
        _ => Err(FormatError::UnknownFormat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_kinds_never_collide() {
        let keys = Keys::new("ward:");
        assert_eq!(keys.record("k"), b"ward:r:k");
        assert_eq!(keys.index("k"), b"ward:i:k");
        assert_eq!(keys.expiry(), b"ward:x");
        assert_ne!(keys.record(""), keys.expiry());
    }

    #[test]
    fn member_splits_back_into_generation_and_key() {
        let generation = new_generation();
        assert_eq!(generation.len(), GENERATION_LEN);
        let m = member(&generation, "s:ünï\0🍪");
        assert_eq!(split_member(&m), Ok((generation.as_str(), "s:ünï\0🍪")));
        assert_eq!(split_member(b"short"), Err(FormatError::BadIndex));
    }

    #[test]
    fn generations_differ() {
        assert_ne!(new_generation(), new_generation());
    }

    #[test]
    fn index_list_round_trips_and_truncation_fails() {
        let indexes = vec!["i:sub:x".to_owned(), String::new(), "i:a\0b".to_owned()];
        let bytes = encode_indexes(&indexes);
        assert_eq!(decode_indexes(&bytes), Ok(indexes));
        // Cuts at 11 and 15 end exactly after an index: valid, shorter lists.
        for cut in (1..bytes.len()).filter(|c| ![11, 15].contains(c)) {
            assert!(
                decode_indexes(&bytes[..cut]).is_err(),
                "cut at {cut} decoded"
            );
        }
        assert_eq!(
            decode_indexes(&[0, 0, 0, 9, b'a']),
            Err(FormatError::BadIndex)
        );
    }

    #[test]
    fn duplicate_indexes_are_dropped() {
        let indexes = vec!["a".to_owned(), "b".to_owned(), "a".to_owned()];
        assert_eq!(distinct(&indexes), vec!["a", "b"]);
    }

    #[test]
    fn numbers_and_formats_are_checked() {
        assert_eq!(
            seconds(&Value::BulkString(b"1700000600".to_vec())),
            Ok(1_700_000_600)
        );
        assert_eq!(
            seconds(&Value::BulkString(b"-3".to_vec())),
            Err(FormatError::BadNumber)
        );
        assert_eq!(seconds(&Value::Nil), Err(FormatError::UnknownFormat));
        assert_eq!(check_format(&Value::BulkString(b"1".to_vec())), Ok(()));
        assert_eq!(
            check_format(&Value::BulkString(b"2".to_vec())),
            Err(FormatError::UnknownFormat)
        );
        assert_eq!(check_format(&Value::Nil), Err(FormatError::UnknownFormat));
    }
}
