//! Throw-away tables for one test: a unique key prefix on the test server, dropped at the end.
//!
//! The server is `WARD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test?sslmode=disable`); it must be a plaintext
//! loopback URL, since the cleanup connects without TLS. An unreachable server fails the
//! test, naming the address: these tests never skip.

use std::error::Error as _;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::{Client, NoTls};
use ward_store::{Clock, StoreError};
use ward_store_postgres::PostgresStore;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable";

/// One test's tables; dropping it drops every table whose name starts with the prefix.
pub struct Scratch {
    pub url: String,
    /// `wardtest_<run tag>_<pid>_<random>_`: already a valid identifier, so table names equal it.
    pub prefix: String,
}

impl Scratch {
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        Self {
            url: std::env::var("WARD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into()),
            prefix: format!(
                "wardtest_{}_{}_{:08x}_",
                ward_testkit::run_tag(),
                std::process::id(),
                random.finish() as u32
            ),
        }
    }

    /// A store on this prefix; panics, naming the server, when it cannot connect.
    pub async fn store(&self, clock: Arc<dyn Clock>) -> PostgresStore {
        PostgresStore::connect(&self.url, &self.prefix, clock)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the test PostgreSQL must be running (set WARD_TEST_POSTGRES_URL): {}",
                    chain(&e)
                )
            })
    }

    /// A plain connection for looking at the tables behind the store's back.
    pub async fn client(&self) -> Client {
        connect(&self.url).await.unwrap_or_else(|e| {
            panic!("the test PostgreSQL must be running (set WARD_TEST_POSTGRES_URL): {e}")
        })
    }

    /// Quoted `<prefix><name>`.
    pub fn table(&self, name: &str) -> String {
        format!("\"{}{name}\"", self.prefix)
    }
}

impl Drop for Scratch {
    /// Drop runs inside the test's runtime, which cannot block on its own futures: the
    /// cleanup gets a thread and a runtime of its own, and is waited for.
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(drop_tables(&url, &prefix))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop the test tables {}*: {e}", self.prefix),
            Err(_) => eprintln!("dropping the test tables {}* panicked", self.prefix),
        }
    }
}

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The tables whose names start with `prefix`, in the current schema.
pub async fn tables(client: &Client, prefix: &str) -> Vec<String> {
    let rows = client
        .query(
            "SELECT tablename::text FROM pg_tables \
             WHERE schemaname = current_schema() AND starts_with(tablename, $1) ORDER BY 1",
            &[&prefix],
        )
        .await
        .expect("list tables");
    rows.iter().map(|row| row.get(0)).collect()
}

async fn drop_tables(url: &str, prefix: &str) -> Result<(), String> {
    let client = connect(url).await.map_err(|e| e.to_string())?;
    // A connection of the test's own runtime may still hold a lock (a transaction whose
    // rollback is queued on a connection task that runtime cannot poll while this drop
    // waits): give up and report rather than hang.
    client
        .batch_execute("SET lock_timeout = '5s'")
        .await
        .map_err(|e| e.to_string())?;
    let names = tables(&client, prefix).await;
    if names.is_empty() {
        return Ok(());
    }
    // The names come from our own prefix, so they are `[a-z0-9_]`; checked before quoting.
    assert!(
        names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    );
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {} CASCADE", list.join(", ")))
        .await
        .map_err(|e| e.to_string())
}

/// The error and its whole source chain, as an operator would read it.
pub fn chain(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
