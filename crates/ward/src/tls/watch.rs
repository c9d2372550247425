//! What triggers a reload: SIGHUP, and the certificate files changing.
//!
//! The watcher observes the directories holding `tls_cert` and `tls_key` (inotify on Linux),
//! not the files: a file renamed over the old one, and a Kubernetes secret volume, which swaps
//! its `..data` symlink to a new directory, leave a watch on the old file looking at nothing.
//! Events for other entries of those directories are ignored; once the events stop for
//! [`SETTLE`] (a writer usually replaces the certificate, then the key), the pair is read again,
//! and reloaded only if its contents differ from what is served. A file reached through a
//! symlink into another directory that is rewritten there changes no entry of the watched
//! directory: SIGHUP covers that case.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Termination, Trigger};

/// Quiet time after the last event before the pair is read: long enough for a writer to
/// replace both files, short enough that rotation shows at once.
const SETTLE: Duration = Duration::from_millis(200);

/// The running file watcher; dropping it stops watching.
pub struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Termination {
    /// Reloads the pair when its files change (see the module doc), on the current runtime,
    /// until the returned [`FileWatch`] is dropped. Fails when the directories cannot be
    /// watched (e.g. the inotify limit is reached): SIGHUP still reloads then.
    pub fn watch_files(&self) -> Result<FileWatch, notify::Error> {
        let paths = &self.inner.paths;
        let names: BTreeSet<PathBuf> = [&paths.cert, &paths.key]
            .into_iter()
            .filter_map(|path| path.file_name().map(PathBuf::from))
            .collect();
        let (changed, mut changes) = mpsc::channel::<()>(1);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = event.is_ok_and(|event| {
                    event
                        .paths
                        .iter()
                        .filter_map(|path| path.file_name())
                        .any(|name| concerns_pair(name, &names))
                });
                if relevant {
                    // A full channel already holds a pending change: this one joins it.
                    let _ = changed.try_send(());
                }
            })?;
        for dir in directories(&[&paths.cert, &paths.key]) {
            watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        }
        let termination = self.clone();
        let task = tokio::spawn(async move {
            while changes.recv().await.is_some() {
                // Wait for quiet: a burst of writes is one reload.
                loop {
                    match tokio::time::timeout(SETTLE, changes.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let _ = termination.reload(Trigger::FileChange);
            }
        });
        Ok(FileWatch {
            _watcher: watcher,
            task,
        })
    }

    /// Reloads the pair on every SIGHUP, on the current runtime, for as long as it runs.
    #[cfg(unix)]
    pub fn reload_on_sighup(&self) -> std::io::Result<JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        let termination = self.clone();
        Ok(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let _ = termination.reload(Trigger::Signal);
            }
        }))
    }
}

/// Whether a changed entry of a watched directory can change the pair: one of its files, or a
/// Kubernetes secret volume's `..data` link and timestamped directories.
fn concerns_pair(name: &OsStr, names: &BTreeSet<PathBuf>) -> bool {
    names.contains(Path::new(name)) || name.as_encoded_bytes().starts_with(b"..")
}

/// The distinct directories holding `files` (`.` for a bare file name).
fn directories(files: &[&PathBuf]) -> BTreeSet<PathBuf> {
    files
        .iter()
        .map(|file| match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pair_and_kubernetes_volume_entries_concern_the_pair() {
        let names: BTreeSet<PathBuf> = ["tls.crt", "tls.key"].map(PathBuf::from).into();
        for name in ["tls.crt", "tls.key", "..data", "..2026_12_07_04_00_00.123"] {
            assert!(concerns_pair(OsStr::new(name), &names), "{name}");
        }
        for name in ["ward.db", "tls.crt.tmp", "ca.crt", ".hidden"] {
            assert!(!concerns_pair(OsStr::new(name), &names), "{name}");
        }
    }

    #[test]
    fn each_directory_is_watched_once() {
        let (a, b, c) = (
            PathBuf::from("/etc/ward/tls/cert.pem"),
            PathBuf::from("/etc/ward/tls/key.pem"),
            PathBuf::from("key.pem"),
        );
        assert_eq!(
            directories(&[&a, &b]),
            BTreeSet::from([PathBuf::from("/etc/ward/tls")])
        );
        assert_eq!(directories(&[&c]), BTreeSet::from([PathBuf::from(".")]));
    }
}
