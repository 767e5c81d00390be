//! The official OpenAI and Anthropic Python SDKs as clients of the gateway: they get
//! exactly what the upstream sent, streamed or not.

mod support;

use support::mock_upstream::{self, ANSWER_WORDS};
use support::*;

/// Parses each `data:` line of an SSE body as JSON (skipping `[DONE]`).
fn sse_data(events: &[bytes::Bytes]) -> Vec<serde_json::Value> {
    events
        .iter()
        .flat_map(|e| {
            String::from_utf8_lossy(e)
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .map(|d| serde_json::from_str(d).expect("event JSON"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Events with their text deltas blanked: the output stage may move text between
/// events (holding a word back until no rule can change it), never anything else.
fn without_text(events: &serde_json::Value) -> serde_json::Value {
    let mut events = events.clone();
    for e in events.as_array_mut().into_iter().flatten() {
        if let Some(c) = e.pointer_mut("/choices/0/delta/content") {
            *c = serde_json::Value::Null;
        }
        if let Some(t) = e.pointer_mut("/delta/text") {
            *t = serde_json::Value::Null;
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_json_and_stream() {
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let base = gw.url("/v1");

    let seen = sdk_call("openai", "json", &base, "Say hello.").await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(
        seen["response"],
        mock_upstream::openai_json("gpt-4o-mini", &ANSWER_WORDS.concat())
    );
    assert!(seen["request_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("req_")));

    let seen = sdk_call("openai", "stream", &base, "Say hello.").await;
    assert!(seen.get("error").is_none(), "{seen}");
    let sent = sse_data(&mock_upstream::openai_sse_events(
        "gpt-4o-mini",
        ANSWER_WORDS,
    ));
    assert_eq!(
        without_text(&seen["chunks"]),
        without_text(&serde_json::Value::Array(sent))
    );
    assert_eq!(seen["text"], ANSWER_WORDS.concat());
    let upstream = mock.recorded();
    assert_eq!(upstream.len(), 2);
    assert_eq!(
        upstream[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer sk-test-client")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_json_and_stream() {
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let base = gw.url("");

    let seen = sdk_call("anthropic", "json", &base, "Say hello.").await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(
        seen["response"],
        mock_upstream::anthropic_json("claude-sonnet-4-5", &ANSWER_WORDS.concat())
    );

    let seen = sdk_call("anthropic", "stream", &base, "Say hello.").await;
    assert!(seen.get("error").is_none(), "{seen}");
    let sent = sse_data(&mock_upstream::anthropic_sse_events(
        "claude-sonnet-4-5",
        ANSWER_WORDS,
    ));
    assert_eq!(
        without_text(&seen["events"]),
        without_text(&serde_json::Value::Array(sent))
    );
    assert_eq!(seen["text"], ANSWER_WORDS.concat());
    let upstream = mock.recorded();
    assert_eq!(
        upstream[0]
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok()),
        Some("sk-ant-test-client")
    );
    gw.stop().await;
}
