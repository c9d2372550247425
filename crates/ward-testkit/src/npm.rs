//! `npm ci` for the test IdP and other node tools, once per package directory and machine.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use anyhow::{Context, anyhow, bail};

/// Runs `npm ci --no-audit --no-fund` in `dir` unless its packages are installed and not
/// older than `package-lock.json`.
///
/// Safe to call from parallel tests and parallel test processes: an exclusive file lock
/// (released by the OS even if a process dies) serialises installs, and whoever gets it second
/// finds the packages in place. Fails with npm's output, or with a clear message when `npm` is
/// missing: integration tests never skip for want of Node.js.
pub fn ensure_npm_installed(dir: &Path) -> anyhow::Result<()> {
    static DONE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if done.iter().any(|d| d == dir) {
        return Ok(());
    }
    let lock_path = std::env::temp_dir().join(format!(
        "ward-testkit-npm-{}.lock",
        dir.to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    ));
    let lock_file = File::create(&lock_path)
        .with_context(|| format!("creating the install lock {}", lock_path.display()))?;
    lock_file
        .lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if !is_installed(dir) {
        install(dir)?;
    }
    done.push(dir.to_owned());
    Ok(())
}

/// npm writes `node_modules/.package-lock.json` last, so its presence means a finished install;
/// a `package-lock.json` changed since means the install is stale.
fn is_installed(dir: &Path) -> bool {
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(dir.join("node_modules/.package-lock.json")),
        modified(dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(locked)) => installed >= locked,
        _ => false,
    }
}

fn install(dir: &Path) -> anyhow::Result<()> {
    let output = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| {
            anyhow!(
                "cannot run `npm` ({err}): the integration tests need Node.js >= 20.19 and npm \
                 on PATH to install the packages of {}",
                dir.display()
            )
        })?;
    if !output.status.success() {
        bail!(
            "`npm ci` in {} failed ({}):\n{}\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
