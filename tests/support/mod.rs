//! Shared test harness: a mock upstream, an in-process gateway on a real socket, and a
//! small HTTP client.

#![allow(dead_code)]

pub mod mock_upstream;
pub mod otlp;
pub mod redis;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use haechi::config::{GatewayConfig, UpstreamConfig, UpstreamDialect};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;

pub use mock_upstream::MockUpstream;

/// A gateway running in this test process on a loopback port.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<haechi::proxy::Gateway>,
    /// Where the audit log goes unless the config names a file.
    pub audit_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestGateway {
    pub async fn start(mut config: GatewayConfig) -> Self {
        let audit_dir = tempfile::tempdir().expect("audit dir");
        if config.audit.path.is_none() {
            config.audit.path = Some(audit_dir.path().join("audit.jsonl"));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let addr = listener.local_addr().expect("gateway addr");
        let gateway = haechi::proxy::Gateway::new(config).expect("gateway builds");
        let (tx, rx) = oneshot::channel::<()>();
        let gw = gateway.clone();
        let task = tokio::spawn(async move {
            let _ = haechi::proxy::serve(listener, gw, None, async move {
                let _ = rx.await;
            })
            .await;
        });
        Self {
            addr,
            gateway,
            audit_dir,
            shutdown: Some(tx),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops accepting and waits for the drain to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// A config whose OpenAI and Anthropic upstreams both point at `mock`.
pub fn config_for(mock: &MockUpstream) -> GatewayConfig {
    GatewayConfig {
        upstreams: vec![
            UpstreamConfig::new("mock-openai", &mock.openai_base(), UpstreamDialect::Openai),
            UpstreamConfig::new(
                "mock-anthropic",
                &mock.anthropic_base(),
                UpstreamDialect::Anthropic,
            ),
        ],
        ..GatewayConfig::default()
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response with its body read to the end.
pub struct Whole {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Whole {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("response body is JSON")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Sends a request and returns the response with its body still streaming.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> http::Response<Incoming> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Full::new(body.into())).expect("request");
    client().request(request).await.expect("request sent")
}

/// Sends a request and reads the whole response.
pub async fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Whole {
    let response = send(method, url, headers, body).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body read")
        .to_bytes();
    Whole {
        status,
        headers,
        body,
    }
}

/// POSTs JSON.
pub async fn post_json(url: &str, body: &str) -> Whole {
    call(
        "POST",
        url,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

/// Reads the next data frame of a streaming body.
pub async fn next_data(body: &mut Incoming) -> Option<Bytes> {
    loop {
        match body.frame().await? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(data);
                }
            }
            Err(_) => return None,
        }
    }
}

/// Waits up to `secs` for `cond` to hold, polling.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cond()
}

/// Every record in the gateway's audit log, once `n` are there (a record is written when
/// its response body ends, which can be just after the client has read it), or what is
/// there after 10 s.
#[allow(dead_code)] // not every test file reads the audit log
pub async fn audit_records(gw: &TestGateway, n: usize) -> Vec<serde_json::Value> {
    let path = gw.audit_dir.path().join("audit.jsonl");
    let read = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    eventually(10, || read().len() >= n).await;
    read()
}

/// The Python interpreter of the test venv (`HAECHI_PYTHON`, else `.venv/bin/python`).
pub fn python() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("HAECHI_PYTHON") {
        return p.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the SDK tests need the test venv: run scripts/test.sh once (it creates .venv with the official SDKs)"
    );
    venv
}

/// Runs `tests/sdk/client.py` with an official SDK against `base_url` and returns what
/// the SDK saw.
pub async fn sdk_call(
    provider: &str,
    mode: &str,
    base_url: &str,
    prompt: &str,
) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/client.py");
    let output = tokio::process::Command::new(python())
        .arg(script)
        .args([provider, mode, base_url, prompt])
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

/// The answer text of an SSE body (OpenAI chat chunks' `delta.content`, Anthropic
/// `text_delta`s, Responses `output_text.delta`s), concatenated: the output stage may
/// move text between events (held back until no rule can change it), so tests compare
/// text, not event bytes.
pub fn sse_text(body: &[u8]) -> String {
    let mut text = String::new();
    for line in String::from_utf8_lossy(body).lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
            continue;
        };
        let piece = v["choices"][0]["delta"]["content"]
            .as_str()
            .or_else(|| v["delta"]["text"].as_str())
            .or_else(|| {
                (v["type"] == "response.output_text.delta")
                    .then(|| v["delta"].as_str())
                    .flatten()
            });
        if let Some(p) = piece {
            text.push_str(p);
        }
    }
    text
}

/// Runs the `haechi scan` binary with `policy` on the JSONL `input` and returns its
/// output lines, parsed. Panics (fails the test) when the command fails.
pub fn run_scan(policy: &std::path::Path, input: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (in_path, out_path) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    std::fs::write(&in_path, input).expect("write input");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_haechi"))
        .args(["scan", "--policy"])
        .arg(policy)
        .arg("--input")
        .arg(&in_path)
        .arg("--output")
        .arg(&out_path)
        .status()
        .expect("run scan");
    assert!(status.success(), "haechi scan failed");
    std::fs::read_to_string(&out_path)
        .expect("output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}
