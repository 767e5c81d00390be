//! Amazon Bedrock in front of and behind the gateway, on real sockets.
//!
//! The mock Bedrock upstream recomputes every request's SigV4 signature with `aws-sigv4`
//! from the gateway's known test credentials (and refuses a wrong one, as Bedrock does)
//! and answers Converse in JSON or in `application/vnd.amazon.eventstream` framing.
//! Clients are boto3 (`converse`, `converse_stream`), the OpenAI SDK, and raw HTTP.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use haechi::config::{GatewayConfig, TenantConfig, UpstreamConfig, UpstreamDialect};
use haechi::dialect::bedrock::eventstream::{encode_event, Event, FrameDecoder};
use haechi::tenancy::keys::KeyHash;
use serde_json::{json, Value};
use support::mock_upstream::{Recorded, Reply};
use support::*;

/// The gateway's own AWS credentials (what it signs upstream requests with).
const GATEWAY_KEY_ID: &str = "AKIAGATEWAYTEST00001";
const GATEWAY_SECRET: &str = "gateway-secret-for-tests";
/// The tenant's access key id used by `tests/sdk/client.py`.
const TENANT_KEY_ID: &str = "AKIATENANTTEST000001";
const TENANT_GATEWAY_KEY: &str = "hk_bedrock_tenant";
const REGION: &str = "us-west-2";
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const WORDS: [&str; 3] = ["Hello", " from", " Bedrock"];

const POLICY: &str = r#"
id: default
input:
  - id: banned-words
    detector: word
    words: ["frobnicate"]
    action: block
    message: { en: "Blocked by the gateway guardrail.", ko: "허용되지 않는 요청입니다." }
output:
  - id: no-secrets-out
    detector: word
    words: ["topsecret"]
    action: block
    message: { en: "The answer was blocked.", ko: "답변이 차단되었습니다." }
  - id: pii-out
    detector: pii
    entities: [EMAIL]
    action: mask
  - id: grounded
    detector: grounding
    threshold: 0.5
    action: warn
"#;

fn set_gateway_credentials() {
    // Every test in this binary sets the same values, so concurrent tests agree.
    std::env::set_var("AWS_ACCESS_KEY_ID", GATEWAY_KEY_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", GATEWAY_SECRET);
    std::env::remove_var("AWS_SESSION_TOKEN");
}

/// `20240102T030405Z` → the instant it names.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    if text.len() != 16 {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    let dt =
        aws_smithy_types::DateTime::from_str(&iso, aws_smithy_types::date_time::Format::DateTime)
            .ok()?;
    SystemTime::try_from(dt).ok()
}

/// Recomputes the request's SigV4 signature with the gateway's test credentials, as
/// Bedrock would; `Err` says why it does not match.
fn verify_sigv4(req: &Recorded) -> Result<(), String> {
    let header = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    let auth = header("authorization").ok_or("no authorization")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not SigV4")?;
    let field = |name: &str| {
        rest.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(name))
            .map(str::to_string)
    };
    let credential = field("Credential=").ok_or("no Credential")?;
    let signed = field("SignedHeaders=").ok_or("no SignedHeaders")?;
    let signature = field("Signature=").ok_or("no Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[0] != GATEWAY_KEY_ID || scope[2] != REGION || scope[3] != "bedrock"
    {
        return Err(format!("unexpected credential scope {credential}"));
    }
    let time = parse_amz_date(header("x-amz-date").ok_or("no x-amz-date")?).ok_or("bad date")?;
    let host = header("host").ok_or("no host")?;
    let headers: Vec<(&str, &str)> = signed
        .split(';')
        .map(|name| (name, header(name).unwrap_or("")))
        .collect();
    let uri = format!("http://{host}{}", req.path);
    let signable = SignableRequest::new(
        &req.method,
        uri,
        headers.into_iter(),
        SignableBody::Bytes(&req.body),
    )
    .map_err(|e| e.to_string())?;
    let identity = Credentials::new(GATEWAY_KEY_ID, GATEWAY_SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let out = sign(signable, &params).map_err(|e| e.to_string())?;
    if out.signature() == signature {
        Ok(())
    } else {
        Err("signature mismatch".into())
    }
}

fn converse_json(text: &str) -> Value {
    json!({"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
           "stopReason": "end_turn",
           "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10},
           "metrics": {"latencyMs": 12}})
}

fn converse_frames(words: &[&str]) -> Vec<Bytes> {
    let mut frames = vec![encode_event("messageStart", &json!({"role": "assistant"}))];
    for w in words {
        frames.push(encode_event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": w}}),
        ));
    }
    frames.push(encode_event(
        "contentBlockStop",
        &json!({"contentBlockIndex": 0}),
    ));
    frames.push(encode_event(
        "messageStop",
        &json!({"stopReason": "end_turn"}),
    ));
    frames.push(encode_event(
        "metadata",
        &json!({"usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10},
                "metrics": {"latencyMs": 12}}),
    ));
    frames
}

/// The mock Bedrock runtime: checks the signature, then answers by model and prompt.
/// Model `bad-crc` streams a frame with a broken checksum; `truncated` stops mid-frame.
fn bedrock_reply(req: &Recorded) -> Reply {
    if let Err(why) = verify_sigv4(req) {
        return Reply::Whole {
            status: 403,
            content_type: "application/json",
            body: Bytes::from(
                json!({"message": format!("InvalidSignatureException: {why}")}).to_string(),
            ),
        };
    }
    let prompt = String::from_utf8_lossy(&req.body).to_string();
    let answer = if prompt.contains("secret please") {
        "the code is topsecret".to_string()
    } else {
        WORDS.concat()
    };
    if req.path.ends_with("/converse") {
        return support::mock_upstream::json_reply(converse_json(&answer));
    }
    let streamed: &[&str] = if prompt.contains("secret please") {
        &["the code ", "is top", "secret", " ok"]
    } else if prompt.contains("mail please") {
        &["write to ja", "ne@exam", "ple.com", " today"]
    } else {
        &WORDS
    };
    let mut frames = converse_frames(streamed);
    if req.path.contains("/bad-crc/") {
        let last = frames.len() - 3;
        let mut broken = frames[last].to_vec();
        let n = broken.len();
        broken[n - 6] ^= 0x20;
        frames[last] = Bytes::from(broken);
    } else if req.path.contains("/truncated/") {
        let last = frames.len() - 1;
        frames[last] = frames[last].slice(..frames[last].len() - 4);
    }
    Reply::Chunks {
        status: 200,
        content_type: "application/vnd.amazon.eventstream",
        chunks: frames
            .into_iter()
            .map(|f| (Duration::from_millis(2), f))
            .collect(),
    }
}

struct Setup {
    mock: MockUpstream,
    gw: TestGateway,
    _policies: tempfile::TempDir,
}

async fn setup() -> Setup {
    set_gateway_credentials();
    let mock = MockUpstream::start_with(Arc::new(bedrock_reply)).await;
    let policies = tempfile::tempdir().expect("tempdir");
    std::fs::write(policies.path().join("default.yaml"), POLICY).expect("policy");
    let mut upstream = UpstreamConfig::new(
        "bedrock-oregon",
        &format!("http://{}", mock.addr),
        UpstreamDialect::Bedrock,
    );
    upstream.region = Some(REGION.into());
    upstream.models = Some(vec![MODEL.into(), "bad-crc".into(), "truncated".into()]);
    let config = GatewayConfig {
        upstreams: vec![upstream],
        tenants: vec![TenantConfig {
            id: "acme".into(),
            keys: vec![KeyHash::of(TENANT_GATEWAY_KEY).to_string()],
            regions: Some(vec![REGION.into()]),
            policy: None,
            models: None,
            quotas: None,
            credentials: Default::default(),
            aws_access_key_ids: vec![TENANT_KEY_ID.into()],
        }],
        policies: Some(policies.path().to_path_buf()),
        ..GatewayConfig::default()
    };
    let gw = TestGateway::start(config).await;
    Setup {
        mock,
        gw,
        _policies: policies,
    }
}

fn converse_path(model: &str, action: &str) -> String {
    format!("/model/{}/{action}", model.replace(':', "%3A"))
}

/// Decodes a whole event-stream body into `(event type, JSON payload)` pairs.
fn events(body: &[u8]) -> Vec<(String, Value)> {
    let mut decoder = FrameDecoder::new();
    decoder.push(body);
    let mut out = Vec::new();
    while let Some((_, event)) = decoder.next_frame().expect("valid frames") {
        match event {
            Event::Event {
                event_type,
                payload,
            } => out.push((
                event_type,
                serde_json::from_slice(&payload).expect("JSON payload"),
            )),
            Event::Exception {
                exception_type,
                message,
            } => out.push((
                format!("exception:{exception_type}"),
                json!({ "message": message }),
            )),
            Event::Error { code, message } => {
                out.push((format!("error:{code}"), json!({ "message": message })))
            }
        }
    }
    decoder.finish().expect("ends on a frame boundary");
    out
}

async fn converse_with_key(gw: &TestGateway, action: &str, body: &Value) -> Whole {
    call(
        "POST",
        &gw.url(&converse_path(MODEL, action)),
        &[
            ("content-type", "application/json"),
            ("x-api-key", TENANT_GATEWAY_KEY),
        ],
        body.to_string(),
    )
    .await
}

fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": text}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converse_with_a_gateway_key_is_re_signed_for_the_upstream() {
    let s = setup().await;
    let r = converse_with_key(&s.gw, "converse", &user("Say hello.")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), converse_json(&WORDS.concat()));
    assert_eq!(r.header("x-haechi-region").as_deref(), Some(REGION));
    let seen = s.mock.recorded();
    assert_eq!(seen.len(), 1);
    assert!(verify_sigv4(&seen[0]).is_ok());
    assert_eq!(seen[0].path, converse_path(MODEL, "converse"));
    assert!(
        seen[0].headers.get("x-api-key").is_none(),
        "gateway key stays"
    );

    let r = converse_with_key(&s.gw, "converse-stream", &user("Say hello.")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/vnd.amazon.eventstream")
    );
    let got = events(&r.body);
    let text: String = got
        .iter()
        .filter_map(|(_, p)| p.pointer("/delta/text").and_then(Value::as_str))
        .collect();
    assert_eq!(text, WORDS.concat());
    assert!(got.iter().any(|(n, _)| n == "metadata"));

    // An unknown SigV4 key id is refused in Bedrock's error shape.
    let r = call(
        "POST",
        &s.gw.url(&converse_path(MODEL, "converse")),
        &[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAUNKNOWN000000000/20240101/us-west-2/bedrock/aws4_request, SignedHeaders=host, Signature=00",
        )],
        user("hi").to_string(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("x-amzn-errortype").as_deref(),
        Some("AccessDeniedException")
    );
    assert!(r.json()["message"].as_str().is_some());
    s.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrail_intervention_has_bedrock_shapes() {
    let s = setup().await;
    // Input blocked: JSON.
    let r = converse_with_key(&s.gw, "converse", &user("please frobnicate it")).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["stopReason"], "guardrail_intervened");
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        "Blocked by the gateway guardrail."
    );
    assert_eq!(r.header("x-haechi-action").as_deref(), Some("block"));
    // Input blocked: stream.
    let r = converse_with_key(&s.gw, "converse-stream", &user("please frobnicate it")).await;
    assert_eq!(r.status, 200);
    let got = events(&r.body);
    let stop = got
        .iter()
        .find(|(n, _)| n == "messageStop")
        .map(|(_, p)| p["stopReason"].clone());
    assert_eq!(stop, Some(json!("guardrail_intervened")));
    assert!(got.iter().any(
        |(_, p)| p.pointer("/delta/text") == Some(&json!("Blocked by the gateway guardrail."))
    ));
    assert!(
        s.mock.recorded().is_empty(),
        "blocked input never goes upstream"
    );
    // Output blocked.
    let r = converse_with_key(&s.gw, "converse", &user("secret please")).await;
    let v = r.json();
    assert_eq!(v["stopReason"], "guardrail_intervened");
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        "The answer was blocked."
    );
    assert!(!String::from_utf8_lossy(&r.body).contains("topsecret"));
    s.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_content_qualifiers_feed_the_grounding_check() {
    let s = setup().await;
    let grounded = json!({"messages": [{"role": "user", "content": [
        {"guardContent": {"text": {"text": "Bedrock is a managed service that offers foundation models. Hello from Bedrock is its greeting.", "qualifiers": ["grounding_source"]}}},
        {"guardContent": {"text": {"text": "What is the greeting?", "qualifiers": ["query"]}}}]}]});
    let r = converse_with_key(&s.gw, "converse", &grounded).await;
    assert_eq!(r.status, 200);
    let score = r.header("x-haechi-grounding");
    assert!(score.is_some(), "grounding ran on the guardContent source");
    // The grounding source is reference text, not a prompt: it still reaches the model.
    let seen = s.mock.recorded();
    assert!(String::from_utf8_lossy(&seen[0].body).contains("grounding_source"));
    let r = converse_with_key(&s.gw, "converse", &user("What is the greeting?")).await;
    assert!(
        r.header("x-haechi-grounding").is_none(),
        "no context, no grounding"
    );
    s.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_event_streams_end_cleanly() {
    let s = setup().await;
    for model in ["bad-crc", "truncated"] {
        // Bedrock client: the relayed stream ends with an exception frame.
        let r = call(
            "POST",
            &s.gw.url(&converse_path(model, "converse-stream")),
            &[("x-api-key", TENANT_GATEWAY_KEY)],
            user("Say hello.").to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{model}");
        let got = events(&r.body);
        let (last, payload) = got.last().expect("frames");
        assert_eq!(last, "exception:internalServerException", "{model}");
        assert!(payload["message"]
            .as_str()
            .is_some_and(|m| m.contains("malformed event stream")));
        // OpenAI client: the SSE stream ends with an error event and no [DONE].
        let r = call(
            "POST",
            &s.gw.url("/v1/chat/completions"),
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {TENANT_GATEWAY_KEY}")),
            ],
            json!({"model": model, "stream": true,
                   "messages": [{"role": "user", "content": "Say hello."}]})
            .to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{model}");
        let text = String::from_utf8_lossy(&r.body).to_string();
        let last = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .last()
            .and_then(|e| e.strip_prefix("data: "))
            .expect("an event");
        let v: Value = serde_json::from_str(last).expect("JSON error event");
        assert_eq!(v["error"]["code"], "upstream_bad_stream", "{model}");
        assert!(!text.contains("[DONE]"), "{model}");
    }
    let health = call("GET", &s.gw.url("/healthz"), &[], "").await;
    assert_eq!(health.status, 200, "the gateway is still serving");
    s.gw.stop().await;
}

/// Runs `tests/sdk/client.py` with a model argument.
async fn sdk(provider: &str, mode: &str, base_url: &str, prompt: &str, model: &str) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/client.py");
    let output = tokio::process::Command::new(python())
        .arg(script)
        .args([provider, mode, base_url, prompt, model])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HAECHI_SDK_KEY", TENANT_GATEWAY_KEY)
        .output()
        .await
        .expect("run the SDK client");
    assert!(
        output.status.success(),
        "SDK client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("SDK client prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_converse_and_converse_stream_through_the_gateway() {
    let s = setup().await;
    let base = s.gw.url("");
    let seen = sdk("bedrock", "converse", &base, "Say hello.", MODEL).await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(seen["text"], WORDS.concat());
    assert_eq!(seen["stopReason"], "end_turn");
    assert_eq!(seen["response"]["usage"]["totalTokens"], 10);

    let seen = sdk("bedrock", "stream", &base, "Say hello.", MODEL).await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(seen["text"], WORDS.concat());
    assert_eq!(seen["stopReason"], "end_turn");

    // Both reached the upstream re-signed with the gateway's key (the tenant was found
    // from the access key id of boto3's own signature).
    let upstream = s.mock.recorded();
    assert_eq!(upstream.len(), 2);
    for r in &upstream {
        verify_sigv4(r).expect("gateway signature");
    }

    let seen = sdk("bedrock", "converse", &base, "frobnicate now", MODEL).await;
    assert_eq!(seen["stopReason"], "guardrail_intervened", "{seen}");
    assert_eq!(seen["text"], "Blocked by the gateway guardrail.");
    assert_eq!(seen["action"], "block");
    let seen = sdk("bedrock", "stream", &base, "frobnicate now", MODEL).await;
    assert_eq!(seen["stopReason"], "guardrail_intervened", "{seen}");
    assert_eq!(seen["text"], "Blocked by the gateway guardrail.");
    s.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_rules_apply_inside_converse_streams() {
    let s = setup().await;
    let base = s.gw.url("");
    // Masked inside the deltas, wherever the frames cut the address.
    let seen = sdk("bedrock", "stream", &base, "mail please", MODEL).await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(seen["text"], "write to {EMAIL} today");
    assert_eq!(seen["stopReason"], "end_turn");
    // Blocked mid-stream: what Bedrock sends when a guardrail intervenes.
    let seen = sdk("bedrock", "stream", &base, "secret please", MODEL).await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(seen["stopReason"], "guardrail_intervened", "{seen}");
    let text = seen["text"].as_str().unwrap_or_default();
    assert!(
        !text.contains("topsecret") && !text.contains("top"),
        "{text}"
    );
    assert!(text.ends_with("The answer was blocked."), "{text}");
    s.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_reaches_a_bedrock_model() {
    let s = setup().await;
    let base = s.gw.url("/v1");
    let seen = sdk_openai(&base, "json").await;
    assert!(seen.get("error").is_none(), "{seen}");
    let choice = &seen["response"]["choices"][0];
    assert_eq!(choice["message"]["content"], WORDS.concat());
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(seen["response"]["usage"]["total_tokens"], 10);

    let seen = sdk_openai(&base, "stream").await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(seen["text"], WORDS.concat());
    let chunks = seen["chunks"].as_array().expect("chunks");
    assert_eq!(
        chunks
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
            .collect::<Vec<_>>(),
        ["stop"]
    );
    let upstream = s.mock.recorded();
    assert_eq!(upstream.len(), 2);
    assert_eq!(upstream[0].path, converse_path(MODEL, "converse"));
    assert_eq!(upstream[1].path, converse_path(MODEL, "converse-stream"));
    for r in &upstream {
        verify_sigv4(r).expect("gateway signature");
        let body: Value = serde_json::from_slice(&r.body).expect("Converse JSON");
        assert_eq!(body["messages"][0]["content"][0]["text"], "Say hello.");
    }
    s.gw.stop().await;
}

/// The OpenAI SDK with the tenant's gateway key, on the Bedrock model.
async fn sdk_openai(base: &str, mode: &str) -> Value {
    sdk("openai", mode, base, "Say hello.", MODEL).await
}
