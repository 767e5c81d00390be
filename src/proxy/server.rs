//! The listener: accept loop, optional TLS, HTTP/1.1 and HTTP/2 on one port, and a
//! graceful drain on shutdown.
//!
//! `serve` takes an already bound listener so that tests bind `127.0.0.1:0`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::handler::Gateway;
use crate::config::TlsConfig;

/// How long a client may take to finish a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener TLS setup problem.
#[derive(Debug, thiserror::Error)]
#[error("tls: {0}")]
pub struct TlsError(String);

/// Builds the TLS acceptor from PEM files, offering h2 and http/1.1 via ALPN.
pub fn tls_acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let certs = read_certs(&config.cert)?;
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| TlsError(format!("key {}: {e}", config.key.display())))?;
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError(format!("cert {}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("cert {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "cert {}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// Serves connections until `shutdown` resolves, then stops accepting and lets
/// in-flight requests and streams finish for up to the configured grace period.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_as(listener, gateway, tls, shutdown, Listener::Client).await
}

/// Serves the admin listener (`admin_listen`: `/metrics`, `/healthz`, `/readyz` only,
/// plain HTTP, same limits and timeouts) until `shutdown` resolves. Stop it after the
/// client listener has drained, so that `/readyz` keeps answering during the drain.
pub async fn serve_admin(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_as(listener, gateway, None, shutdown, Listener::Admin).await
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Client,
    Admin,
}

async fn serve_as(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    kind: Listener,
) -> std::io::Result<()> {
    let limits = gateway.config.limits;
    let grace = Duration::from_secs(gateway.config.shutdown_grace_secs);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let head_timeout = Duration::from_millis(limits.header_read_timeout_ms);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gateway = gateway.clone();
                async move {
                    Ok::<_, Infallible>(match kind {
                        Listener::Client => gateway.handle(req).await,
                        Listener::Admin => gateway.handle_admin(req),
                    })
                }
            });
            let result = match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(
                        TokioIo::new(FirstBytesDeadline::new(stream, head_timeout)),
                        service,
                    );
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            let conn = builder.serve_connection_with_upgrades(
                                TokioIo::new(FirstBytesDeadline::new(tls_stream, head_timeout)),
                                service,
                            );
                            watcher.watch(conn.into_owned()).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "tls handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    if kind == Listener::Admin {
        // Scrapes and probes are short; the client listener owns the drain.
        let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
        return Ok(());
    }
    gateway.start_draining();
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: draining connections"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over: closing remaining connections");
    }
    Ok(())
}

/// Bytes a connection must send before `header_read_timeout` stops guarding it here:
/// the HTTP/2 preface length, which is what the HTTP/1-or-2 detection reads before
/// hyper's own HTTP/1 header timer starts.
const DETECTION_BYTES: usize = 24;

/// A connection that must deliver its first [`DETECTION_BYTES`] before a deadline.
///
/// hyper-util's protocol detection reads the first bytes without any timeout, so a
/// client that connects and sends nothing (or half the HTTP/2 preface) would hold a
/// connection and a task forever; hyper's `header_read_timeout` only starts after.
pub struct FirstBytesDeadline<S> {
    inner: S,
    deadline: Pin<Box<tokio::time::Sleep>>,
    seen: usize,
}

impl<S> FirstBytesDeadline<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            seen: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytesDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.seen += buf.filled().len() - before;
            return polled;
        }
        if self.seen < DETECTION_BYTES && self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not received in time",
            )));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytesDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
