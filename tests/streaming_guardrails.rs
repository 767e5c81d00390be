//! Streaming guardrails end to end: the official SDKs with `stream=True` read exactly
//! what the same answer gives them without streaming (masked, pseudonyms restored), a
//! block mid-stream ends the stream the provider's way and cancels the upstream, and SSE
//! details survive the rewrite.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::mock_upstream::{self, Reply};
use support::*;

/// The answer the mock model gives: it repeats the user's (pseudonymized) address split
/// across chunks, and adds personal data of its own.
const ANSWER: &[&str] = &[
    "I will write to <EM",
    "AIL_1> today",
    ". Also cc jane.do",
    "e@example.com or call 010-",
    "2345-6789 — 감사합니다",
    ".",
];

fn answer_text() -> String {
    ANSWER.concat()
}

/// Replies with `ANSWER`, streamed when the request asks for it.
fn answering_mock() -> support::mock_upstream::Script {
    Arc::new(|req| {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let stream = body["stream"] == true;
        let model = body["model"].as_str().unwrap_or("m").to_string();
        let anthropic = req.path.ends_with("/messages");
        match (anthropic, stream) {
            (false, false) => {
                mock_upstream::json_reply(mock_upstream::openai_json(&model, &answer_text()))
            }
            (false, true) => mock_upstream::openai_sse(&model, ANSWER, Duration::from_millis(5)),
            (true, false) => {
                mock_upstream::json_reply(mock_upstream::anthropic_json(&model, &answer_text()))
            }
            (true, true) => mock_upstream::anthropic_sse(&model, ANSWER, Duration::from_millis(5)),
        }
    })
}

const PROMPT: &str = "Please email kim.minsu@corp.example about the order.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_stream_reads_what_the_whole_answer_gives() {
    let mock = MockUpstream::start_with(answering_mock()).await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let base = gw.url("/v1");

    let whole = sdk_call("openai", "json", &base, PROMPT).await;
    assert!(whole.get("error").is_none(), "{whole}");
    let want = whole["response"]["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_string();
    let streamed = sdk_call("openai", "stream", &base, PROMPT).await;
    assert!(streamed.get("error").is_none(), "{streamed}");
    assert_eq!(streamed["text"], want.as_str());
    // The user's own address came back; the model's new personal data did not.
    assert!(want.contains("kim.minsu@corp.example"), "{want}");
    assert!(
        !want.contains("jane.do") && !want.contains("2345-6789"),
        "{want}"
    );
    assert!(want.contains("{EMAIL}"), "{want}");
    // The model never saw the user's address.
    for r in mock.recorded() {
        assert!(!String::from_utf8_lossy(&r.body).contains("kim.minsu"));
    }
    let chunks = streamed["chunks"].as_array().expect("chunks");
    assert_eq!(
        chunks
            .last()
            .and_then(|c| c["choices"][0]["finish_reason"].as_str()),
        Some("stop")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_stream_reads_what_the_whole_answer_gives() {
    let mock = MockUpstream::start_with(answering_mock()).await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let base = gw.url("");

    let whole = sdk_call("anthropic", "json", &base, PROMPT).await;
    assert!(whole.get("error").is_none(), "{whole}");
    let want = whole["response"]["content"][0]["text"]
        .as_str()
        .expect("text")
        .to_string();
    let streamed = sdk_call("anthropic", "stream", &base, PROMPT).await;
    assert!(streamed.get("error").is_none(), "{streamed}");
    assert_eq!(streamed["text"], want.as_str());
    assert!(
        want.contains("kim.minsu@corp.example") && !want.contains("jane.do"),
        "{want}"
    );
    gw.stop().await;
}

/// A policy directory whose default policy blocks a word in answers.
fn blocking_policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("default.yaml"),
        "id: default\noutput:\n  - id: no-launch-codes\n    detector: word\n    words: [\"launch codes\"]\n    action: block\n",
    )
    .expect("write policy");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_mid_stream_ends_the_provider_way_and_cancels_the_upstream() {
    let mut words = vec!["Here ", "are ", "the ", "launch ", "codes", ": 0000 "];
    words.extend(std::iter::repeat_n("and more ", 60));
    let w = words.clone();
    let mock = MockUpstream::start_with(Arc::new(move |req| {
        if req.path.ends_with("/messages") {
            mock_upstream::anthropic_sse("claude", &w, Duration::from_millis(20))
        } else {
            mock_upstream::openai_sse("m", &w, Duration::from_millis(20))
        }
    }))
    .await;
    let policies = blocking_policies();
    let mut config = config_for(&mock);
    config.policies = Some(policies.path().to_path_buf());
    let gw = TestGateway::start(config).await;

    let seen = sdk_call("openai", "stream", &gw.url("/v1"), "hi").await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(seen["text"], "Here are the ");
    let chunks = seen["chunks"].as_array().expect("chunks");
    assert_eq!(
        chunks
            .last()
            .and_then(|c| c["choices"][0]["finish_reason"].as_str()),
        Some("content_filter")
    );

    let seen = sdk_call("anthropic", "stream", &gw.url(""), "hi").await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(seen["text"], "Here are the ");
    let events = seen["events"].as_array().expect("events");
    let stop = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .map(|e| e["delta"]["stop_reason"].clone());
    assert_eq!(stop, Some(serde_json::json!("refusal")));
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some("message_stop".into())
    );

    // Both upstream streams were cancelled long before their 66 chunks were sent.
    assert!(
        eventually(10, || mock
            .abandoned_streams
            .load(std::sync::atomic::Ordering::SeqCst)
            == 2)
        .await,
        "upstream streams cancelled"
    );
    // The audit records say which rule blocked, with offsets and no text.
    let audit = gw.audit_dir.path().join("audit.jsonl");
    assert!(
        eventually(10, || std::fs::read_to_string(&audit)
            .map(|t| t.lines().count() >= 2)
            .unwrap_or(false))
        .await
    );
    let text = std::fs::read_to_string(&audit).expect("audit");
    assert!(!text.contains("launch codes"));
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("record");
        assert_eq!(r["outcome"], "blocked", "{r}");
        assert_eq!(r["stream"], true);
        let output = &r["output"];
        assert_eq!(output["action"], "block", "{r}");
        assert!(output.to_string().contains("no-launch-codes"), "{r}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_fields_and_line_endings_survive_the_rewrite() {
    let events: Vec<bytes::Bytes> = vec![
        bytes::Bytes::from_static(b": hello\r\nretry: 3000\r\n\r\n"),
        bytes::Bytes::from_static(
            b"id: 1\r\ndata: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"mail a.b@exa\"},\"finish_reason\":null}]}\r\n\r\n",
        ),
        bytes::Bytes::from_static(
            b"id: 2\r\ndata: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\r\ndata: \"choices\":[{\"index\":0,\"delta\":{\"content\":\"mple.com now\"},\"finish_reason\":null}]}\r\n\r\n",
        ),
        bytes::Bytes::from_static(
            b"id: 3\r\ndata: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\ndata: [DONE]\r\n\r\n",
        ),
    ];
    let chunks: Vec<(Duration, bytes::Bytes)> = events
        .iter()
        .flat_map(|e| {
            // Split every event in two reads, mid-line.
            let mid = e.len() / 2;
            [
                (Duration::from_millis(2), e.slice(..mid)),
                (Duration::from_millis(2), e.slice(mid..)),
            ]
        })
        .collect();
    let mock = MockUpstream::start_with(Arc::new(move |_| Reply::Chunks {
        status: 200,
        content_type: "text/event-stream",
        chunks: chunks.clone(),
    }))
    .await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let response = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    use http_body_util::BodyExt;
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(text.starts_with(": hello\r\nretry: 3000\r\n\r\n"), "{text}");
    assert!(text.contains("id: 1\r\n") && text.contains("id: 2\r\n") && text.contains("id: 3\r\n"));
    assert!(!text.contains("a.b@"), "{text}");
    assert_eq!(sse_text(&body), "mail {EMAIL} now");
    assert!(text.ends_with("data: [DONE]\r\n\r\n"), "{text}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grounding_verdict_of_a_stream_is_readable_at_its_end() {
    let mock = MockUpstream::start_with(Arc::new(|_| {
        mock_upstream::openai_sse(
            "m",
            &["The parcel ", "arrives on ", "Friday."],
            Duration::from_millis(2),
        )
    }))
    .await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let response = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"When does my parcel arrive?"}],
            "haechi":{"context":["The parcel was shipped on Monday and arrives on Friday."]}}"#,
    )
    .await;
    use http_body_util::BodyExt;
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let note = String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find_map(|v| v.get("haechi").cloned())
        .expect("the closing chunk carries the verdict");
    assert!(
        note["grounding"]
            .as_f64()
            .is_some_and(|g| (0.0..=1.0).contains(&g)),
        "{note}"
    );
    assert!(note["relevance"].is_number(), "{note}");
    // The haechi extension never reached the upstream.
    for r in mock.recorded() {
        assert!(!String::from_utf8_lossy(&r.body).contains("haechi"));
    }
    gw.stop().await;
}
