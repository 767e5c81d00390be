//! Hot reload: the current [`PolicySet`] behind an `ArcSwap`, replaced only by a set that
//! compiled cleanly.
//!
//! Requests call [`PolicyStore::current`] once and keep that `Arc` to the end, so a swap
//! never changes the policy under a running request and never blocks one. The watcher
//! observes the directory (editors and Kubernetes ConfigMaps replace files by rename),
//! debounces bursts of events and reloads the whole directory. A broken change is
//! refused: the last good set keeps serving, the error is logged, counted and kept for
//! `/readyz`. A directory that was deleted, emptied, or lost a policy a tenant is bound
//! to is such a broken change; the watcher also observes the parent directory so that a
//! deleted and restored directory is watched and loaded again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};

use super::compile::{embedded_default, load_path, PolicySet};
use super::load::{PolicyErrors, Problem};

/// How long the watcher waits for a burst of file events to settle.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// How often the watcher checks, besides events, whether the directory was replaced
/// (deleted and created again): then it watches the new one and reloads.
const RECHECK: Duration = Duration::from_secs(2);

/// Outcome of the last reload attempt, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Successful loads, including the first one.
    pub reloads: u64,
    /// Refused loads since start.
    pub failures: u64,
    /// Problems of the last attempt if it failed (cleared by the next success).
    pub last_error: Option<String>,
    /// Version of the set being served.
    pub version: String,
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("no policy directory to watch (running on the embedded default)")]
    NoDirectory,
    #[error("cannot watch {path}: {source}")]
    Notify { path: String, source: notify::Error },
}

/// Holds the policy set being served.
#[derive(Debug)]
pub struct PolicyStore {
    current: ArcSwap<PolicySet>,
    path: Option<PathBuf>,
    reloads: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Policy ids the configuration binds tenants to: a reload without one is refused.
    required: Mutex<Vec<String>>,
}

/// Keeps the directory watcher alive; dropping it stops watching.
pub struct WatchGuard {
    stop: std::sync::mpsc::Sender<Signal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let _ = self.stop.send(Signal::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the watcher thread is told.
enum Signal {
    Changed,
    Stop,
}

type PolicyDebouncer = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

impl std::fmt::Debug for WatchGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchGuard")
    }
}

impl PolicyStore {
    /// A store serving the embedded default policy (no directory, nothing to reload).
    pub fn embedded() -> Arc<Self> {
        Arc::new(Self::with(embedded_default(), None))
    }

    /// Loads a policy file or directory; the first load must succeed.
    pub fn open(path: &Path) -> Result<Arc<Self>, PolicyErrors> {
        let set = load_path(path)?;
        Ok(Arc::new(Self::with(set, Some(path.to_path_buf()))))
    }

    fn with(set: PolicySet, path: Option<PathBuf>) -> Self {
        Self {
            current: ArcSwap::from_pointee(set),
            path,
            reloads: AtomicU64::new(1),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
            required: Mutex::new(Vec::new()),
        }
    }

    /// Names the policy ids that must stay loaded (those tenants are bound to): a reload
    /// whose set lacks one is refused like a broken file.
    pub fn require(&self, ids: Vec<String>) {
        if let Ok(mut g) = self.required.lock() {
            *g = ids;
        }
    }

    /// Loads the directory for a reload, refusing what would silently drop policies: a
    /// directory with no policy file left, or a set without a required policy.
    fn load_for_reload(&self, path: &Path) -> Result<PolicySet, PolicyErrors> {
        let name = path.display().to_string();
        let sources = super::load::read_sources(path)?;
        if path.is_dir() && sources.is_empty() {
            return Err(PolicyErrors(vec![Problem::file(
                &name,
                "no policy file left in the directory",
            )]));
        }
        let set = super::compile::compile_sources(&sources)?;
        let required = self.required.lock().map(|g| g.clone()).unwrap_or_default();
        let missing: Vec<Problem> = required
            .iter()
            .filter(|id| set.get(id).is_none())
            .map(|id| {
                Problem::file(
                    &name,
                    format!("policy `{id}` is bound to a tenant but no longer defined"),
                )
            })
            .collect();
        if !missing.is_empty() {
            return Err(PolicyErrors(missing));
        }
        Ok(set)
    }

    /// The set to use for one request; hold it for the whole request.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Re-reads the directory (on a file change or SIGHUP). On success the new set is
    /// swapped in; on failure the old one stays and the problems are recorded.
    pub fn reload_now(&self) -> Result<(), PolicyErrors> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        match self.load_for_reload(path) {
            Ok(set) => {
                let old = self.current().version().to_string();
                let new = set.version().to_string();
                self.current.store(Arc::new(set));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                self.set_error(None);
                if old != new {
                    tracing::info!(old_version = %old, new_version = %new, "policies reloaded");
                }
                Ok(())
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.set_error(Some(e.to_string()));
                tracing::error!(problems = %e, "policy reload refused; keeping the last good policies");
                Err(e)
            }
        }
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e;
        }
    }

    /// Counters and last error, for `/readyz` and `/metrics`.
    pub fn status(&self) -> ReloadStatus {
        ReloadStatus {
            reloads: self.reloads.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|g| g.clone()),
            version: self.current().version().to_string(),
        }
    }

    /// The directory (or file) being served, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Starts watching the policy directory (or the directory of a policy file) and
    /// reloading on changes. Keep the guard alive for as long as watching should go on.
    pub fn watch(self: &Arc<Self>) -> Result<WatchGuard, WatchError> {
        let path = self.path.clone().ok_or(WatchError::NoDirectory)?;
        let dir = if path.is_dir() {
            path.clone()
        } else {
            path.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        };
        // Absolute, so that the parent is known and event paths compare.
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let notify_err = |source| WatchError::Notify {
            path: dir.display().to_string(),
            source,
        };
        let (tx, rx) = std::sync::mpsc::channel::<Signal>();
        let events = tx.clone();
        let ours = dir.clone();
        let mut debouncer = new_debouncer(DEBOUNCE, None, move |res: DebounceEventResult| {
            match res {
                // Events of the parent's other entries are not ours.
                Ok(batch)
                    if batch.iter().any(|e| {
                        !e.kind.is_access() && e.paths.iter().any(|p| p.starts_with(&ours))
                    }) =>
                {
                    let _ = events.send(Signal::Changed);
                }
                Ok(_) => {}
                Err(errors) => {
                    for e in errors {
                        tracing::warn!(error = %e, "policy watcher error");
                    }
                }
            }
        })
        .map_err(notify_err)?;
        debouncer
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(notify_err)?;
        if let Some(parent) = dir.parent() {
            // Without it a deleted and restored directory is noticed only by the recheck.
            if let Err(e) = debouncer.watch(parent, RecursiveMode::NonRecursive) {
                tracing::warn!(error = %e, "cannot watch the policy directory's parent");
            }
        }
        let store = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("policy-watch".into())
            .spawn(move || watch_loop(debouncer, &rx, &store, &dir))
            .map_err(|e| WatchError::Notify {
                path: path.display().to_string(),
                source: notify::Error::io(e),
            })?;
        Ok(WatchGuard {
            stop: tx,
            thread: Some(thread),
        })
    }
}

/// The identity of a directory (device, inode), to notice it was replaced.
fn dir_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|m| (m.dev(), m.ino()))
}

/// Reloads on each change; watches the directory again when it was replaced.
fn watch_loop(
    mut debouncer: PolicyDebouncer,
    rx: &std::sync::mpsc::Receiver<Signal>,
    store: &std::sync::Weak<PolicyStore>,
    dir: &Path,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut armed = dir_id(dir);
    loop {
        let changed = match rx.recv_timeout(RECHECK) {
            Ok(Signal::Changed) => true,
            Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => false,
        };
        let now = dir_id(dir);
        let replaced = now.is_some() && now != armed;
        if replaced {
            match debouncer.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), "policy directory is back; watching it again");
                    armed = now;
                }
                Err(e) => tracing::warn!(error = %e, "cannot watch the policy directory again"),
            }
        } else if now.is_none() {
            armed = None;
        }
        if changed || replaced {
            let Some(store) = store.upgrade() else { return };
            // Errors are recorded and logged inside reload_now.
            let _ = store.reload_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const GOOD: &str =
        "id: default\ninput:\n  - {id: w, detector: word, words: [alpha], action: block}\n";
    const GOOD2: &str =
        "id: default\ninput:\n  - {id: w, detector: word, words: [beta], action: block}\n";
    const BAD: &str =
        "id: default\ninput:\n  - {id: w, detector: word, words: [beta], action: blok}\n";

    fn first_rule_blocks(store: &PolicyStore, text: &str) -> bool {
        blocks(&store.current(), text)
    }

    fn blocks(set: &PolicySet, text: &str) -> bool {
        use crate::engine::{evaluate, EvalOptions, PseudonymMap, Stage, Verdict};
        let d = evaluate(
            &set.default_policy(),
            Stage::Input,
            &[text],
            &Default::default(),
            &EvalOptions::default(),
            &mut PseudonymMap::new(),
        );
        d.action == Verdict::Block
    }

    #[test]
    fn reload_now_swaps_good_and_keeps_last_good_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("default.yaml");
        std::fs::write(&f, GOOD).unwrap();
        let store = PolicyStore::open(dir.path()).unwrap();
        assert!(first_rule_blocks(&store, "alpha"));
        let v1 = store.status().version;

        std::fs::write(&f, BAD).unwrap();
        let err = store.reload_now().unwrap_err().to_string();
        assert!(err.contains("default.yaml:3:"), "{err}");
        assert!(
            first_rule_blocks(&store, "alpha"),
            "last good policy must keep serving"
        );
        let st = store.status();
        assert_eq!((st.failures, st.version.as_str()), (1, v1.as_str()));
        assert!(st.last_error.is_some());

        std::fs::write(&f, GOOD2).unwrap();
        store.reload_now().unwrap();
        assert!(first_rule_blocks(&store, "beta") && !first_rule_blocks(&store, "alpha"));
        let st = store.status();
        assert_eq!((st.reloads, st.failures, st.last_error), (2, 1, None));
        assert_ne!(st.version, v1);
    }

    #[test]
    fn watcher_reloads_on_rename_into_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        let store = PolicyStore::open(dir.path()).unwrap();
        let _guard = store.watch().unwrap();
        // Write elsewhere and rename over, like editors and ConfigMaps do.
        let tmp = dir.path().join(".default.yaml.tmp");
        std::fs::write(&tmp, GOOD2).unwrap();
        std::fs::rename(&tmp, dir.path().join("default.yaml")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !first_rule_blocks(&store, "beta") {
            assert!(
                Instant::now() < deadline,
                "watcher did not reload within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn swaps_under_load_never_serve_a_broken_set() {
        use std::sync::atomic::AtomicBool;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("default.yaml");
        std::fs::write(&f, GOOD).unwrap();
        let store = PolicyStore::open(dir.path()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // Every request sees a complete, valid set: one of the two good ones.
                        let set = store.current();
                        let (a, b) = (blocks(&set, "alpha"), blocks(&set, "beta"));
                        assert!(a != b, "a request saw no valid policy");
                        n += 1;
                        std::thread::yield_now();
                    }
                    n
                })
            })
            .collect();
        for i in 0..20 {
            let text = [GOOD, BAD, GOOD2, BAD][i % 4];
            std::fs::write(&f, text).unwrap();
            let _ = store.reload_now();
        }
        stop.store(true, Ordering::Relaxed);
        let served: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(served > 0);
        let st = store.status();
        assert_eq!((st.reloads, st.failures), (11, 10));
    }

    #[test]
    fn reloads_that_would_drop_policies_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        let bot = dir.path().join("bot.yaml");
        std::fs::write(&bot, "id: bot\nextends: default\n").unwrap();
        let store = PolicyStore::open(dir.path()).unwrap();
        store.require(vec!["bot".into()]);
        // A policy a tenant is bound to disappears: refused.
        std::fs::remove_file(&bot).unwrap();
        let err = store.reload_now().unwrap_err().to_string();
        assert!(err.contains("`bot` is bound to a tenant"), "{err}");
        assert!(store.current().get("bot").is_some(), "last good set serves");
        // Every file removed: refused, not replaced by the embedded default.
        std::fs::remove_file(dir.path().join("default.yaml")).unwrap();
        let err = store.reload_now().unwrap_err().to_string();
        assert!(err.contains("no policy file left"), "{err}");
        // The directory itself removed: refused.
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
        assert!(store.reload_now().is_err());
        assert!(first_rule_blocks(&store, "alpha"));
        assert_eq!(store.status().failures, 3);
    }

    #[test]
    fn embedded_store_has_nothing_to_watch() {
        let store = PolicyStore::embedded();
        assert!(store.reload_now().is_ok());
        assert!(matches!(store.watch(), Err(WatchError::NoDirectory)));
    }
}
