//! `[store] kind = "cookie"`: the stateless store. Sealed records travel in the browser's own
//! cookies instead of a server, so the auth logic above stays exactly the same.
//!
//! Each request runs inside a [`CookieContext`] (see [`scoped`]): reads come from
//! the request's cookies, writes and deletes become `Set-Cookie` headers on its response. A
//! session record lives in `<name>.s0`…`<name>.s3` (`SameSite` as the session cookie), the one
//! pending login in `<name>.t0`… (`Lax`, so it comes back with the IdP's redirect). Each chunk
//! stays under browsers' 4 KB per-cookie limit; a record that needs more than
//! [`MAX_CHUNKS`] fails rather than being cut.
//!
//! What this mode cannot do, because nothing is kept server-side: end a session anywhere but
//! in the browser that holds it (logout deletes the cookies; a copied cookie stays valid until
//! it expires), back-channel logout, session administration, and telling apart two logins
//! started in parallel by one browser (the later one wins). `ward check` says so.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, header};
use ward_store::{Clock, Record, SessionStore, StoreError, UnixTime};

use super::cookie::{self, CookieAttributes};
use crate::cookie_header;

/// Most chunks one record may take (4 × ~3.8 KB).
pub const MAX_CHUNKS: usize = 4;
/// Characters of record data per chunk, leaving room for the name and attributes.
const CHUNK_DATA: usize = 3600;
/// Characters of the store key kept in chunk 0 to tell which record the cookies hold.
const KEY_TAG: usize = 16;

tokio::task_local! {
    static CONTEXT: CookieContext;
}

/// The cookies of one request and the `Set-Cookie`s its response will carry.
#[derive(Default)]
pub struct CookieContext {
    incoming: BTreeMap<String, String>,
    /// Last write per cookie name wins (a delete then a put of the same slot is a put).
    outgoing: Mutex<BTreeMap<String, String>>,
}

impl CookieContext {
    /// The context of a request with these headers: its cookies as `cookie_header` reads
    /// them (a name sent twice counts as absent: Ward never guesses which chunk is its own).
    pub fn of(headers: &HeaderMap) -> Self {
        let mut incoming = BTreeMap::new();
        let mut repeated = Vec::new();
        for value in headers.get_all(header::COOKIE) {
            for pair in cookie_header::pairs(value.as_bytes()) {
                let (Ok(name), Ok(value)) = (
                    std::str::from_utf8(pair.name),
                    std::str::from_utf8(pair.value),
                ) else {
                    continue;
                };
                if incoming.insert(name.to_owned(), value.to_owned()).is_some() {
                    repeated.push(name.to_owned());
                }
            }
        }
        for name in repeated {
            incoming.remove(&name);
        }
        Self {
            incoming,
            outgoing: Mutex::default(),
        }
    }
}

/// Runs `work` (the handling of one request) inside `context`; returns what it returned and
/// the `Set-Cookie` values the store wrote meanwhile, for the response.
pub async fn scoped<F: Future>(context: CookieContext, work: F) -> (F::Output, Vec<String>) {
    CONTEXT
        .scope(context, async move {
            let output = work.await;
            let outgoing = CONTEXT.with(|c| {
                std::mem::take(&mut *c.outgoing.lock().unwrap_or_else(PoisonError::into_inner))
            });
            (output, outgoing.into_values().collect())
        })
        .await
}

/// The stateless store of the `cookie` kind.
pub struct CookieStore {
    base: String,
    session: CookieAttributes,
    login: CookieAttributes,
    clock: Arc<dyn Clock>,
}

impl CookieStore {
    /// Records travel in cookies named after `base` (the session cookie's name).
    pub fn new(base: &str, session: CookieAttributes, clock: Arc<dyn Clock>) -> Self {
        let login = CookieAttributes {
            secure: session.secure,
            same_site: "Lax",
        };
        Self {
            base: base.to_owned(),
            session,
            login,
            clock,
        }
    }

    /// The chunk-name stem and attributes of a store key's namespace (`s:` or `t:`).
    fn slot(&self, key: &str) -> Result<(String, &CookieAttributes), StoreError> {
        match key.split_once(':').map(|(ns, _)| ns) {
            Some("s") => Ok((format!("{}.s", self.base), &self.session)),
            Some("t") => Ok((format!("{}.t", self.base), &self.login)),
            _ => Err(unavailable(
                "the cookie store keeps only sessions and pending logins",
            )),
        }
    }

    /// The record held in the request's (or already this response's) chunks, if it is `key`'s.
    fn read(&self, key: &str) -> Result<Option<(UnixTime, Vec<u8>)>, StoreError> {
        let (stem, _) = self.slot(key)?;
        let text = with_context(|c| {
            let outgoing = c.outgoing.lock().unwrap_or_else(PoisonError::into_inner);
            let value = |name: &str| -> Option<String> {
                match outgoing.get(name) {
                    Some(set) => set_cookie_value(set).filter(|v| !v.is_empty()),
                    None => c.incoming.get(name).cloned(),
                }
            };
            let first = value(&format!("{stem}0"))?;
            let (tag, rest) = first.split_once('.')?;
            let (count, data) = rest.split_once('.')?;
            if tag != key_tag(key) {
                return None;
            }
            let count: usize = count
                .parse()
                .ok()
                .filter(|n| (1..=MAX_CHUNKS).contains(n))?;
            let mut all = data.to_owned();
            for i in 1..count {
                all.push_str(&value(&format!("{stem}{i}"))?);
            }
            Some(all)
        })?;
        let Some(text) = text else { return Ok(None) };
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(text) else {
            return Ok(None);
        };
        let Some((expires, value)) = bytes.split_at_checked(8) else {
            return Ok(None);
        };
        let expires_at = u64::from_be_bytes(expires.try_into().unwrap_or_default());
        if expires_at <= self.clock.now() {
            return Ok(None);
        }
        Ok(Some((expires_at, value.to_vec())))
    }

    fn write(&self, key: &str, record: &Record) -> Result<(), StoreError> {
        let (stem, attrs) = self.slot(key)?;
        let mut bytes = record.expires_at.to_be_bytes().to_vec();
        bytes.extend_from_slice(&record.value);
        let data = URL_SAFE_NO_PAD.encode(bytes);
        let chunks: Vec<&str> = data
            .as_bytes()
            .chunks(CHUNK_DATA)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        if chunks.len() > MAX_CHUNKS {
            return Err(StoreError::Corrupt(
                format!(
                    "record needs {} cookies, more than {MAX_CHUNKS}",
                    chunks.len()
                )
                .into(),
            ));
        }
        let max_age = record.expires_at.saturating_sub(self.clock.now());
        with_context(|c| {
            let mut outgoing = c.outgoing.lock().unwrap_or_else(PoisonError::into_inner);
            for i in 0..MAX_CHUNKS {
                let name = format!("{stem}{i}");
                let value = match (i, chunks.get(i)) {
                    (0, Some(chunk)) => format!("{}.{}.{chunk}", key_tag(key), chunks.len()),
                    (_, Some(chunk)) => (*chunk).to_owned(),
                    (_, None) if c.incoming.contains_key(&name) || outgoing.contains_key(&name) => {
                        String::new()
                    }
                    (_, None) => continue,
                };
                let age = if value.is_empty() { 0 } else { max_age };
                outgoing.insert(name.clone(), cookie::set_cookie(&name, &value, age, attrs));
            }
        })
    }

    fn remove(&self, key: &str) -> Result<bool, StoreError> {
        if self.read(key)?.is_none() {
            return Ok(false);
        }
        let (stem, attrs) = self.slot(key)?;
        with_context(|c| {
            let mut outgoing = c.outgoing.lock().unwrap_or_else(PoisonError::into_inner);
            for i in 0..MAX_CHUNKS {
                let name = format!("{stem}{i}");
                if c.incoming.contains_key(&name) || outgoing.contains_key(&name) {
                    outgoing.insert(name.clone(), cookie::set_cookie(&name, "", 0, attrs));
                }
            }
        })?;
        Ok(true)
    }
}

#[async_trait]
impl SessionStore for CookieStore {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        self.write(key, &record)
    }

    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        if self.read(key)?.is_some() {
            return Ok(false);
        }
        self.write(key, &record).map(|()| true)
    }

    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        if self.read(key)?.is_none() {
            return Ok(false);
        }
        self.write(key, &record).map(|()| true)
    }

    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        // Only this request's own cookies can hold the record: compare with what it carries.
        if self.read(key)?.is_none_or(|(_, value)| value != expected) {
            return Ok(false);
        }
        self.write(key, &record).map(|()| true)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(key)?.map(|(_, value)| value))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.read(key)?.map(|(_, value)| value);
        if value.is_some() {
            self.remove(key)?;
        }
        Ok(value)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.remove(key)
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        if self.read(key)?.is_none_or(|(_, value)| value != expected) {
            return Ok(false);
        }
        self.remove(key)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "cookie"
    }

    // No `indexes` (nothing server-side to look up) and no `sweeper` (browsers drop expired
    // cookies themselves): the defaults, `None`.
}

fn with_context<T>(f: impl FnOnce(&CookieContext) -> T) -> Result<T, StoreError> {
    CONTEXT
        .try_with(f)
        .map_err(|_| unavailable("cookie store used outside a request"))
}

fn unavailable(reason: &'static str) -> StoreError {
    StoreError::Unavailable(reason.into())
}

/// The first characters of the key's hash part: enough to tell records apart.
fn key_tag(key: &str) -> &str {
    let hash = key.split_once(':').map_or(key, |(_, h)| h);
    hash.get(..KEY_TAG).unwrap_or(hash)
}

/// The value of a rendered `Set-Cookie`.
fn set_cookie_value(set_cookie: &str) -> Option<String> {
    let pair = set_cookie.split(';').next()?;
    pair.split_once('=').map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_store::ManualClock;

    fn store() -> (CookieStore, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_000));
        let attrs = CookieAttributes {
            secure: true,
            same_site: "Strict",
        };
        (CookieStore::new("__Host-ward", attrs, clock.clone()), clock)
    }

    fn record(value: Vec<u8>, expires_at: u64) -> Record {
        Record {
            value,
            expires_at,
            indexes: vec!["i:sub:x".into()],
            created_at: 1_000,
            updated_at: 1_000,
        }
    }

    /// Runs `f` in a context whose incoming cookies are `incoming`; returns the Set-Cookies.
    async fn in_request<F, Fut>(incoming: &[(String, String)], f: F) -> Vec<String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let context = CookieContext {
            incoming: incoming.iter().cloned().collect(),
            outgoing: Mutex::default(),
        };
        CONTEXT
            .scope(context, async {
                f().await;
                CONTEXT.with(|c| c.outgoing.lock().unwrap().values().cloned().collect())
            })
            .await
    }

    fn as_incoming(set_cookies: &[String]) -> Vec<(String, String)> {
        set_cookies
            .iter()
            .filter_map(|s| {
                let (name, value) = s.split(';').next()?.split_once('=')?;
                (!value.is_empty()).then(|| (name.to_owned(), value.to_owned()))
            })
            .collect()
    }

    #[tokio::test]
    async fn a_large_record_round_trips_through_chunked_cookies_within_limits() {
        let (store, _) = store();
        let value: Vec<u8> = (0..6000u32).map(|i| (i % 251) as u8).collect();
        let written = in_request(&[], || async {
            store
                .put("s:abcdefghijklmnopqrstuvwxyz", record(value.clone(), 2_000))
                .await
                .unwrap();
        })
        .await;
        assert_eq!(written.len(), 3, "6000 bytes take three chunks");
        for set_cookie in &written {
            assert!(set_cookie.len() < 4000, "each cookie stays under 4 KB");
            assert!(set_cookie.contains("Max-Age=1000"));
            assert!(set_cookie.contains("SameSite=Strict"));
        }
        let incoming = as_incoming(&written);
        in_request(&incoming, || async {
            let read = store.get("s:abcdefghijklmnopqrstuvwxyz").await.unwrap();
            assert_eq!(read, Some(value.clone()));
            assert_eq!(store.get("s:another-key-entirely").await.unwrap(), None);
        })
        .await;
    }

    #[tokio::test]
    async fn delete_and_take_expire_every_chunk_and_expired_records_read_as_absent() {
        let (store, clock) = store();
        let written = in_request(&[], || async {
            store
                .put("t:pending-login-key", record(vec![7; 100], 1_600))
                .await
                .unwrap();
        })
        .await;
        assert!(
            written[0].contains("SameSite=Lax"),
            "pending logins must survive the IdP redirect"
        );
        let incoming = as_incoming(&written);
        let cleared = in_request(&incoming, || async {
            assert_eq!(
                store.take("t:pending-login-key").await.unwrap(),
                Some(vec![7; 100])
            );
            assert_eq!(store.get("t:pending-login-key").await.unwrap(), None);
        })
        .await;
        assert!(cleared.iter().all(|c| c.contains("Max-Age=0")));
        clock.advance(600);
        in_request(&incoming, || async {
            assert_eq!(store.get("t:pending-login-key").await.unwrap(), None);
        })
        .await;
    }

    #[tokio::test]
    async fn a_record_too_large_for_the_cookie_budget_is_an_error_and_outside_a_request_too() {
        let (store, _) = store();
        in_request(&[], || async {
            let huge = record(vec![1; 20_000], 2_000);
            assert!(store.put("s:k", huge).await.is_err());
        })
        .await;
        assert!(store.get("s:k").await.is_err());
    }
}
