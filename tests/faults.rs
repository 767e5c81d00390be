//! Faults of what the gateway depends on, injected while it serves (issue #11): Redis
//! down at start, killed mid-traffic and restarted, slow; the OTLP collector down then
//! up; the audit log's disk full (a real 64 KiB tmpfs); the policy directory broken,
//! deleted and restored; SIGTERM under load. Each must follow its declared fail mode, be
//! counted in `/metrics` and in the audit log, and recover without a gateway restart.
//! Real sockets, a real `redis-server`, the real binary where signals are involved.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use haechi::config::{AuditConfig, GatewayConfig, StoreConfig, TenantConfig};
use haechi::tenancy::keys::KeyHash;
use haechi::tenancy::quota::QuotaSpec;
use haechi::tenancy::redis::FailMode;
use support::mock_upstream::{self, Reply};
use support::redis::RedisProc;
use support::*;

const KEY: &str = "hk_test_faults_tenant";

fn chat_body(stream: bool) -> String {
    serde_json::json!({"model":"gpt-4o-mini","max_tokens":16,"stream":stream,
        "messages":[{"role":"user","content":"hello there"}]})
    .to_string()
}

/// A config with one tenant (`acme`, a generous request limit) on a Redis quota store.
fn redis_config(mock: &MockUpstream, url: &str, mode: FailMode) -> GatewayConfig {
    let mut config = config_for(mock);
    config.tenants = vec![TenantConfig {
        id: "acme".into(),
        keys: vec![KeyHash::of(KEY).to_string()],
        regions: None,
        policy: None,
        models: None,
        quotas: Some(QuotaSpec {
            requests_per_minute: Some(100_000),
            ..Default::default()
        }),
        credentials: Default::default(),
        aws_access_key_ids: Vec::new(),
    }];
    config.store = Some(StoreConfig {
        redis_url: Some(url.to_string()),
        fail_mode: mode,
        timeout_ms: 250,
        replicas: 1,
        vault_key_env: None,
        vault_ttl_secs: 60,
    });
    config
}

async fn tenant_chat(gw: &TestGateway, stream: bool) -> Whole {
    let auth = format!("Bearer {KEY}");
    call(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
        ],
        chat_body(stream),
    )
    .await
}

/// Every record of a JSON Lines audit log (and its rotated files are not used here).
fn audit_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

fn records_by_id(path: &Path) -> HashMap<String, Vec<serde_json::Value>> {
    let mut out: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for r in audit_records(path) {
        let id = r["request_id"].as_str().unwrap_or_default().to_string();
        out.entry(id).or_default().push(r);
    }
    out
}

/// Sum of the samples of `name` whose labels contain every `label` (`k="v"`).
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split(['{', ' '])
                .next()
                .is_some_and(|n| n == name || n == format!("{name}_total"))
        })
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics_text(base: &str) -> String {
    let r = call("GET", &format!("{base}/metrics"), &[], "").await;
    assert_eq!(r.status, 200);
    String::from_utf8_lossy(&r.body).into_owned()
}

fn fail_event<'a>(record: &'a serde_json::Value, component: &str) -> Option<&'a str> {
    record["fail_events"]
        .as_array()?
        .iter()
        .find(|e| e["component"] == component)
        .and_then(|e| e["mode"].as_str())
}

/// Checks the error body is an OpenAI-shaped error and the request id is set.
fn assert_openai_error(r: &Whole, status: u16) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["error"]["message"].is_string(), "provider-shaped");
    assert!(r.header("x-haechi-request-id").is_some());
}

fn redis_has_tenant_keys(url: &str) -> bool {
    ::redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .and_then(|mut c| ::redis::cmd("EXISTS").arg("q:{acme}").query::<i64>(&mut c))
        .is_ok_and(|n| n == 1)
}

/// After Redis is back, requests are admitted by Redis again (not by the fallback), with
/// no restart of the gateway: polls until one is.
async fn wait_until_admitted_by_redis(gw: &TestGateway, audit: &Path) -> usize {
    for attempt in 1..=100 {
        let r = tenant_chat(gw, false).await;
        if r.status == 200 {
            let id = r.header("x-haechi-request-id").expect("request id");
            let records = records_by_id(audit);
            if records[&id][0]["quota"] == "admitted" {
                return attempt;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("requests never went back to Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_follows_the_fail_mode_and_recovers_without_restart() {
    let bin = require_redis!();
    let mock = MockUpstream::start().await;
    for mode in [FailMode::Closed, FailMode::Open] {
        let mut redis = RedisProc::start(bin.clone());
        redis.stop();
        let gw = TestGateway::start(redis_config(&mock, &redis.url(), mode)).await;
        let audit = gw.audit_dir.path().join("audit.jsonl");
        let mut ids = Vec::new();
        for stream in [false, true, false] {
            let r = tenant_chat(&gw, stream).await;
            match mode {
                FailMode::Closed => assert_openai_error(&r, 503),
                FailMode::Open => assert_eq!(r.status, 200, "{mode:?}"),
            }
            ids.push(r.header("x-haechi-request-id").expect("id"));
        }
        let (name, mode_label, quota) = match mode {
            FailMode::Closed => ("fail_closed", "mode=\"closed\"", "store_unavailable"),
            FailMode::Open => ("fail_open", "mode=\"open\"", "admitted_local_fallback"),
        };
        let text = metrics_text(&format!("http://{}", gw.addr)).await;
        assert_eq!(
            metric(
                &text,
                "haechi_fail_events",
                &["component=\"quota_store\"", mode_label]
            ),
            3.0,
            "{mode:?}: every request counted: {text} {:?}",
            audit_records(&audit)
        );
        let records = records_by_id(&audit);
        for id in &ids {
            let r = &records[id];
            assert_eq!(r.len(), 1, "one record per request");
            assert_eq!(fail_event(&r[0], "quota_store"), Some(name), "{}", r[0]);
            assert_eq!(r[0]["quota"], quota);
        }

        redis.restart();
        let attempts = wait_until_admitted_by_redis(&gw, &audit).await;
        assert!(redis_has_tenant_keys(&redis.url()));
        eprintln!("{mode:?}: Redis back, admitted by Redis after {attempts} request(s)");
        gw.stop().await;
    }
}

/// In `fail_open` the local limiter (limits divided by `replicas`) also refuses: those
/// 429s are recorded and counted as fail-open events too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_refusals_by_the_local_limiter_are_recorded() {
    let bin = require_redis!();
    let mock = MockUpstream::start().await;
    let mut redis = RedisProc::start(bin);
    redis.stop();
    let mut config = redis_config(&mock, &redis.url(), FailMode::Open);
    if let Some(q) = config.tenants[0].quotas.as_mut() {
        q.requests_per_minute = Some(2);
    }
    let gw = TestGateway::start(config).await;
    let audit = gw.audit_dir.path().join("audit.jsonl");
    let mut statuses = Vec::new();
    let mut refused_id = None;
    for _ in 0..3 {
        let r = tenant_chat(&gw, false).await;
        statuses.push(r.status);
        if r.status == 429 {
            refused_id = r.header("x-haechi-request-id");
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    let record = &records_by_id(&audit)[&refused_id.expect("a refusal")][0];
    assert_eq!(record["quota"], "refused_local_fallback");
    assert_eq!(fail_event(record, "quota_store"), Some("fail_open"));
    let text = metrics_text(&format!("http://{}", gw.addr)).await;
    assert_eq!(
        metric(
            &text,
            "haechi_fail_events",
            &["component=\"quota_store\"", "mode=\"open\""]
        ),
        3.0
    );
    gw.stop().await;
}

/// Counts of what the traffic saw while Redis was killed and restarted.
#[derive(Debug, Default)]
struct Seen {
    statuses: HashMap<u16, usize>,
    ids: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_traffic_and_restarted_follows_the_fail_mode() {
    let bin = require_redis!();
    let mock = MockUpstream::start().await;
    for mode in [FailMode::Closed, FailMode::Open] {
        let mut redis = RedisProc::start(bin.clone());
        let gw = Arc::new(TestGateway::start(redis_config(&mock, &redis.url(), mode)).await);
        let audit = gw.audit_dir.path().join("audit.jsonl");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut workers = Vec::new();
        for w in 0..4 {
            let (gw, stop, seen) = (gw.clone(), stop.clone(), seen.clone());
            workers.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let r = tenant_chat(&gw, (w + i) % 2 == 0).await;
                    if r.status != 200 {
                        assert_openai_error(&r, 503);
                    }
                    if r.status == 200 && (w + i) % 2 == 0 {
                        assert!(
                            String::from_utf8_lossy(&r.body).ends_with("data: [DONE]\n\n"),
                            "streams complete"
                        );
                    }
                    let mut s = seen.lock().expect("lock");
                    *s.statuses.entry(r.status).or_default() += 1;
                    s.ids.push(r.header("x-haechi-request-id").expect("id"));
                    i += 1;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        redis.stop();
        tokio::time::sleep(Duration::from_millis(800)).await;
        redis.restart();
        tokio::time::sleep(Duration::from_millis(800)).await;
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.await.expect("worker");
        }
        let seen = std::mem::take(&mut *seen.lock().expect("lock"));
        eprintln!("{mode:?}: statuses {:?}", seen.statuses);
        let allowed: &[u16] = match mode {
            FailMode::Closed => &[200, 503],
            FailMode::Open => &[200],
        };
        assert!(
            seen.statuses.keys().all(|s| allowed.contains(s)),
            "{mode:?}: {:?}",
            seen.statuses
        );
        let records = records_by_id(&audit);
        let mut failed = 0;
        for id in &seen.ids {
            let r = records.get(id).map_or(&[][..], Vec::as_slice);
            assert_eq!(r.len(), 1, "{mode:?}: request {id} has exactly one record");
            if fail_event(&r[0], "quota_store").is_some() {
                failed += 1;
                if mode == FailMode::Closed {
                    assert_eq!(r[0]["status"], 503);
                }
            }
        }
        assert!(failed > 0, "{mode:?}: the outage was seen by some requests");
        if mode == FailMode::Closed {
            assert_eq!(failed, seen.statuses.get(&503).copied().unwrap_or(0));
        }
        let text = metrics_text(&format!("http://{}", gw.addr)).await;
        let label = if mode == FailMode::Closed {
            "mode=\"closed\""
        } else {
            "mode=\"open\""
        };
        assert_eq!(
            metric(
                &text,
                "haechi_fail_events",
                &["component=\"quota_store\"", label]
            ),
            failed as f64,
            "{mode:?}: metrics and audit agree"
        );
        wait_until_admitted_by_redis(&gw, &audit).await;
        assert!(redis_has_tenant_keys(&redis.url()));
        eprintln!(
            "{mode:?}: {} requests, {failed} met the outage, Redis used again after restart",
            seen.ids.len()
        );
        if let Ok(gw) = Arc::try_unwrap(gw) {
            gw.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_redis_times_out_into_the_fail_mode_and_recovers() {
    let bin = require_redis!();
    let mock = MockUpstream::start().await;
    for mode in [FailMode::Closed, FailMode::Open] {
        let redis = RedisProc::start(bin.clone());
        let gw = TestGateway::start(redis_config(&mock, &redis.url(), mode)).await;
        let audit = gw.audit_dir.path().join("audit.jsonl");
        assert_eq!(tenant_chat(&gw, false).await.status, 200);
        // Redis stops answering every client for 1.5 s (the gateway's deadline: 250 ms).
        let mut admin = ::redis::Client::open(redis.url())
            .and_then(|c| c.get_connection())
            .expect("redis admin connection");
        ::redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(1500)
            .arg("ALL")
            .query::<String>(&mut admin)
            .expect("CLIENT PAUSE");
        let started = std::time::Instant::now();
        let r = tenant_chat(&gw, false).await;
        let waited = started.elapsed();
        let id = r.header("x-haechi-request-id").expect("id");
        match mode {
            FailMode::Closed => assert_openai_error(&r, 503),
            FailMode::Open => assert_eq!(r.status, 200),
        }
        let record = &records_by_id(&audit)[&id][0];
        let expected = if mode == FailMode::Closed {
            "fail_closed"
        } else {
            "fail_open"
        };
        assert_eq!(fail_event(record, "quota_store"), Some(expected));
        eprintln!("{mode:?}: request during a Redis pause answered {} after {waited:?} (paused for 1.5 s)", r.status);
        let attempts = wait_until_admitted_by_redis(&gw, &audit).await;
        eprintln!("{mode:?}: admitted by Redis again after {attempts} request(s)");
        gw.stop().await;
    }
}

/// The gateway binary with an OTLP/HTTP endpoint where no collector listens yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_collector_down_then_up_drops_counts_and_resumes_export() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port")
    };
    let (port, collector_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_haechi"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &mock.openai_base()])
        .arg("--audit-log")
        .arg(dir.path().join("audit.jsonl"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{collector_port}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
        .env("HAECHI_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn haechi");
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        eventually(20, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok())
        .await
    );
    let chat = |base: String| async move {
        post_json(&format!("{base}/v1/chat/completions"), &chat_body(false)).await
    };
    for _ in 0..5 {
        assert_eq!(
            chat(base.clone()).await.status,
            200,
            "serves with the collector down"
        );
    }
    let mut dropped = 0.0;
    for _ in 0..100 {
        dropped = metric(&metrics_text(&base).await, "haechi_otel_dropped_spans", &[]);
        if dropped > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped > 0.0, "spans of failed exports are counted");

    let (_, rx) = otlp::receiver_on(&format!("127.0.0.1:{collector_port}"));
    let mut later = Vec::new();
    for _ in 0..5 {
        let r = chat(base.clone()).await;
        assert_eq!(r.status, 200);
        later.push(r.header("x-haechi-request-id").expect("id"));
    }
    let found = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut found = std::collections::HashSet::new();
        while std::time::Instant::now() < deadline && found.len() < later.len() {
            if let Ok((path, _, body)) = rx.recv_timeout(Duration::from_millis(200)) {
                assert_eq!(path, "/v1/traces");
                for id in &later {
                    if body.windows(id.len()).any(|w| w == id.as_bytes()) {
                        found.insert(id.clone());
                    }
                }
            }
        }
        (found.len(), later.len())
    })
    .await
    .expect("join");
    eprintln!("collector down: {dropped} spans dropped and counted; up: spans of {}/{} later requests exported", found.0, found.1);
    assert_eq!(found.0, found.1, "export resumed for every later request");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success());
}

/// A 64 KiB tmpfs, unmounted on drop. Mounting needs root (CI containers run as root).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "haechi-faults"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(dir))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    /// Fills the file system; returns the filler file to delete to free the space.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = [0u8; 1024];
        while f.write_all(&block).is_ok() {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn verify_chain(file: &Path) -> bool {
    Command::new(env!("CARGO_BIN_EXE_haechi"))
        .args(["audit", "verify"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_on_a_full_disk_follows_its_fail_mode_and_recovers() {
    let mock = MockUpstream::start().await;
    for mode in [FailMode::Closed, FailMode::Open] {
        let Some(fs) = Tmpfs::mount() else {
            assert!(
                std::env::var_os("HAECHI_REQUIRE_TMPFS").is_none(),
                "cannot mount a tmpfs (needs root)"
            );
            eprintln!("SKIPPED: cannot mount a tmpfs (needs root)");
            return;
        };
        let path = fs.path().join("audit.jsonl");
        let mut config = config_for(&mock);
        config.audit = AuditConfig {
            path: Some(path.clone()),
            fail_mode: mode,
            ..AuditConfig::default()
        };
        let gw = TestGateway::start(config).await;
        let url = gw.url("/v1/chat/completions");
        assert_eq!(post_json(&url, &chat_body(false)).await.status, 200);
        // Sync once so the head checkpoint file exists before the disk fills.
        gw.gateway.recorder.log.flush().await.expect("flush");
        let filler = fs.fill();
        // 1. The log's last page may still hold a few records: stream until one record
        //    fails. The log is not yet known to fail, so that stream reached the
        //    upstream; fail closed cuts it before its end.
        let mut cut_at_failure = None;
        for _ in 0..40 {
            let (id, _, cut) = stream_chat(&url).await;
            if records_by_id(&path).contains_key(&id) {
                assert!(!cut, "{mode:?}: a recorded stream ends normally");
                continue;
            }
            cut_at_failure = Some(cut);
            break;
        }
        let cut = cut_at_failure.expect("a write failed on the full disk");
        assert_eq!(cut, mode == FailMode::Closed, "{mode:?}: stream ending");

        // 2. The log is now known to fail. Fail closed refuses before the upstream (the
        //    pre-flight: no tokens spent), JSON and streams alike; fail open serves.
        let upstream_calls = mock.recorded().len();
        let mut served_while_full = 0;
        for _ in 0..3 {
            let r = post_json(&url, &chat_body(false)).await;
            match mode {
                FailMode::Closed => assert_openai_error(&r, 503),
                FailMode::Open => assert_eq!(r.status, 200),
            }
            if r.status == 200 {
                served_while_full += 1;
            }
        }
        let (_, status, cut) = stream_chat(&url).await;
        assert!(!cut, "{mode:?}: refused or served whole, not cut");
        match mode {
            FailMode::Closed => assert_eq!(status, 503, "stream refused before the upstream"),
            FailMode::Open => assert_eq!(status, 200),
        }
        if status == 200 {
            served_while_full += 1;
        }
        let reached_upstream = mock.recorded().len() - upstream_calls;
        match mode {
            FailMode::Closed => {
                assert_eq!(served_while_full, 0);
                assert_eq!(reached_upstream, 0, "refused before the upstream");
            }
            FailMode::Open => {
                assert_eq!(served_while_full, 4);
                assert_eq!(reached_upstream, 4);
            }
        }
        let text_m = metrics_text(&format!("http://{}", gw.addr)).await;
        let failures = metric(&text_m, "haechi_audit_write_failures", &[]);
        let label = if mode == FailMode::Closed {
            "mode=\"closed\""
        } else {
            "mode=\"open\""
        };
        let events = metric(
            &text_m,
            "haechi_fail_events",
            &["component=\"audit\"", label],
        );
        assert!(
            failures >= 5.0,
            "{mode:?}: write failures counted ({failures})"
        );
        assert_eq!(failures, events, "{mode:?}: one fail event per lost record");

        // 3. Space comes back: the pre-flight's probe sees it, records are written
        //    again, and the chain is intact.
        std::fs::remove_file(&filler).expect("free space");
        let r = post_json(&url, &chat_body(false)).await;
        assert_eq!(r.status, 200, "{mode:?}: recovered");
        let id = r.header("x-haechi-request-id").expect("id");
        assert_eq!(records_by_id(&path)[&id].len(), 1, "its record is written");

        // 4. Full again: a JSON answer whose record is the first to fail has reached the
        //    upstream (nothing knew yet); fail closed refuses it after the fact.
        let filler = fs.fill();
        let mut failed = None;
        for _ in 0..40 {
            let calls = mock.recorded().len();
            let r = post_json(&url, &chat_body(false)).await;
            let id = r.header("x-haechi-request-id").expect("id");
            if records_by_id(&path).contains_key(&id) {
                continue;
            }
            assert_eq!(
                mock.recorded().len(),
                calls + 1,
                "the first failure is found by writing"
            );
            failed = Some(r);
            break;
        }
        let failed = failed.expect("a write failed on the full disk again");
        match mode {
            FailMode::Closed => assert_openai_error(&failed, 503),
            FailMode::Open => assert_eq!(failed.status, 200),
        }
        std::fs::remove_file(&filler).expect("free space");
        assert_eq!(post_json(&url, &chat_body(false)).await.status, 200);
        assert!(verify_chain(&path), "{mode:?}: chain intact");
        eprintln!(
            "{mode:?}: {failures} records not written while full, {served_while_full}/4 served, {reached_upstream}/4 reached the upstream, recovered"
        );
        gw.stop().await;
    }
}

/// Sends a streamed chat request and reads it to the end: its request id, status, and
/// whether the body ended with an error (cut).
async fn stream_chat(url: &str) -> (String, u16, bool) {
    let streamed = send(
        "POST",
        url,
        &[("content-type", "application/json")],
        chat_body(true),
    )
    .await;
    let id = streamed
        .headers()
        .get("x-haechi-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("id")
        .to_string();
    let status = streamed.status().as_u16();
    let mut body = streamed.into_body();
    let mut cut = false;
    loop {
        match http_body_util::BodyExt::frame(&mut body).await {
            None => break,
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                cut = true;
                break;
            }
        }
    }
    (id, status, cut)
}

const BLOCK_ALPHA: &str =
    "id: default\ninput:\n  - {id: w, detector: word, words: [frobnicate], action: block}\n";
const BLOCK_BETA: &str =
    "id: default\ninput:\n  - {id: w, detector: word, words: [zorblax], action: block}\n";
const BLOCK_GAMMA: &str =
    "id: default\ninput:\n  - {id: w, detector: word, words: [quuxify], action: block}\n";
const BROKEN: &str =
    "id: default\ninput:\n  - {id: w, detector: word, words: [zorblax], action: blok}\n";

async fn blocked(gw: &TestGateway, word: &str) -> bool {
    let body = serde_json::json!({"model":"gpt-4o-mini",
        "messages":[{"role":"user","content":format!("please {word} this")}]})
    .to_string();
    let r = post_json(&gw.url("/v1/chat/completions"), &body).await;
    r.header("x-haechi-action").as_deref() == Some("block")
}

async fn wait_failures(gw: &TestGateway, n: u64) {
    let policies = gw.gateway.policies.clone();
    assert!(
        eventually(10, || policies.status().failures >= n).await,
        "reload failure {n} recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_directory_broken_deleted_and_restored_while_serving() {
    let mock = MockUpstream::start().await;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("policies");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("default.yaml"), BLOCK_ALPHA).expect("write");
    let mut config = config_for(&mock);
    config.policies = Some(dir.clone());
    let gw = TestGateway::start(config).await;
    let _watch = gw.gateway.policies.watch().expect("watch");
    let audit = gw.audit_dir.path().join("audit.jsonl");
    let good = gw.gateway.policies.status().version;
    assert!(blocked(&gw, "frobnicate").await);
    let good_policy =
        audit_records(&audit).pop().expect("a record")["input"]["policy_version"].clone();
    assert!(good_policy.is_string());

    // 1. A broken file: refused, the last good policy keeps applying.
    std::fs::write(dir.join("default.yaml"), BROKEN).expect("write");
    wait_failures(&gw, 1).await;
    // 2. Every file removed, the directory left empty: refused.
    std::fs::remove_file(dir.join("default.yaml")).expect("rm");
    wait_failures(&gw, 2).await;
    // 3. The directory deleted: refused.
    std::fs::remove_dir_all(&dir).expect("rm -r");
    wait_failures(&gw, 3).await;
    assert!(blocked(&gw, "frobnicate").await, "last good policy applies");
    assert!(!blocked(&gw, "zorblax").await);
    let status = gw.gateway.policies.status();
    assert_eq!(status.version, good);
    let ready = call("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 200, "still ready on the last good policy");
    assert!(ready.json()["policy"]["last_error"].is_string());
    let text = metrics_text(&format!("http://{}", gw.addr)).await;
    assert_eq!(
        metric(&text, "haechi_policy_reload_failures", &[]),
        status.failures as f64
    );
    // The records name the policy version that decided.
    let last = audit_records(&audit).pop().expect("a record");
    assert_eq!(last["input"]["policy_version"], good_policy);

    // 4. Restored (a new directory at the same path): picked up without a restart.
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("default.yaml"), BLOCK_BETA).expect("write");
    let mut restored = false;
    for _ in 0..100 {
        if blocked(&gw, "zorblax").await {
            restored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(restored, "restored directory loaded");
    assert!(!blocked(&gw, "frobnicate").await);
    // 5. And the new directory is watched: an edit in it applies.
    let tmp = dir.join(".default.yaml.tmp");
    std::fs::write(&tmp, BLOCK_GAMMA).expect("write");
    std::fs::rename(&tmp, dir.join("default.yaml")).expect("rename");
    let mut edited = false;
    for _ in 0..100 {
        if blocked(&gw, "quuxify").await {
            edited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(edited, "edits in the restored directory reload");
    let status = gw.gateway.policies.status();
    assert!(status.last_error.is_none());
    eprintln!(
        "policy dir: {} refused reloads, {} good loads",
        status.failures, status.reloads
    );
    gw.stop().await;
}

/// SIGTERM to `haechi serve` with 40 requests in flight (half streamed, all slow): every
/// one completes, each has exactly one audit record, the chain verifies, exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_completes_every_request_with_one_record() {
    let words: Vec<&str> = vec!["tick "; 8];
    let mock = MockUpstream::start_with(Arc::new(move |req| {
        let stream = serde_json::from_slice::<serde_json::Value>(&req.body)
            .ok()
            .and_then(|v| v["stream"].as_bool())
            .unwrap_or(false);
        if stream {
            mock_upstream::openai_sse("m", &words, Duration::from_millis(150))
        } else {
            let body = mock_upstream::openai_json("m", "slow answer").to_string();
            let (a, b) = body.split_at(body.len() / 2);
            Reply::Chunks {
                status: 200,
                content_type: "application/json",
                chunks: vec![
                    (Duration::from_millis(600), Bytes::from(a.to_string())),
                    (Duration::from_millis(600), Bytes::from(b.to_string())),
                ],
            }
        }
    }))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_haechi"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &mock.openai_base()])
        .arg("--audit-log")
        .arg(&audit)
        .env("HAECHI_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn haechi");
    assert!(
        eventually(20, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok())
        .await
    );
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    const N: usize = 40;
    let mut tasks = Vec::new();
    for i in 0..N {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let stream = i % 2 == 0;
            let r = post_json(&url, &chat_body(stream)).await;
            (stream, r)
        }));
    }
    let requests = mock.requests.clone();
    assert!(
        eventually(20, || requests.lock().map(|r| r.len()).unwrap_or(0) == N).await,
        "all requests in flight at the upstream"
    );
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let mut ids = Vec::new();
    for t in tasks {
        let (stream, r) = t.await.expect("task");
        assert_eq!(r.status, 200);
        if stream {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            assert!(body.ends_with("data: [DONE]\n\n"), "stream completed");
            assert_eq!(sse_text(r.body.as_ref()).matches("tick").count(), 8);
        } else {
            assert_eq!(
                r.json()["choices"][0]["message"]["content"],
                "slow answer",
                "whole answer"
            );
        }
        ids.push(r.header("x-haechi-request-id").expect("id"));
    }
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
    let records = records_by_id(&audit);
    for id in &ids {
        let r = records.get(id).map_or(&[][..], Vec::as_slice);
        assert_eq!(r.len(), 1, "request {id}: exactly one record");
        assert_eq!(r[0]["outcome"], "ok");
    }
    assert_eq!(records.len(), N, "no other records");
    assert!(verify_chain(&audit));
    eprintln!("SIGTERM with {N} in flight: {N}/{N} completed, {N} records, exit 0");
}
