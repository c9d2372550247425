use axum::http::HeaderValue;
use ward_store::ManualClock;
use ward_store::memory::MemoryStore;

use super::*;

fn config(toml: &str) -> RateLimitConfig {
    let table: toml::Table = toml::from_str(toml).expect("toml");
    table
        .get("rate_limit")
        .cloned()
        .map(|t| t.try_into().expect("rate_limit"))
        .unwrap_or_default()
}

fn limits(toml: &str, hops: u8) -> (RateLimiting, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(clock.clone()));
    let key = hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]);
    let limits = RateLimiting::new(&config(toml), hops, &store, key, clock.clone()).unwrap();
    (limits, clock)
}

fn forwarded(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
    headers
}

async fn login_from(
    limits: &RateLimiting,
    peer: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let client = limits.client(peer.parse().unwrap(), headers);
    limits
        .check(LimitName::Login, Subject::Client(client))
        .await
}

#[tokio::test]
async fn rotating_forwarded_for_from_an_untrusted_peer_keeps_one_budget() {
    let (limits, _) = limits("[rate_limit]\nlogin = { limit = 3, window = \"1m\" }", 0);
    for i in 0..3 {
        let spoofed = forwarded(&format!("198.51.100.{i}"));
        login_from(&limits, "203.0.113.5", &spoofed).await.unwrap();
    }
    let spoofed = forwarded("198.51.100.99");
    let refused = login_from(&limits, "203.0.113.5", &spoofed).await;
    assert!(matches!(
        refused,
        Err(ApiError::RateLimited { retry_after: 60.. })
    ));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_address_it_saw_is_the_key() {
    let (limits, _) = limits("[rate_limit]\nlogin = { limit = 2, window = \"1m\" }", 1);
    // The client writes what it likes on the left; the proxy appends the address it saw.
    for i in 0..2 {
        let headers = forwarded(&format!("10.9.9.{i}, 198.51.100.7"));
        login_from(&limits, "10.0.0.2", &headers).await.unwrap();
    }
    let again = forwarded("10.9.9.77, 198.51.100.7");
    assert!(login_from(&limits, "10.0.0.2", &again).await.is_err());
    let other = forwarded("198.51.100.8");
    login_from(&limits, "10.0.0.2", &other).await.unwrap();
}

#[tokio::test]
async fn ipv6_clients_count_by_their_64() {
    let (limits, _) = limits("[rate_limit]\nlogin = { limit = 2, window = \"1m\" }", 0);
    let none = HeaderMap::new();
    login_from(&limits, "2001:db8:1:2::1", &none).await.unwrap();
    login_from(&limits, "2001:db8:1:2:ffff::9", &none)
        .await
        .unwrap();
    assert!(
        login_from(&limits, "2001:db8:1:2:abcd::3", &none)
            .await
            .is_err()
    );
    login_from(&limits, "2001:db8:1:3::1", &none).await.unwrap();
}

#[tokio::test]
async fn the_window_slides_with_the_injected_clock() {
    let (limits, clock) = limits("[rate_limit]\nlogin = { limit = 1, window = \"10s\" }", 0);
    let none = HeaderMap::new();
    login_from(&limits, "192.0.2.1", &none).await.unwrap();
    let Err(ApiError::RateLimited { retry_after }) = login_from(&limits, "192.0.2.1", &none).await
    else {
        panic!("second login in 10 s accepted");
    };
    assert!((10..=11).contains(&retry_after), "{retry_after}");
    clock.advance(u64::from(retry_after));
    login_from(&limits, "192.0.2.1", &none).await.unwrap();
}

#[tokio::test]
async fn a_limit_that_is_off_counts_nothing() {
    let (limits, _) = limits("[rate_limit]\nlogin = \"off\"", 0);
    assert!(!limits.is_on(LimitName::Login));
    for _ in 0..1000 {
        login_from(&limits, "192.0.2.1", &HeaderMap::new())
            .await
            .unwrap();
    }
}

#[test]
fn store_keys_name_the_limit_but_never_the_address() {
    let (limits, _) = limits("", 0);
    let ip: IpAddr = "192.0.2.44".parse().unwrap();
    let login = limits.store_key(LimitName::Login, Subject::Client(ip));
    assert!(login.starts_with("login:ip:"), "{login}");
    assert!(
        !login.contains("192.0.2.44") && !login.contains("c0000"),
        "{login}"
    );
    assert_eq!(
        login,
        limits.store_key(LimitName::Login, Subject::Client(ip))
    );
    let anonymous = limits.store_key(LimitName::Anonymous, Subject::Client(ip));
    assert_ne!(login[9..], anonymous[13..], "a limit's hash is its own");
    let session = limits.store_key(LimitName::Api, Subject::Session("s:abc"));
    assert_eq!(session, "api:s:abc");
}

#[test]
fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
    assert_eq!(retry_after_secs(0), 1);
    assert_eq!(retry_after_secs(1), 1);
    assert_eq!(retry_after_secs(1_000), 1);
    assert_eq!(retry_after_secs(1_001), 2);
    assert_eq!(retry_after_secs(62_000), 62);
}

#[test]
fn backend_store_needs_a_store_that_counts() {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let store: Arc<dyn SessionStore> = Arc::new(NoCounts(MemoryStore::new(clock.clone())));
    let key = hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]);
    let config = config("[rate_limit]\nbackend = \"store\"");
    let err = RateLimiting::new(&config, 0, &store, key, clock).unwrap_err();
    assert!(err.to_string().contains("cannot count"), "{err}");
}

/// A store without the capability (as the cookie store).
struct NoCounts(MemoryStore);

#[async_trait::async_trait]
impl SessionStore for NoCounts {
    async fn put(&self, key: &str, record: ward_store::Record) -> Result<(), StoreError> {
        self.0.put(key, record).await
    }
    async fn put_new(&self, key: &str, record: ward_store::Record) -> Result<bool, StoreError> {
        self.0.put_new(key, record).await
    }
    async fn replace(&self, key: &str, record: ward_store::Record) -> Result<bool, StoreError> {
        self.0.replace(key, record).await
    }
    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: ward_store::Record,
    ) -> Result<bool, StoreError> {
        self.0.replace_if(key, expected, record).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).await
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.take(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.0.delete(key).await
    }
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.0.delete_if(key, expected).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "test"
    }
}
