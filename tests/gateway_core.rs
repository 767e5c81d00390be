//! The gateway core on real sockets: transparency, streaming, cancellation, timeouts,
//! failover, limits and provider-shaped errors.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use haechi::config::{GatewayConfig, UpstreamConfig, UpstreamDialect};
use http_body_util::BodyExt;
use support::mock_upstream::{self, json_reply, Reply};
use support::*;

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi there, 안녕"}],"x_unknown":{"kept":[1,2,3]},  "temperature": 0.5}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_chat_is_transparent_both_ways() {
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let direct = post_json(&format!("{}/chat/completions", mock.openai_base()), CHAT).await;
    let via = call(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer sk-client"),
            ("x-request-id", "client-chosen-id"),
        ],
        CHAT,
    )
    .await;
    assert_eq!(via.status, 200);
    assert_eq!(
        via.body, direct.body,
        "response body must be byte-identical"
    );
    assert_eq!(via.header("content-type"), direct.header("content-type"));
    assert_eq!(
        via.header("x-haechi-request-id").as_deref(),
        Some("client-chosen-id")
    );
    let seen = mock.recorded();
    let upstream_req = seen.last().expect("upstream saw the request");
    assert_eq!(
        upstream_req.body,
        Bytes::from(CHAT),
        "request body forwarded byte-faithfully"
    );
    assert_eq!(upstream_req.path, "/v1/chat/completions");
    assert_eq!(
        upstream_req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer sk-client"),
        "pass-through mode forwards the client's own key"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_reaches_its_upstream() {
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let cases = [
        ("/v1/completions", r#"{"model":"m","prompt":"p"}"#),
        ("/v1/embeddings", r#"{"model":"e","input":"x"}"#),
        ("/v1/responses", r#"{"model":"m","input":"x"}"#),
        (
            "/v1/messages",
            r#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
        ),
        (
            "/v1/messages/count_tokens",
            r#"{"model":"claude","messages":[{"role":"user","content":"x"}]}"#,
        ),
    ];
    for (path, body) in cases {
        let response = post_json(&gw.url(path), body).await;
        assert!(response.header("x-haechi-request-id").is_some());
        let last = mock.recorded().last().cloned().expect("forwarded");
        assert_eq!(
            last.path, path,
            "{path} forwarded to the same path upstream"
        );
        assert_eq!(last.body, Bytes::from(body));
    }
    let models = call("GET", &gw.url("/v1/models"), &[], "").await;
    assert_eq!(models.status, 200);
    assert_eq!(models.json()["data"][0]["id"], "mock-model");
    let request_id = models.header("x-haechi-request-id").expect("generated id");
    assert!(request_id.starts_with("req_") && request_id.len() > 20);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_is_not_buffered() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let events = mock_upstream::openai_sse_events("m", &["one", " two", " three"]);
    let (first, rest) = (events[..2].to_vec(), events[2..].to_vec());
    let g = gate.clone();
    let mock = MockUpstream::start_with(Arc::new(move |_| Reply::Gated {
        content_type: "text/event-stream",
        first: first.clone(),
        gate: g.clone(),
        rest: rest.clone(),
    }))
    .await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let response = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    // The upstream holds the rest of the stream until we release it: if the gateway
    // buffered, the first event could never arrive and this would time out.
    let mut received = Vec::new();
    while received.windows(2).filter(|w| w == b"\n\n").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), next_data(&mut body))
            .await
            .expect("first events arrive while the upstream is still sending")
            .expect("stream open");
        received.extend_from_slice(&chunk);
    }
    // The first event passes as sent; the second arrives too, its word held back by
    // the output stage (it could be the start of an e-mail address) until the next.
    assert!(received.starts_with(&events[0]));
    assert_eq!(sse_text(&received), "");
    gate.notify_one();
    let rest = body.collect().await.expect("rest").to_bytes();
    assert_eq!(sse_text(&rest), "one two three");
    assert!(rest.ends_with(b"data: [DONE]\n\n"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_the_upstream_stream() {
    let words: Vec<&str> = vec!["w "; 200];
    let mock = MockUpstream::start_with(Arc::new(move |_| {
        mock_upstream::openai_sse("m", &words, Duration::from_millis(20))
    }))
    .await;
    let gw = TestGateway::start(config_for(&mock)).await;
    let response = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    let mut body = response.into_body();
    next_data(&mut body).await.expect("first event");
    drop(body);
    let abandoned = mock.abandoned_streams.clone();
    assert!(
        eventually(10, || abandoned.load(std::sync::atomic::Ordering::SeqCst)
            == 1)
        .await,
        "the upstream notices the cancelled stream"
    );
    assert_eq!(
        mock.completed_streams
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    gw.stop().await;
}

fn with_timeouts(
    mut config: GatewayConfig,
    f: impl Fn(&mut haechi::config::TimeoutsConfig),
) -> GatewayConfig {
    for u in &mut config.upstreams {
        f(&mut u.timeouts);
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_byte_timeout_is_a_504_naming_the_limit() {
    let mock = MockUpstream::start_with(Arc::new(|_| Reply::Hang)).await;
    let config = with_timeouts(config_for(&mock), |t| t.first_byte_ms = 200);
    let gw = TestGateway::start(config).await;
    let r = post_json(&gw.url("/v1/chat/completions"), CHAT).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"]["code"], "upstream_first_byte_timeout");
    let r = post_json(
        &gw.url("/v1/messages"),
        r#"{"model":"c","max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(r.status, 504);
    assert_eq!(
        r.json()["type"],
        "error",
        "Anthropic callers get Anthropic errors"
    );
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("first-byte"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_total_timeouts_end_streams_with_a_provider_error_event() {
    // Idle: a 2 s gap between chunks against a 200 ms idle limit.
    let mock = MockUpstream::start_with(Arc::new(|_| Reply::Chunks {
        status: 200,
        content_type: "text/event-stream",
        chunks: vec![
            (
                Duration::ZERO,
                Bytes::from_static(b"data: {\"choices\":[]}\n\n"),
            ),
            (
                Duration::from_secs(2),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ),
        ],
    }))
    .await;
    let config = with_timeouts(config_for(&mock), |t| t.idle_ms = 200);
    let gw = TestGateway::start(config).await;
    let r = post_json(&gw.url("/v1/chat/completions"), CHAT).await;
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(text.starts_with("data: {\"choices\":[]}\n\n"), "{text}");
    assert!(text.contains("idle-between-chunks timeout"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    gw.stop().await;

    // Total: chunks every 100 ms (under the idle limit) but the whole takes longer
    // than the 350 ms total limit.
    let mock = MockUpstream::start_with(Arc::new(|_| {
        mock_upstream::anthropic_sse("c", &["a"; 20], Duration::from_millis(100))
    }))
    .await;
    let config = with_timeouts(config_for(&mock), |t| {
        t.idle_ms = 1_000;
        t.total_ms = 350;
        t.first_byte_ms = 350;
    });
    let gw = TestGateway::start(config).await;
    let r = post_json(
        &gw.url("/v1/messages"),
        r#"{"model":"c","max_tokens":1,"stream":true,"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(text.contains("event: error\ndata: {"), "{text}");
    assert!(text.contains("total timeout"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_fail_over_and_then_name_the_limit() {
    // A listener whose accept queue is full drops new SYNs, so connecting hangs.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let full = socket.listen(1).expect("listen");
    let full_addr = full.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(full_addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let mut hanging = UpstreamConfig::new(
        "hanging",
        &format!("http://{full_addr}/v1"),
        UpstreamDialect::Openai,
    );
    hanging.timeouts.connect_ms = 200;
    let gw = TestGateway::start(GatewayConfig {
        upstreams: vec![hanging.clone()],
        ..GatewayConfig::default()
    })
    .await;
    let r = post_json(&gw.url("/v1/chat/completions"), CHAT).await;
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "upstream_connect_timeout");
    gw.stop().await;

    // Refused, then a 503, then a healthy upstream: the request lands on the last one.
    let refused_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let failing = MockUpstream::start_with(Arc::new(|_| Reply::Whole {
        status: 503,
        content_type: "application/json",
        body: Bytes::from_static(b"{\"error\":{\"message\":\"overloaded\"}}"),
    }))
    .await;
    let healthy = MockUpstream::start().await;
    let mut upstreams = vec![
        UpstreamConfig::new(
            "refused",
            &format!("http://127.0.0.1:{refused_port}/v1"),
            UpstreamDialect::Openai,
        ),
        UpstreamConfig::new("failing", &failing.openai_base(), UpstreamDialect::Openai),
        UpstreamConfig::new("healthy", &healthy.openai_base(), UpstreamDialect::Openai),
    ];
    for (i, u) in upstreams.iter_mut().enumerate() {
        u.priority = i as i32;
    }
    let gw = TestGateway::start(GatewayConfig {
        upstreams,
        ..GatewayConfig::default()
    })
    .await;
    let r = post_json(&gw.url("/v1/chat/completions"), CHAT).await;
    assert_eq!(r.status, 200);
    assert_eq!(failing.recorded().len(), 1);
    assert_eq!(healthy.recorded().len(), 1);
    gw.stop().await;

    // Only a refused upstream: 502 in OpenAI shape.
    let gw = TestGateway::start(GatewayConfig {
        upstreams: vec![UpstreamConfig::new(
            "refused",
            &format!("http://127.0.0.1:{refused_port}/v1"),
            UpstreamDialect::Openai,
        )],
        ..GatewayConfig::default()
    })
    .await;
    let r = post_json(&gw.url("/v1/chat/completions"), CHAT).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "upstream_unreachable");
    gw.stop().await;
    drop(fillers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_malformed_requests_get_clear_provider_errors() {
    let mock = MockUpstream::start().await;
    let mut config = config_for(&mock);
    config.limits.max_body_bytes = 1024;
    config.limits.max_header_bytes = 8192;
    let gw = TestGateway::start(config).await;

    let big = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    let r = post_json(&gw.url("/v1/chat/completions"), &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");

    let r = post_json(
        &gw.url("/v1/chat/completions"),
        "{\"model\": \"m\",\n \"messages\": [}",
    )
    .await;
    assert_eq!(r.status, 400);
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.contains("line 2 column"), "{message}");

    let r = post_json(&gw.url("/v1/messages"), r#"{"model":"m"}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");

    let r = post_json(&gw.url("/v1/unknown"), "{}").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("POST /v1/chat/completions"));

    let huge_header = "h".repeat(20_000);
    let r = call(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[("x-big", huge_header.as_str())],
        CHAT,
    )
    .await;
    assert_eq!(r.status, 431);

    assert!(
        mock.recorded().is_empty(),
        "nothing bad reached the upstream"
    );
    let health = call("GET", &gw.url("/healthz"), &[], "").await;
    assert_eq!(health.status, 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_credential_replaces_the_client_key_and_models_route() {
    std::env::set_var("HAECHI_TEST_UPSTREAM_KEY", "sk-gateway-held");
    let a = MockUpstream::start_with(Arc::new(|_| {
        json_reply(mock_upstream::openai_json("small", "from a"))
    }))
    .await;
    let b = MockUpstream::start_with(Arc::new(|_| {
        json_reply(mock_upstream::openai_json("large", "from b"))
    }))
    .await;
    let mut ua = UpstreamConfig::new("a", &a.openai_base(), UpstreamDialect::Openai);
    ua.models = Some(vec!["small".into()]);
    ua.api_key_env = Some("HAECHI_TEST_UPSTREAM_KEY".into());
    let mut ub = UpstreamConfig::new("b", &b.openai_base(), UpstreamDialect::Openai);
    ub.models = Some(vec!["large".into()]);
    let gw = TestGateway::start(GatewayConfig {
        upstreams: vec![ua, ub],
        ..GatewayConfig::default()
    })
    .await;
    let r = call(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[("authorization", "Bearer client-key")],
        r#"{"model":"small","messages":[]}"#,
    )
    .await;
    assert_eq!(r.json()["choices"][0]["message"]["content"], "from a");
    let seen = a.recorded();
    assert_eq!(
        seen[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer sk-gateway-held")
    );
    let r = post_json(
        &gw.url("/v1/chat/completions"),
        r#"{"model":"large","messages":[]}"#,
    )
    .await;
    assert_eq!(r.json()["choices"][0]["message"]["content"], "from b");
    let r = post_json(
        &gw.url("/v1/chat/completions"),
        r#"{"model":"other","messages":[]}"#,
    )
    .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "no_upstream");
    gw.stop().await;
}
