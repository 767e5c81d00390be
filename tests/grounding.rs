//! Grounding through the gateway: context from tagged messages and tool results, the
//! `annotate` action on each provider shape, and the `haechi` field never going upstream.

mod support;

use std::sync::{Arc, Mutex};

use haechi::config::GatewayConfig;
use serde_json::Value;
use support::mock_upstream::{self, json_reply};
use support::*;

const CONTEXT: &str = "The Seoul Museum of Art opened its Seosomun main building in 2002. Admission to the permanent collection is free.";
const GROUNDED: &str = "The Seosomun main building of the Seoul Museum of Art opened in 2002.";
const UNGROUNDED: &str =
    "The main building opened in 1987 after a fire destroyed the Busan branch.";

/// A mock that answers every OpenAI / Anthropic call with the text in `answer`.
async fn mock_answering(answer: Arc<Mutex<String>>) -> MockUpstream {
    MockUpstream::start_with(Arc::new(move |req| {
        let text = answer.lock().map(|t| t.clone()).unwrap_or_default();
        if req.path.ends_with("/messages") {
            json_reply(mock_upstream::anthropic_json("c", &text))
        } else {
            json_reply(mock_upstream::openai_json("m", &text))
        }
    }))
    .await
}

fn set(answer: &Mutex<String>, text: &str) {
    if let Ok(mut t) = answer.lock() {
        *t = text.to_string();
    }
}

fn score(r: &Whole) -> Option<f32> {
    r.header("x-haechi-grounding").and_then(|v| v.parse().ok())
}

fn rules(r: &Whole) -> String {
    r.header("x-haechi-rules").unwrap_or_default()
}

/// A policy directory: `rag` (bound to the Anthropic route) reads tool results and tags
/// and annotates ungrounded answers; everything else gets the shipped default.
fn rag_policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("policy dir");
    std::fs::write(
        dir.path().join("rag.yaml"),
        r#"id: rag
extends: default
bindings:
  - routes: ["/v1/messages"]
grounding:
  sources: [extension, tool, tags]
output:
  - id: grounded
    action: annotate
    notice:
      en: "[Not supported by the retrieved sources.]"
      ko: "[검색된 자료로 확인되지 않은 답변입니다.]"
"#,
    )
    .expect("write policy");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_context_is_checked_with_the_default_policy() {
    let answer = Arc::new(Mutex::new(String::new()));
    let mock = mock_answering(answer.clone()).await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let body = serde_json::json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": format!("Answer only from the sources.\n<search_results><document index=\"1\">{CONTEXT}</document></search_results>")},
            {"role": "user", "content": "When did the main building open?"}
        ]
    })
    .to_string();
    set(&answer, GROUNDED);
    let r = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(r.status, 200);
    let good = score(&r).expect("tags give context: score header");
    assert!(!rules(&r).contains("grounded"), "supported answer passes");

    set(&answer, UNGROUNDED);
    let r = post_json(&gw.url("/v1/chat/completions"), &body).await;
    let bad = score(&r).expect("score header");
    assert!(bad < good, "{bad} < {good}");
    assert_eq!(r.header("x-haechi-action").as_deref(), Some("warn"));
    assert!(rules(&r).contains("grounded"), "{}", rules(&r));
    // Default policy: warn leaves the answer as the upstream sent it.
    assert_eq!(
        r.json()["choices"][0]["message"]["content"].as_str(),
        Some(UNGROUNDED)
    );

    // Tool results are not a default source: no context, no grounding check.
    let tool_only = serde_json::json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "When did the main building open?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "1", "content": CONTEXT}
        ]
    })
    .to_string();
    let r = post_json(&gw.url("/v1/chat/completions"), &tool_only).await;
    assert_eq!(r.status, 200);
    assert_eq!(score(&r), None, "tool results are opt-in");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_results_are_context_and_annotate_appends_a_notice_per_route() {
    let answer = Arc::new(Mutex::new(String::new()));
    let mock = mock_answering(answer.clone()).await;
    let policies = rag_policies();
    let gw = TestGateway::start(GatewayConfig {
        policies: Some(policies.path().to_path_buf()),
        ..config_for(&mock)
    })
    .await;
    let anthropic = |question: &str, tool_text: &str| {
        serde_json::json!({
            "model": "c", "max_tokens": 64,
            "messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "search", "input": {"q": question}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": tool_text}]}]}
            ]
        })
        .to_string()
    };
    let url = gw.url("/v1/messages");
    let body = anthropic("When did the main building open?", CONTEXT);

    set(&answer, GROUNDED);
    let r = post_json(&url, &body).await;
    assert_eq!(r.status, 200);
    assert!(
        score(&r).is_some(),
        "tool result gives context on this route"
    );
    assert_eq!(r.json()["content"][0]["text"].as_str(), Some(GROUNDED));

    set(&answer, UNGROUNDED);
    let r = post_json(&url, &body).await;
    assert_eq!(r.header("x-haechi-action").as_deref(), Some("warn"));
    assert!(rules(&r).contains("grounded"), "{}", rules(&r));
    let v = r.json();
    assert_eq!(
        v["content"][0]["text"].as_str(),
        Some(format!("{UNGROUNDED}\n\n[Not supported by the retrieved sources.]").as_str())
    );
    assert_eq!(
        v["stop_reason"], "end_turn",
        "the rest of the answer is kept"
    );

    // Korean: the notice follows the language of the answer.
    let ko_context = "부산시립미술관은 1998년에 개관했다. 상설 전시는 무료로 관람할 수 있다.";
    let ko_body = anthropic("부산시립미술관은 언제 개관했나요?", ko_context);
    set(
        &answer,
        "부산시립미술관은 2015년에 서울로 이전한 뒤 유료로 바뀌었다.",
    );
    let r = post_json(&url, &ko_body).await;
    let text = r.json()["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.ends_with("\n\n[검색된 자료로 확인되지 않은 답변입니다.]"),
        "{text}"
    );

    // The annotate rule is recorded in the audit log with its own action.
    let audit =
        std::fs::read_to_string(gw.audit_dir.path().join("audit.jsonl")).expect("audit log");
    assert!(audit.contains("\"annotate\""), "annotate recorded: {audit}");

    // The chat route is bound to the default policy: tool messages are not a source there.
    let chat = serde_json::json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "When did the main building open?"},
            {"role": "tool", "tool_call_id": "1", "content": CONTEXT}
        ]
    })
    .to_string();
    set(&answer, UNGROUNDED);
    let r = post_json(&gw.url("/v1/chat/completions"), &chat).await;
    assert_eq!(score(&r), None);
    assert_eq!(
        r.json()["choices"][0]["message"]["content"].as_str(),
        Some(UNGROUNDED)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_haechi_field_never_reaches_the_upstream() {
    let answer = Arc::new(Mutex::new(GROUNDED.to_string()));
    let mock = mock_answering(answer.clone()).await;
    let policies = rag_policies();
    let gw = TestGateway::start(GatewayConfig {
        policies: Some(policies.path().to_path_buf()),
        ..config_for(&mock)
    })
    .await;
    let ext = format!(r#""haechi": {{"context": ["{CONTEXT}"], "query": "When did it open?"}}"#);
    let cases = [
        (
            "/v1/chat/completions",
            format!(
                r#"{{"model":"m", {ext}, "messages":[{{"role":"user","content":"<context>{CONTEXT}</context> When?"}}]}}"#
            ),
        ),
        (
            "/v1/chat/completions",
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"When?"}}],{ext}}}"#),
        ),
        (
            "/v1/messages",
            format!(
                r#"{{{ext},"model":"c","max_tokens":9,"messages":[{{"role":"user","content":"When?"}}]}}"#
            ),
        ),
    ];
    for (path, body) in &cases {
        let before = mock.recorded().len();
        let r = post_json(&gw.url(path), body).await;
        assert_eq!(r.status, 200, "{body}");
        assert!(score(&r).is_some(), "the extension gives context");
        let seen = mock.recorded();
        let forwarded = &seen.get(before).expect("forwarded").body;
        let text = String::from_utf8_lossy(forwarded);
        assert!(!text.contains("haechi"), "extension stripped: {text}");
        let v: Value = serde_json::from_slice(forwarded).expect("forwarded body is JSON");
        let mut want: Value = serde_json::from_str(body).expect("JSON");
        if let Some(o) = want.as_object_mut() {
            o.remove("haechi");
        }
        assert_eq!(v, want, "only the extension is removed");
    }
    gw.stop().await;
}
