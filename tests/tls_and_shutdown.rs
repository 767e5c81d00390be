//! Listener TLS (HTTP/1.1 and HTTP/2 via ALPN) and graceful shutdown of the real binary.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use support::mock_upstream;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_http1_and_http2() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_pem = cert.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");

    let config = config_for(&mock);
    let acceptor = haechi::proxy::tls_acceptor(&haechi::config::TlsConfig {
        cert: cert_path.clone(),
        key: key_path.clone(),
    })
    .expect("tls acceptor");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let gateway = haechi::proxy::Gateway::new(config).expect("gateway");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(haechi::proxy::serve(
        listener,
        gateway,
        Some(acceptor),
        async move {
            let _ = rx.await;
        },
    ));

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    for (version, https) in [
        (
            http::Version::HTTP_11,
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_only()
                .enable_http1()
                .build(),
        ),
        (
            http::Version::HTTP_2,
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_only()
                .enable_http2()
                .build(),
        ),
    ] {
        let mut builder = Client::builder(TokioExecutor::new());
        if version == http::Version::HTTP_2 {
            builder.http2_only(true);
        }
        let client: Client<_, Full<Bytes>> = builder.build(https);
        let request = http::Request::post(format!("https://localhost:{port}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
            )))
            .expect("request");
        let response = client.request(request).await.expect("tls request");
        assert_eq!(response.version(), version);
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-haechi-request-id"));
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let events = mock_upstream::openai_sse_events("m", mock_upstream::ANSWER_WORDS);
        assert_eq!(
            sse_text(&body),
            mock_upstream::ANSWER_WORDS.concat(),
            "{version:?} stream text passes through intact"
        );
        assert!(
            body.ends_with(&events[events.len() - 2..].concat()),
            "{version:?}: the finish chunk and [DONE] pass as sent"
        );
    }
    let _ = tx.send(());
    let _ = server.await;
}

/// SIGTERM while a stream is in flight: the stream finishes, new connections are
/// refused, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_streams_then_exits_zero() {
    let words: Vec<&str> = vec!["tick "; 15];
    let mock = MockUpstream::start_with(Arc::new(move |_| {
        mock_upstream::openai_sse("m", &words, Duration::from_millis(100))
    }))
    .await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_haechi"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            &mock.openai_base(),
        ])
        .env("HAECHI_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn haechi");
    let base = format!("http://127.0.0.1:{port}");
    let up = eventually(20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(up, "gateway started");

    let response = send(
        "POST",
        &format!("{base}/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    let mut body = response.into_body();
    let first = next_data(&mut body).await.expect("first event");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut received = first.to_vec();
    while let Some(chunk) = next_data(&mut body).await {
        received.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "in-flight stream completed: {text}"
    );
    assert_eq!(text.matches("tick").count(), 15);

    let refused = eventually(10, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    })
    .await;
    assert!(refused, "no new connections after SIGTERM");
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
    let _ = std::io::stderr().flush();
}
