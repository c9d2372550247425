//! [`Count`] on PostgreSQL: one `count(*)` over a range of the records' primary key, for
//! `ward_sessions_active` (run rarely: its cost grows with the number of records).

use async_trait::async_trait;
use ward_store::{Count, StoreError};

use crate::PostgresStore;
use crate::error::{unavailable, undecodable};

#[async_trait]
impl Count for PostgresStore {
    async fn count_live(&self, prefix: &str) -> Result<u64, StoreError> {
        let (now, from) = (self.now(), prefix.as_bytes());
        let until = prefix_end(from);
        self.bounded(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&self.sql.count_live)
                .await
                .map_err(unavailable)?;
            let row = client
                .query_one(&statement, &[&from, &until, &now])
                .await
                .map_err(unavailable)?;
            let live: i64 = row.try_get(0).map_err(undecodable)?;
            Ok(u64::try_from(live).unwrap_or(0))
        })
        .await
    }
}

/// The first byte string past every string that starts with `prefix` (its last byte below
/// 0xFF raised by one, the 0xFF bytes after it dropped); `None` when there is none (empty or
/// all 0xFF).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|b| *b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_last_byte_raised() {
        assert_eq!(prefix_end(b"s:"), Some(b"s;".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
