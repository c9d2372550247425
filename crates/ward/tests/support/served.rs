//! The real `ward serve` process for tests: started on a config file, its stdout and stderr
//! drained into buffers, SIGTERM and a bounded wait for its exit.

#![allow(dead_code)] // each test binary uses a different part

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ward_testkit::Browser;

/// How long Ward may take to start answering, or to exit after SIGTERM.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A child's output stream, drained on a thread into a shared buffer.
pub struct Drain {
    buffer: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Drain {
    fn start(mut stream: impl Read + Send + 'static) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Self { buffer, thread }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .buffer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
        .into_owned()
    }

    /// Everything, once the stream has closed.
    fn finish(self) -> String {
        let Self { buffer, thread } = self;
        thread.join().expect("output reader");
        let bytes = buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The `ward serve` child; killed on drop if the test ends early.
pub struct Served {
    child: Child,
    stdout: Option<Drain>,
    stderr: Option<Drain>,
}

impl Served {
    pub fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ward"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("WARD_TELEMETRY__LOG_LEVEL", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ward serve");
        let stdout = child.stdout.take().map(Drain::start);
        let stderr = child.stderr.take().map(Drain::start);
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The process id (signals, and proof that a reload did not restart the process).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Output so far, for failure messages while it runs.
    pub fn output_so_far(&self) -> String {
        let part = |d: &Option<Drain>| d.as_ref().map(Drain::text).unwrap_or_default();
        format!(
            "stdout:\n{}\nstderr:\n{}",
            part(&self.stdout),
            part(&self.stderr)
        )
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the status, stdout, stderr.
    pub fn terminate(mut self) -> (ExitStatus, String, String) {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for ward") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "ward did not exit after SIGTERM\n{}",
                self.output_so_far()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.take().map(Drain::finish).unwrap_or_default();
        let stderr = self.stderr.take().map(Drain::finish).unwrap_or_default();
        (status, stdout, stderr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("bound address").port()
}

/// Polls `GET /bff/user` until Ward answers (401: up, no session), or gives up.
pub async fn wait_until_serving(served: &Served, origin: &str) {
    let browser = Browser::new().unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(reply) = browser.get(format!("{origin}/bff/user")).await {
            assert_eq!(reply.status, 401, "{}", reply.text());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ward never answered\n{}",
            served.output_so_far()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
