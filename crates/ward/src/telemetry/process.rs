//! The standard process metrics (`process_*`), read from `/proc` at each scrape on Linux.
//! Elsewhere the families are exposed without samples.

use std::fmt::Write as _;

use super::metrics::family;

/// Clock ticks per second of `/proc/<pid>/stat` times: the kernel's `USER_HZ`, fixed at 100 in
/// its user-space ABI on every Linux architecture (reading `sysconf` would need `libc`).
const USER_HZ: f64 = 100.0;

/// Appends the process families to `out`.
pub(crate) fn render(out: &mut String) {
    let stat = Stat::read();
    let cpu = stat.as_ref().map(|stat| stat.cpu_ticks as f64 / USER_HZ);
    let start = stat
        .as_ref()
        .zip(boot_time())
        .map(|(stat, boot)| boot as f64 + stat.start_ticks as f64 / USER_HZ);
    let open_fds = std::fs::read_dir("/proc/self/fd").ok().map(Iterator::count);
    one(
        out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        cpu,
    );
    one(
        out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        status_kib("VmRSS:").map(|kib| kib * 1024),
    );
    one(
        out,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        status_kib("VmSize:").map(|kib| kib * 1024),
    );
    one(
        out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        open_fds,
    );
    one(
        out,
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        max_fds(),
    );
    one(
        out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        start,
    );
}

/// A family of one unlabelled sample: its `# HELP`/`# TYPE`, and the sample when known.
fn one(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: Option<impl std::fmt::Display>,
) {
    family(out, name, kind, help);
    if let Some(value) = value {
        let _ = writeln!(out, "{name} {value}");
    }
}

/// What `/proc/self/stat` says: CPU time (user + system) and start time since boot, in ticks.
struct Stat {
    cpu_ticks: u64,
    start_ticks: u64,
}

impl Stat {
    fn read() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count from its end.
        let rest = &text[text.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        // `rest` starts at field 3 (state): utime is field 14, stime 15, starttime 22.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            cpu_ticks: field(14)? + field(15)?,
            start_ticks: field(22)?,
        })
    }
}

/// A `kB` line of `/proc/self/status`.
fn status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_fds() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Boot time (unix seconds), from `/proc/stat`.
fn boot_time() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn process_metrics_have_samples_on_linux() {
        let mut out = String::new();
        super::render(&mut out);
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(out.lines().any(|l| l.starts_with(name)), "{name} in {out}");
        }
    }
}
