//! The streaming output stage on the wire: SSE events in, guarded events out.
//!
//! [`GuardedEvents`] is pure: it reads each complete event (`dialect::sse`), feeds the
//! texts it carries to the engine's [`StreamGuard`], rewrites the event's string literals
//! with what may be released, writes the held rest of a text just before the event that
//! ends it, and on a block writes the provider's ending. [`GuardedBody`] is the thin body
//! wrapper that reassembles events from reads and, on a block, drops the upstream body
//! (which cancels the upstream request).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::body::BoxError;
use crate::dialect::bedrock::eventstream::{encode_event, Event as BedrockEvent, FrameDecoder};
use crate::dialect::rewrite_strings;
use crate::dialect::sse::{
    event_data, event_name, make_event, read_event, replace_repeated_texts, with_data, ChunkHeader,
    DeltaShape, EventFacts, EventSplitter, StreamFormat, TextKey,
};
use crate::engine::{Blocked, Decision, StreamGuard, TextKind};

/// Longest event the stage waits for: an upstream that sends more without ending an
/// event gets its stream ended with an error (nothing unchecked is relayed).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Where the stage's decision goes when the stream ends (for the audit record), with the
/// time spent in the stage.
pub type DecisionSlot = Arc<Mutex<Option<(Decision, Duration)>>>;

/// Whether to keep reading the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Blocked: the ending is written; stop reading and cancel the upstream.
    Stop,
}

/// The first delta event of a text: the shape of events the gateway writes for it.
struct Template {
    name: Option<String>,
    data: String,
    span: Range<usize>,
}

/// The output stage over one stream's events.
pub struct GuardedEvents {
    format: StreamFormat,
    guard: StreamGuard,
    ids: BTreeMap<TextKey, usize>,
    finished: BTreeSet<TextKey>,
    templates: BTreeMap<TextKey, Template>,
    header: ChunkHeader,
    /// Responses API: the response id and the last sequence number seen.
    response_id: Option<String>,
    sequence: u64,
    stopped: bool,
    annotated: bool,
    /// The last plain delta event's shape (and its text's id): later events of that
    /// shape are read without parsing their JSON again.
    shape: Option<(usize, DeltaShape)>,
    /// Whether events of a known shape take that path (off only in tests that compare).
    shaped_deltas: bool,
    /// Whether a run of such events that arrived together is decided once (off only in
    /// tests that compare).
    batch_reads: bool,
}

fn ends_key(end: TextKey, key: TextKey) -> bool {
    match (end, key) {
        (TextKey::Text(a, b), TextKey::Text(x, y)) | (TextKey::Args(a, b), TextKey::Args(x, y)) => {
            a == x && (b == y || b == u64::MAX)
        }
        _ => false,
    }
}

impl GuardedEvents {
    pub fn new(format: StreamFormat, guard: StreamGuard) -> Self {
        Self {
            format,
            guard,
            ids: BTreeMap::new(),
            finished: BTreeSet::new(),
            templates: BTreeMap::new(),
            header: ChunkHeader::default(),
            response_id: None,
            sequence: 0,
            stopped: false,
            annotated: false,
            shape: None,
            shaped_deltas: true,
            batch_reads: true,
        }
    }

    /// Reads every event in full, even those of a known delta shape (for tests that
    /// compare the two paths).
    #[cfg(test)]
    pub(crate) fn without_shaped_deltas(mut self) -> Self {
        self.shaped_deltas = false;
        self
    }

    /// Decides every event as it comes, even in a run that arrived together (for tests
    /// that compare).
    #[cfg(test)]
    pub(crate) fn without_batched_reads(mut self) -> Self {
        self.batch_reads = false;
        self
    }

    /// An event of the last plain delta event's shape: one more delta of the same text,
    /// nothing else, handled as the full path would. `None` when the event is not of
    /// that shape.
    fn shaped_delta(
        &mut self,
        raw: &Bytes,
        next: Option<&[u8]>,
        out: &mut BytesMut,
    ) -> Option<Flow> {
        // The shape came from an event that was not the closing one, and the literal
        // cannot make it one (its quotes are escaped): the full read would see one more
        // delta of the same text and nothing else.
        let (id, shape) = self.shape.as_ref()?;
        let id = *id;
        let delta = shape.read(raw)?;
        let more = self.batch_reads && next.is_some_and(|n| shape.matches(n));
        if let Some(n) = delta.sequence {
            self.sequence = self.sequence.max(n);
        }
        let decided = if more {
            self.guard.append(id, &delta.text).map(|()| String::new())
        } else {
            self.guard.push(id, &delta.text)
        };
        let released = match decided {
            Ok(r) => r,
            Err(b) => return Some(self.blocked(b, out)),
        };
        if released == delta.text {
            out.extend_from_slice(raw);
        } else {
            DeltaShape::with_text(raw, &delta, &released, out);
        }
        Some(Flow::Continue)
    }

    /// Remembers the shape of a plain delta event (one delta of an open text, nothing
    /// else) of a format whose delta events carry nothing else the stage tracks but the
    /// Responses API's sequence number, which the shape reads.
    fn note_shape(&mut self, raw: &Bytes, data: &str, facts: &EventFacts) {
        let plain_format = matches!(
            self.format,
            StreamFormat::OpenAiChat
                | StreamFormat::OpenAiCompletions
                | StreamFormat::OpenAiResponses
                | StreamFormat::Anthropic
        );
        let [delta] = facts.deltas.as_slice() else {
            return;
        };
        if !self.shaped_deltas
            || !plain_format
            || !facts.ends.is_empty()
            || facts.ends_all
            || facts.repeats_texts
            || self.finished.contains(&delta.key)
        {
            return;
        }
        // Where the data sits in the event: only data borrowed from it (one data line)
        // lies inside the event's bytes.
        let Some(offset) = (data.as_ptr() as usize).checked_sub(raw.as_ptr() as usize) else {
            return;
        };
        if offset + data.len() > raw.len() {
            return;
        }
        let literal = offset + delta.span.start..offset + delta.span.end;
        if let (Some(&id), Some(shape)) =
            (self.ids.get(&delta.key), DeltaShape::of(raw, data, literal))
        {
            self.shape = Some((id, shape));
        }
    }

    /// Processes one complete event, appending what to send to `out`.
    pub fn event(&mut self, raw: Bytes, out: &mut BytesMut) -> Flow {
        self.event_before(raw, None, out)
    }

    /// Like [`event`](Self::event), knowing the event after this one when it arrived in
    /// the same read: a run of delta events of one shape that arrived together is
    /// decided once, at its last event (the earlier ones go out with their text moved
    /// to it), instead of once per event. Nothing waits for bytes not yet read.
    pub fn event_before(&mut self, raw: Bytes, next: Option<&[u8]>, out: &mut BytesMut) -> Flow {
        if self.stopped {
            return Flow::Stop;
        }
        if self.shaped_deltas {
            if let Some(flow) = self.shaped_delta(&raw, next, out) {
                return flow;
            }
        }
        let Some(data) = event_data(&raw) else {
            // Comments and keep-alives pass as they came.
            out.extend_from_slice(&raw);
            return Flow::Continue;
        };
        let name = match self.format {
            StreamFormat::OpenAiChat | StreamFormat::OpenAiCompletions => None,
            _ => event_name(&raw),
        };
        let facts = read_event(
            self.format,
            name.as_deref(),
            &data,
            self.header.id.is_empty(),
        );
        if let Some(h) = &facts.header {
            self.header = h.clone();
        }
        if self.format == StreamFormat::OpenAiResponses {
            self.note_response(&data);
        }
        let ending: Vec<TextKey> = self
            .ids
            .keys()
            .copied()
            .filter(|k| !self.finished.contains(k))
            .filter(|k| facts.ends_all || facts.ends.iter().any(|e| ends_key(*e, *k)))
            .collect();
        let delta_keys: BTreeSet<TextKey> = facts.deltas.iter().map(|d| d.key).collect();

        // Texts that end here without a delta in this event: their held rest goes out
        // in an event of their own, just before this one.
        for key in ending.iter().filter(|k| !delta_keys.contains(k)) {
            match self.finish_key(*key) {
                Ok(rest) if rest.is_empty() => {}
                Ok(rest) => {
                    if let Some(e) = self.synthetic(*key, &rest) {
                        out.extend_from_slice(&e);
                    }
                }
                Err(b) => return self.blocked(b, out),
            }
        }

        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        for d in &facts.deltas {
            let kind = if d.key.is_args() {
                TextKind::JsonArgs
            } else {
                TextKind::Text
            };
            let id = match self.ids.get(&d.key) {
                Some(id) => *id,
                None => {
                    let id = self.guard.open(kind);
                    self.ids.insert(d.key, id);
                    self.templates.insert(
                        d.key,
                        Template {
                            name: name.clone(),
                            data: data.to_string(),
                            span: d.span.clone(),
                        },
                    );
                    id
                }
            };
            let mut released = match self.guard.push(id, &d.text) {
                Ok(r) => r,
                Err(b) => return self.blocked(b, out),
            };
            if ending.contains(&d.key) {
                match self.finish_key(d.key) {
                    Ok(rest) => released.push_str(&rest),
                    Err(b) => return self.blocked(b, out),
                }
            }
            if released != d.text {
                edits.push((d.span.clone(), released));
            }
        }

        let mut new_data = if edits.is_empty() {
            None
        } else {
            let refs: Vec<(Range<usize>, &str)> =
                edits.iter().map(|(s, t)| (s.clone(), t.as_str())).collect();
            Some(utf8(rewrite_strings(data.as_bytes(), &refs)))
        };
        if facts.repeats_texts {
            let current = new_data.as_deref().unwrap_or(&data);
            let ids = &self.ids;
            let guard = &self.guard;
            let released = |k: TextKey| ids.get(&k).map(|id| guard.released(*id).to_string());
            if let Some(d) = replace_repeated_texts(current, &released) {
                new_data = Some(d);
            }
        }
        let annotating = !self.annotated && self.is_annotation_point(&facts, &data);
        if annotating {
            self.annotated = true;
            if let Some(note) = self.guard.annotation() {
                // OpenAI chunks can carry the notice of `annotate` rules as one more
                // delta before the closing chunk; other formats close their content
                // blocks earlier, so the notice rides in the `haechi` member only.
                let first_text = self.ids.keys().copied().find(|k| !k.is_args());
                if let (Some(notice), Some(key), true) = (
                    self.guard.notice(),
                    first_text,
                    matches!(
                        self.format,
                        StreamFormat::OpenAiChat | StreamFormat::OpenAiCompletions
                    ),
                ) {
                    if let Some(e) = self.synthetic(key, &format!("\n\n{notice}")) {
                        out.extend_from_slice(&e);
                    }
                }
                let current = new_data.as_deref().unwrap_or(&data);
                if let Some(with) = add_member(current, "haechi", &note) {
                    new_data = Some(with);
                }
            }
        }
        match new_data {
            Some(d) => out.extend_from_slice(&with_data(&raw, &d)),
            None => out.extend_from_slice(&raw),
        }
        if name.as_deref() == Some("error") || data.trim_start().starts_with("{\"error\"") {
            // An error event ends the answer: nothing held is sent after it.
            self.stopped = true;
        } else if !annotating {
            self.note_shape(&raw, &data, &facts);
        }
        Flow::Continue
    }

    /// The event that closes the answer, where the grounding verdict is added for the
    /// client: OpenAI's last `finish_reason` chunk, Anthropic's `message_delta`, the
    /// Responses API's `response.completed`.
    fn is_annotation_point(&self, facts: &crate::dialect::sse::EventFacts, data: &str) -> bool {
        match self.format {
            StreamFormat::OpenAiChat | StreamFormat::OpenAiCompletions => {
                !facts.ends.is_empty()
                    && !self.ids.is_empty()
                    && self.ids.keys().all(|k| self.finished.contains(k))
            }
            StreamFormat::Anthropic => is_message_delta(data.as_bytes()),
            StreamFormat::BedrockConverse => data.contains("\"stopReason\""),
            StreamFormat::OpenAiResponses => data.contains("\"response.completed\""),
        }
    }

    /// The upstream ended (with or without its closing events): everything still held
    /// is decided and written.
    pub fn end(&mut self, out: &mut BytesMut) -> Flow {
        if self.stopped {
            return Flow::Stop;
        }
        let open: Vec<TextKey> = self
            .ids
            .keys()
            .copied()
            .filter(|k| !self.finished.contains(k))
            .collect();
        for key in open {
            match self.finish_key(key) {
                Ok(rest) if rest.is_empty() => {}
                Ok(rest) => {
                    if let Some(e) = self.synthetic(key, &rest) {
                        out.extend_from_slice(&e);
                    }
                }
                Err(b) => return self.blocked(b, out),
            }
        }
        Flow::Continue
    }

    /// Ends the stream with the provider's error event (a broken upstream stream); what
    /// is still held is not sent.
    pub fn fail(&mut self, message: &str, out: &mut BytesMut) {
        self.stopped = true;
        let event = match self.format {
            StreamFormat::Anthropic => make_event(
                Some("error"),
                &utf8(crate::dialect::anthropic::error_body(message, "api_error")),
            ),
            StreamFormat::BedrockConverse => Bytes::new(),
            _ => make_event(
                None,
                &utf8(crate::dialect::openai::error_body(
                    message,
                    "upstream_error",
                    Some("upstream_bad_stream"),
                )),
            ),
        };
        out.extend_from_slice(&event);
    }

    /// The stage's decision for the record (see [`StreamGuard::finish`]).
    pub fn finish(self) -> Option<Decision> {
        self.guard.finish()
    }

    fn finish_key(&mut self, key: TextKey) -> Result<String, Blocked> {
        self.finished.insert(key);
        match self.ids.get(&key) {
            Some(id) => self.guard.finish_text(*id),
            None => Ok(String::new()),
        }
    }

    /// An event like the text's first delta, carrying `text`.
    fn synthetic(&self, key: TextKey, text: &str) -> Option<Bytes> {
        let t = self.templates.get(&key)?;
        let data = rewrite_strings(t.data.as_bytes(), &[(t.span.clone(), text)]);
        Some(make_event(t.name.as_deref(), &utf8(data)))
    }

    fn note_response(&mut self, data: &str) {
        #[derive(serde::Deserialize)]
        struct Seq {
            #[serde(default)]
            sequence_number: Option<u64>,
            #[serde(default)]
            response: Option<Resp>,
        }
        #[derive(serde::Deserialize)]
        struct Resp {
            #[serde(default)]
            id: Option<String>,
            #[serde(default)]
            model: Option<String>,
        }
        if let Ok(s) = serde_json::from_str::<Seq>(data) {
            if let Some(n) = s.sequence_number {
                self.sequence = self.sequence.max(n);
            }
            if let Some(r) = s.response {
                if r.id.is_some() {
                    self.response_id = r.id;
                }
                if let Some(m) = r.model {
                    self.header.model = m;
                }
            }
        }
    }

    /// Writes the provider's ending for a blocked answer.
    fn blocked(&mut self, blocked: Blocked, out: &mut BytesMut) -> Flow {
        self.stopped = true;
        let h = &self.header;
        match self.format {
            StreamFormat::OpenAiChat | StreamFormat::OpenAiCompletions => {
                let mut choices: BTreeSet<u64> = self
                    .ids
                    .keys()
                    .map(|k| match k {
                        TextKey::Text(i, _) | TextKey::Args(i, _) => *i,
                    })
                    .collect();
                if choices.is_empty() {
                    choices.insert(0);
                }
                for i in choices {
                    let chunk = if self.format == StreamFormat::OpenAiChat {
                        serde_json::json!({"id": h.id, "object": "chat.completion.chunk",
                            "created": h.created, "model": h.model,
                            "choices": [{"index": i, "delta": {}, "logprobs": null,
                                "finish_reason": "content_filter"}]})
                    } else {
                        serde_json::json!({"id": h.id, "object": "text_completion",
                            "created": h.created, "model": h.model,
                            "choices": [{"index": i, "text": "", "logprobs": null,
                                "finish_reason": "content_filter"}]})
                    };
                    out.extend_from_slice(&make_event(None, &chunk.to_string()));
                }
                out.extend_from_slice(&make_event(None, "[DONE]"));
            }
            StreamFormat::Anthropic => {
                let open: BTreeSet<u64> = self
                    .ids
                    .keys()
                    .filter(|k| !self.finished.contains(k))
                    .map(|k| match k {
                        TextKey::Text(i, _) | TextKey::Args(i, _) => *i,
                    })
                    .collect();
                for i in open {
                    let stop = serde_json::json!({"type": "content_block_stop", "index": i});
                    out.extend_from_slice(&make_event(
                        Some("content_block_stop"),
                        &stop.to_string(),
                    ));
                }
                let delta = serde_json::json!({"type": "message_delta",
                    "delta": {"stop_reason": "refusal", "stop_sequence": null},
                    "usage": {"output_tokens": 0}});
                out.extend_from_slice(&make_event(Some("message_delta"), &delta.to_string()));
                out.extend_from_slice(&make_event(
                    Some("message_stop"),
                    r#"{"type":"message_stop"}"#,
                ));
            }
            StreamFormat::BedrockConverse => {
                // What Bedrock sends when a guardrail intervenes: the policy's message
                // as the output, then `guardrail_intervened`.
                let open: Vec<u64> = self
                    .ids
                    .keys()
                    .filter(|k| !self.finished.contains(k))
                    .map(|k| match k {
                        TextKey::Text(i, _) | TextKey::Args(i, _) => *i,
                    })
                    .collect();
                let index = open.first().copied().unwrap_or(0);
                let message = blocked.decision.message.clone().unwrap_or_default();
                let delta = serde_json::json!({"contentBlockIndex": index,
                    "delta": {"text": format!(" {message}")}});
                out.extend_from_slice(&make_event(Some("contentBlockDelta"), &delta.to_string()));
                let stop = serde_json::json!({ "contentBlockIndex": index });
                out.extend_from_slice(&make_event(Some("contentBlockStop"), &stop.to_string()));
                out.extend_from_slice(&make_event(
                    Some("messageStop"),
                    r#"{"stopReason":"guardrail_intervened"}"#,
                ));
            }
            StreamFormat::OpenAiResponses => {
                let event = serde_json::json!({"type": "response.incomplete",
                    "sequence_number": self.sequence + 1,
                    "response": {"id": self.response_id, "object": "response",
                        "model": h.model, "status": "incomplete",
                        "incomplete_details": {"reason": "content_filter"},
                        "output": []}});
                out.extend_from_slice(&make_event(Some("response.incomplete"), &event.to_string()));
            }
        }
        Flow::Stop
    }
}

/// Whether an Anthropic event is (or holds) a `message_delta`. A text delta cannot
/// look like one: the quotes inside its string literal are escaped.
fn is_message_delta(event: &[u8]) -> bool {
    memchr::memmem::find(event, br#""type":"message_delta""#).is_some()
}

/// `data` (a JSON object) with one more member, added before its closing brace.
fn add_member(data: &str, key: &str, value: &serde_json::Value) -> Option<String> {
    let close = data.rfind('}')?;
    let body = data[..close].trim_end();
    let sep = if body.ends_with('{') { "" } else { "," };
    Some(format!(
        "{body}{sep}{}:{value}{}",
        serde_json::Value::from(key),
        &data[close..]
    ))
}

/// Bytes built from UTF-8 pieces as a `String` (lossy only if that ever failed).
fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Takes the stage's decision (once) and leaves it in `slot` with the time spent.
fn publish(events: &mut Option<GuardedEvents>, slot: &DecisionSlot, spent: Duration) {
    if let Some(events) = events.take() {
        let started = std::time::Instant::now();
        let decision = events.finish();
        let spent = spent + started.elapsed();
        if let (Some(d), Ok(mut slot)) = (decision, slot.lock()) {
            *slot = Some((d, spent));
        }
    }
}

/// A streamed answer body with the output stage applied.
pub struct GuardedBody<B> {
    inner: Option<B>,
    splitter: EventSplitter,
    events: Option<GuardedEvents>,
    ready: BytesMut,
    slot: DecisionSlot,
    spent: Duration,
    ended: bool,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, events: GuardedEvents, slot: DecisionSlot) -> Self {
        Self {
            inner: Some(inner),
            splitter: EventSplitter::default(),
            events: Some(events),
            ready: BytesMut::new(),
            slot,
            spent: Duration::ZERO,
            ended: false,
        }
    }

    fn publish(&mut self) {
        publish(&mut self.events, &self.slot, self.spent);
    }
}

impl<B> HttpBody for GuardedBody<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(this.ready.split().freeze()))));
            }
            if this.ended {
                this.publish();
                return Poll::Ready(None);
            }
            let Some(inner) = this.inner.as_mut() else {
                this.ended = true;
                continue;
            };
            match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let data = match frame.into_data() {
                        Ok(d) => d,
                        Err(other) => return Poll::Ready(Some(Ok(other))),
                    };
                    let started = std::time::Instant::now();
                    this.splitter.push(&data);
                    let mut stop = false;
                    if let Some(events) = this.events.as_mut() {
                        let mut next = this.splitter.next_event();
                        while let Some(event) = next.take() {
                            next = this.splitter.next_event();
                            let flow = events.event_before(event, next.as_deref(), &mut this.ready);
                            if flow == Flow::Stop {
                                stop = true;
                                break;
                            }
                        }
                    }
                    if !stop && this.splitter.buffered() > MAX_EVENT_BYTES {
                        if let Some(events) = this.events.as_mut() {
                            events.fail(
                                "haechi: the upstream sent an event larger than 1 MiB",
                                &mut this.ready,
                            );
                        }
                        stop = true;
                    }
                    this.spent += started.elapsed();
                    if stop {
                        // Dropping the upstream body cancels the upstream request.
                        this.inner = None;
                        this.ended = true;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.inner = None;
                    this.publish();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.inner = None;
                    if let Some(events) = this.events.as_mut() {
                        if let Some(rest) = this.splitter.take_rest() {
                            events.event(rest, &mut this.ready);
                        }
                        events.end(&mut this.ready);
                    }
                    this.ended = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.ready.is_empty() && self.events.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A Bedrock ConverseStream body (event-stream frames) with the output stage applied:
/// each event frame is read as an event named by its `:event-type`, guarded like an SSE
/// event, and written back as a frame (unchanged frames byte for byte).
pub struct GuardedFrames<B> {
    inner: Option<B>,
    decoder: FrameDecoder,
    events: Option<GuardedEvents>,
    ready: BytesMut,
    slot: DecisionSlot,
    spent: Duration,
    ended: bool,
    /// The framing broke: the rest is relayed untouched.
    passthrough: bool,
}

impl<B> GuardedFrames<B> {
    pub fn new(inner: B, events: GuardedEvents, slot: DecisionSlot) -> Self {
        Self {
            inner: Some(inner),
            decoder: FrameDecoder::new(),
            events: Some(events),
            ready: BytesMut::new(),
            slot,
            spent: Duration::ZERO,
            ended: false,
            passthrough: false,
        }
    }

    fn publish(&mut self) {
        publish(&mut self.events, &self.slot, self.spent);
    }

    /// Guards the frames decoded so far; `Stop` when the answer was blocked.
    fn drain_frames(&mut self) -> Flow {
        loop {
            let (raw, event) = match self.decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Flow::Continue,
                // Framing errors are the upstream relay's to report (it ends the stream
                // with an exception frame): from here on bytes pass as they come.
                Err(_) => {
                    self.ready.extend_from_slice(&self.decoder.take_buffered());
                    self.passthrough = true;
                    return Flow::Continue;
                }
            };
            let (
                Some(events),
                BedrockEvent::Event {
                    event_type,
                    payload,
                },
            ) = (self.events.as_mut(), &event)
            else {
                // An exception or error frame ends the answer: nothing held is sent after it.
                self.ready.extend_from_slice(&raw);
                self.passthrough = true;
                continue;
            };
            let Ok(data) = std::str::from_utf8(payload) else {
                self.ready.extend_from_slice(&raw);
                continue;
            };
            let as_sse = make_event(Some(event_type), data);
            let mut out = BytesMut::new();
            let flow = events.event(as_sse.clone(), &mut out);
            if out[..] == as_sse[..] {
                self.ready.extend_from_slice(&raw);
            } else {
                let mut splitter = EventSplitter::default();
                splitter.push(&out);
                while let Some(e) = splitter.next_event() {
                    let (Some(name), Some(data)) = (event_name(&e), event_data(&e)) else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<serde_json::Value>(&data) else {
                        continue;
                    };
                    self.ready.extend_from_slice(&encode_event(&name, &value));
                }
            }
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
    }
}

impl<B> HttpBody for GuardedFrames<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(this.ready.split().freeze()))));
            }
            if this.ended {
                this.publish();
                return Poll::Ready(None);
            }
            let Some(inner) = this.inner.as_mut() else {
                this.ended = true;
                continue;
            };
            match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let data = match frame.into_data() {
                        Ok(d) => d,
                        Err(other) => return Poll::Ready(Some(Ok(other))),
                    };
                    if this.passthrough {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    let started = std::time::Instant::now();
                    this.decoder.push(&data);
                    let flow = this.drain_frames();
                    this.spent += started.elapsed();
                    if flow == Flow::Stop {
                        this.inner = None;
                        this.ended = true;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.inner = None;
                    this.publish();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.inner = None;
                    if let Some(events) = this.events.as_mut().filter(|_| !this.passthrough) {
                        let mut out = BytesMut::new();
                        events.end(&mut out);
                        let mut splitter = EventSplitter::default();
                        splitter.push(&out);
                        while let Some(e) = splitter.next_event() {
                            if let (Some(name), Some(data)) = (event_name(&e), event_data(&e)) {
                                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) {
                                    this.ready.extend_from_slice(&encode_event(&name, &v));
                                }
                            }
                        }
                    }
                    this.ended = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests;
