//! End to end through a real OTLP/HTTP receiver: spans made by the helpers are exported as
//! protobuf to a local HTTP server, carry the expected names and attributes, and the raw
//! payload holds neither the e-mail address nor the card number of the prompt. A collector
//! that is down makes the exporter drop and count spans.

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
use support::otlp::receiver;

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
    for leak in [email, "kim.minsu", card, "4111111111111111", "4111"] {
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
