//! Chain, rotation, resume and tamper tests for `log.rs` + `verify.rs`.

use std::path::{Path, PathBuf};

use super::log::{head_path, rotated_siblings, AuditLog, AuditLogOptions, FsyncPolicy, GENESIS};
use super::record::{AuditRecord, Outcome};
use super::verify::{verify, Problem, VerifyReport};

fn record(i: usize) -> AuditRecord {
    let mut r = AuditRecord::new(format!("req_{i}"), "chat_completions", 200, Outcome::Ok);
    r.tenant = Some("acme".into());
    r.model = Some("gpt-4o-mini".into());
    r
}

fn opts(path: &Path) -> AuditLogOptions {
    AuditLogOptions {
        path: Some(path.to_path_buf()),
        fsync: FsyncPolicy::Never,
        ..AuditLogOptions::default()
    }
}

fn write_n(o: AuditLogOptions, range: std::ops::Range<usize>) {
    let log = AuditLog::open(o).unwrap();
    for i in range {
        log.append_blocking(record(i)).unwrap();
    }
    log.close_blocking().unwrap();
}

fn check(paths: &[PathBuf]) -> (VerifyReport, String) {
    let mut out = Vec::new();
    let report = verify(paths, &mut out).unwrap();
    (report, String::from_utf8(out).unwrap())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).unwrap();
}

#[test]
fn intact_chain_verifies_and_starts_at_genesis() {
    let dir = tempfile::tempdir().unwrap();
    // The directory is created when missing.
    let path = dir.path().join("logs").join("audit.jsonl");
    write_n(opts(&path), 0..5);
    let ls = lines(&path);
    assert_eq!(ls.len(), 5);
    assert!(ls[0].contains(&format!("\"prev_hash\":\"{GENESIS}\"")));
    let (report, text) = check(std::slice::from_ref(&path));
    assert!(report.intact(), "{text}");
    assert_eq!(report.records, 5);
    assert!(report.starts_at_genesis());
    assert!(report.head_checked, "close writes the head");
    assert!(text.starts_with("OK: 5 records"), "{text}");
}

/// Each kind of tampering is caught and the first bad record is named.
#[test]
fn tampering_is_detected_and_located() {
    type Tamper = fn(&mut Vec<String>);
    let cases: [(&str, Tamper, u64, &str); 5] = [
        (
            "edit a field",
            |l| l[2] = l[2].replace("\"status\":200", "\"status\":201"),
            3,
            "req_2",
        ),
        ("delete a middle record", |l| drop(l.remove(2)), 3, "req_3"),
        ("reorder two records", |l| l.swap(1, 2), 2, "req_2"),
        (
            "insert a forged record with a self-consistent hash",
            |l| {
                // The forger links to record 1 and computes a valid hash for its own line.
                let prev = super::log::split_hash(l[1].as_bytes())
                    .unwrap()
                    .1
                    .to_string();
                let mut forged = record(99);
                let (line, _) = super::log::seal(&mut forged, &prev).unwrap();
                l.insert(2, String::from_utf8(line).unwrap().trim_end().to_string());
            },
            4,
            "req_2",
        ),
        (
            "edit prev_hash to splice",
            |l| l[3] = l[3].replacen("\"prev_hash\":\"", "\"prev_hash\":\"f", 1),
            4,
            "req_3",
        ),
    ];
    for (name, tamper, line, request_id) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_n(opts(&path), 0..6);
        let mut ls = lines(&path);
        tamper(&mut ls);
        rewrite(&path, &ls);
        let (report, text) = check(std::slice::from_ref(&path));
        let bad = report
            .bad
            .unwrap_or_else(|| panic!("{name}: not detected\n{text}"));
        assert_eq!(bad.line, line, "{name}: {text}");
        assert_eq!(
            bad.request_id.as_deref(),
            Some(request_id),
            "{name}: {text}"
        );
        assert!(text.starts_with("TAMPERED: "), "{name}: {text}");
        assert!(text.contains(request_id), "{name}: {text}");
    }
}

#[test]
fn truncated_last_line_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_n(opts(&path), 0..4);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
    let (report, text) = check(std::slice::from_ref(&path));
    let bad = report.bad.expect("truncation not detected");
    assert_eq!(bad.problem, Problem::Truncated, "{text}");
    assert_eq!(bad.line, 4);
    assert_eq!(bad.request_id.as_deref(), Some("req_3"));

    // Cutting only the final newline is also truncation.
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let (report, _) = check(std::slice::from_ref(&path));
    assert_eq!(report.bad.map(|b| b.problem), Some(Problem::Truncated));
}

#[test]
fn deleted_last_record_is_caught_by_the_head_and_only_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_n(opts(&path), 0..4);
    let mut ls = lines(&path);
    ls.pop();
    rewrite(&path, &ls);
    let (report, text) = check(std::slice::from_ref(&path));
    let bad = report.bad.expect("tail deletion not detected");
    assert!(matches!(bad.problem, Problem::TailMissing { .. }), "{text}");
    assert_eq!(bad.line, 4);

    // Without the checkpoint the shorter chain is valid: the documented limit.
    std::fs::remove_file(head_path(&path)).unwrap();
    let (report, text) = check(std::slice::from_ref(&path));
    assert!(report.intact(), "{text}");
    assert!(text.contains("no head checkpoint"), "{text}");
}

#[test]
fn rotation_by_size_links_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let o = AuditLogOptions {
        max_bytes: Some(1500),
        ..opts(&path)
    };
    write_n(o, 0..30);
    let rotated = rotated_siblings(&path);
    assert!(
        rotated.len() >= 3,
        "expected several rotations: {rotated:?}"
    );
    let mut all = rotated.clone();
    all.push(path.clone());
    let mut total = 0;
    for p in &all {
        let size = std::fs::metadata(p).unwrap().len();
        assert!(size <= 1500, "{} is {size} bytes", p.display());
        total += lines(p).len();
    }
    assert_eq!(total, 30);
    // First record of each file links to the last of the previous one.
    for pair in all.windows(2) {
        let last = lines(&pair[0]).pop().unwrap();
        let first = lines(&pair[1]).remove(0);
        let hash = super::log::split_hash(last.as_bytes())
            .unwrap()
            .1
            .to_string();
        assert!(first.contains(&format!("\"prev_hash\":\"{hash}\"")));
    }
    // Given in shell-glob order (live file first), verify still orders them.
    let mut glob_order = vec![path.clone()];
    glob_order.extend(rotated.iter().cloned());
    let (report, text) = check(&glob_order);
    assert!(report.intact(), "{text}");
    assert_eq!(report.records, 30);
    assert!(report.starts_at_genesis());

    // Removing a whole middle file breaks the link at the next file's first record.
    let mut missing = all.clone();
    missing.remove(1);
    let (report, text) = check(&missing);
    let bad = report.bad.expect("missing file not detected");
    assert_eq!(bad.file, all[2], "{text}");
    assert_eq!(bad.line, 1);

    // Verifying only the newer files reports that the chain continues an earlier one.
    let (report, text) = check(&all[1..]);
    assert!(report.intact(), "{text}");
    assert!(!report.starts_at_genesis());
    assert!(text.contains("continues an earlier file"));
}

#[test]
fn resume_after_reopen_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_n(opts(&path), 0..3);
    write_n(opts(&path), 3..6);
    let (report, text) = check(std::slice::from_ref(&path));
    assert!(report.intact(), "{text}");
    assert_eq!(report.records, 6);

    // A torn last line (crash mid-write) is cut on reopen and the chain continues.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"v\":1,\"time\":\"2025-");
    std::fs::write(&path, &bytes).unwrap();
    write_n(opts(&path), 6..8);
    let (report, text) = check(std::slice::from_ref(&path));
    assert!(report.intact(), "{text}");
    assert_eq!(report.records, 8);

    // Reopening right after a rotation (empty live file) links to the rotated file.
    let o = AuditLogOptions {
        max_bytes: Some(600),
        ..opts(&path)
    };
    write_n(o.clone(), 8..9);
    write_n(o, 9..12);
    let mut all = rotated_siblings(&path);
    all.push(path.clone());
    let (report, text) = check(&all);
    assert!(report.intact(), "{text}");
    assert_eq!(report.records, 12);
}

#[test]
fn every_fsync_policy_writes_a_valid_chain() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::IntervalMs(5),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_n(
            AuditLogOptions {
                fsync,
                ..opts(&path)
            },
            0..20,
        );
        let (report, text) = check(std::slice::from_ref(&path));
        assert!(report.intact(), "{fsync:?}: {text}");
        assert_eq!(report.records, 20);
    }
    assert_eq!(
        "interval_ms:250".parse::<FsyncPolicy>().unwrap(),
        FsyncPolicy::IntervalMs(250)
    );
    assert_eq!(
        "100ms".parse::<FsyncPolicy>().unwrap(),
        FsyncPolicy::IntervalMs(100)
    );
    assert_eq!(
        "always".parse::<FsyncPolicy>().unwrap(),
        FsyncPolicy::Always
    );
    assert!("sometimes".parse::<FsyncPolicy>().is_err());
    assert!("interval_ms:0".parse::<FsyncPolicy>().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_appends_form_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = std::sync::Arc::new(AuditLog::open(opts(&path)).unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(record(i)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    log.close().await.unwrap();
    assert!(matches!(
        log.append(record(0)).await,
        Err(super::log::AuditError::Closed)
    ));
    let (report, text) = check(std::slice::from_ref(&path));
    assert!(report.intact(), "{text}");
    assert_eq!(report.records, 200);
}

/// A write error (here: the file is on a full device) is returned, counted and leaves no
/// partial line behind.
#[test]
fn write_failure_is_reported_and_counted() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
    let log = AuditLog::open(AuditLogOptions {
        path: Some(full.to_path_buf()),
        fsync: FsyncPolicy::Never,
        failure_counter: Some(counter.clone()),
        ..AuditLogOptions::default()
    })
    .unwrap();
    let err = log.append_blocking(record(1)).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(log.write_failures(), 1);
    assert_eq!(counter.get(), 1);
}

/// 100k records verify (the time goes in docs/audit.md, measured with `--release`).
#[test]
fn verify_large_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let n = if cfg!(debug_assertions) {
        20_000
    } else {
        100_000
    };
    write_n(opts(&path), 0..n);
    let started = std::time::Instant::now();
    let (report, text) = check(std::slice::from_ref(&path));
    let took = started.elapsed();
    assert!(report.intact(), "{text}");
    assert_eq!(report.records, n as u64);
    eprintln!("verified {n} records in {took:?}");
}

/// A file whose first record is from an earlier UTC day is rotated before the next
/// append when daily rotation is on (here: after a restart, which reads the day back).
#[test]
fn daily_rotation_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(opts(&path)).unwrap();
    for i in 0..2 {
        let mut r = record(i);
        r.time = "2020-01-01T23:59:59.000Z".into();
        log.append_blocking(r).unwrap();
    }
    log.close_blocking().unwrap();
    // Without daily rotation the file just grows.
    write_n(opts(&path), 2..3);
    assert!(rotated_siblings(&path).is_empty());
    assert_eq!(lines(&path).len(), 3);
    write_n(
        AuditLogOptions {
            rotate_daily: true,
            ..opts(&path)
        },
        3..5,
    );
    let rotated = rotated_siblings(&path);
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!(lines(&rotated[0]).len(), 3);
    assert_eq!(lines(&path).len(), 2);
    let mut all = rotated;
    all.push(path.clone());
    let (report, text) = check(&all);
    assert!(report.intact(), "{text}");
    assert_eq!(report.records, 5);
}

/// Inline appends leave the periodic sync to the writer thread: the head checkpoint
/// (written after each sync) names the last record within about one interval, without
/// any further append or flush.
#[test]
fn the_writer_thread_syncs_inline_appends_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(AuditLogOptions {
        fsync: FsyncPolicy::IntervalMs(50),
        ..opts(&path)
    })
    .unwrap();
    for i in 0..3 {
        log.append_blocking(record(i)).unwrap();
    }
    let last = lines(&path).pop().unwrap();
    let want = serde_json::from_str::<serde_json::Value>(&last).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let head = || std::fs::read_to_string(head_path(&path)).unwrap_or_default();
    while head().trim() != want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(head().trim(), want, "head not updated by the interval sync");
    log.close_blocking().unwrap();
}
