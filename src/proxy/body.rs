//! Response bodies: the boxed body type, and the upstream body wrapper that enforces
//! the idle-between-chunks and total timeouts while streaming frame by frame.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tokio::time::{Instant, Sleep};

/// Errors carried by response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one body type the gateway returns.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A complete in-memory body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What to send when an upstream body stalls, runs out of time or breaks off.
pub trait TimeoutEnding: Send + 'static {
    /// The final bytes for the client, or `None` to abort the response. `class` names
    /// the fault (`upstream_timeout`, `upstream_broken`) for the error code and record.
    fn ending(&self, class: &'static str, message: &str) -> Option<Bytes>;
}

/// A body error of the upstream (reset, truncated chunked body): ends the response the
/// way a timeout does, so a stream's client reads a provider error event, not a cut.
fn broken<E: TimeoutEnding>(
    ending: &E,
    upstream: &str,
    e: BoxError,
) -> Result<Frame<Bytes>, BoxError> {
    tracing::warn!(upstream, error = %e, "upstream body broke off");
    let message = format!("haechi: upstream `{upstream}` broke off the answer");
    match ending.ending("upstream_broken", &message) {
        Some(bytes) => Ok(Frame::data(bytes)),
        None => Err(e),
    }
}

pin_project_lite::pin_project! {
    /// Wraps an upstream body: each frame must arrive within `idle` of the previous one,
    /// and the whole body before `deadline`. On a timeout it emits the configured ending
    /// (for SSE: a provider-shaped error event) and ends, or aborts the body.
    pub struct TimedBody<B, E> {
        #[pin]
        inner: B,
        #[pin]
        idle_sleep: Sleep,
        #[pin]
        total_sleep: Sleep,
        idle: Duration,
        ending: E,
        upstream: String,
        finished: bool,
        // A non-data frame, end or error met while coalescing, returned next.
        stashed: Option<Option<Result<Frame<Bytes>, BoxError>>>,
    }
}

/// Largest batch of ready data frames merged into one write.
const COALESCE_LIMIT: usize = 64 * 1024;

impl<B, E> TimedBody<B, E> {
    pub fn new(inner: B, idle: Duration, deadline: Instant, ending: E, upstream: String) -> Self {
        Self {
            inner,
            idle_sleep: tokio::time::sleep(idle),
            total_sleep: tokio::time::sleep_until(deadline),
            idle,
            ending,
            upstream,
            finished: false,
            stashed: None,
        }
    }
}

impl<B, E> HttpBody for TimedBody<B, E>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
    E: TimeoutEnding,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(stashed) = this.stashed.take() {
            if !matches!(stashed, Some(Ok(_))) {
                *this.finished = true;
            }
            return Poll::Ready(
                stashed.map(|r| r.or_else(|e| broken(&*this.ending, this.upstream, e))),
            );
        }
        if *this.finished {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = Instant::now() + *this.idle;
                this.idle_sleep.as_mut().reset(next);
                let first = match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                };
                // Merge data frames that are already waiting, so a burst of small SSE
                // events costs one write instead of one per event. Nothing waits here:
                // only frames that are ready now are taken.
                let mut merged: Option<bytes::BytesMut> = None;
                loop {
                    let len = merged.as_ref().map_or(first.len(), |m| m.len());
                    if len >= COALESCE_LIMIT {
                        break;
                    }
                    match this.inner.as_mut().poll_frame(cx) {
                        Poll::Ready(Some(Ok(next))) => match next.into_data() {
                            Ok(data) => {
                                let m = merged.get_or_insert_with(|| {
                                    let mut m = bytes::BytesMut::with_capacity(first.len() * 4);
                                    m.extend_from_slice(&first);
                                    m
                                });
                                m.extend_from_slice(&data);
                            }
                            Err(trailers) => {
                                *this.stashed = Some(Some(Ok(trailers)));
                                break;
                            }
                        },
                        Poll::Ready(Some(Err(e))) => {
                            *this.stashed = Some(Some(Err(e.into())));
                            break;
                        }
                        Poll::Ready(None) => {
                            *this.stashed = Some(None);
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
                let data = merged.map_or(first, bytes::BytesMut::freeze);
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            Poll::Ready(Some(Err(e))) => {
                *this.finished = true;
                return Poll::Ready(Some(broken(&*this.ending, this.upstream, e.into())));
            }
            Poll::Ready(None) => {
                *this.finished = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let which = if this.total_sleep.as_mut().poll(cx).is_ready() {
            Some("total")
        } else if this.idle_sleep.as_mut().poll(cx).is_ready() {
            Some("idle-between-chunks")
        } else {
            None
        };
        match which {
            None => Poll::Pending,
            Some(kind) => {
                *this.finished = true;
                let message = format!(
                    "haechi: upstream `{}` exceeded the {kind} timeout",
                    this.upstream
                );
                tracing::warn!(upstream = %this.upstream, timeout = kind, "upstream body timed out");
                match this.ending.ending("upstream_timeout", &message) {
                    Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                    None => Poll::Ready(Some(Err(message.into()))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stashed.is_none() && (self.finished || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
