//! A `redis-server` of a test's own, on a loopback port: started, stopped for real and started
//! again on the same data, for outage tests that must not touch the machine's shared Redis.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::procs::{Output, PATIENCE};

/// A `redis-server` of this test's own, on a loopback port, with an append-only file in `dir`
/// fsynced on every write, so its data survives being stopped and started again.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    output: Output,
    child: Child,
}

impl RedisServer {
    /// Starts it and waits until it answers `PING` (after loading its append-only file).
    pub async fn start(port: u16, dir: &Path) -> Self {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): this test needs it on PATH; it never skips")
            });
        let output = Output::default();
        output.collect(child.stdout.take().expect("piped stdout"));
        output.collect(child.stderr.take().expect("piped stderr"));
        let mut server = Self {
            port,
            dir: dir.to_owned(),
            output,
            child,
        };
        let deadline = Instant::now() + PATIENCE;
        while !server.answers_ping().await {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "redis-server on 127.0.0.1:{port} exited ({status}):\n{}",
                    server.output.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on 127.0.0.1:{port} never answered PING:\n{}",
                server.output.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// Whether the server answers `PING` with `+PONG` (not `-LOADING`) right now.
    pub async fn answers_ping(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut answer = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut answer)).await {
            Ok(Ok(n)) => answer[..n].starts_with(b"+PONG"),
            _ => false,
        }
    }

    /// `redis-cli shutdown` (which writes out the append-only file) and waits for the exit.
    pub async fn shut_down(mut self) -> PathBuf {
        let _ = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "shutdown"])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run redis-cli (needed on PATH)");
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("redis-server did not stop:\n{}", self.output.text()))
            .expect("reap redis-server");
        assert!(status.success(), "{status}:\n{}", self.output.text());
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_err(),
            "redis is really down"
        );
        self.dir
    }
}
