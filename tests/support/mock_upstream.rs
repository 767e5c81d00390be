//! A scriptable mock model upstream on a real loopback socket.
//!
//! It speaks just enough OpenAI and Anthropic to answer chat requests, JSON or SSE,
//! with configurable delays between chunks; it records every request it receives and
//! notices when the gateway goes away in the middle of a stream.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type MockBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// What the mock should answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A whole body at once.
    Whole {
        status: u16,
        content_type: &'static str,
        body: Bytes,
    },
    /// A body sent as separate chunks, each after its delay.
    Chunks {
        status: u16,
        content_type: &'static str,
        chunks: Vec<(Duration, Bytes)>,
    },
    /// Never answer (headers never come).
    Hang,
    /// Send `first`, wait until `gate` is notified, then send `rest`.
    Gated {
        content_type: &'static str,
        first: Vec<Bytes>,
        gate: Arc<tokio::sync::Notify>,
        rest: Vec<Bytes>,
    },
}

/// Decides the reply for each request.
pub type Script = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A running mock upstream.
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// Streams whose consumer went away before the last chunk was written.
    pub abandoned_streams: Arc<AtomicUsize>,
    /// Streams written to the end.
    pub completed_streams: Arc<AtomicUsize>,
}

impl MockUpstream {
    /// Starts a mock answering with the default provider-shaped replies.
    pub async fn start() -> Self {
        Self::start_with(Arc::new(default_reply)).await
    }

    /// Starts a mock with a custom script.
    pub async fn start_with(script: Script) -> Self {
        Self::start_on("127.0.0.1:0", script).await
    }

    /// Starts a mock on a given address (e.g. `127.0.0.1:0`).
    pub async fn start_on(addr: &str, script: Script) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind mock upstream");
        let addr = listener.local_addr().expect("mock addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let abandoned = Arc::new(AtomicUsize::new(0));
        let completed = Arc::new(AtomicUsize::new(0));
        let (req_log, ab, co) = (requests.clone(), abandoned.clone(), completed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (script, req_log, ab, co) =
                    (script.clone(), req_log.clone(), ab.clone(), co.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (script, req_log, ab, co) =
                            (script.clone(), req_log.clone(), ab.clone(), co.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let recorded = Recorded {
                                method: parts.method.to_string(),
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            };
                            let reply = script(&recorded);
                            req_log.lock().expect("lock").push(recorded);
                            Ok::<_, Infallible>(respond(reply, ab, co).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            abandoned_streams: abandoned,
            completed_streams: completed,
        }
    }

    /// Base URL in the OpenAI SDK convention (`.../v1`).
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Base URL in the Anthropic SDK convention (no `/v1`).
    pub fn anthropic_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn respond(
    reply: Reply,
    abandoned: Arc<AtomicUsize>,
    completed: Arc<AtomicUsize>,
) -> Response<MockBody> {
    match reply {
        Reply::Whole {
            status,
            content_type,
            body,
        } => Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(body).map_err(|n| match n {}).boxed_unsync())
            .expect("response"),
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Reply::Gated {
            content_type,
            first,
            gate,
            rest,
        } => {
            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(16);
            tokio::spawn(async move {
                for chunk in first {
                    if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                        return;
                    }
                }
                gate.notified().await;
                for chunk in rest {
                    if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                        return;
                    }
                }
            });
            stream_response(200, content_type, rx)
        }
        Reply::Chunks {
            status,
            content_type,
            chunks,
        } => {
            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
            tokio::spawn(async move {
                for (delay, chunk) in chunks {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                        abandoned.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
                // Every chunk was handed to the connection; dropping `tx` ends the body.
                completed.fetch_add(1, Ordering::SeqCst);
            });
            stream_response(status, content_type, rx)
        }
    }
}

fn stream_response(
    status: u16,
    content_type: &'static str,
    rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
) -> Response<MockBody> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("response")
}

/// The text the default replies answer with.
pub const ANSWER_WORDS: &[&str] = &["Hello", " from", " the", " mock", " 안녕하세요", "!"];

/// Default: OpenAI chat / completions / embeddings / models and Anthropic messages,
/// streamed when the request asks for it.
pub fn default_reply(req: &Recorded) -> Reply {
    let json: serde_json::Value =
        serde_json::from_slice(&req.body).unwrap_or(serde_json::Value::Null);
    let stream = json
        .get("stream")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let model = json
        .get("model")
        .and_then(|v| v.as_str())
        .unwrap_or("mock-model")
        .to_string();
    let path = req.path.split('?').next().unwrap_or("");
    if path.ends_with("/messages") {
        if stream {
            anthropic_sse(&model, ANSWER_WORDS, Duration::ZERO)
        } else {
            json_reply(anthropic_json(&model, &ANSWER_WORDS.concat()))
        }
    } else if path.ends_with("/chat/completions") {
        if stream {
            openai_sse(&model, ANSWER_WORDS, Duration::ZERO)
        } else {
            json_reply(openai_json(&model, &ANSWER_WORDS.concat()))
        }
    } else if path.ends_with("/models") {
        json_reply(
            serde_json::json!({"object":"list","data":[{"id":"mock-model","object":"model","created":0,"owned_by":"mock"}]}),
        )
    } else if path.ends_with("/embeddings") {
        json_reply(
            serde_json::json!({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":model,"usage":{"prompt_tokens":1,"total_tokens":1}}),
        )
    } else {
        Reply::Whole {
            status: 404,
            content_type: "application/json",
            body: Bytes::from_static(
                br#"{"error":{"message":"mock: no such path","type":"invalid_request_error"}}"#,
            ),
        }
    }
}

pub fn json_reply(value: serde_json::Value) -> Reply {
    Reply::Whole {
        status: 200,
        content_type: "application/json",
        body: Bytes::from(value.to_string()),
    }
}

pub fn openai_json(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}
    })
}

pub fn anthropic_json(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 6}
    })
}

/// OpenAI chat-completion SSE: one chunk per word, a finish chunk, `[DONE]`.
pub fn openai_sse_events(model: &str, words: &[&str]) -> Vec<Bytes> {
    let mut events = Vec::new();
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        let v = serde_json::json!({"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1,"model":model,
            "choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
        Bytes::from(format!("data: {v}\n\n"))
    };
    events.push(chunk(
        serde_json::json!({"role":"assistant","content":""}),
        serde_json::Value::Null,
    ));
    for w in words {
        events.push(chunk(
            serde_json::json!({"content": w}),
            serde_json::Value::Null,
        ));
    }
    events.push(chunk(serde_json::json!({}), serde_json::json!("stop")));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

pub fn openai_sse(model: &str, words: &[&str], delay: Duration) -> Reply {
    Reply::Chunks {
        status: 200,
        content_type: "text/event-stream",
        chunks: openai_sse_events(model, words)
            .into_iter()
            .map(|b| (delay, b))
            .collect(),
    }
}

/// Anthropic Messages SSE with the full event sequence.
pub fn anthropic_sse_events(model: &str, words: &[&str]) -> Vec<Bytes> {
    let ev =
        |name: &str, v: serde_json::Value| Bytes::from(format!("event: {name}\ndata: {v}\n\n"));
    let mut events = vec![
        ev(
            "message_start",
            serde_json::json!({"type":"message_start","message":{"id":"msg_mock","type":"message","role":"assistant","model":model,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}),
        ),
        ev(
            "content_block_start",
            serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
    ];
    for w in words {
        events.push(ev("content_block_delta", serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":w}})));
    }
    events.push(ev(
        "content_block_stop",
        serde_json::json!({"type":"content_block_stop","index":0}),
    ));
    events.push(ev("message_delta", serde_json::json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":6}})));
    events.push(ev(
        "message_stop",
        serde_json::json!({"type":"message_stop"}),
    ));
    events
}

pub fn anthropic_sse(model: &str, words: &[&str], delay: Duration) -> Reply {
    Reply::Chunks {
        status: 200,
        content_type: "text/event-stream",
        chunks: anthropic_sse_events(model, words)
            .into_iter()
            .map(|b| (delay, b))
            .collect(),
    }
}
