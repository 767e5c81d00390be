//! End to end through real OTLP receivers: spans made by the helpers are exported as
//! protobuf to a local HTTP server, carry the expected names and attributes, and the raw
//! payload holds neither the e-mail address nor the card number of the prompt. The real
//! gateway exports over gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`) to a tonic collector and
//! the decoded span tree is checked. A collector that is down (HTTP or gRPC) makes the
//! exporter drop and count spans.

use std::net::TcpListener;
use std::time::{Duration, SystemTime};

use haechi::audit::keyed::KeyedHasher;
use haechi::audit::record::{AuditRecord, FindingRecord, Outcome, RuleRecord, StageRecord};
use haechi::audit::telemetry::{
    build_provider, record_request, server_span, span_layer, GenAiCall, GenAiResult,
    TelemetryConfig, Tracer,
};
use http::HeaderMap;
use prometheus_client::metrics::counter::Counter;
use tracing_subscriber::layer::SubscriberExt;

mod support;
use support::otlp::{grpc_receiver, int_attr, receiver, spans_of, string_attr, strings_attr};
use support::{call, eventually, MockUpstream};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn stage(key: &KeyedHasher, prompt: &str, email: &str, card: &str) -> StageRecord {
    let mut s = StageRecord {
        action: "anonymize".into(),
        shadow_action: "anonymize".into(),
        policy_id: "default".into(),
        policy_version: "v1".into(),
        ..StageRecord::default()
    };
    s.rules.push(RuleRecord {
        id: "pii-in".into(),
        detector: "pii".into(),
        action: "mask".into(),
        score: 1.0,
        count: 2,
    });
    for (label, value) in [("EMAIL", email), ("CREDIT_DEBIT_CARD_NUMBER", card)] {
        let start = prompt.find(value).unwrap();
        *s.labels.entry(label.into()).or_insert(0) += 1;
        s.findings.push(FindingRecord {
            rule: "pii-in".into(),
            label: label.into(),
            text: 0,
            start,
            end: start + value.len(),
            hash: Some(key.tag(value.as_bytes())),
        });
    }
    s
}

#[test]
fn spans_reach_a_real_otlp_receiver_without_sensitive_values() {
    let (url, rx) = receiver();
    let email = "kim.minsu@example.co.kr";
    let card = "4111 1111 1111 1111";
    let prompt = format!("my mail is {email} and my card {card}");
    let key = KeyedHasher::new(b"k");
    let config = TelemetryConfig {
        endpoint: Some(url),
        service_name: Some("haechi-test".into()),
        ..TelemetryConfig::default()
    };
    let dropped = Counter::<u64>::default();
    let provider = build_provider(&config, dropped.clone()).unwrap().unwrap();
    let tracer = Tracer::from_provider(&provider);
    let subscriber = tracing_subscriber::registry().with(span_layer(&provider));
    tracing::subscriber::with_default(subscriber, || {
        let server = server_span("POST", "/v1/chat/completions", "req_e2e", &HeaderMap::new());
        tracer.guardrail(
            &server,
            "input",
            SystemTime::now(),
            &stage(&key, &prompt, email, card),
        );
        let call = tracer.genai(
            &server,
            &GenAiCall {
                operation: "chat",
                provider: "openai",
                request_model: Some("gpt-4o-mini"),
                upstream: "seoul",
                ..GenAiCall::default()
            },
        );
        call.finish(&GenAiResult {
            input_tokens: Some(21),
            output_tokens: Some(5),
            finish_reasons: &["stop"],
            ..GenAiResult::default()
        });
        record_request(
            &server,
            &AuditRecord::new("req_e2e", "chat_completions", 200, Outcome::Ok),
        );
    });
    provider.force_flush().unwrap();
    let mut payload = Vec::new();
    while let Ok((path, ctype, body)) = rx.recv_timeout(Duration::from_secs(5)) {
        assert_eq!(path, "/v1/traces");
        assert_eq!(ctype, "application/x-protobuf");
        payload.extend(body);
        if contains(&payload, b"guardrail input")
            && contains(&payload, b"chat gpt-4o-mini")
            && contains(&payload, b"POST /v1/chat/completions")
        {
            break;
        }
    }
    // Protobuf strings are raw UTF-8, so names and values can be found in the bytes.
    for want in [
        &b"guardrail input"[..],
        b"chat gpt-4o-mini",
        b"POST /v1/chat/completions",
        b"haechi-test",
        b"gen_ai.request.model",
        b"gen_ai.guardrail.rule_ids",
        b"CREDIT_DEBIT_CARD_NUMBER",
        key.tag(email.as_bytes()).as_bytes(),
    ] {
        assert!(
            contains(&payload, want),
            "missing {}",
            String::from_utf8_lossy(want)
        );
    }
    for leak in [email, "kim.minsu", card, "4111111111111111"] {
        assert!(
            !contains(&payload, leak.as_bytes()),
            "`{leak}` leaked into OTLP"
        );
    }
    assert_eq!(dropped.get(), 0);
    let _ = provider.shutdown();
}

#[test]
fn a_collector_that_is_down_makes_spans_dropped_and_counted() {
    // Bind then close to get a port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = TelemetryConfig {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..TelemetryConfig::default()
    };
    let dropped = Counter::<u64>::default();
    let provider = build_provider(&config, dropped.clone()).unwrap().unwrap();
    let subscriber = tracing_subscriber::registry().with(span_layer(&provider));
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..5 {
            drop(server_span(
                "POST",
                "/v1/messages",
                &format!("r{i}"),
                &HeaderMap::new(),
            ));
        }
    });
    let started = std::time::Instant::now();
    let _ = provider.force_flush();
    assert_eq!(dropped.get(), 5);
    assert!(started.elapsed() < Duration::from_secs(15));
    let _ = provider.shutdown();
}

#[test]
fn a_grpc_collector_that_is_down_makes_spans_dropped_and_counted() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = TelemetryConfig {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        protocol: Some("grpc".into()),
        ..TelemetryConfig::default()
    };
    let dropped = Counter::<u64>::default();
    // The gRPC channel lives on a runtime; spans are made and flushed from this thread.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let provider = {
        let _enter = rt.enter();
        build_provider(&config, dropped.clone()).unwrap().unwrap()
    };
    let subscriber = tracing_subscriber::registry().with(span_layer(&provider));
    let started = std::time::Instant::now();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..5 {
            drop(server_span(
                "POST",
                "/v1/messages",
                &format!("r{i}"),
                &HeaderMap::new(),
            ));
        }
    });
    // Making spans never waits on the collector.
    assert!(started.elapsed() < Duration::from_secs(1));
    let _ = provider.force_flush();
    assert_eq!(dropped.get(), 5);
    assert!(started.elapsed() < Duration::from_secs(15));
    let _ = provider.shutdown();
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_exports_its_span_tree_over_grpc() {
    use std::process::{Command, Stdio};
    let email = "jiwoo.park@example.com";
    let card = "4111 1111 1111 1111";
    let mock = MockUpstream::start().await;
    let (endpoint, rx) = grpc_receiver();
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_haechi"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &mock.openai_base()])
        .arg("--audit-log")
        .arg(dir.path().join("audit.jsonl"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", "haechi-grpc")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("HAECHI_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(20, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok())
        .await
    );
    let prompt = format!("Send the receipt for card {card} to {email}, please.");
    let body =
        serde_json::json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":prompt}]})
            .to_string();
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let r = call(
        "POST",
        &format!("http://127.0.0.1:{port}/v1/chat/completions"),
        &[
            ("content-type", "application/json"),
            ("traceparent", &traceparent),
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    let request_id = r.header("x-haechi-request-id").unwrap();
    let upstream_tp = mock.recorded()[0]
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();

    // Collect the request's spans (the batch processor exports every 100 ms).
    let trace_id = hex::decode(TRACE_ID).unwrap();
    let mut spans = Vec::new();
    let rx_spans = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(req) = rx.recv_timeout(Duration::from_millis(200)) {
                let dump = format!("{req:?}");
                assert!(
                    !dump.contains(email)
                        && !dump.contains("jiwoo")
                        && !dump.contains("4111 1111")
                        && !dump.contains("4111111111111111"),
                    "a sensitive value reached the collector"
                );
                spans.extend(
                    spans_of(&req)
                        .into_iter()
                        .filter(|s| s.span.trace_id == trace_id),
                );
                let names: Vec<&str> = spans.iter().map(|s| s.span.name.as_str()).collect();
                if [
                    "POST /v1/chat/completions",
                    "guardrail input",
                    "chat gpt-4o-mini",
                    "guardrail output",
                ]
                .iter()
                .all(|n| names.contains(n))
                {
                    break;
                }
            }
        }
        spans
    });
    let spans = rx_spans.await.unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    // A graceful stop flushes through the gRPC channel without hanging.
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success());

    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s.span.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no span `{name}` in {:?}",
                    spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
                )
            })
    };
    let server = find("POST /v1/chat/completions");
    let input = find("guardrail input");
    let genai = find("chat gpt-4o-mini");
    let output = find("guardrail output");
    // The tree: client span → server span → guardrail input / GenAI client / guardrail output.
    assert_eq!(hex::encode(&server.span.parent_span_id), CLIENT_SPAN);
    assert_eq!(server.span.kind, 2, "SPAN_KIND_SERVER");
    for child in [input, genai, output] {
        assert_eq!(
            child.span.parent_span_id, server.span.span_id,
            "{}",
            child.span.name
        );
        assert_eq!(child.service, "haechi-grpc");
    }
    assert_eq!(genai.span.kind, 3, "SPAN_KIND_CLIENT");
    // The upstream continues the trace under the GenAI span.
    assert_eq!(
        upstream_tp,
        format!("00-{TRACE_ID}-{}-01", hex::encode(&genai.span.span_id))
    );
    // Attributes.
    let s = &server.span.attributes;
    assert_eq!(
        string_attr(s, "haechi.request_id").as_deref(),
        Some(request_id.as_str())
    );
    assert_eq!(int_attr(s, "http.response.status_code"), Some(200));
    assert_eq!(string_attr(s, "haechi.outcome").as_deref(), Some("ok"));
    let g = &genai.span.attributes;
    assert_eq!(
        string_attr(g, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        string_attr(g, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    assert_eq!(
        string_attr(g, "gen_ai.request.model").as_deref(),
        Some("gpt-4o-mini")
    );
    assert!(int_attr(g, "gen_ai.usage.input_tokens").is_some(), "{g:?}");
    let i = &input.span.attributes;
    assert_eq!(
        string_attr(i, "gen_ai.guardrail.stage").as_deref(),
        Some("input")
    );
    assert_eq!(
        string_attr(i, "gen_ai.guardrail.action").as_deref(),
        Some("anonymize")
    );
    assert_eq!(
        string_attr(i, "gen_ai.guardrail.decision").as_deref(),
        Some("intervened")
    );
    let labels = strings_attr(i, "gen_ai.guardrail.finding.labels").unwrap_or_default();
    assert!(labels.iter().any(|l| l == "EMAIL"), "{labels:?}");
    assert!(labels.iter().any(|l| l.contains("CARD")), "{labels:?}");
    assert!(input
        .span
        .events
        .iter()
        .any(|e| e.name == "gen_ai.guardrail.finding"));
    assert_eq!(
        string_attr(&output.span.attributes, "gen_ai.guardrail.stage").as_deref(),
        Some("output")
    );
}

/// The config file's `telemetry:` keys drive the export when no `OTEL_*` variable is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_telemetry_keys_configure_export() {
    use std::process::{Command, Stdio};
    let mock = MockUpstream::start().await;
    let (endpoint, rx) = grpc_receiver();
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("haechi.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nupstreams:\n  - name: mock\n    base_url: {}\naudit:\n  path: {}\ntelemetry:\n  endpoint: {endpoint}\n  protocol: grpc\n  service_name: haechi-from-file\n",
            mock.openai_base(),
            dir.path().join("audit.jsonl").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_haechi"));
    cmd.args(["serve", "--config"]).arg(&config);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTEL_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("HAECHI_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(20, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok())
        .await
    );
    let r = call(
        "POST",
        &format!("http://127.0.0.1:{port}/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#.to_string(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(req) = rx.recv_timeout(Duration::from_millis(200)) {
                let dump = format!("{req:?}");
                if dump.contains("haechi-from-file") && dump.contains("POST /v1/chat/completions") {
                    return true;
                }
            }
        }
        false
    })
    .await
    .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert!(
        got,
        "spans with the file's service name reached the collector"
    );
}
