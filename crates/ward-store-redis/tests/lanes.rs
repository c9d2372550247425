//! `Options::lanes`: each serving thread (a single-threaded runtime of its own) reads and
//! writes over a connection of its own, opened by its first call; without lanes every thread
//! shares the store's one connection. Observed from a throw-away `redis-server`'s
//! `CLIENT LIST`, which only this test's connections reach.

mod support;

use std::cell::Cell;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ward_store::conformance::START;
use ward_store::{ManualClock, Record, SessionStore};
use ward_store_redis::{Options, RedisStore};

use support::{Server, chain};

thread_local! {
    /// The lane of the calling thread, as Ward's worker index is.
    static LANE: Cell<usize> = const { Cell::new(0) };
}

fn lane() -> usize {
    LANE.with(Cell::get)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn record(value: &[u8]) -> Record {
    Record {
        value: value.to_vec(),
        expires_at: START + 600,
        indexes: vec![],
        created_at: START,
        updated_at: START,
    }
}

/// How lane 0's runtime (where its connection tasks live) runs while the test thread waits
/// for the lane threads.
#[derive(Clone, Copy, PartialEq)]
enum LaneZero {
    /// Keeps running (on a thread of its own): the other threads may use lane 0.
    Running,
    /// Stands still: anything of another thread's that went through lane 0 would never be
    /// answered.
    Stopped,
}

/// A store on `url` with `options`, connected from lane 0's runtime, run as `lane_zero` says.
fn lane_zero(
    url: &str,
    options: Options,
    lane_zero: LaneZero,
) -> (tokio::runtime::Runtime, RedisStore) {
    let main = match lane_zero {
        LaneZero::Running => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime"),
        LaneZero::Stopped => runtime(),
    };
    let clock = Arc::new(ManualClock::new(START));
    let store = main
        .block_on(RedisStore::connect_with(url, "ward:", clock, None, options))
        .unwrap_or_else(|e| panic!("connect: {}", chain(&e)));
    (main, store)
}

/// The server's normal clients other than `admin`, one `CLIENT LIST` line each.
fn store_clients(admin: &mut redis::Connection) -> Vec<String> {
    let me: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query(admin)
        .expect("CLIENT ID");
    let list: String = redis::cmd("CLIENT")
        .arg(&["LIST", "TYPE", "normal"])
        .query(admin)
        .expect("CLIENT LIST");
    let own = format!("id={me} ");
    list.lines()
        .filter(|line| !line.starts_with(&own))
        .map(str::to_owned)
        .collect()
}

/// A store with `options` writes a record on lane 0; threads on lanes 1 and 2 (each its own
/// runtime, kept alive until counted) read it 5 times each, each read given 10 s. Returns the
/// store's clients then.
fn clients_after_reads_on_three_lanes(options: Options, lane_zero_runs: LaneZero) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), false);
    let mut admin = server.connection().expect("admin connection");
    let (main, store) = lane_zero(&server.url(), options, lane_zero_runs);
    main.block_on(store.put("s:a", record(b"sealed")))
        .expect("put on lane 0");
    assert_eq!(
        store_clients(&mut admin).len(),
        1,
        "one connection at start"
    );

    let (read, counted) = (Barrier::new(3), Barrier::new(3));
    std::thread::scope(|scope| {
        let readers: Vec<_> = [1, 2]
            .into_iter()
            .map(|n| {
                let (store, read, counted) = (&store, &read, &counted);
                scope.spawn(move || {
                    LANE.with(|lane| lane.set(n));
                    let runtime = runtime();
                    let read_once = || {
                        let read = async {
                            tokio::time::timeout(Duration::from_secs(10), store.get("s:a")).await
                        };
                        match runtime.block_on(read) {
                            Ok(found) => found.map_err(|e| chain(&e)),
                            Err(_) => Err("no answer within 10 s".to_owned()),
                        }
                    };
                    let values: Vec<_> = (0..5).map(|_| read_once()).collect();
                    read.wait();
                    counted.wait();
                    values
                })
            })
            .collect();
        read.wait();
        let clients = store_clients(&mut admin);
        counted.wait();
        for reader in readers {
            let values = reader.join().expect("reader thread");
            assert!(
                values.iter().all(|v| *v == Ok(Some(b"sealed".to_vec()))),
                "{values:?}"
            );
        }
        clients
    })
}

#[test]
fn each_lane_reads_over_a_connection_of_its_own() {
    // Lane 0's runtime stands still meanwhile: a lane made or driven there would hang.
    let options = Options::default().lanes(3, lane);
    let clients = clients_after_reads_on_three_lanes(options, LaneZero::Stopped);
    assert_eq!(clients.len(), 3, "lanes 0, 1 and 2: {clients:#?}");
    let readers = clients.iter().filter(|c| c.contains(" cmd=hmget ")).count();
    assert_eq!(readers, 2, "lanes 1 and 2 each read last: {clients:#?}");
}

#[test]
fn without_lanes_every_thread_shares_the_one_connection() {
    let clients = clients_after_reads_on_three_lanes(Options::default(), LaneZero::Running);
    assert_eq!(clients.len(), 1, "{clients:#?}");
    assert!(clients[0].contains(" cmd=hmget "), "{clients:#?}");
}

#[test]
fn one_lane_is_the_one_connection() {
    let options = Options::default().lanes(1, lane);
    let clients = clients_after_reads_on_three_lanes(options, LaneZero::Running);
    assert_eq!(clients.len(), 1, "{clients:#?}");
}

#[test]
fn a_lane_that_cannot_connect_fails_its_call_closed_and_opens_once_the_server_is_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), false);
    let port = server.port;
    let options = Options::default().lanes(2, lane);
    let (_main, store) = lane_zero(&server.url(), options, LaneZero::Stopped);
    drop(server);

    std::thread::scope(|scope| {
        scope.spawn(|| {
            LANE.with(|lane| lane.set(1));
            let runtime = runtime();
            match runtime.block_on(store.get("s:a")) {
                Err(ward_store::StoreError::Unavailable(_)) => {}
                other => panic!("a lane with no server must fail closed: {other:?}"),
            }
            let again = Server::start_on(dir.path(), port);
            runtime
                .block_on(store.put("s:a", record(b"sealed")))
                .unwrap_or_else(|e| panic!("put once the server is back: {}", chain(&e)));
            let mut admin = again.connection().expect("admin connection");
            assert_eq!(store_clients(&mut admin).len(), 1, "lane 1 connected");
        });
    });
}
