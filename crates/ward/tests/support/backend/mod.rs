//! One store location per backend test (embedded file, Redis key prefix, PostgreSQL table
//! prefix), kept across Ward restarts and removed when dropped, and a dump of everything it
//! holds, as a copy of the store would show it.

#![allow(dead_code)] // each test binary uses a different part

mod postgres;
mod redis;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::{Options, Ward};

/// A backend that keeps sessions outside Ward's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Embedded,
    Redis,
    Postgres,
}

impl Kind {
    /// The `[store] kind` of this backend.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Embedded => "embedded",
            Kind::Redis => "redis",
            Kind::Postgres => "postgres",
        }
    }
}

/// One store location for a whole test, kept across Ward restarts, removed when dropped.
pub struct Backend {
    kind: Kind,
    /// The embedded store's directory (`ward.db` in it).
    dir: tempfile::TempDir,
    /// Key prefix of the shared-server stores (also their PostgreSQL table-name prefix).
    prefix: String,
}

impl Backend {
    /// A fresh location; fails loudly, naming the address, when the server is unreachable.
    pub async fn new(kind: Kind) -> Backend {
        let unique = unique_suffix();
        let prefix = match kind {
            Kind::Embedded => String::new(),
            Kind::Redis => format!("wardbk:{}:{unique}:", std::process::id()),
            Kind::Postgres => format!("wardbk_{}_{unique}_", std::process::id()),
        };
        match kind {
            Kind::Embedded => {}
            Kind::Redis => redis::ping().await,
            Kind::Postgres => {
                postgres::connect().await;
            }
        }
        Backend {
            kind,
            dir: tempfile::tempdir().expect("temp dir"),
            prefix,
        }
    }

    /// Harness options for a Ward on this location with `keys`.
    pub fn options(&self, keys: &[&str]) -> Options {
        let mut env = BTreeMap::new();
        if !self.prefix.is_empty() {
            env.insert("WARD_STORE__KEY_PREFIX".to_owned(), self.prefix.clone());
        }
        Options {
            store: self.kind.name(),
            data_dir: Some(self.dir.path().to_owned()),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            env,
            ..Default::default()
        }
    }

    /// A Ward on this location with `keys`.
    pub async fn start(&self, keys: &[&str]) -> Ward {
        Ward::start_with(self.options(keys)).await
    }

    /// Everything the store holds right now, as a copy of it would.
    pub async fn dump(&self) -> Dump {
        let entries = match self.kind {
            Kind::Embedded => {
                let file = self.dir.path().join("ward.db");
                let bytes =
                    std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
                vec![("ward.db".to_owned(), bytes)]
            }
            Kind::Redis => redis::dump(&self.prefix).await,
            Kind::Postgres => postgres::dump(&self.prefix).await,
        };
        assert!(
            !entries.is_empty(),
            "the {} store under {:?} is empty",
            self.kind.name(),
            self.prefix
        );
        Dump { entries }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // Best effort, on a thread of its own: the test's runtime may be gone or panicking.
        let (kind, prefix) = (self.kind, self.prefix.clone());
        let cleanup = std::thread::spawn(move || match kind {
            Kind::Embedded => {}
            Kind::Redis => redis::cleanup(&prefix),
            Kind::Postgres => {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(postgres::cleanup(&prefix));
            }
        });
        let _ = cleanup.join();
    }
}

/// A store's contents: named byte strings (keys, values, fields, rows).
#[derive(Debug, PartialEq, Eq)]
pub struct Dump {
    entries: Vec<(String, Vec<u8>)>,
}

impl Dump {
    /// Whether `needle` occurs in any entry, as raw bytes.
    pub fn holds(&self, needle: &[u8]) -> bool {
        self.entries
            .iter()
            .any(|(_, bytes)| contains(bytes, needle))
    }

    /// Where `needle` occurs, as raw bytes or as lowercase or uppercase hex (PostgreSQL's text
    /// form of `bytea`): one line per entry, naming the needle and the entry, not the value.
    pub fn find(&self, name: &str, needle: &[u8]) -> Vec<String> {
        let hex_lower = hex(needle);
        let hex_upper = hex_lower.to_ascii_uppercase();
        self.entries
            .iter()
            .filter(|(_, bytes)| {
                contains(bytes, needle)
                    || contains(bytes, hex_lower.as_bytes())
                    || contains(bytes, hex_upper.as_bytes())
            })
            .map(|(entry, _)| format!("{name} in {entry}"))
            .collect()
    }
}

/// Fails, naming changed entries (never their values), unless `after` equals `before`.
pub fn assert_unchanged(before: &Dump, after: &Dump, what: &str) {
    if before == after {
        return;
    }
    // Entry names only (values may be secrets), deduplicated, the first few.
    let mut changed: Vec<&str> = before
        .entries
        .iter()
        .chain(&after.entries)
        .filter(|entry| !before.entries.contains(entry) || !after.entries.contains(entry))
        .map(|(name, _)| name.as_str())
        .collect();
    changed.dedup();
    changed.truncate(10);
    panic!("{what} changed the store, e.g. {changed:?}");
}

/// `url` without user information, for messages.
fn address(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => "<not a URL>".to_owned(),
    }
}

/// 16 hex digits no other test of this process (or, in practice, another) uses.
fn unique_suffix() -> String {
    use std::hash::{BuildHasher, RandomState};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!(
        "{:016x}",
        RandomState::new().hash_one((n, std::time::SystemTime::now()))
    )
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return false;
    };
    haystack
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == first)
        .any(|(i, _)| haystack[i + 1..].starts_with(rest))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
