//! `haechi audit verify FILE...`: checks the hash chain of one or more audit log files.
//!
//! For every line, in order: the line ends with a `hash` field; SHA-256 of the line without
//! that field equals it (else the record was **edited**); its `prev_hash` equals the hash of
//! the record before it (else a record was **deleted**, **reordered** or **inserted**); the
//! last line ends with a newline (else it was **truncated**). Files are taken in chain
//! order: rotated files (`<name>.<YYYYMMDDTHHMMSSmmmZ>`) by their stamp, then the others
//! (the live file) in the order given, so `verify audit.jsonl*` just works.
//!
//! # Limits (documented in docs/audit.md)
//! - Deleting the last records of the last file leaves a valid, shorter chain. The writer's
//!   `<file>.head` checkpoint (latest hash, updated on every fsync) catches this: the head's
//!   hash must appear in the chain. Records written after the last head update (between
//!   syncs, or all of them with `fsync: never`) are not covered, and an attacker who can
//!   rewrite the head can hide the deletion.
//! - Deleting records at the start of the first file given is indistinguishable from
//!   retention that removed older files: the report says whether the chain starts at
//!   genesis.
//! - The chain is unkeyed: someone with write access who recomputes every hash from the
//!   edit point onward (and the head) produces a valid chain. Ship the head hash off the
//!   machine (e.g. in a trace attribute or a remote log) to close that gap.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::log::{chain_hash, head_path, is_stamp, split_hash, GENESIS};

/// What is wrong with the first bad record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line is not a record of this format (no trailing hash, not JSON).
    Malformed(String),
    /// The record's content does not match its hash: it was edited.
    HashMismatch { stored: String, computed: String },
    /// `prev_hash` does not link to the previous record: a record was deleted, reordered or
    /// inserted before this one (or a file of the set is missing).
    BrokenLink { expected: String, found: String },
    /// The last line has no newline: the file was cut.
    Truncated,
    /// The head checkpoint names a hash that is not in the chain: records at the end were
    /// deleted.
    TailMissing { head: String },
    /// The head sidecar exists but is unreadable.
    BadHead(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed record: {why}"),
            Self::HashMismatch { stored, computed } => write!(
                f,
                "record was edited (stored hash {stored}, content hashes to {computed})"
            ),
            Self::BrokenLink { expected, found } => write!(
                f,
                "chain broken: prev_hash is {found} but the previous record's hash is {expected} \
                 (a record was deleted, reordered or inserted before this one, or a file is missing)"
            ),
            Self::Truncated => write!(f, "last line is cut short (file truncated)"),
            Self::TailMissing { head } => write!(
                f,
                "the head checkpoint {head} is not in the chain: records were deleted from the end"
            ),
            Self::BadHead(why) => write!(f, "unreadable head checkpoint: {why}"),
        }
    }
}

/// The first bad record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub file: PathBuf,
    /// 1-based line number (one past the last line for [`Problem::TailMissing`]).
    pub line: u64,
    pub request_id: Option<String>,
    pub problem: Problem,
}

/// Result of a verification.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Files in the order they were checked.
    pub files: Vec<PathBuf>,
    /// Records checked (up to and excluding the first bad one).
    pub records: u64,
    /// `prev_hash` of the first record: [`GENESIS`] when the chain starts at the beginning.
    pub anchor: Option<String>,
    /// Hash of the last good record.
    pub last_hash: Option<String>,
    /// Whether a head checkpoint was found and checked.
    pub head_checked: bool,
    /// The first bad record, if any.
    pub bad: Option<BadRecord>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn intact(&self) -> bool {
        self.bad.is_none()
    }

    /// True when the first record is the first of its chain (nothing before it is missing).
    pub fn starts_at_genesis(&self) -> bool {
        self.anchor.as_deref().is_none_or(|a| a == GENESIS)
    }
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    request_id: Option<String>,
    prev_hash: String,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    request_id: Option<String>,
}

/// Orders files as the writer made them: rotated files by stamp, then the others.
pub fn chain_order(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut keyed: Vec<(u8, String, usize, PathBuf)> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match name.rsplit_once('.').filter(|(_, s)| is_stamp(s)) {
                Some((_, stamp)) => (0, stamp.to_string(), i, p.clone()),
                None => (1, String::new(), i, p.clone()),
            }
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(.., p)| p).collect()
}

/// Verifies the chain across `paths` (any order; see [`chain_order`]), writing a short
/// human-readable verdict to `out`. I/O errors (a missing file) are returned as `Err`.
pub fn verify(paths: &[PathBuf], out: &mut dyn Write) -> io::Result<VerifyReport> {
    let files = chain_order(paths);
    let mut report = VerifyReport {
        files: files.clone(),
        ..VerifyReport::default()
    };
    // Head checkpoint of the last file, if the writer left one.
    let head = match files.last().map(|p| head_path(p)) {
        Some(hp) if hp.exists() => {
            let s = std::fs::read_to_string(&hp)?;
            let h = s.trim().to_string();
            if h.len() != 64 || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                report.bad = Some(BadRecord {
                    file: hp,
                    line: 1,
                    request_id: None,
                    problem: Problem::BadHead("not a 64-hex hash".into()),
                });
                write_verdict(&report, out)?;
                return Ok(report);
            }
            Some(h)
        }
        _ => None,
    };
    let mut head_seen = head.is_none();
    let mut expected: Option<String> = None;
    let mut last_pos: Option<(PathBuf, u64)> = None;

    'files: for path in &files {
        let mut reader = BufReader::with_capacity(1 << 16, File::open(path)?);
        let mut line = Vec::with_capacity(1024);
        let mut n = 0u64;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            n += 1;
            let complete = line.last() == Some(&b'\n');
            let body = if complete {
                &line[..line.len() - 1]
            } else {
                &line[..]
            };
            match check_line(body, complete, expected.as_deref()) {
                Ok((hash, prev)) => {
                    if report.anchor.is_none() {
                        report.anchor = Some(prev.clone());
                        if head.as_deref() == Some(prev.as_str()) {
                            head_seen = true;
                        }
                    }
                    if head.as_deref() == Some(hash.as_str()) {
                        head_seen = true;
                    }
                    report.records += 1;
                    expected = Some(hash);
                }
                Err(problem) => {
                    report.bad = Some(BadRecord {
                        file: path.clone(),
                        line: n,
                        request_id: request_id_of(body),
                        problem,
                    });
                    break 'files;
                }
            }
        }
        last_pos = Some((path.clone(), n));
    }
    report.last_hash = expected;
    if report.bad.is_none() {
        if let Some(h) = &head {
            report.head_checked = true;
            if report.anchor.is_none() && h == GENESIS {
                head_seen = true;
            }
            if !head_seen {
                let (file, lines) = last_pos.unwrap_or_default();
                report.bad = Some(BadRecord {
                    file,
                    line: lines + 1,
                    request_id: None,
                    problem: Problem::TailMissing { head: h.clone() },
                });
            }
        }
    }
    write_verdict(&report, out)?;
    Ok(report)
}

/// Checks one line; returns its hash and prev_hash.
fn check_line(
    body: &[u8],
    complete: bool,
    expected: Option<&str>,
) -> Result<(String, String), Problem> {
    let Some((prefix, stored)) = split_hash(body) else {
        return Err(if complete {
            Problem::Malformed("no trailing `hash` field".into())
        } else {
            Problem::Truncated
        });
    };
    let computed = chain_hash(prefix);
    if computed != stored {
        return Err(Problem::HashMismatch {
            stored: stored.to_string(),
            computed,
        });
    }
    let link: Link =
        serde_json::from_slice(body).map_err(|e| Problem::Malformed(format!("not JSON: {e}")))?;
    let _ = link.request_id;
    if let Some(exp) = expected {
        if link.prev_hash != exp {
            return Err(Problem::BrokenLink {
                expected: exp.to_string(),
                found: link.prev_hash,
            });
        }
    }
    if !complete {
        // Whole record but no newline: the writer always ends lines, so this was cut.
        return Err(Problem::Truncated);
    }
    Ok((stored.to_string(), link.prev_hash))
}

fn request_id_of(body: &[u8]) -> Option<String> {
    if let Ok(id) = serde_json::from_slice::<IdOnly>(body) {
        return id.request_id;
    }
    // Not JSON any more (cut or mangled): find the field by hand.
    let key = b"\"request_id\":\"";
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &body[at..];
    let end = rest.iter().position(|b| *b == b'"')?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn write_verdict(report: &VerifyReport, out: &mut dyn Write) -> io::Result<()> {
    match &report.bad {
        None => {
            writeln!(
                out,
                "OK: {} records in {} file(s) form an intact chain",
                report.records,
                report.files.len()
            )?;
            if !report.starts_at_genesis() {
                writeln!(
                    out,
                    "note: the chain continues an earlier file not given here (first prev_hash {})",
                    report.anchor.as_deref().unwrap_or("-")
                )?;
            }
            if report.head_checked {
                writeln!(out, "head checkpoint: present and in the chain")?;
            } else {
                writeln!(
                    out,
                    "note: no head checkpoint; deletion of the last records cannot be ruled out"
                )?;
            }
        }
        Some(bad) => {
            writeln!(
                out,
                "TAMPERED: {}:{} (request_id {}): {}",
                display(&bad.file),
                bad.line,
                bad.request_id.as_deref().unwrap_or("-"),
                bad.problem
            )?;
            writeln!(out, "{} records before it are intact", report.records)?;
        }
    }
    Ok(())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
