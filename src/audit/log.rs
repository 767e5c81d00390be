//! Append-only, hash-chained JSON Lines audit log.
//!
//! # Chain
//! Each line is one [`AuditRecord`] serialized compactly by serde_json in field order.
//! The writer sets `prev_hash` to the previous record's `hash`, serializes the record
//! without `hash`, computes `hash = SHA-256(those bytes)`, and writes the same bytes with
//! `,"hash":"<64 hex>"` spliced in before the closing brace. The canonical serialization is
//! therefore *the bytes on disk minus the hash field*: the verifier hashes bytes and never
//! re-serializes, so no JSON canonicalization can disagree between writer and verifier.
//! The first record ever has `prev_hash` = 64 zeros ([`GENESIS`]).
//!
//! # Rotation
//! When the next line would push the file past `max_bytes`, or the UTC day of the file's
//! first record is not today's, the file is fsynced and renamed to
//! `<path>.<YYYYMMDDTHHMMSSmmmZ>` (UTC, sortable as text; `-1`, `-2`, ... appended on a
//! clash) and a new file is started at `<path>`. The new file's first record links to the
//! last hash of the rotated one, so the chain runs across files.
//!
//! # Durability ([`FsyncPolicy`])
//! `append` resolves once the line has been handed to the OS (`write(2)`), or, with
//! `always`, once it is on stable storage (`fdatasync`). Records that arrive together are
//! written and synced together (group commit). After every sync the latest hash goes to the
//! sidecar `<path>.head`, a checkpoint that lets `verify` detect a deleted tail.
//!
//! # Failures
//! A failed write is truncated away (the file stays a valid chain), counted, logged at
//! error level and returned as [`AuditError`] so the caller can apply its fail mode.
//! The log remembers that its last record failed until one is written again
//! ([`AuditLog::accepting`]), so that a fail-closed caller can refuse work *before* doing
//! it; a probe (a block-sized scratch file next to the log) tells when space is back.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, Semaphore};

use super::record::{file_stamp, utc_day, AuditRecord};

/// `prev_hash` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bytes of the `,"hash":"<64 hex>"}` suffix of every line.
pub(crate) const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// When the log calls `fdatasync`.
///
/// | policy | a record is acknowledged after | lost on power failure | cost |
/// |---|---|---|---|
/// | `always` | it is on disk | nothing acknowledged | one `fdatasync` per batch (ms on disks, µs–ms on SSD) |
/// | `interval_ms: N` | it is in the OS page cache | up to N ms of records | one sync per N ms |
/// | `never` | it is in the OS page cache | whatever the OS had not flushed (≈30 s on Linux) | none |
///
/// A process crash (not a power failure) loses nothing acknowledged under any policy,
/// since written data is in the kernel. Rotation and shutdown always sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    IntervalMs(u64),
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        Self::IntervalMs(1000)
    }
}

impl std::str::FromStr for FsyncPolicy {
    type Err = AuditError;

    /// `always`, `never`, `interval_ms:<N>` or `<N>ms`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let ms = t
            .strip_prefix("interval_ms:")
            .or_else(|| t.strip_prefix("interval_ms="))
            .or_else(|| t.strip_suffix("ms"));
        match (t, ms) {
            ("always", _) => Ok(Self::Always),
            ("never", _) => Ok(Self::Never),
            (_, Some(n)) => n
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Self::IntervalMs)
                .ok_or_else(|| AuditError::Config(format!("bad fsync interval `{s}`"))),
            _ => Err(AuditError::Config(format!(
                "fsync policy must be `always`, `never` or `interval_ms:<N>`, got `{s}`"
            ))),
        }
    }
}

/// How the audit log is written.
#[derive(Debug, Clone)]
pub struct AuditLogOptions {
    /// Log file; `None` writes to stdout (no rotation, no head sidecar, chain restarts at
    /// every process start).
    pub path: Option<PathBuf>,
    /// Also copy every line to stdout when `path` is set.
    pub also_stdout: bool,
    pub fsync: FsyncPolicy,
    /// Rotate before a file would grow past this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate when the UTC day changes.
    pub rotate_daily: bool,
    /// Records waiting to be written before `append` waits for room (back-pressure).
    pub queue: usize,
    /// Incremented on every failed record (share the one from [`super::metrics::Metrics`]).
    pub failure_counter: Option<Counter>,
}

impl Default for AuditLogOptions {
    fn default() -> Self {
        Self {
            path: None,
            also_stdout: false,
            fsync: FsyncPolicy::default(),
            max_bytes: None,
            rotate_daily: false,
            queue: 4096,
            failure_counter: None,
        }
    }
}

/// Audit log failures. Cloneable so that one failed batch can be reported to each caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("audit log: cannot {op} {path}: {message}")]
    Io {
        op: &'static str,
        path: PathBuf,
        kind: io::ErrorKind,
        message: String,
    },
    #[error("audit log: cannot resume the chain of {path}: {reason}")]
    Resume { path: PathBuf, reason: String },
    #[error("audit log: {0}")]
    Config(String),
    #[error("audit log: cannot serialize a record: {0}")]
    Serialize(String),
    #[error("audit log is closed")]
    Closed,
}

impl AuditError {
    fn io(op: &'static str, path: &Path, e: &io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_path_buf(),
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    /// True for a full disk or quota (ENOSPC / EDQUOT).
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            Self::Io { kind, .. } if *kind == io::ErrorKind::StorageFull || *kind == io::ErrorKind::QuotaExceeded
        )
    }
}

enum Msg {
    Append(Box<AuditRecord>, oneshot::Sender<Result<(), AuditError>>),
    Flush(oneshot::Sender<Result<(), AuditError>>),
    Close(oneshot::Sender<Result<(), AuditError>>),
}

/// Handle to the audit log. Cheap to share (`Arc<AuditLog>`); one writer thread per log.
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    permits: Arc<Semaphore>,
    failures: Arc<AtomicU64>,
    path: Option<PathBuf>,
    /// The writer, shared with its thread. Unless every record must be fsynced, appends
    /// write from the caller's task under this lock (a write to the page cache takes
    /// microseconds; a hand-off to the thread costs two context switches per record);
    /// the thread keeps the fsync interval, flushes and close.
    writer: Arc<std::sync::Mutex<Writer>>,
    inline: bool,
    /// The last record failed to be written and none has been written since.
    failing: AtomicBool,
    /// One probe at a time, and when the last one ran (see [`AuditLog::accepting`]).
    probe: std::sync::Mutex<Option<Instant>>,
}

/// Bytes the probe writes: one filesystem block, more than a typical record.
const PROBE_BYTES: usize = 4096;

/// Without a file to probe (stdout), how often a record is let through as the probe.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish()
    }
}

impl AuditLog {
    /// Opens (or creates) the log, resumes the chain from the last record on disk, and
    /// starts the writer thread. Blocking (file I/O): call before serving or via
    /// `spawn_blocking`.
    pub fn open(opts: AuditLogOptions) -> Result<Self, AuditError> {
        if let FsyncPolicy::IntervalMs(0) = opts.fsync {
            return Err(AuditError::Config("fsync interval must be > 0".into()));
        }
        let failures = Arc::new(AtomicU64::new(0));
        let writer = Arc::new(std::sync::Mutex::new(Writer::open(
            &opts,
            failures.clone(),
        )?));
        let inline = !matches!(opts.fsync, FsyncPolicy::Always);
        let (tx, rx) = mpsc::channel();
        let shared = writer.clone();
        std::thread::Builder::new()
            .name("haechi-audit".into())
            .spawn(move || Writer::run(&shared, rx))
            .map_err(|e| AuditError::io("start the writer thread for", Path::new("-"), &e))?;
        Ok(Self {
            tx,
            permits: Arc::new(Semaphore::new(opts.queue.max(1))),
            failures,
            path: opts.path,
            writer,
            inline,
            failing: AtomicBool::new(false),
            probe: std::sync::Mutex::new(None),
        })
    }

    /// Remembers the outcome of a record write for [`AuditLog::accepting`].
    fn note(&self, result: Result<(), AuditError>) -> Result<(), AuditError> {
        match &result {
            Ok(()) => self.failing.store(false, Ordering::Relaxed),
            Err(AuditError::Closed) => {}
            Err(_) => self.failing.store(true, Ordering::Relaxed),
        }
        result
    }

    /// Whether the log is expected to take the next record: `true` unless the last record
    /// failed and none was written since. While failing, a file log is probed on every
    /// call (one at a time; a concurrent call answers `false`): a scratch file of one
    /// block is written next to the log and removed, and success clears the failing
    /// state, so the log recovers by itself when space returns. A stdout log has nothing
    /// to probe; it answers `true` once per second so that one record tries. Blocking
    /// (a few small file operations, only while failing).
    pub fn accepting(&self) -> bool {
        if !self.failing.load(Ordering::Relaxed) {
            return true;
        }
        let Ok(mut last) = self.probe.try_lock() else {
            return false;
        };
        match &self.path {
            Some(path) => {
                let ok = probe_space(path);
                *last = Some(Instant::now());
                if ok {
                    self.failing.store(false, Ordering::Relaxed);
                }
                ok
            }
            None => {
                let due = last.is_none_or(|t| t.elapsed() >= PROBE_INTERVAL);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
        }
    }

    /// Appends one record; resolves once it is written (and synced under `always`).
    /// `prev_hash` and `hash` are set by the log. Never blocks the async runtime.
    pub async fn append(&self, record: AuditRecord) -> Result<(), AuditError> {
        if self.inline {
            return self.note(self.append_inline(record));
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AuditError::Closed)?;
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Append(Box::new(record), ack))
            .map_err(|_| AuditError::Closed)?;
        self.note(done.await.map_err(|_| AuditError::Closed)?)
    }

    /// Writes one record from the calling thread under the writer lock: serialized into
    /// the writer's reusable buffer, hashed, one `write(2)`; no hand-off, no allocation
    /// beyond serde's. The fsync interval is kept by the writer thread.
    fn append_inline(&self, mut record: AuditRecord) -> Result<(), AuditError> {
        let mut writer = self.writer.lock().map_err(|_| AuditError::Closed)?;
        if writer.closed {
            return Err(AuditError::Closed);
        }
        writer.append_one(&mut record)
    }

    /// Blocking variant of [`AuditLog::append`] for threads outside a runtime (CLI, tests).
    /// Panics if called from inside an async context (tokio's `blocking_recv` rule).
    pub fn append_blocking(&self, record: AuditRecord) -> Result<(), AuditError> {
        if self.inline {
            return self.note(self.append_inline(record));
        }
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Append(Box::new(record), ack))
            .map_err(|_| AuditError::Closed)?;
        self.note(done.blocking_recv().map_err(|_| AuditError::Closed)?)
    }

    /// Syncs the file and updates the head sidecar now (e.g. before a planned shutdown).
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Flush(ack))
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Syncs, writes the head and stops the writer; later appends return `Closed`.
    pub async fn close(&self) -> Result<(), AuditError> {
        self.permits.close();
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Close(ack))
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Blocking variant of [`AuditLog::close`].
    pub fn close_blocking(&self) -> Result<(), AuditError> {
        self.permits.close();
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Close(ack))
            .map_err(|_| AuditError::Closed)?;
        done.blocking_recv().map_err(|_| AuditError::Closed)?
    }

    /// Records that failed to be written since the log was opened.
    pub fn write_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The live file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// Whether a block can be written next to the log file `path` (same filesystem): writes
/// `<path>.probe`, then removes it.
fn probe_space(path: &Path) -> bool {
    let mut s = path.as_os_str().to_os_string();
    s.push(".probe");
    let probe = PathBuf::from(s);
    let written = File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; PROBE_BYTES])?;
        f.flush()
    });
    // Removed either way (a failed write may leave an empty or partial file).
    let _ = std::fs::remove_file(&probe);
    written.is_ok()
}

/// Path of the head sidecar of a log file.
pub fn head_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".head");
    PathBuf::from(s)
}

/// Splits a line (without its newline) into the hashed prefix (everything before
/// `,"hash":"`; the hashed bytes are this prefix plus `}`) and the stored hash.
pub(crate) fn split_hash(line: &[u8]) -> Option<(&[u8], &str)> {
    if line.len() < HASH_SUFFIX_LEN + 2 || !line.ends_with(b"\"}") {
        return None;
    }
    let cut = line.len() - HASH_SUFFIX_LEN;
    let (prefix, suffix) = line.split_at(cut);
    let hex = suffix.strip_prefix(b",\"hash\":\"")?.get(..64)?;
    if !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some((prefix, std::str::from_utf8(hex).ok()?))
}

/// SHA-256 hex of `prefix` + `}`: the record as serialized without its `hash` field.
pub(crate) fn chain_hash(prefix: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prefix);
    h.update(b"}");
    hex::encode(h.finalize())
}

/// Serializes `record` linked to `prev`, returning the line (with newline) and its hash.
pub(crate) fn seal(record: &mut AuditRecord, prev: &str) -> Result<(Vec<u8>, String), AuditError> {
    let mut bytes = Vec::with_capacity(512);
    let hash = seal_into(record, prev, &mut bytes)?;
    Ok((bytes, String::from_utf8_lossy(&hash).into_owned()))
}

/// Appends the line of `record` linked to `prev` (with newline) to `out` and returns its
/// hash as hex. On error `out` is left as it was.
pub(crate) fn seal_into(
    record: &mut AuditRecord,
    prev: &str,
    out: &mut Vec<u8>,
) -> Result<[u8; 64], AuditError> {
    record.prev_hash.clear();
    record.prev_hash.push_str(prev);
    record.hash.clear();
    let start = out.len();
    if let Err(e) = serde_json::to_writer(&mut *out, &*record) {
        out.truncate(start);
        return Err(AuditError::Serialize(e.to_string()));
    }
    if out.len() == start || out.last() != Some(&b'}') {
        out.truncate(start);
        return Err(AuditError::Serialize("record is not a JSON object".into()));
    }
    out.pop();
    let mut h = Sha256::new();
    h.update(&out[start..]);
    h.update(b"}");
    let mut hex = [0u8; 64];
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(h.finalize(), &mut hex);
    out.extend_from_slice(b",\"hash\":\"");
    out.extend_from_slice(&hex);
    out.extend_from_slice(b"\"}\n");
    Ok(hex)
}

struct LiveFile {
    path: PathBuf,
    file: File,
    head: Option<File>,
    len: u64,
    /// UTC day (`YYYY-MM-DD`) of the file's first record; `None` while empty.
    day: Option<String>,
}

struct Writer {
    file: Option<LiveFile>,
    stdout: bool,
    fsync: FsyncPolicy,
    max_bytes: Option<u64>,
    rotate_daily: bool,
    last_hash: String,
    dirty: bool,
    last_sync: Instant,
    failures: Arc<AtomicU64>,
    counter: Option<Counter>,
    /// Set once the log is closed; later appends fail.
    closed: bool,
    /// Reused line buffer of inline appends.
    scratch: Vec<u8>,
}

impl Writer {
    fn open(opts: &AuditLogOptions, failures: Arc<AtomicU64>) -> Result<Self, AuditError> {
        let (file, last_hash) = match &opts.path {
            None => (None, GENESIS.to_string()),
            Some(path) => {
                let (live, hash) = open_live(path)?;
                (Some(live), hash)
            }
        };
        Ok(Self {
            stdout: file.is_none() || opts.also_stdout,
            file,
            fsync: opts.fsync,
            max_bytes: opts.max_bytes,
            rotate_daily: opts.rotate_daily,
            last_hash,
            dirty: false,
            last_sync: Instant::now(),
            failures,
            counter: opts.failure_counter.clone(),
            closed: false,
            scratch: Vec::with_capacity(2048),
        })
    }

    /// The writer thread: batches of handed-off records, the fsync interval (records
    /// written inline mark the writer dirty; a periodic tick syncs them), flush, close.
    fn run(shared: &std::sync::Mutex<Self>, rx: mpsc::Receiver<Msg>) {
        let tick = match shared.lock().map(|w| w.fsync) {
            Ok(FsyncPolicy::IntervalMs(ms)) => Some(Duration::from_millis(ms)),
            _ => None,
        };
        loop {
            let first = match tick {
                Some(every) => {
                    // Wake when the oldest unsynced write becomes due, not a whole
                    // interval after the last wake-up.
                    let wait = shared
                        .lock()
                        .map(|w| every.saturating_sub(w.last_sync.elapsed()))
                        .unwrap_or(every)
                        .max(Duration::from_millis(1));
                    match rx.recv_timeout(wait) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Ok(mut w) = shared.lock() {
                                if w.dirty && w.last_sync.elapsed() >= every {
                                    if let Err(e) = w.sync() {
                                        w.count_failure(1, &e);
                                    }
                                } else if !w.dirty {
                                    // Nothing to sync: restart the interval.
                                    w.last_sync = Instant::now();
                                }
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            let mut batch = vec![first];
            while batch.len() < 1024 {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let Ok(mut w) = shared.lock() else {
                return;
            };
            if w.handle(batch) {
                w.closed = true;
                return;
            }
        }
        if let Ok(mut w) = shared.lock() {
            let _ = w.sync();
        }
    }

    /// Writes one record now (the inline path). The fsync interval is left to the
    /// writer thread's tick, so no request pays for a periodic sync.
    fn append_one(&mut self, record: &mut AuditRecord) -> Result<(), AuditError> {
        let mut line = std::mem::take(&mut self.scratch);
        line.clear();
        let result = self.append_line(record, &mut line);
        if line.capacity() <= 1 << 20 {
            self.scratch = line;
        }
        result
    }

    fn append_line(
        &mut self,
        record: &mut AuditRecord,
        line: &mut Vec<u8>,
    ) -> Result<(), AuditError> {
        let hash = match seal_into(record, &self.last_hash, line) {
            Ok(h) => h,
            Err(e) => {
                self.count_failure(1, &e);
                return Err(e);
            }
        };
        if self.needs_rotation(line.len() as u64) {
            // Rotation syncs and moves the file; the chain (last_hash) is unchanged, so
            // the sealed line still links correctly.
            if let Err(e) = self.rotate() {
                tracing::error!(error = %e, "audit log rotation failed");
            }
        }
        if let Err(e) = self.write_all(line) {
            self.count_failure(1, &e);
            return Err(e);
        }
        self.last_hash.clear();
        self.last_hash
            .push_str(std::str::from_utf8(&hash).unwrap_or(GENESIS));
        self.dirty = true;
        if self.fsync == FsyncPolicy::Always {
            if let Err(e) = self.sync() {
                self.count_failure(1, &e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes a batch; returns true when the log was closed.
    fn handle(&mut self, batch: Vec<Msg>) -> bool {
        let mut buf = Vec::with_capacity(512 * batch.len());
        let mut acks = Vec::new();
        let mut control = Vec::new();
        // Chain hash before the first record not yet written (restored if the write fails).
        let mut batch_start = self.last_hash.clone();
        for msg in batch {
            match msg {
                Msg::Append(mut record, ack) => {
                    let (line, hash) = match seal(&mut record, &self.last_hash) {
                        Ok(x) => x,
                        Err(e) => {
                            self.count_failure(1, &e);
                            let _ = ack.send(Err(e));
                            continue;
                        }
                    };
                    if self.needs_rotation(buf.len() as u64 + line.len() as u64) {
                        // Commit what precedes the rotation to the old file first.
                        self.commit(&mut buf, &mut acks, &batch_start);
                        if let Err(e) = self.rotate() {
                            // Keep writing to the current file rather than lose records.
                            tracing::error!(error = %e, "audit log rotation failed");
                        }
                        // The sealed line links to last_hash, which commit may have reset.
                        let (line, hash) = match seal(&mut record, &self.last_hash) {
                            Ok(x) => x,
                            Err(e) => {
                                self.count_failure(1, &e);
                                let _ = ack.send(Err(e));
                                continue;
                            }
                        };
                        batch_start = self.last_hash.clone();
                        buf.extend_from_slice(&line);
                        self.last_hash = hash;
                    } else {
                        buf.extend_from_slice(&line);
                        self.last_hash = hash;
                    }
                    acks.push(ack);
                }
                other => control.push(other),
            }
        }
        self.commit(&mut buf, &mut acks, &batch_start);
        let mut closed = false;
        for msg in control {
            match msg {
                Msg::Flush(ack) => {
                    let _ = ack.send(self.sync());
                }
                Msg::Close(ack) => {
                    let _ = ack.send(self.sync());
                    closed = true;
                }
                Msg::Append(..) => {}
            }
        }
        closed
    }

    fn needs_rotation(&self, extra: u64) -> bool {
        let Some(live) = &self.file else {
            return false;
        };
        if live.len == 0 {
            return false;
        }
        let too_big = self.max_bytes.is_some_and(|m| live.len + extra > m);
        let new_day = self.rotate_daily
            && live
                .day
                .as_deref()
                .is_some_and(|d| d != utc_day(SystemTime::now()));
        too_big || new_day
    }

    /// Writes `buf`, then acknowledges every waiting record with the outcome. On failure
    /// the file is cut back to its previous length and the chain to `batch_start`.
    fn commit(
        &mut self,
        buf: &mut Vec<u8>,
        acks: &mut Vec<oneshot::Sender<Result<(), AuditError>>>,
        batch_start: &str,
    ) {
        if acks.is_empty() {
            return;
        }
        let mut result = self.write_all(buf);
        if result.is_ok() {
            self.dirty = true;
            let due = match self.fsync {
                FsyncPolicy::Always => true,
                FsyncPolicy::IntervalMs(ms) => {
                    self.last_sync.elapsed() >= Duration::from_millis(ms)
                }
                FsyncPolicy::Never => false,
            };
            if due {
                result = self.sync();
            }
        }
        if let Err(e) = &result {
            // A failed write was cut back, so the chain resumes before it; a failed sync
            // leaves the records in the file (and the chain) but unacknowledged as durable.
            if e_is_write(e) {
                self.last_hash = batch_start.to_string();
            }
            self.count_failure(acks.len() as u64, e);
        }
        for ack in acks.drain(..) {
            let _ = ack.send(result.clone());
        }
        buf.clear();
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), AuditError> {
        if let Some(live) = &mut self.file {
            if let Err(e) = live.file.write_all(buf) {
                let err = AuditError::io("write", &live.path, &e);
                // Undo a partial line so the file stays a valid chain.
                let _ = live.file.set_len(live.len);
                let _ = live.file.seek(SeekFrom::End(0));
                return Err(err);
            }
            if live.len == 0 {
                live.day = Some(utc_day(SystemTime::now()));
            }
            live.len += buf.len() as u64;
        }
        if self.stdout {
            let mut out = io::stdout().lock();
            out.write_all(buf)
                .and_then(|()| out.flush())
                .map_err(|e| AuditError::io("write", Path::new("<stdout>"), &e))?;
        }
        Ok(())
    }

    /// fdatasync the file, then record the head checkpoint.
    fn sync(&mut self) -> Result<(), AuditError> {
        self.last_sync = Instant::now();
        let Some(live) = &mut self.file else {
            self.dirty = false;
            return Ok(());
        };
        live.file
            .sync_data()
            .map_err(|e| AuditError::io("fsync", &live.path, &e))?;
        self.dirty = false;
        write_head(live, &self.last_hash)
    }

    fn rotate(&mut self) -> Result<(), AuditError> {
        self.sync()?;
        let Some(live) = &mut self.file else {
            return Ok(());
        };
        let target = rotated_name(&live.path);
        std::fs::rename(&live.path, &target)
            .map_err(|e| AuditError::io("rename", &live.path, &e))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&live.path)
            .map_err(|e| AuditError::io("create", &live.path, &e))?;
        live.file = file;
        live.len = 0;
        live.day = None;
        sync_dir(&live.path);
        write_head(live, &self.last_hash)?;
        tracing::info!(rotated = %target.display(), "audit log rotated");
        Ok(())
    }

    fn count_failure(&self, n: u64, e: &AuditError) {
        self.failures.fetch_add(n, Ordering::Relaxed);
        if let Some(c) = &self.counter {
            c.inc_by(n);
        }
        tracing::error!(error = %e, records = n, disk_full = e.is_disk_full(), "AUDIT WRITE FAILED");
    }
}

fn e_is_write(e: &AuditError) -> bool {
    matches!(e, AuditError::Io { op: "write", .. })
}

fn write_head(live: &mut LiveFile, hash: &str) -> Result<(), AuditError> {
    let path = head_path(&live.path);
    if live.head.is_none() {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| AuditError::io("open", &path, &e))?;
        live.head = Some(f);
    }
    if let Some(f) = &mut live.head {
        // A fixed 65-byte overwrite at offset 0: one sector, so never torn in practice.
        let mut line = [b'\n'; 65];
        line[..64].copy_from_slice(&hash.as_bytes()[..64.min(hash.len())]);
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&line))
            .and_then(|()| f.set_len(65))
            .map_err(|e| AuditError::io("write", &path, &e))?;
    }
    Ok(())
}

/// `<path>.<stamp>`, made unique with `-N`.
fn rotated_name(path: &Path) -> PathBuf {
    let stamp = file_stamp(SystemTime::now());
    let base = {
        let mut s = path.as_os_str().to_os_string();
        s.push(".");
        s.push(&stamp);
        PathBuf::from(s)
    };
    if !base.exists() {
        return base;
    }
    (1u32..)
        .map(|n| {
            let mut s = base.as_os_str().to_os_string();
            s.push(format!("-{n}"));
            PathBuf::from(s)
        })
        .find(|p| !p.exists())
        .unwrap_or(base)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Opens the live file for appending and finds the hash to continue from.
fn open_live(path: &Path) -> Result<(LiveFile, String), AuditError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io("create directory", dir, &e))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| AuditError::io("open", path, &e))?;
    let mut len = file
        .metadata()
        .map_err(|e| AuditError::io("stat", path, &e))?
        .len();
    let (last, first) = if len == 0 {
        (None, None)
    } else {
        let tail = read_tail(&mut file, len).map_err(|e| AuditError::io("read", path, &e))?;
        let complete = match tail.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None => 0,
        };
        if complete < tail.len() {
            // A torn last line (crash mid-write): cut it so the chain can continue.
            let cut = len - (tail.len() - complete) as u64;
            tracing::warn!(path = %path.display(), bytes = len - cut, "audit log ends with a partial line; truncating it");
            file.set_len(cut)
                .map_err(|e| AuditError::io("truncate", path, &e))?;
            len = cut;
        }
        let body = &tail[..complete];
        let last_line = body
            .strip_suffix(b"\n")
            .map(|b| match b.iter().rposition(|c| *c == b'\n') {
                Some(i) => &b[i + 1..],
                None => b,
            })
            .filter(|l| !l.is_empty());
        let last =
            match last_line {
                None => None,
                Some(line) => Some(split_hash(line).map(|(_, h)| h.to_string()).ok_or_else(
                    || AuditError::Resume {
                        path: path.to_path_buf(),
                        reason: "the last record has no valid hash; rotate the file by hand".into(),
                    },
                )?),
            };
        (last, first_day(path))
    };
    let hash = match last {
        Some(h) => h,
        None => previous_hash(path),
    };
    file.seek(SeekFrom::End(0))
        .map_err(|e| AuditError::io("seek", path, &e))?;
    Ok((
        LiveFile {
            path: path.to_path_buf(),
            file,
            head: None,
            len,
            day: if len == 0 { None } else { first },
        },
        hash,
    ))
}

/// Last bytes of the file, enough to hold its last complete line.
fn read_tail(file: &mut File, len: u64) -> io::Result<Vec<u8>> {
    let mut want = 64 * 1024u64;
    loop {
        let take = want.min(len);
        file.seek(SeekFrom::Start(len - take))?;
        let mut buf = vec![0; take as usize];
        file.read_exact(&mut buf)?;
        // Need two newlines (end of the previous line and end of the last one), unless
        // we already have the whole file.
        if take == len || buf.iter().filter(|b| **b == b'\n').count() >= 2 {
            return Ok(buf);
        }
        want *= 4;
    }
}

/// UTC day of the first record of a file (for daily rotation after a restart).
fn first_day(path: &Path) -> Option<String> {
    let mut f = File::open(path).ok()?;
    let mut buf = vec![0; 4096];
    let n = f.read(&mut buf).ok()?;
    let line = buf.get(..n)?;
    let at = line.windows(8).position(|w| w == b"\"time\":\"")? + 8;
    let day = line.get(at..at + 10)?;
    Some(String::from_utf8_lossy(day).into_owned())
}

/// The hash an empty live file continues from: the head sidecar, else the last record
/// of the newest rotated file, else genesis.
fn previous_hash(path: &Path) -> String {
    if let Ok(s) = std::fs::read_to_string(head_path(path)) {
        let h = s.trim();
        if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return h.to_string();
        }
    }
    if let Some(newest) = rotated_siblings(path).pop() {
        if let Ok(mut f) = File::open(&newest) {
            if let Ok(len) = f.metadata().map(|m| m.len()) {
                if let Ok(tail) = read_tail(&mut f, len) {
                    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
                    let line = match body.iter().rposition(|c| *c == b'\n') {
                        Some(i) => &body[i + 1..],
                        None => body,
                    };
                    if let Some((_, h)) = split_hash(line) {
                        return h.to_string();
                    }
                }
            }
        }
    }
    GENESIS.to_string()
}

/// Rotated files of `path` (`<path>.<stamp>[-N]`), oldest first.
pub fn rotated_siblings(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let stamp = n.strip_prefix(&prefix)?;
            is_stamp(stamp).then(|| (stamp.to_string(), e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// `YYYYMMDDTHHMMSSmmmZ` optionally followed by `-N`.
pub(crate) fn is_stamp(s: &str) -> bool {
    let (stamp, n) = match s.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let b = stamp.as_bytes();
    b.len() == 19
        && b[8] == b'T'
        && b[18] == b'Z'
        && b[..8].iter().chain(&b[9..18]).all(u8::is_ascii_digit)
        && n.is_none_or(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}
