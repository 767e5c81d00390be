//! Tenants through the gateway: keys and 401s, quotas with 429s and rate-limit headers,
//! settlement of streams, region pinning with failover inside the allowed set, and two
//! gateways sharing one real redis-server (including Redis going away and coming back).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use haechi::config::{GatewayConfig, StoreConfig, TenantConfig, UpstreamConfig, UpstreamDialect};
use haechi::tenancy::keys::KeyHash;
use haechi::tenancy::quota::QuotaSpec;
use haechi::tenancy::redis::FailMode;
use support::mock_upstream::{self, Reply};
use support::*;

const KEY_A: &str = "hk_test_tenant_a_key_one";
const KEY_A2: &str = "hk_test_tenant_a_key_two";
const KEY_B: &str = "hk_test_tenant_b";
const CHAT: &str =
    r#"{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"hello"}]}"#;

fn tenant(
    id: &str,
    keys: &[&str],
    quotas: Option<QuotaSpec>,
    regions: Option<&[&str]>,
) -> TenantConfig {
    TenantConfig {
        id: id.into(),
        keys: keys.iter().map(|k| KeyHash::of(k).to_string()).collect(),
        regions: regions.map(|r| r.iter().map(|s| s.to_string()).collect()),
        policy: None,
        models: None,
        quotas,
        credentials: Default::default(),
        aws_access_key_ids: Vec::new(),
    }
}

fn rpm(n: u64) -> QuotaSpec {
    QuotaSpec {
        requests_per_minute: Some(n),
        ..Default::default()
    }
}

fn upstream(name: &str, mock: &MockUpstream, region: &str, priority: i32) -> UpstreamConfig {
    let mut u = UpstreamConfig::new(name, &mock.openai_base(), UpstreamDialect::Openai);
    u.region = Some(region.into());
    u.priority = priority;
    u
}

async fn chat(gw: &TestGateway, key: Option<&str>, extra: &[(&str, &str)]) -> Whole {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    headers.extend_from_slice(extra);
    call("POST", &gw.url("/v1/chat/completions"), &headers, CHAT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_identify_tenants_and_never_go_upstream() {
    let mock = MockUpstream::start().await;
    let mut config = config_for(&mock);
    config.tenants = vec![tenant("a", &[KEY_A, KEY_A2], None, None)];
    let gw = TestGateway::start(config).await;

    let r = chat(&gw, None, &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    let r = chat(&gw, Some("hk_wrong"), &[]).await;
    assert_eq!(r.status, 401);
    let r = call(
        "POST",
        &gw.url("/v1/messages"),
        &[("x-api-key", "nope")],
        r#"{"model":"c","max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error"]["type"],
        "authentication_error",
        "Anthropic shape"
    );

    // Both keys of a rotation work.
    assert_eq!(chat(&gw, Some(KEY_A), &[]).await.status, 200);
    assert_eq!(chat(&gw, Some(KEY_A2), &[]).await.status, 200);
    for seen in mock.recorded() {
        assert!(
            seen.headers.get("authorization").is_none(),
            "gateway keys never go upstream"
        );
    }
    assert_eq!(mock.recorded().len(), 2, "401s never reach the upstream");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_with_429_and_rate_limit_headers() {
    let mock = MockUpstream::start().await;
    let mut config = config_for(&mock);
    config.tenants = vec![
        tenant("a", &[KEY_A], Some(rpm(3)), None),
        tenant("b", &[KEY_B], Some(rpm(3)), None),
    ];
    let gw = TestGateway::start(config).await;
    for expected_remaining in ["2", "1", "0"] {
        let r = chat(&gw, Some(KEY_A), &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit-requests").as_deref(), Some("3"));
        assert_eq!(
            r.header("x-ratelimit-remaining-requests").as_deref(),
            Some(expected_remaining)
        );
        assert!(r.header("x-ratelimit-reset-requests").is_some());
    }
    let r = chat(&gw, Some(KEY_A), &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(
        r.header("x-ratelimit-remaining-requests").as_deref(),
        Some("0")
    );
    // Another tenant's quota is its own.
    assert_eq!(chat(&gw, Some(KEY_B), &[]).await.status, 200);
    assert_eq!(mock.recorded().len(), 4);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_settlement_uses_reported_usage_and_hides_the_usage_chunk() {
    // The mock streams, and adds OpenAI's usage chunk only when asked to.
    let mock = MockUpstream::start_with(Arc::new(|req| {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let mut events = mock_upstream::openai_sse_events("m", &["a", "b"]);
        if body["stream_options"]["include_usage"] == true {
            let usage = serde_json::json!({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],
                "usage":{"prompt_tokens":20,"completion_tokens":2,"total_tokens":22}});
            let done = events.pop().expect("done");
            events.push(Bytes::from(format!("data: {usage}\n\n")));
            events.push(done);
        }
        Reply::Chunks {
            status: 200,
            content_type: "text/event-stream",
            chunks: events.into_iter().map(|e| (std::time::Duration::ZERO, e)).collect(),
        }
    }))
    .await;
    let mut config = config_for(&mock);
    // 3,000 tokens a minute; each request reserves ~2,000 (max_tokens) before it runs.
    let spec = QuotaSpec {
        tokens_per_minute: Some(3_000),
        ..Default::default()
    };
    config.tenants = vec![tenant("a", &[KEY_A], Some(spec), None)];
    let gw = TestGateway::start(config).await;
    let body = r#"{"model":"m","stream":true,"max_tokens":2000,"messages":[{"role":"user","content":"hi"}]}"#;
    let auth = format!("Bearer {KEY_A}");
    for round in 0..3 {
        let r = call(
            "POST",
            &gw.url("/v1/chat/completions"),
            &[("authorization", &auth)],
            body,
        )
        .await;
        assert_eq!(
            r.status, 200,
            "round {round}: settlement released the unused reservation"
        );
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(
            !text.contains("\"usage\""),
            "the client did not ask for usage: {text}"
        );
        assert!(text.ends_with("data: [DONE]\n\n"));
        // Settlement runs as the body ends; give its task a moment.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let forwarded: serde_json::Value =
        serde_json::from_slice(&mock.recorded()[0].body).expect("json");
    assert_eq!(forwarded["stream_options"]["include_usage"], true);

    // A client that asks for usage gets it.
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = call(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[("authorization", &auth)],
        body,
    )
    .await;
    assert!(String::from_utf8_lossy(&r.body).contains("\"completion_tokens\":2"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_pinning_narrows_never_widens_and_fails_over_inside_the_set() {
    let seoul_down = MockUpstream::start_with(Arc::new(|_| Reply::Whole {
        status: 503,
        content_type: "application/json",
        body: Bytes::from_static(b"{}"),
    }))
    .await;
    let seoul = MockUpstream::start().await;
    let tokyo = MockUpstream::start().await;
    let virginia = MockUpstream::start().await;
    let config = GatewayConfig {
        upstreams: vec![
            upstream("virginia", &virginia, "us-east-1", 0),
            upstream("seoul-1", &seoul_down, "ap-northeast-2", 1),
            upstream("seoul-2", &seoul, "ap-northeast-2", 2),
            upstream("tokyo", &tokyo, "ap-northeast-1", 3),
        ],
        tenants: vec![
            tenant(
                "kr",
                &[KEY_A],
                None,
                Some(&["ap-northeast-2", "ap-northeast-1"]),
            ),
            tenant("us", &[KEY_B], None, Some(&["us-east-1"])),
        ],
        ..GatewayConfig::default()
    };
    let gw = TestGateway::start(config).await;

    for _ in 0..5 {
        let r = chat(&gw, Some(KEY_A), &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-haechi-region").as_deref(),
            Some("ap-northeast-2"),
            "failover stayed in Seoul"
        );
    }
    assert_eq!(
        virginia.recorded().len(),
        0,
        "a pinned tenant never reaches another region"
    );
    assert_eq!(
        seoul_down.recorded().len(),
        1,
        "then tried last while unhealthy"
    );
    assert_eq!(seoul.recorded().len(), 5);

    let r = chat(&gw, Some(KEY_A), &[("x-haechi-region", "ap-northeast-1")]).await;
    assert_eq!(
        r.header("x-haechi-region").as_deref(),
        Some("ap-northeast-1"),
        "narrowing works"
    );
    assert_eq!(tokyo.recorded().len(), 1);

    let r = chat(&gw, Some(KEY_A), &[("x-haechi-region", "us-east-1")]).await;
    assert_eq!(r.status, 403, "widening is refused");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("never widen"));
    assert_eq!(virginia.recorded().len(), 0);

    let r = chat(&gw, Some(KEY_B), &[]).await;
    assert_eq!(r.header("x-haechi-region").as_deref(), Some("us-east-1"));
    gw.stop().await;

    // Every upstream of the allowed region down: the error names it, and nothing
    // leaves the region.
    let config = GatewayConfig {
        upstreams: vec![
            upstream("virginia", &virginia, "us-east-1", 0),
            upstream("seoul-1", &seoul_down, "ap-northeast-2", 1),
        ],
        tenants: vec![tenant("kr", &[KEY_A], None, Some(&["ap-northeast-2"]))],
        ..GatewayConfig::default()
    };
    let before = virginia.recorded().len();
    let gw = TestGateway::start(config).await;
    let r = chat(&gw, Some(KEY_A), &[]).await;
    assert_eq!(r.status, 503, "the only Seoul upstream's own answer");
    assert_eq!(virginia.recorded().len(), before);
    let r = chat(&gw, Some(KEY_A), &[("x-haechi-region", "ap-northeast-2")]).await;
    assert_eq!(r.status, 503);
    gw.stop().await;
}

fn redis_config(mock: &MockUpstream, url: &str, mode: FailMode, limit: u64) -> GatewayConfig {
    let mut config = config_for(mock);
    config.tenants = vec![tenant("a", &[KEY_A], Some(rpm(limit)), None)];
    config.store = Some(StoreConfig {
        redis_url: Some(url.to_string()),
        fail_mode: mode,
        timeout_ms: 250,
        replicas: 2,
        vault_key_env: None,
        vault_ttl_secs: 60,
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_redis_and_follow_the_fail_mode() {
    let bin = require_redis!();
    let mut redis = support::redis::RedisProc::start(bin);
    let mock = MockUpstream::start().await;
    let limit = 25;
    let gw1 = TestGateway::start(redis_config(&mock, &redis.url(), FailMode::Closed, limit)).await;
    let gw2 = TestGateway::start(redis_config(&mock, &redis.url(), FailMode::Closed, limit)).await;

    let admitted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..80 {
        let url = if i % 2 == 0 {
            gw1.url("/v1/chat/completions")
        } else {
            gw2.url("/v1/chat/completions")
        };
        let (admitted, refused) = (admitted.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let auth = format!("Bearer {KEY_A}");
            let r = call("POST", &url, &[("authorization", &auth)], CHAT).await;
            match r.status {
                200 => admitted.fetch_add(1, Ordering::SeqCst),
                429 => refused.fetch_add(1, Ordering::SeqCst),
                other => panic!("unexpected status {other}"),
            };
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(
        admitted.load(Ordering::SeqCst),
        limit as usize,
        "exactly the limit across both replicas"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 80 - limit as usize);

    // Redis gone: fail_closed answers 503.
    redis.stop();
    let r = chat(&gw1, Some(KEY_A), &[]).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    // Redis back on the same port: normal service without a restart (a fresh Redis has
    // no counters, so requests are admitted again).
    redis.restart();
    let mut status = 0;
    for _ in 0..50 {
        status = chat(&gw1, Some(KEY_A), &[]).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "service resumes once Redis is back");
    gw1.stop().await;
    gw2.stop().await;

    // fail_open: with Redis down, local per-replica limits (limit / replicas) apply.
    let gw = TestGateway::start(redis_config(&mock, &redis.url(), FailMode::Open, 10)).await;
    redis.stop();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(chat(&gw, Some(KEY_A), &[]).await.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}: 10 / 2 replicas locally"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    gw.stop().await;
}

/// Two `haechi serve` processes configured from the same YAML file share one Redis:
/// hammered together with more requests than the limit, exactly the limit is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_admit_exactly_the_limit() {
    let bin = require_redis!();
    let redis = support::redis::RedisProc::start(bin);
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let limit = 30;
    let config = format!(
        r#"upstreams:
  - name: mock
    base_url: {base}
    region: ap-northeast-2
tenants:
  - id: acme
    keys: ["{hash}"]
    regions: [ap-northeast-2]
    quotas:
      requests_per_minute: {limit}
store:
  redis_url: {url}
  fail_mode: fail_closed
"#,
        base = mock.openai_base(),
        hash = KeyHash::of(KEY_A),
        url = redis.url(),
    );
    let config_path = dir.path().join("haechi.yaml");
    std::fs::write(&config_path, config).expect("config");
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for i in 0..2 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_haechi"))
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--audit-log")
            .arg(dir.path().join(format!("audit-{i}.jsonl")))
            .env("HAECHI_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn haechi");
        children.push(child);
        assert!(
            eventually(20, || std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok())
            .await
        );
        urls.push(format!("http://127.0.0.1:{port}/v1/chat/completions"));
    }
    let admitted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..90 {
        let url = urls[i % 2].clone();
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            let auth = format!("Bearer {KEY_A}");
            let r = call("POST", &url, &[("authorization", &auth)], CHAT).await;
            assert!(r.status == 200 || r.status == 429, "status {}", r.status);
            if r.status == 200 {
                admitted.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(
        admitted.load(Ordering::SeqCst),
        limit,
        "exactly the limit across two processes"
    );
    assert_eq!(mock.recorded().len(), limit);
}

/// The gateway holds provider keys: a tenant with its own key for an upstream uses it,
/// others use the upstream's; a failing upstream is tried last for a while (passive
/// health), so later requests go straight to the healthy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_credentials_and_passive_health() {
    std::env::set_var("HAECHI_TEST_SHARED_KEY", "sk-shared");
    std::env::set_var("HAECHI_TEST_TENANT_A_KEY", "sk-tenant-a");
    let failing = MockUpstream::start_with(Arc::new(|_| Reply::Whole {
        status: 503,
        content_type: "application/json",
        body: Bytes::from_static(b"{}"),
    }))
    .await;
    let healthy = MockUpstream::start().await;
    let mut first = upstream("first", &failing, "ap-northeast-2", 0);
    first.api_key_env = Some("HAECHI_TEST_SHARED_KEY".into());
    let mut second = upstream("second", &healthy, "ap-northeast-2", 1);
    second.api_key_env = Some("HAECHI_TEST_SHARED_KEY".into());
    let mut a = tenant("a", &[KEY_A], None, None);
    a.credentials
        .insert("second".into(), "HAECHI_TEST_TENANT_A_KEY".into());
    let b = tenant("b", &[KEY_B], None, None);
    let gw = TestGateway::start(GatewayConfig {
        upstreams: vec![first, second],
        tenants: vec![a, b],
        ..GatewayConfig::default()
    })
    .await;
    assert_eq!(chat(&gw, Some(KEY_A), &[]).await.status, 200);
    assert_eq!(chat(&gw, Some(KEY_B), &[]).await.status, 200);
    assert_eq!(chat(&gw, Some(KEY_B), &[]).await.status, 200);
    let seen = healthy.recorded();
    let auth = |i: usize| {
        seen[i]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(auth(0).as_deref(), Some("Bearer sk-tenant-a"));
    assert_eq!(auth(1).as_deref(), Some("Bearer sk-shared"));
    assert_eq!(
        failing.recorded().len(),
        1,
        "after its 503 the failing upstream is tried last"
    );
    gw.stop().await;
}
