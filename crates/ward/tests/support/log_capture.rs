//! Ward's real JSON log subscriber writing into memory, for the tests that read what Ward
//! logged. `install` sets the process-wide subscriber, so a binary using it holds one test.

#![allow(dead_code)] // each test binary uses a different part

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing_subscriber::fmt::MakeWriter;
use ward::config::{LogFormat, TelemetryConfig};

/// What the subscriber wrote, one JSON object a line.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Installs Ward's JSON subscriber at `debug`, writing into the returned capture.
    pub fn install() -> Capture {
        let capture = Capture::default();
        ward::telemetry::init(
            &TelemetryConfig {
                log_format: LogFormat::Json,
                log_level: "debug".into(),
                ..TelemetryConfig::default()
            },
            &ward::outbound::Outbound::load(&Default::default()).expect("outbound trust"),
            capture.clone(),
        )
        .expect("install the log subscriber");
        capture
    }

    fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
