//! Span helpers checked with the SDK's in-memory exporter, and the no-leak test across the
//! audit record, spans, log lines and metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry::Value;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, InMemorySpanExporterBuilder, SdkTracerProvider, SpanData, SpanExporter,
};
use prometheus_client::metrics::counter::Counter;
use tracing_subscriber::layer::SubscriberExt;

use super::keyed::KeyedHasher;
use super::log::{AuditLog, AuditLogOptions, FsyncPolicy};
use super::metrics::Metrics;
use super::record::{AuditRecord, FailEvent, Outcome, StageRecord, Usage};
use super::telemetry::*;
use crate::detect::DetectContext;
use crate::engine::{evaluate, EvalOptions, PseudonymMap, Stage};
use crate::policy::compile::{compile_sources, PolicySet};
use crate::policy::load::Source;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn in_memory() -> (InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporterBuilder::new().build();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (exporter, provider)
}

fn attrs(span: &SpanData) -> HashMap<String, Value> {
    span.attributes
        .iter()
        .map(|kv| (kv.key.as_str().to_string(), kv.value.clone()))
        .collect()
}

fn s(v: &str) -> Value {
    Value::from(v.to_string())
}

fn policy() -> PolicySet {
    let yaml = r#"id: default
input:
  - id: pii-email
    detector: regex
    patterns: [{label: EMAIL, pattern: '[^\s@]+@[^\s@]+\.[a-z]{2,}'}]
    action: mask
  - id: pii-card
    detector: regex
    patterns: [{label: CREDIT_DEBIT_CARD_NUMBER, pattern: '\b(?:\d[ -]?){13,16}\b'}]
    action: mask
"#;
    match compile_sources(&[Source {
        name: "t.yaml".into(),
        text: yaml.into(),
    }]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn stage_for(text: &str, key: &KeyedHasher) -> StageRecord {
    let set = policy();
    let decision = evaluate(
        &set.default_policy(),
        Stage::Input,
        &[text],
        &DetectContext::default(),
        &EvalOptions::default(),
        &mut PseudonymMap::new(),
    );
    assert_eq!(decision.action.as_str(), "anonymize", "{decision:?}");
    StageRecord::from_decision_hashed(&decision, &[text], key).with_latency_ms(0.05)
}

#[test]
fn span_tree_attributes_and_trace_context() {
    let (exporter, provider) = in_memory();
    let subscriber = tracing_subscriber::registry().with(span_layer(&provider));
    let mut incoming = HeaderMap::new();
    incoming.insert(
        "traceparent",
        format!("00-{TRACE}-{PARENT}-01").parse().unwrap(),
    );
    let mut upstream_headers = HeaderMap::new();
    let key = KeyedHasher::new(b"test-key");
    let stage = stage_for("mail me at a@b.co", &key);

    let tracer = Tracer::from_provider(&provider);
    tracing::subscriber::with_default(subscriber, || {
        let server = server_span("POST", "/v1/chat/completions", "req_1", &incoming);
        let _in_server = server.enter();
        let started = std::time::SystemTime::now();
        tracer.guardrail(&server, "input", started, &stage);
        let call = tracer.genai(
            &server,
            &GenAiCall {
                operation: "chat",
                provider: "openai",
                request_model: Some("gpt-4o-mini"),
                upstream: "seoul",
                region: Some("ap-northeast-2"),
                server_address: Some("llm.example.internal"),
                stream: true,
            },
        );
        call.inject(&mut upstream_headers);
        call.finish(&GenAiResult {
            response_model: Some("gpt-4o-mini-2024-07-18"),
            input_tokens: Some(12),
            output_tokens: Some(34),
            finish_reasons: &["stop"],
            error_type: None,
        });
        let mut record = AuditRecord::new("req_1", "chat_completions", 200, Outcome::Ok);
        record.tenant = Some("acme".into());
        record.region = Some("ap-northeast-2".into());
        record.quota = Some("admitted".into());
        record.fail_events.push(FailEvent {
            mode: "fail_open".into(),
            component: "judge".into(),
            reason: "timeout".into(),
        });
        record_request(&server, &record);
        assert_eq!(trace_id(&server).as_deref(), Some(TRACE));
        // Injecting the server span itself also continues the client's trace.
        let mut h = HeaderMap::new();
        inject_context(&server, &mut h);
        assert!(h["traceparent"]
            .to_str()
            .unwrap()
            .starts_with(&format!("00-{TRACE}-")));
    });

    let spans = exporter.get_finished_spans().unwrap();
    let by_name: HashMap<String, &SpanData> =
        spans.iter().map(|s| (s.name.to_string(), s)).collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    let server = by_name["POST /v1/chat/completions"];
    let guard = by_name
        .get("guardrail input")
        .unwrap_or_else(|| panic!("{names:?}"));
    let call = by_name["chat gpt-4o-mini"];

    // One trace, continuing the client's; children under the server span; server under
    // the client's span.
    let trace = TraceId::from_hex(TRACE).unwrap();
    for sp in [server, *guard, call] {
        assert_eq!(sp.span_context.trace_id(), trace);
    }
    assert_eq!(server.parent_span_id.to_string(), PARENT);
    assert_eq!(guard.parent_span_id, server.span_context.span_id());
    assert_eq!(call.parent_span_id, server.span_context.span_id());
    assert_eq!(server.span_kind, SpanKind::Server);
    assert!(guard.start_time <= guard.end_time);
    assert_eq!(call.span_kind, SpanKind::Client);

    // Injected for the upstream: same trace, our GenAI span as parent.
    let tp = upstream_headers["traceparent"].to_str().unwrap();
    assert_eq!(tp, format!("00-{TRACE}-{}-01", call.span_context.span_id()));

    let c = attrs(call);
    assert_eq!(c[attr::GEN_AI_OPERATION_NAME], s("chat"));
    assert_eq!(c[attr::GEN_AI_PROVIDER_NAME], s("openai"));
    assert_eq!(c[attr::GEN_AI_REQUEST_MODEL], s("gpt-4o-mini"));
    assert_eq!(c[attr::GEN_AI_RESPONSE_MODEL], s("gpt-4o-mini-2024-07-18"));
    assert_eq!(c[attr::GEN_AI_USAGE_INPUT_TOKENS], Value::I64(12));
    assert_eq!(c[attr::GEN_AI_USAGE_OUTPUT_TOKENS], Value::I64(34));
    assert_eq!(
        c[attr::GEN_AI_RESPONSE_FINISH_REASONS].to_string(),
        r#"["stop"]"#
    );
    assert_eq!(c[attr::HAECHI_REGION], s("ap-northeast-2"));

    let g = attrs(guard);
    assert_eq!(g[attr::GUARDRAIL_DECISION], s("intervened"));
    assert_eq!(g[attr::GUARDRAIL_ACTION], s("anonymize"));
    assert_eq!(g[attr::GUARDRAIL_POLICY_ID], s("default"));
    assert!(!stage.policy_version.is_empty());
    assert_eq!(g[attr::GUARDRAIL_POLICY_VERSION], s(&stage.policy_version));
    assert_eq!(g[attr::GUARDRAIL_RULE_IDS].to_string(), r#"["pii-email"]"#);
    assert_eq!(
        g[attr::GUARDRAIL_FINDING_LABELS].to_string(),
        r#"["EMAIL"]"#
    );
    assert_eq!(g[attr::GUARDRAIL_FINDING_TOTAL], Value::I64(1));
    let event = &guard.events.events[0];
    assert_eq!(event.name, attr::GUARDRAIL_FINDING_EVENT);
    let ev: HashMap<String, Value> = event
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), kv.value.clone()))
        .collect();
    assert_eq!(ev[attr::HAECHI_FINDING_START], Value::I64(11));
    assert_eq!(ev[attr::HAECHI_FINDING_END], Value::I64(17));
    assert_eq!(ev[attr::HAECHI_FINDING_HASH], s(&key.tag(b"a@b.co")));

    let sv = attrs(server);
    assert_eq!(sv[attr::HTTP_REQUEST_METHOD], s("POST"));
    assert_eq!(sv[attr::HTTP_ROUTE], s("/v1/chat/completions"));
    assert_eq!(sv[attr::HAECHI_REQUEST_ID], s("req_1"));
    assert_eq!(sv[attr::HTTP_RESPONSE_STATUS_CODE], Value::I64(200));
    assert_eq!(sv[attr::HAECHI_TENANT], s("acme"));
    assert_eq!(sv[attr::HAECHI_QUOTA_OUTCOME], s("admitted"));
    assert_eq!(sv[attr::HAECHI_OUTCOME], s("ok"));
    assert!(server
        .events
        .events
        .iter()
        .any(|e| e.name == "haechi.fail_open"));
    // Unwanted tracing-opentelemetry defaults are off.
    for unwanted in [
        "code.file.path",
        "code.line.number",
        "thread.id",
        "target",
        "busy_ns",
    ] {
        for sp in [server, *guard, call] {
            assert!(
                !attrs(sp).contains_key(unwanted),
                "{unwanted} on {}",
                sp.name
            );
        }
    }
}

#[test]
fn disabled_tracer_records_nothing() {
    let (exporter, provider) = in_memory();
    let subscriber = tracing_subscriber::registry().with(span_layer(&provider));
    let mut headers = HeaderMap::new();
    tracing::subscriber::with_default(subscriber, || {
        let server = server_span("POST", "/v1/chat/completions", "r", &HeaderMap::new());
        let t = Tracer::disabled();
        t.guardrail(
            &server,
            "input",
            std::time::SystemTime::now(),
            &StageRecord::default(),
        );
        let call = t.genai(&server, &GenAiCall::default());
        call.inject(&mut headers);
        call.finish(&GenAiResult::default());
    });
    assert!(headers.is_empty());
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1, "only the server span");
}

#[test]
fn without_traceparent_a_new_trace_starts() {
    let (exporter, provider) = in_memory();
    let subscriber = tracing_subscriber::registry().with(span_layer(&provider));
    let mut bad = HeaderMap::new();
    bad.insert("traceparent", "garbage".parse().unwrap());
    tracing::subscriber::with_default(subscriber, || {
        let span = server_span("POST", "/v1/messages", "req_2", &bad);
        drop(span);
    });
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1);
    assert_ne!(spans[0].span_context.trace_id().to_string(), TRACE);
    assert_eq!(
        spans[0].parent_span_id,
        opentelemetry::trace::SpanId::INVALID
    );
}

/// Collects what the fmt layer writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A prompt with an e-mail address and a card number leaves no trace of either value in
/// the audit line, the exported spans (attributes and events), the log lines or metrics.
#[test]
fn no_sensitive_value_reaches_audit_spans_logs_or_metrics() {
    let email = "kim.minsu@example.co.kr";
    let card = "4111 1111 1111 1111";
    let prompt = format!("내 이메일은 {email} 이고 카드번호는 {card} 입니다");
    let key = KeyedHasher::new(b"tenant-key");
    let stage = stage_for(&prompt, &key);
    assert_eq!(stage.labels.len(), 2, "{stage:?}");

    let (exporter, provider) = in_memory();
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(span_layer(&provider))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false),
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let metrics = Metrics::default();
    tracing::subscriber::with_default(subscriber, || {
        let server = server_span("POST", "/v1/chat/completions", "req_9", &HeaderMap::new());
        Tracer::from_provider(&provider).guardrail(
            &server,
            "input",
            std::time::SystemTime::now(),
            &stage,
        );
        let mut record = AuditRecord::new("req_9", "chat_completions", 200, Outcome::Ok);
        record.input = Some(stage.clone());
        record.usage = Some(Usage {
            input_tokens: Some(30),
            output_tokens: Some(5),
            estimated: false,
        });
        record_request(&server, &record);
        metrics.record_stage(Some("acme"), "input", &stage);
        let log = AuditLog::open(AuditLogOptions {
            path: Some(path.clone()),
            fsync: FsyncPolicy::Never,
            ..AuditLogOptions::default()
        })
        .unwrap();
        log.append_blocking(record).unwrap();
        log.close_blocking().unwrap();
        tracing::info!(request_id = "req_9", "request done");
    });

    let mut haystack = std::fs::read_to_string(&path).unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 2, "server and guardrail spans");
    for sp in spans {
        haystack.push_str(&sp.name);
        for kv in &sp.attributes {
            haystack.push_str(&format!("{}={}\n", kv.key, kv.value));
        }
        for ev in &sp.events.events {
            haystack.push_str(&ev.name);
            for kv in &ev.attributes {
                haystack.push_str(&format!("{}={}\n", kv.key, kv.value));
            }
        }
    }
    haystack.push_str(&String::from_utf8(logs.0.lock().unwrap().clone()).unwrap());
    haystack.push_str(&metrics.encode());
    // Sanity: the haystack holds the labels and hashes we expect.
    assert!(haystack.contains("CREDIT_DEBIT_CARD_NUMBER") && haystack.contains("EMAIL"));
    assert!(haystack.contains(&key.tag(email.as_bytes())));
    assert!(haystack.contains("request done"));
    let digits: String = card.chars().filter(char::is_ascii_digit).collect();
    for needle in [
        email,
        "kim.minsu",
        "example.co.kr",
        card,
        digits.as_str(),
        "이메일은",
    ] {
        assert!(!haystack.contains(needle), "`{needle}` leaked:\n{haystack}");
    }
}

/// An exporter whose collector is always down.
#[derive(Debug)]
struct DownCollector;

impl SpanExporter for DownCollector {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Err(OTelSdkError::InternalFailure("connection refused".into()))
    }
}

#[test]
fn dropped_spans_are_counted_when_the_collector_is_down() {
    let dropped = Counter::<u64>::default();
    let provider = provider_with_exporter(
        DownCollector,
        &TelemetryConfig::default(),
        4,
        dropped.clone(),
    )
    .unwrap();
    let subscriber = tracing_subscriber::registry().with(span_layer(&provider));
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..50 {
            let span = server_span(
                "POST",
                "/v1/chat/completions",
                &format!("r{i}"),
                &HeaderMap::new(),
            );
            drop(span);
        }
    });
    let _ = provider.shutdown();
    // Every span was either refused at the full queue or lost in a failed export.
    assert_eq!(dropped.get(), 50);
}

#[test]
fn config_env_sampler_and_endpoint() {
    let env: HashMap<&str, &str> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_SERVICE_NAME", "gw"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ]
    .into_iter()
    .collect();
    let file = TelemetryConfig {
        endpoint: Some("http://file:4318".into()),
        service_name: Some("from-file".into()),
        ..TelemetryConfig::default()
    };
    let c = file
        .clone()
        .with_vars_for_test(|k| env.get(k).map(|v| v.to_string()));
    assert_eq!(
        c.traces_url().as_deref(),
        Some("http://collector:4318/v1/traces")
    );
    assert_eq!(c.service_name.as_deref(), Some("gw"));
    assert!(matches!(
        c.sampler().unwrap(),
        opentelemetry_sdk::trace::Sampler::ParentBased(_)
    ));
    assert_eq!(
        file.traces_url().as_deref(),
        Some("http://file:4318/v1/traces")
    );
    let exact = TelemetryConfig::default().with_vars_for_test(|k| {
        (k == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").then(|| "http://x:1/custom".to_string())
    });
    assert_eq!(exact.traces_url().as_deref(), Some("http://x:1/custom"));
    assert!(TelemetryConfig::default().traces_url().is_none());
    let bad = TelemetryConfig {
        traces_sampler: Some("sometimes".into()),
        ..TelemetryConfig::default()
    };
    assert!(bad.sampler().is_err());
    let json = TelemetryConfig {
        endpoint: Some("http://c:4318".into()),
        protocol: Some("http/json".into()),
        ..TelemetryConfig::default()
    };
    assert!(matches!(
        build_provider(&json, Counter::default()),
        Err(TelemetryError::UnsupportedProtocol(_))
    ));
    // gRPC needs the runtime its channel's connection task runs on.
    let grpc = TelemetryConfig {
        endpoint: Some("http://127.0.0.1:9".into()),
        protocol: Some("grpc".into()),
        ..TelemetryConfig::default()
    };
    assert!(matches!(
        build_provider(&grpc, Counter::default()),
        Err(TelemetryError::Config(_))
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let p = rt
        .block_on(async { build_provider(&grpc, Counter::default()) })
        .unwrap()
        .unwrap();
    let _ = p.shutdown();
    // http/protobuf builds (no connection is made until spans are exported).
    let ok = TelemetryConfig {
        endpoint: Some("http://127.0.0.1:9/".into()),
        ..TelemetryConfig::default()
    };
    let p = build_provider(&ok, Counter::default()).unwrap().unwrap();
    let _ = p.shutdown();
}

#[test]
fn protocol_and_endpoint_per_transport() {
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        Option<&'a str>,
        Option<(OtlpProtocol, &'a str)>,
    );
    let cases: &[Case] = &[
        // (env, file protocol, file traces_protocol, expected)
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")],
            None,
            None,
            Some((OtlpProtocol::HttpProtobuf, "http://c:4318/v1/traces")),
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317/"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
            None,
            None,
            Some((OtlpProtocol::Grpc, "http://c:4317")),
        ),
        // The traces variable wins over the generic one.
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ],
            None,
            None,
            Some((OtlpProtocol::Grpc, "http://c:4317")),
        ),
        // File keys apply when no variable is set; traces_protocol wins there too.
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")],
            Some("grpc"),
            None,
            Some((OtlpProtocol::Grpc, "http://c:4317")),
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")],
            Some("http/protobuf"),
            Some("grpc"),
            Some((OtlpProtocol::Grpc, "http://c:4317")),
        ),
        // The environment replaces the file's protocol keys.
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
            None,
            Some("grpc"),
            Some((OtlpProtocol::HttpProtobuf, "http://c:4318/v1/traces")),
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317/x"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
            None,
            None,
            Some((OtlpProtocol::Grpc, "http://c:4317/x")),
        ),
        (&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")], None, None, None),
    ];
    for (env, protocol, traces_protocol, want) in cases {
        let file = TelemetryConfig {
            protocol: protocol.map(str::to_string),
            traces_protocol: traces_protocol.map(str::to_string),
            ..TelemetryConfig::default()
        };
        let c = file.with_vars_for_test(|k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        });
        let got = c.export_target().unwrap();
        let want = want.map(|(p, u)| (p, u.to_string()));
        assert_eq!(got, want, "{env:?} {protocol:?} {traces_protocol:?}");
    }
}

#[test]
fn handles_can_cross_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Tracer>();
    send::<GenAiSpan>();
    send_sync::<super::log::AuditLog>();
    send_sync::<Metrics>();
}
