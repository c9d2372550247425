//! Session administration without the browser's cookie: list and revoke the sessions of a
//! `sub`, for the admin API and `ward sessions`.
//!
//! A session record opens only with its cookie (see [`super::seal`]), so administration works
//! from what the store can tell without opening anything: the `sub` index entries (keyed
//! hashes under every ring key, since a record is indexed under the key that was primary when
//! it was last written), each record's store key and its times. What it shows of a session is
//! a short prefix of the store key — itself a one-way hash of the id — the same prefix the
//! access log prints, never a token, a claim or the cookie.

use serde::Serialize;
use ward_store::{RecordInfo, SessionStore, StoreError, UnixTime};

use super::manager::SessionManager;
use super::seal::Sealer;

/// Store-key prefix of session records (the manager's session namespace and its separator).
/// Other records never carry a `sub` index, but only sessions are administered here.
const SESSION_KEY_PREFIX: &str = "s:";
/// Characters of the key hash shown as a session's id, as in `LoadedSession::log_id`.
const ID_LEN: usize = 8;
/// Characters of the keyed `sub` hash that name a subject in logs.
const SUBJECT_LOG_LEN: usize = 8;

/// One session as administration sees it. Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// A short prefix of the store key (a hash of the session id): correlates with the
    /// access log's `session` field, opens nothing.
    pub id: String,
    /// When the session was created (the login).
    pub created_at: UnixTime,
    /// When the session was last written: its last activity, to the slide granularity.
    pub last_seen: UnixTime,
    /// When it ends unless used again (the earlier of idle and absolute expiry).
    pub expires_at: UnixTime,
}

impl SessionInfo {
    fn from_record(info: &RecordInfo) -> Self {
        let hash = info
            .key
            .strip_prefix(SESSION_KEY_PREFIX)
            .unwrap_or(&info.key);
        Self {
            id: hash.chars().take(ID_LEN).collect(),
            created_at: info.created_at,
            last_seen: info.updated_at,
            expires_at: info.expires_at,
        }
    }
}

/// Administration of the sessions in `store`, finding them with `sealer`'s index keys.
/// Needs no IdP and no cookie, so `ward sessions` can run it on the store alone.
#[derive(Clone, Copy)]
pub struct SessionAdmin<'a> {
    store: &'a dyn SessionStore,
    sealer: &'a Sealer,
}

impl<'a> SessionAdmin<'a> {
    /// Administration over `store`, with the key ring of the Ward instances that wrote it.
    pub fn new(store: &'a dyn SessionStore, sealer: &'a Sealer) -> Self {
        Self { store, sealer }
    }

    /// Administration of a running manager's sessions.
    pub fn of(sessions: &'a SessionManager) -> Self {
        Self::new(sessions.store().as_ref(), sessions.sealer())
    }

    /// The live sessions of `sub`, oldest first.
    pub async fn list(&self, sub: &str) -> Result<Vec<SessionInfo>, StoreError> {
        let records = self.records(sub).await?;
        Ok(records.iter().map(SessionInfo::from_record).collect())
    }

    /// Deletes every live session of `sub`; returns how many were deleted. Their cookies
    /// then read as "no session" (`401`). Logs `session_revoked` with the count and the
    /// subject only as a short keyed hash.
    pub async fn revoke(&self, sub: &str) -> Result<u64, StoreError> {
        let mut revoked = 0;
        for record in self.records(sub).await? {
            if self.store.delete(&record.key).await? {
                revoked += 1;
            }
        }
        tracing::warn!(
            event = "session_revoked",
            reason = "admin",
            subject = %self.subject_log_id(sub),
            count = revoked,
            "sessions revoked by an administrator"
        );
        Ok(revoked)
    }

    /// A short keyed hash naming `sub` in logs: stable across lines for correlation, not
    /// reversible by guessing without the server key.
    pub fn subject_log_id(&self, sub: &str) -> String {
        self.sealer
            .index_keys("sub", sub)
            .first()
            .and_then(|index| index.rsplit(':').next())
            .map(|hash| hash.chars().take(SUBJECT_LOG_LEN).collect())
            .unwrap_or_default()
    }

    /// The session records indexed under `sub` by any ring key, each once, oldest first.
    async fn records(&self, sub: &str) -> Result<Vec<RecordInfo>, StoreError> {
        let mut records: Vec<RecordInfo> = Vec::new();
        // A store without indexes (cookie) has no sessions to find.
        let Some(indexes) = self.store.indexes() else {
            return Ok(records);
        };
        for index in self.sealer.index_keys("sub", sub) {
            for info in indexes.list_by_index(&index).await? {
                if info.key.starts_with(SESSION_KEY_PREFIX)
                    && !records.iter().any(|r| r.key == info.key)
                {
                    records.push(info);
                }
            }
        }
        records.sort_by(|a, b| (a.created_at, &a.key).cmp(&(b.created_at, &b.key)));
        Ok(records)
    }
}

/// `sessions` as a plain-text table for `ward sessions list`, times in UTC.
pub fn table(sessions: &[SessionInfo]) -> String {
    let mut out = format!(
        "{:<8}  {:<20}  {:<20}  EXPIRES\n",
        "ID", "CREATED", "LAST SEEN"
    );
    for s in sessions {
        out.push_str(&format!(
            "{:<8}  {:<20}  {:<20}  {}\n",
            s.id,
            utc(s.created_at),
            utc(s.last_seen),
            utc(s.expires_at)
        ));
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a unix time (proleptic Gregorian calendar, days-to-civil).
fn utc(time: UnixTime) -> String {
    let (days, secs) = (time / 86_400, time % 86_400);
    // Shift the epoch to 0000-03-01 so leap days end each 400-year era's years.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// The live sessions of `sub` in `sessions`' store, oldest first.
pub async fn list_sessions(
    sessions: &SessionManager,
    sub: &str,
) -> Result<Vec<SessionInfo>, StoreError> {
    SessionAdmin::of(sessions).list(sub).await
}

/// Revokes every live session of `sub`; returns how many there were.
pub async fn revoke_sessions(sessions: &SessionManager, sub: &str) -> Result<u64, StoreError> {
    SessionAdmin::of(sessions).revoke(sub).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ward_store::memory::MemoryStore;
    use ward_store::{Clock, ManualClock};

    use super::*;
    use crate::oidc::TokenSet;
    use crate::secret::SecretString;
    use crate::session::cookie::CookieAttributes;
    use crate::session::keyring::KeyRing;
    use crate::session::{LoadedSession, SessionSettings};

    const OLD_KEY: &str = "old:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const NEW_KEY: &str = "new:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4";

    fn manager(store: Arc<MemoryStore>, clock: Arc<ManualClock>, keys: &[&str]) -> SessionManager {
        let keys: Vec<SecretString> = keys.iter().map(|k| SecretString::new(*k)).collect();
        let ring = KeyRing::from_config(&keys).expect("test key ring");
        let settings = SessionSettings {
            idle_timeout: 1800,
            absolute_timeout: 8 * 3600,
            cookie_name: "__Host-ward".into(),
            cookie: CookieAttributes {
                secure: true,
                same_site: "Strict",
            },
        };
        SessionManager::new(store, Sealer::new(ring), clock, settings)
    }

    fn tokens(sub: &str) -> TokenSet {
        TokenSet {
            access_token: SecretString::new("at-secret-value"),
            refresh_token: Some(SecretString::new("rt-secret-value")),
            id_token: SecretString::new("id-token-value"),
            access_expires_at: None,
            sub: sub.into(),
            sid: Some("sid-1".into()),
            claims: serde_json::Map::new(),
            dpop_key: None,
        }
    }

    struct Fixture {
        store: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
        sessions: SessionManager,
    }

    fn fixture() -> Fixture {
        let clock = Arc::new(ManualClock::new(1_700_000_000));
        let store = Arc::new(MemoryStore::new(clock.clone()));
        let sessions = manager(store.clone(), clock.clone(), &[OLD_KEY]);
        Fixture {
            store,
            clock,
            sessions,
        }
    }

    async fn login(sessions: &SessionManager, sub: &str) -> LoadedSession {
        sessions.create(tokens(sub)).await.expect("create session")
    }

    fn cookie_header(session: &LoadedSession) -> String {
        format!("__Host-ward={}", session.cookie.encode())
    }

    #[tokio::test]
    async fn lists_only_the_sessions_of_the_given_subject_with_their_times() {
        let f = fixture();
        let first = login(&f.sessions, "alice").await;
        f.clock.advance(10);
        let second = login(&f.sessions, "alice").await;
        login(&f.sessions, "bob").await;

        let listed = list_sessions(&f.sessions, "alice").await.unwrap();

        let start = 1_700_000_000;
        assert_eq!(
            listed,
            vec![
                SessionInfo {
                    id: first.log_id().to_owned(),
                    created_at: start,
                    last_seen: start,
                    expires_at: start + 1800,
                },
                SessionInfo {
                    id: second.log_id().to_owned(),
                    created_at: start + 10,
                    last_seen: start + 10,
                    expires_at: start + 10 + 1800,
                },
            ]
        );
        assert!(
            list_sessions(&f.sessions, "carol")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_listing_shows_no_token_claim_or_full_key() {
        let f = fixture();
        let session = login(&f.sessions, "alice").await;

        let listed = list_sessions(&f.sessions, "alice").await.unwrap();
        let json = serde_json::to_string(&listed).unwrap();

        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id.len(), ID_LEN);
        for secret in [
            "at-secret-value",
            "rt-secret-value",
            "id-token-value",
            "alice",
            "sid-1",
            session.key.as_str(),
            session.cookie.encode().as_str(),
            session.data.csrf_token.expose(),
        ] {
            assert!(!json.contains(secret), "listing leaks {secret:?}: {json}");
        }
    }

    #[tokio::test]
    async fn revoking_deletes_every_session_of_the_subject_and_no_other() {
        let f = fixture();
        let a1 = login(&f.sessions, "alice").await;
        let a2 = login(&f.sessions, "alice").await;
        let bob = login(&f.sessions, "bob").await;

        assert_eq!(revoke_sessions(&f.sessions, "alice").await.unwrap(), 2);

        for gone in [&a1, &a2] {
            let loaded = f.sessions.load(Some(&cookie_header(gone))).await.unwrap();
            assert!(loaded.is_none(), "a revoked session no longer loads");
        }
        let kept = f.sessions.load(Some(&cookie_header(&bob))).await.unwrap();
        assert!(kept.is_some(), "another subject's session survives");
        assert_eq!(revoke_sessions(&f.sessions, "alice").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn sessions_indexed_under_a_rotated_out_primary_key_are_still_found() {
        let f = fixture();
        let before = login(&f.sessions, "alice").await;
        let rotated = manager(f.store.clone(), f.clock.clone(), &[NEW_KEY, OLD_KEY]);
        f.clock.advance(1);
        let after = login(&rotated, "alice").await;

        let listed = list_sessions(&rotated, "alice").await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, vec![before.log_id(), after.log_id()]);

        assert_eq!(revoke_sessions(&rotated, "alice").await.unwrap(), 2);
        assert!(list_sessions(&rotated, "alice").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn expired_sessions_are_not_listed() {
        let f = fixture();
        login(&f.sessions, "alice").await;
        f.clock.advance(1800);

        assert!(
            list_sessions(&f.sessions, "alice")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(f.clock.now(), 1_700_001_800);
    }

    #[test]
    fn unix_times_print_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn the_table_has_a_header_and_one_row_per_session() {
        let rows = table(&[SessionInfo {
            id: "abcdefgh".into(),
            created_at: 0,
            last_seen: 60,
            expires_at: 1_800,
        }]);
        let lines: Vec<&str> = rows.lines().collect();

        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID "));
        assert!(
            lines.iter().all(|l| !l.ends_with(' ')),
            "no trailing blanks"
        );
        assert!(lines[1].starts_with("abcdefgh  1970-01-01T00:00:00Z  1970-01-01T00:01:00Z"));
        assert!(lines[1].contains("1970-01-01T00:30:00Z"));
    }

    #[test]
    fn the_subject_log_id_is_short_keyed_and_stable() {
        let f = fixture();
        let admin = SessionAdmin::of(&f.sessions);
        let id = admin.subject_log_id("alice");

        assert_eq!(id.len(), SUBJECT_LOG_LEN);
        assert_eq!(id, admin.subject_log_id("alice"));
        assert_ne!(id, admin.subject_log_id("bob"));
        assert!(!id.contains("alice"));
        let other_ring = manager(f.store.clone(), f.clock.clone(), &[NEW_KEY]);
        assert_ne!(id, SessionAdmin::of(&other_ring).subject_log_id("alice"));
    }
}
