//! `llm_judge` rules through the gateway, against a mock judge on its own port: a
//! Llama Guard-style chat judge and an OpenAI moderation-shaped one. An unsafe verdict
//! blocks, a safe one allows, a judge past its deadline follows the rule's fail mode,
//! and the audit record says which happened (without the text).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::mock_upstream::{json_reply, Recorded, Reply};
use support::*;

/// The judge: `unsafe` for texts about an attack (and for the mock model's answer),
/// never answers for texts containing SLOW.
fn judge_reply(req: &Recorded) -> Reply {
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    if req.path.ends_with("/moderations") {
        let input = body["input"].as_str().unwrap_or("");
        let flagged = input.contains("attack");
        return json_reply(serde_json::json!({
            "id": "modr-1", "model": "omni-moderation-latest",
            "results": [{"flagged": flagged,
                "categories": {"violence": flagged, "hate": false},
                "category_scores": {"violence": if flagged {0.93} else {0.01}, "hate": 0.0}}]
        }));
    }
    let text = body["messages"].to_string();
    if text.contains("SLOW") {
        return Reply::Hang;
    }
    let verdict = if text.contains("attack") || text.contains("Hello from the mock") {
        "unsafe\nS2"
    } else {
        "safe"
    };
    json_reply(support::mock_upstream::openai_json("llama-guard", verdict))
}

fn policies(judge: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = [
        (
            "default.yaml",
            format!(
                r#"id: default
input:
  - id: judge-open
    detector: llm_judge
    endpoint: {judge}
    model: llama-guard
    timeout_ms: 300
    fail: open
    action: block
    message: {{en: "Judged unsafe."}}
"#
            ),
        ),
        (
            "closed.yaml",
            format!(
                r#"id: closed
bindings: [{{models: ["closed-*"]}}]
input:
  - id: judge-closed
    detector: llm_judge
    endpoint: {judge}
    prompt: "Is this safe? Answer safe or unsafe.\n\n{{text}}"
    timeout_ms: 300
    fail: closed
    action: block
    message: {{en: "The safety check is unavailable."}}
"#
            ),
        ),
        (
            "out.yaml",
            format!(
                r#"id: out
bindings: [{{models: ["out-*"]}}]
output:
  - id: judge-out
    detector: llm_judge
    endpoint: {judge}
    action: block
"#
            ),
        ),
        (
            "moderation.yaml",
            format!(
                r#"id: moderation
input:
  - id: moderated
    detector: llm_judge
    api: moderation
    endpoint: {judge}
    model: omni-moderation-latest
    action: block
"#
            ),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write policy");
    }
    dir
}

fn chat(model: &str, user: &str) -> String {
    serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "SYSTEM-ONLY instructions"},
            {"role": "user", "content": user}
        ]
    })
    .to_string()
}

/// The audit record of a response (streamed-through bodies are recorded when they end,
/// so wait for it).
async fn record_of(gw: &TestGateway, r: &Whole) -> serde_json::Value {
    let id = r.header("x-haechi-request-id").expect("request id");
    let path = gw.audit_dir.path().join("audit.jsonl");
    let find = || -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(&path).ok()?;
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["request_id"] == id.as_str())
    };
    assert!(eventually(10, || find().is_some()).await, "record of {id}");
    find().expect("record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_verdicts_and_fail_modes_through_the_gateway() {
    let upstream = MockUpstream::start().await;
    let judge = MockUpstream::start_with(Arc::new(judge_reply)).await;
    let dir = policies(&judge.openai_base());
    let mut config = config_for(&upstream);
    config.policies = Some(dir.path().to_path_buf());
    let gw = TestGateway::start(config).await;
    let url = gw.url("/v1/chat/completions");

    // A safe verdict allows: the request is forwarded, the record says `safe`.
    let r = post_json(&url, &chat("m", "What is the capital of France?")).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|c| c.contains("Hello from the mock")));
    assert_eq!(upstream.recorded().len(), 1);
    let rec = record_of(&gw, &r).await;
    assert_ne!(rec["outcome"], "blocked", "{rec}");
    assert_eq!(rec["input"]["judges"][0]["rule"], "judge-open", "{rec}");
    assert_eq!(rec["input"]["judges"][0]["outcome"], "safe", "{rec}");
    // The judge saw the user's text, not the application's system prompt.
    let asked = judge.recorded();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].path.ends_with("/v1/chat/completions"));
    let sent: serde_json::Value = serde_json::from_slice(&asked[0].body).expect("judge body");
    assert_eq!(sent["model"], "llama-guard");
    assert!(sent["messages"].to_string().contains("capital of France"));
    assert!(!sent["messages"].to_string().contains("SYSTEM-ONLY"));

    // An unsafe verdict blocks with the rule's message; nothing goes upstream.
    let r = post_json(&url, &chat("m", "Help me attack the payroll server")).await;
    assert_eq!(r.header("x-haechi-action").as_deref(), Some("block"));
    assert!(r
        .header("x-haechi-rules")
        .is_some_and(|h| h.contains("judge-open")));
    assert!(String::from_utf8_lossy(&r.body).contains("Judged unsafe."));
    assert_eq!(upstream.recorded().len(), 1);
    let rec = record_of(&gw, &r).await;
    assert_eq!(rec["outcome"], "blocked", "{rec}");
    assert_eq!(rec["input"]["judges"][0]["outcome"], "flagged", "{rec}");
    assert_eq!(rec["input"]["labels"]["S2"], 1, "{rec}");

    // A judge past its deadline, fail open: allowed, and the record says fail_open.
    let started = Instant::now();
    let r = post_json(&url, &chat("m", "SLOW question")).await;
    assert!(started.elapsed() < Duration::from_secs(3), "deadline kept");
    assert_eq!(r.status, 200);
    assert!(r.header("x-haechi-action").is_none());
    assert_eq!(upstream.recorded().len(), 2);
    let rec = record_of(&gw, &r).await;
    assert_ne!(rec["outcome"], "blocked", "{rec}");
    let j = &rec["input"]["judges"][0];
    assert_eq!(
        (j["outcome"].as_str(), j["reason"].as_str()),
        (Some("fail_open"), Some("timeout")),
        "{rec}"
    );
    assert!(
        j["latency_ms"].as_f64().is_some_and(|ms| ms >= 250.0),
        "{rec}"
    );
    assert_eq!(
        rec["fail_events"],
        serde_json::json!([{"mode": "fail_open", "component": "judge-open", "reason": "timeout"}]),
        "{rec}"
    );

    // The same, fail closed: blocked with the rule's message, record says fail_closed.
    let r = post_json(&url, &chat("closed-m", "SLOW question")).await;
    assert_eq!(r.header("x-haechi-action").as_deref(), Some("block"));
    assert!(String::from_utf8_lossy(&r.body).contains("The safety check is unavailable."));
    assert_eq!(upstream.recorded().len(), 2);
    let rec = record_of(&gw, &r).await;
    assert_eq!(rec["outcome"], "blocked", "{rec}");
    assert_eq!(rec["input"]["policy_id"], "closed", "{rec}");
    assert_eq!(rec["input"]["judges"][0]["outcome"], "fail_closed", "{rec}");
    assert_eq!(rec["input"]["labels"]["JUDGE_UNAVAILABLE"], 1, "{rec}");
    assert_eq!(rec["fail_events"][0]["mode"], "fail_closed", "{rec}");
    // The prompt template was filled in.
    let asked = judge.recorded();
    let sent: serde_json::Value =
        serde_json::from_slice(&asked.last().expect("judge asked").body).expect("judge body");
    assert_eq!(
        sent["messages"][0]["content"],
        "Is this safe? Answer safe or unsafe.\n\nSLOW question"
    );

    // The closed policy with a judge that answers: safe is allowed.
    let r = post_json(&url, &chat("closed-m", "hello")).await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-haechi-action").is_none());

    // An output judge reads the answer and blocks it.
    let r = post_json(&url, &chat("out-m", "hello")).await;
    assert_eq!(r.header("x-haechi-action").as_deref(), Some("block"));
    assert!(!String::from_utf8_lossy(&r.body).contains("Hello from the mock"));
    let rec = record_of(&gw, &r).await;
    assert_eq!(rec["outcome"], "blocked", "{rec}");
    assert_eq!(rec["output"]["judges"][0]["rule"], "judge-out", "{rec}");
    assert_eq!(rec["output"]["judges"][0]["outcome"], "flagged", "{rec}");

    // Streamed answers are not judged yet: the answer is relayed and the record says
    // the judge did not run (see docs/classifiers.md).
    let body = serde_json::json!({"model": "out-m", "stream": true,
        "messages": [{"role": "user", "content": "hello"}]})
    .to_string();
    let r = post_json(&url, &body).await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("mock"));
    let rec = record_of(&gw, &r).await;
    assert_eq!(rec["output"]["judges"][0]["outcome"], "not_run", "{rec}");

    // No text reaches the audit log.
    let log = std::fs::read_to_string(gw.audit_dir.path().join("audit.jsonl")).expect("log");
    for secret in [
        "payroll",
        "capital of France",
        "SLOW question",
        "SYSTEM-ONLY",
    ] {
        assert!(!log.contains(secret), "{secret} leaked into the audit log");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_api_judge_on_the_apply_endpoint() {
    let upstream = MockUpstream::start().await;
    let judge = MockUpstream::start_with(Arc::new(judge_reply)).await;
    let dir = policies(&judge.openai_base());
    let mut config = config_for(&upstream);
    config.policies = Some(dir.path().to_path_buf());
    let gw = TestGateway::start(config).await;
    let url = gw.url("/v1/guardrail/apply");

    let r = post_json(
        &url,
        r#"{"text": "we will attack at dawn", "policy": "moderation"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["action"], "block", "{v}");
    assert_eq!(v["findings"][0]["label"], "violence", "{v}");
    assert_eq!(v["judges"][0]["outcome"], "flagged", "{v}");
    let asked = judge.recorded();
    assert!(asked[0].path.ends_with("/v1/moderations"));
    let sent: serde_json::Value = serde_json::from_slice(&asked[0].body).expect("body");
    assert_eq!(sent["input"], "we will attack at dawn");
    assert_eq!(sent["model"], "omni-moderation-latest");

    let r = post_json(
        &url,
        r#"{"text": "a quiet morning", "policy": "moderation"}"#,
    )
    .await;
    let v = r.json();
    assert_eq!(v["action"], "allow", "{v}");
    assert_eq!(v["judges"][0]["outcome"], "safe", "{v}");
    assert!(
        v["scores"]["llm_judge"].as_f64().is_some_and(|s| s < 0.1),
        "{v}"
    );

    // A judge that cannot be reached follows fail open (the default).
    let dead = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dead.path().join("default.yaml"),
        "id: default\ninput:\n  - {id: gone, detector: llm_judge, endpoint: 'http://127.0.0.1:9/v1', action: block}\n",
    )
    .expect("write");
    gw.stop().await;
    let mut config = config_for(&upstream);
    config.policies = Some(dead.path().to_path_buf());
    let gw = TestGateway::start(config).await;
    let r = post_json(&gw.url("/v1/guardrail/apply"), r#"{"text": "anything"}"#).await;
    let v = r.json();
    assert_eq!(v["action"], "allow", "{v}");
    assert_eq!(v["judges"][0]["outcome"], "fail_open", "{v}");
    assert_eq!(v["judges"][0]["reason"], "connect", "{v}");
    gw.stop().await;
}
