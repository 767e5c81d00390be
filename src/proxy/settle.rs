//! Settlement: replace a request's reserved token estimate by the usage the upstream
//! reported, read from the answer as it streams past.
//!
//! `SettleBody` wraps the upstream body. For JSON answers it keeps a bounded copy and
//! reads `usage` at the end; for SSE streams it reads usage events (OpenAI's final usage
//! chunk, Anthropic's `message_start` / `message_delta`) as they pass. When the gateway
//! asked an OpenAI upstream for the usage chunk on the client's behalf, the chunk is
//! removed before the client sees it. Settlement runs once, at the end of the body or
//! when the client goes away; without reported usage the reservation stands.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::body::BoxError;
use crate::tenancy::quota::{QuotaStore, Reservation};

/// Largest JSON answer copied to read its usage.
const MAX_JSON_COPY: usize = 4 * 1024 * 1024;

/// How the answer reports usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageFormat {
    Json,
    Sse {
        /// Drop OpenAI's usage-only chunk (`choices: []`), which the client did not ask for.
        strip_usage_chunk: bool,
    },
}

/// Token usage read from an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
}

/// What to settle, and against what.
pub struct Settlement {
    pub store: Arc<dyn QuotaStore>,
    pub reservation: Reservation,
    /// Cost of usage in micro-USD.
    pub cost: Box<dyn Fn(Usage) -> u64 + Send + Sync>,
    /// Called with the usage once known (for metrics and the audit record).
    pub on_usage: Option<Box<dyn FnOnce(Usage) + Send>>,
}

impl Settlement {
    fn run(self, usage: Option<Usage>) {
        let Some(usage) = usage else {
            tracing::debug!("no usage reported: the reservation stands");
            return;
        };
        if let Some(f) = self.on_usage {
            f(usage);
        }
        let cost = (self.cost)(usage);
        let store = self.store;
        let reservation = self.reservation;
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            if let Err(e) = store
                .settle(&reservation, usage.input + usage.output, cost)
                .await
            {
                tracing::warn!(error = %e, "quota settlement failed");
            }
        });
    }
}

pin_project_lite::pin_project! {
    /// An answer body that reads usage as it passes and settles at the end.
    pub struct SettleBody<B> {
        #[pin]
        inner: B,
        format: UsageFormat,
        buffer: BytesMut,
        usage: Option<Usage>,
        settlement: Option<Settlement>,
        slot: Option<super::record::UsageSlot>,
    }

    impl<B> PinnedDrop for SettleBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            publish(this.slot, *this.usage);
            if let Some(s) = this.settlement.take() {
                s.run(*this.usage);
            }
        }
    }
}

impl<B> SettleBody<B> {
    /// Reads usage from `inner`; settles `settlement` (if any) and fills `slot` (if any)
    /// once the body ends or is dropped.
    pub fn new(
        inner: B,
        format: UsageFormat,
        settlement: Option<Settlement>,
        slot: Option<super::record::UsageSlot>,
    ) -> Self {
        Self {
            inner,
            format,
            buffer: BytesMut::new(),
            usage: None,
            settlement,
            slot,
        }
    }
}

fn publish(slot: &mut Option<super::record::UsageSlot>, usage: Option<Usage>) {
    if let (Some(slot), Some(usage)) = (slot.take(), usage) {
        if let Ok(mut s) = slot.lock() {
            *s = Some(usage);
        }
    }
}

impl<B> HttpBody for SettleBody<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let data = match frame.into_data() {
                        Ok(d) => d,
                        Err(other) => return Poll::Ready(Some(Ok(other))),
                    };
                    match *this.format {
                        UsageFormat::Json => {
                            if this.buffer.len() + data.len() <= MAX_JSON_COPY {
                                this.buffer.extend_from_slice(&data);
                            }
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        UsageFormat::Sse { strip_usage_chunk } => {
                            this.buffer.extend_from_slice(&data);
                            let out = take_events(this.buffer, this.usage, strip_usage_chunk);
                            if out.is_empty() {
                                // Only an incomplete event (or a stripped one): read on.
                                continue;
                            }
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                }
                Poll::Ready(None) => {
                    let mut tail = None;
                    match *this.format {
                        UsageFormat::Json => {
                            *this.usage = json_usage(this.buffer);
                        }
                        UsageFormat::Sse { .. } => {
                            if !this.buffer.is_empty() {
                                tail = Some(this.buffer.split().freeze());
                            }
                        }
                    }
                    publish(this.slot, *this.usage);
                    if let Some(s) = this.settlement.take() {
                        s.run(*this.usage);
                    }
                    return Poll::Ready(tail.map(|t| Ok(Frame::data(t))));
                }
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream() && self.buffer.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.format {
            UsageFormat::Json => self.inner.size_hint(),
            UsageFormat::Sse { .. } => SizeHint::default(),
        }
    }
}

/// Takes the complete events off the front of `buffer`, reading usage from them, and
/// returns the bytes to pass on (all of them, minus a stripped usage chunk).
fn take_events(buffer: &mut BytesMut, usage: &mut Option<Usage>, strip: bool) -> Bytes {
    let Some(end) = last_event_end(buffer) else {
        return Bytes::new();
    };
    let complete = buffer.split_to(end).freeze();
    let mut out = BytesMut::with_capacity(complete.len());
    let mut start = 0;
    while start < complete.len() {
        let len = event_len(&complete[start..]).unwrap_or(complete.len() - start);
        let event = complete.slice(start..start + len);
        start += len;
        let drop_it = read_event_usage(&event, usage) && strip;
        if !drop_it {
            out.extend_from_slice(&event);
        }
    }
    out.freeze()
}

/// Byte length of the first event of `bytes` including its blank-line terminator.
fn event_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            if bytes.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// End of the last complete event in `bytes`.
fn last_event_end(bytes: &[u8]) -> Option<usize> {
    let mut end = None;
    let mut at = 0;
    while let Some(len) = event_len(&bytes[at..]) {
        at += len;
        end = Some(at);
    }
    end
}

/// Reads usage from one SSE event. Returns true when the event is OpenAI's usage-only
/// chunk (empty `choices` with `usage`).
fn read_event_usage(event: &[u8], usage: &mut Option<Usage>) -> bool {
    if memchr_usage(event).is_none() {
        return false;
    }
    let text = String::from_utf8_lossy(event);
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n");
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) else {
        return false;
    };
    let mut u = usage.unwrap_or_default();
    let mut usage_only_chunk = false;
    if let Some(x) = v.get("usage").filter(|x| x.is_object()) {
        // OpenAI chunk, or Anthropic message_delta (output tokens so far).
        if let Some(p) = x.get("prompt_tokens").and_then(|n| n.as_u64()) {
            u.input = p;
            u.output = x
                .get("completion_tokens")
                .and_then(|n| n.as_u64())
                .unwrap_or(0);
            usage_only_chunk = v
                .get("choices")
                .and_then(|c| c.as_array())
                .is_some_and(|c| c.is_empty());
        } else if let Some(o) = x.get("output_tokens").and_then(|n| n.as_u64()) {
            u.output = o;
            if let Some(i) = x.get("input_tokens").and_then(|n| n.as_u64()) {
                u.input = u.input.max(i);
            }
        }
    }
    if let Some(x) = v.get("message").and_then(|m| m.get("usage")) {
        // Anthropic message_start.
        u.input = x
            .get("input_tokens")
            .and_then(|n| n.as_u64())
            .unwrap_or(u.input);
        u.output = x
            .get("output_tokens")
            .and_then(|n| n.as_u64())
            .unwrap_or(u.output);
    }
    *usage = Some(u);
    usage_only_chunk
}

fn memchr_usage(event: &[u8]) -> Option<usize> {
    event.windows(7).position(|w| w == b"\"usage\"")
}

/// Usage of a whole JSON answer (OpenAI chat/completions/responses, Anthropic).
pub fn json_usage(body: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Answer {
        usage: Option<serde_json::Value>,
    }
    let a: Answer = serde_json::from_slice(body).ok()?;
    let u = a.usage?;
    let get = |k: &str| u.get(k).and_then(|n| n.as_u64());
    // OpenAI, Anthropic, Bedrock Converse.
    let input = get("prompt_tokens")
        .or(get("input_tokens"))
        .or(get("inputTokens"))?;
    let output = get("completion_tokens")
        .or(get("output_tokens"))
        .or(get("outputTokens"))
        .unwrap_or(0);
    Some(Usage { input, output })
}

/// Adds `"stream_options":{"include_usage":true}` to an OpenAI chat request that
/// streams without asking for usage, so that settlement gets real figures. Returns
/// `None` when the client already set `stream_options` (its choice is kept).
pub fn request_usage_chunk(body: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        stream_options: Option<&'a serde_json::value::RawValue>,
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    if probe.stream_options.is_some() {
        return None;
    }
    let open = body.iter().position(|b| *b == b'{')?;
    let mut out = Vec::with_capacity(body.len() + 40);
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(br#""stream_options":{"include_usage":true},"#);
    out.extend_from_slice(&body[open + 1..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_from_json_answers() {
        assert_eq!(
            json_usage(br#"{"usage":{"prompt_tokens":10,"completion_tokens":6}}"#),
            Some(Usage {
                input: 10,
                output: 6
            })
        );
        assert_eq!(
            json_usage(br#"{"usage":{"input_tokens":3,"output_tokens":4}}"#),
            Some(Usage {
                input: 3,
                output: 4
            })
        );
        assert_eq!(
            json_usage(br#"{"usage":{"inputTokens":5,"outputTokens":7,"totalTokens":12}}"#),
            Some(Usage {
                input: 5,
                output: 7
            })
        );
        assert_eq!(json_usage(b"{}"), None);
    }

    #[test]
    fn sse_usage_read_and_openai_usage_chunk_stripped() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n"
        );
        for cut in 0..stream.len() {
            let mut buffer = BytesMut::new();
            let mut usage = None;
            let mut out = Vec::new();
            for piece in [&stream[..cut], &stream[cut..]] {
                buffer.extend_from_slice(piece.as_bytes());
                out.extend_from_slice(&take_events(&mut buffer, &mut usage, true));
            }
            assert!(buffer.is_empty());
            assert_eq!(
                usage,
                Some(Usage {
                    input: 7,
                    output: 2
                }),
                "cut {cut}"
            );
            assert_eq!(
                String::from_utf8(out).expect("utf8"),
                "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"
            );
        }
        let anthropic = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\n\n";
        let mut buffer = BytesMut::from(anthropic.as_bytes());
        let mut usage = None;
        let out = take_events(&mut buffer, &mut usage, false);
        assert_eq!(out.len(), anthropic.len());
        assert_eq!(
            usage,
            Some(Usage {
                input: 12,
                output: 30
            })
        );
    }

    #[test]
    fn usage_chunk_is_requested_only_when_the_client_did_not_choose() {
        let out = request_usage_chunk(br#"{"model":"m","stream":true}"#).expect("added");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(request_usage_chunk(br#"{"stream_options":{"include_usage":false}}"#).is_none());
    }
}
