//! Server-sent events as the providers stream them: framing, and where the text of an
//! answer sits in each provider's events.
//!
//! Framing follows the SSE specification: lines end with CRLF, LF or CR; an event ends
//! at a blank line; `data` lines of one event are joined with `\n`; comments (`:`),
//! `event`, `id` and `retry` lines are kept as they came. Events split across reads are
//! reassembled by [`EventSplitter`].
//!
//! [`read_event`] says which texts an event carries (with the byte span of each JSON
//! string literal in the event's data, so that a rewrite keeps every other byte), which
//! texts it ends, and which whole-text copies it repeats (the Responses API's `*.done`
//! and `response.completed` events), for the streaming output stage to rewrite.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::span_of;

/// Reassembles complete events from reads of any size.
#[derive(Debug, Default)]
pub struct EventSplitter {
    buffer: BytesMut,
}

impl EventSplitter {
    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event (with its terminating blank line), if one is buffered.
    pub fn next_event(&mut self) -> Option<Bytes> {
        let len = event_len(&self.buffer)?;
        Some(self.buffer.split_to(len).freeze())
    }

    /// Whatever is left at the end of the stream (an event without its blank line).
    pub fn take_rest(&mut self) -> Option<Bytes> {
        (!self.buffer.is_empty()).then(|| self.buffer.split().freeze())
    }

    /// Bytes buffered and not yet part of a complete event.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

/// Length of the first complete event of `bytes`, including its blank line. A CR at the
/// very end is not decided yet (a LF may follow).
fn event_len(bytes: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut i = 0;
    while let Some(off) = memchr::memchr2(b'\n', b'\r', &bytes[i..]) {
        let at = i + off;
        let eol = if bytes[at] == b'\r' {
            match bytes.get(at + 1) {
                Some(b'\n') => 2,
                Some(_) => 1,
                None => return None,
            }
        } else {
            1
        };
        if at == line_start {
            return Some(at + eol);
        }
        i = at + eol;
        line_start = i;
    }
    None
}

/// The lines of one event, without their line endings (CRLF, LF or CR).
fn lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        let eol = match (rest.get(end), rest.get(end + 1)) {
            (Some(b'\r'), Some(b'\n')) => 2,
            (Some(_), _) => 1,
            (None, _) => 0,
        };
        rest = &rest[end + eol..];
        Some(line)
    })
}

/// The field name and value of a line (`name: value`; one leading space dropped).
fn field(line: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b':', line) {
        Some(i) => {
            let v = &line[i + 1..];
            (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
        }
        None => (line, &[]),
    }
}

/// The event's `data` (lines joined with `\n`), if it has any. Borrowed when the event
/// has one data line (the usual case).
pub fn event_data(event: &[u8]) -> Option<Cow<'_, str>> {
    let mut first: Option<&[u8]> = None;
    let mut joined: Option<Vec<u8>> = None;
    for line in lines(event) {
        let (name, value) = field(line);
        if name != b"data" {
            continue;
        }
        match (&mut joined, first) {
            (Some(j), _) => {
                j.push(b'\n');
                j.extend_from_slice(value);
            }
            (None, Some(f)) => {
                let mut j = f.to_vec();
                j.push(b'\n');
                j.extend_from_slice(value);
                joined = Some(j);
            }
            (None, None) => first = Some(value),
        }
    }
    match joined {
        Some(j) => {
            Some(Cow::Owned(String::from_utf8(j).unwrap_or_else(|e| {
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            })))
        }
        None => first.map(|f| match std::str::from_utf8(f) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(f),
        }),
    }
}

/// The event's `event` field, if any.
pub fn event_name(event: &[u8]) -> Option<String> {
    lines(event).find_map(|line| {
        let (name, value) = field(line);
        (name == b"event").then(|| String::from_utf8_lossy(value).into_owned())
    })
}

/// The event with its data replaced by `data`: other lines (comments, `event`, `id`,
/// `retry`) stay in place and keep the event's line ending; the data lines become one
/// line where the first one was.
pub fn with_data(event: &[u8], data: &str) -> Bytes {
    let eol: &[u8] = if event.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else if event.contains(&b'\n') {
        b"\n"
    } else {
        b"\r"
    };
    let mut out = Vec::with_capacity(event.len() + data.len());
    if lines(event).all(|l| l.is_empty() || field(l).0 == b"data") {
        // Only data lines (the usual event): one data line and the blank line.
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(data.as_bytes());
        out.extend_from_slice(eol);
        out.extend_from_slice(eol);
        return Bytes::from(out);
    }
    let mut wrote = false;
    for line in lines(event) {
        if line.is_empty() {
            continue;
        }
        if field(line).0 == b"data" {
            if !wrote {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(data.as_bytes());
                out.extend_from_slice(eol);
                wrote = true;
            }
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(eol);
    Bytes::from(out)
}

/// A new event with an optional `event` name and one data line.
pub fn make_event(name: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(n) = name {
        out.push_str("event: ");
        out.push_str(n);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(data);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// Which provider's events a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// OpenAI chat completions (`chat.completion.chunk`).
    OpenAiChat,
    /// OpenAI legacy completions (`choices[].text`).
    OpenAiCompletions,
    /// OpenAI Responses API events.
    OpenAiResponses,
    /// Anthropic Messages events.
    Anthropic,
    /// Bedrock ConverseStream events (event-stream frames, seen here as events named by
    /// their `:event-type` with the JSON payload as data; see `proxy::stream_guard`).
    BedrockConverse,
}

/// Identifies one text of an answer across events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextKey {
    /// Answer text of a choice (OpenAI) or content block (Anthropic), or an output
    /// item's content part (Responses: output index, content index).
    Text(u64, u64),
    /// Tool-call arguments (JSON source): choice and tool index, block index, or output
    /// index.
    Args(u64, u64),
}

impl TextKey {
    pub fn is_args(self) -> bool {
        matches!(self, Self::Args(..))
    }
}

/// A piece of text in one event's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaText {
    pub key: TextKey,
    pub text: String,
    /// Span of the JSON string literal in the data.
    pub span: Range<usize>,
}

/// What one event means for the texts of the answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// Text deltas, in order.
    pub deltas: Vec<DeltaText>,
    /// Texts this event completes (flush what is held before it is sent).
    pub ends: Vec<TextKey>,
    /// Every text ends here (`[DONE]`, `message_stop`, `response.completed`).
    pub ends_all: bool,
    /// The event repeats whole texts (Responses `*.done`, `response.completed`): they
    /// are replaced by what the client was sent.
    pub repeats_texts: bool,
    /// Fields a synthetic event needs (`id`, `model`, `created` of an OpenAI chunk).
    pub header: Option<ChunkHeader>,
}

/// The identifying fields of an OpenAI chunk, for events the gateway writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkHeader {
    pub id: String,
    pub model: String,
    pub created: u64,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow, default)]
    delta: Option<ChoiceDelta<'a>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceDelta<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Vec<ToolCallDelta<'a>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AnthropicEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: u64,
    #[serde(borrow, default)]
    delta: Option<AnthropicDelta<'a>>,
}

#[derive(Deserialize)]
struct AnthropicDelta<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    partial_json: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseEvent<'a> {
    #[serde(default)]
    content_block_index: u64,
    #[serde(borrow, default)]
    delta: Option<ConverseDelta<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseDelta<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_use: Option<ConverseToolUse<'a>>,
}

#[derive(Deserialize)]
struct ConverseToolUse<'a> {
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ResponsesEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(default)]
    output_index: u64,
    #[serde(default)]
    content_index: u64,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
}

/// The string a literal holds, if the raw value is a string.
fn string_of(raw: &RawValue) -> Option<String> {
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

fn is_null(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|r| r.get() == "null")
}

/// Reads one event's data. Data that is not JSON (`[DONE]`, keep-alives) or not an
/// answer event carries no text.
/// `want_header`: also read the chunk's identifying fields (only needed once a stream).
pub fn read_event(
    format: StreamFormat,
    name: Option<&str>,
    data: &str,
    want_header: bool,
) -> EventFacts {
    let mut facts = EventFacts::default();
    if data.trim() == "[DONE]" {
        facts.ends_all = true;
        return facts;
    }
    let bytes = data.as_bytes();
    match format {
        StreamFormat::OpenAiChat | StreamFormat::OpenAiCompletions => {
            let Ok(chunk) = serde_json::from_str::<Chunk>(data) else {
                return facts;
            };
            if want_header {
                facts.header = Some(ChunkHeader {
                    id: chunk.id.as_deref().unwrap_or_default().to_string(),
                    model: chunk.model.as_deref().unwrap_or_default().to_string(),
                    created: chunk.created.unwrap_or(0),
                });
            }
            for choice in &chunk.choices {
                let i = choice.index;
                if let Some(raw) = choice.text {
                    if let Some(text) = string_of(raw) {
                        let span = span_of(bytes, raw);
                        facts.deltas.push(DeltaText {
                            key: TextKey::Text(i, 0),
                            text,
                            span,
                        });
                    }
                }
                if let Some(delta) = &choice.delta {
                    if let Some(raw) = delta.content {
                        if let Some(text) = string_of(raw) {
                            facts.deltas.push(DeltaText {
                                key: TextKey::Text(i, 0),
                                text,
                                span: span_of(bytes, raw),
                            });
                        }
                    }
                    for call in &delta.tool_calls {
                        if let Some(raw) = call.function.as_ref().and_then(|f| f.arguments) {
                            if let Some(text) = string_of(raw) {
                                facts.deltas.push(DeltaText {
                                    key: TextKey::Args(i, call.index),
                                    text,
                                    span: span_of(bytes, raw),
                                });
                            }
                        }
                    }
                }
                if !is_null(choice.finish_reason) {
                    facts.ends.push(TextKey::Text(i, 0));
                    // Tool-call texts of this choice end too (matched by choice).
                    facts.ends.push(TextKey::Args(i, u64::MAX));
                }
            }
        }
        StreamFormat::Anthropic => {
            let Ok(event) = serde_json::from_str::<AnthropicEvent>(data) else {
                return facts;
            };
            let kind = if event.kind.is_empty() {
                name.unwrap_or_default()
            } else {
                event.kind.as_ref()
            };
            match kind {
                "content_block_delta" => {
                    if let Some(d) = &event.delta {
                        if let Some(raw) = d.text {
                            if let Some(text) = string_of(raw) {
                                facts.deltas.push(DeltaText {
                                    key: TextKey::Text(event.index, 0),
                                    text,
                                    span: span_of(bytes, raw),
                                });
                            }
                        }
                        if let Some(raw) = d.partial_json {
                            if let Some(text) = string_of(raw) {
                                facts.deltas.push(DeltaText {
                                    key: TextKey::Args(event.index, 0),
                                    text,
                                    span: span_of(bytes, raw),
                                });
                            }
                        }
                    }
                }
                "content_block_stop" => {
                    facts.ends.push(TextKey::Text(event.index, 0));
                    facts.ends.push(TextKey::Args(event.index, 0));
                }
                "message_delta" | "message_stop" => facts.ends_all = true,
                _ => {}
            }
        }
        StreamFormat::BedrockConverse => {
            let Ok(event) = serde_json::from_str::<ConverseEvent>(data) else {
                return facts;
            };
            let i = event.content_block_index;
            match name.unwrap_or_default() {
                "contentBlockDelta" => {
                    if let Some(d) = &event.delta {
                        if let Some(raw) = d.text {
                            if let Some(text) = string_of(raw) {
                                facts.deltas.push(DeltaText {
                                    key: TextKey::Text(i, 0),
                                    text,
                                    span: span_of(bytes, raw),
                                });
                            }
                        }
                        if let Some(raw) = d.tool_use.as_ref().and_then(|t| t.input) {
                            if let Some(text) = string_of(raw) {
                                facts.deltas.push(DeltaText {
                                    key: TextKey::Args(i, 0),
                                    text,
                                    span: span_of(bytes, raw),
                                });
                            }
                        }
                    }
                }
                "contentBlockStop" => {
                    facts.ends.push(TextKey::Text(i, 0));
                    facts.ends.push(TextKey::Args(i, 0));
                }
                "messageStop" => facts.ends_all = true,
                _ => {}
            }
        }
        StreamFormat::OpenAiResponses => {
            let Ok(event) = serde_json::from_str::<ResponsesEvent>(data) else {
                return facts;
            };
            let (o, c) = (event.output_index, event.content_index);
            match event.kind.as_ref() {
                "response.output_text.delta" | "response.refusal.delta" => {
                    if let Some(raw) = event.delta {
                        if let Some(text) = string_of(raw) {
                            facts.deltas.push(DeltaText {
                                key: TextKey::Text(o, c),
                                text,
                                span: span_of(bytes, raw),
                            });
                        }
                    }
                }
                "response.function_call_arguments.delta" => {
                    if let Some(raw) = event.delta {
                        if let Some(text) = string_of(raw) {
                            facts.deltas.push(DeltaText {
                                key: TextKey::Args(o, 0),
                                text,
                                span: span_of(bytes, raw),
                            });
                        }
                    }
                }
                "response.output_text.done" | "response.refusal.done" => {
                    facts.ends.push(TextKey::Text(o, c));
                    facts.repeats_texts = true;
                }
                "response.content_part.done" => {
                    facts.ends.push(TextKey::Text(o, c));
                    facts.repeats_texts = true;
                }
                "response.function_call_arguments.done" => {
                    facts.ends.push(TextKey::Args(o, 0));
                    facts.repeats_texts = true;
                }
                "response.output_item.done" => {
                    facts.ends.push(TextKey::Text(o, u64::MAX));
                    facts.ends.push(TextKey::Args(o, 0));
                    facts.repeats_texts = true;
                }
                "response.completed" | "response.incomplete" | "response.failed" => {
                    facts.ends_all = true;
                    facts.repeats_texts = true;
                }
                _ => {}
            }
        }
    }
    facts
}

/// Replaces, in a Responses API event that repeats whole texts, each text by `released`
/// (what the client was sent for that key). Returns the new data, or `None` when the
/// event is unchanged.
pub fn replace_repeated_texts(
    data: &str,
    released: &dyn Fn(TextKey) -> Option<String>,
) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(data).ok()?;
    let o = v.get("output_index").and_then(|x| x.as_u64()).unwrap_or(0);
    let c = v.get("content_index").and_then(|x| x.as_u64()).unwrap_or(0);
    let mut changed = false;
    let mut set = |slot: Option<&mut serde_json::Value>, key: TextKey| {
        if let (Some(slot), Some(text)) = (slot, released(key)) {
            if slot.as_str() != Some(text.as_str()) {
                *slot = serde_json::Value::String(text);
                changed = true;
            }
        }
    };
    fn item_texts(
        item: &mut serde_json::Value,
        o: u64,
        set: &mut dyn FnMut(Option<&mut serde_json::Value>, TextKey),
    ) {
        if let Some(parts) = item.get_mut("content").and_then(|x| x.as_array_mut()) {
            for (k, part) in parts.iter_mut().enumerate() {
                let field = if part.get("refusal").is_some() {
                    "refusal"
                } else {
                    "text"
                };
                set(part.get_mut(field), TextKey::Text(o, k as u64));
            }
        }
        set(item.get_mut("arguments"), TextKey::Args(o, 0));
    }
    let kind = v
        .get("type")
        .and_then(|x| x.as_str())
        .unwrap_or("")
        .to_string();
    match kind.as_str() {
        "response.output_text.done" => set(v.get_mut("text"), TextKey::Text(o, c)),
        "response.refusal.done" => set(v.get_mut("refusal"), TextKey::Text(o, c)),
        "response.content_part.done" => {
            if let Some(part) = v.get_mut("part") {
                let field = if part.get("refusal").is_some() {
                    "refusal"
                } else {
                    "text"
                };
                set(part.get_mut(field), TextKey::Text(o, c));
            }
        }
        "response.function_call_arguments.done" => {
            set(v.get_mut("arguments"), TextKey::Args(o, 0));
        }
        "response.output_item.done" => {
            if let Some(item) = v.get_mut("item") {
                item_texts(item, o, &mut set);
            }
        }
        _ => {
            if let Some(items) = v
                .get_mut("response")
                .and_then(|r| r.get_mut("output"))
                .and_then(|x| x.as_array_mut())
            {
                for (oi, item) in items.iter_mut().enumerate() {
                    item_texts(item, oi as u64, &mut set);
                }
            }
        }
    }
    changed.then(|| v.to_string())
}

/// The bytes of a delta event around its one text literal. Providers send a text's
/// deltas as events that differ only in that literal (`{"id":…,"choices":[{"index":0,
/// "delta":{"content":"…"},…}]}`), so a later event with the same bytes before and after
/// a valid JSON string literal means what the parsed one meant, with another text: it is
/// read without parsing the rest again. Two members may change from event to event
/// ([`FREE_MEMBERS`]): OpenAI's `"obfuscation"` (random padding, any string literal) and
/// the Responses API's `"sequence_number"` (any number, handed back by
/// [`DeltaShape::read`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaShape {
    before: Template,
    after: Template,
}

/// Bytes of an event with holes: the values of free members.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    bytes: Bytes,
    /// Byte ranges of the values, in order, and what fills them.
    holes: Vec<(Range<usize>, Value)>,
}

/// What a free member's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// A JSON string literal.
    Str,
    /// Digits (a JSON number without sign, fraction or exponent).
    Count,
}

/// The members whose values change from event to event of one text's deltas.
const FREE_MEMBERS: [(&[u8], Value); 2] = [
    (b"\"obfuscation\":", Value::Str),
    (b"\"sequence_number\":", Value::Count),
];

/// What a delta event of a known shape holds: its text and, when it has one, its
/// sequence number.
#[derive(Debug, PartialEq, Eq)]
pub struct ShapedDelta<'a> {
    pub text: Cow<'a, str>,
    pub sequence: Option<u64>,
    /// Where the text's literal lies in the event.
    literal: Range<usize>,
}

impl Value {
    /// The end of this kind of value starting at `bytes[start]`.
    fn end(self, bytes: &[u8], start: usize) -> Option<usize> {
        match self {
            Value::Str => {
                let end = literal_end(bytes, start)?;
                string_literal(&bytes[start..end]).map(|_| end)
            }
            Value::Count => {
                let digits = bytes
                    .get(start..)?
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                // JSON has no leading zeros: `07` is not a number the full read accepts.
                let leading_zero = digits > 1 && bytes[start] == b'0';
                ((1..=19).contains(&digits) && !leading_zero).then_some(start + digits)
            }
        }
    }
}

impl Template {
    /// `bytes` with the values of the free members in it as holes.
    fn of(bytes: Bytes) -> Self {
        let mut holes: Vec<(Range<usize>, Value)> = FREE_MEMBERS
            .iter()
            .filter_map(|&(name, value)| {
                // A member name in quotes followed by a colon is a key: inside a string
                // value its quotes would be escaped.
                let start = memchr::memmem::find(&bytes, name)? + name.len();
                Some((start..value.end(&bytes, start)?, value))
            })
            .collect();
        holes.sort_by_key(|(r, _)| r.start);
        Self { bytes, holes }
    }

    /// How many bytes at the start of `event` this template covers (any values in its
    /// holes), and the number in a count hole.
    #[inline]
    fn prefix_of(&self, event: &[u8]) -> Option<(usize, Option<u64>)> {
        if self.holes.is_empty() {
            return event
                .starts_with(&self.bytes)
                .then_some((self.bytes.len(), None));
        }
        let (mut at, mut from) = (0, 0);
        let mut count = None;
        for (hole, value) in &self.holes {
            let fixed = &self.bytes[from..hole.start];
            event.get(at..)?.strip_prefix(fixed)?;
            at += fixed.len();
            let end = value.end(event, at)?;
            if *value == Value::Count {
                count = std::str::from_utf8(&event[at..end]).ok()?.parse().ok();
            }
            (at, from) = (end, hole.end);
        }
        let fixed = &self.bytes[from..];
        event.get(at..)?.strip_prefix(fixed)?;
        Some((at + fixed.len(), count))
    }
}

impl DeltaShape {
    /// The shape of `event` whose text literal spans `literal` (byte offsets in the
    /// event), if writing the literal back through [`with_data`] gives the same bytes
    /// (one data line, the event's own line endings), so that a rewritten event of this
    /// shape is what [`with_data`] would write.
    pub fn of(event: &Bytes, data: &str, literal: Range<usize>) -> Option<Self> {
        let lit = event.get(literal.clone())?;
        if string_literal(lit).is_none() || with_data(event, data) != *event {
            return None;
        }
        Some(Self {
            before: Template::of(event.slice(..literal.start)),
            after: Template::of(event.slice(literal.end..)),
        })
    }

    /// What `event` holds if it has this shape.
    pub fn read<'a>(&self, event: &'a [u8]) -> Option<ShapedDelta<'a>> {
        let (start, before) = self.before.prefix_of(event)?;
        let (end, after) = if self.after.holes.is_empty() {
            // The literal is all between the two fixed parts (`string_literal` refuses
            // anything else there).
            let end = event.len().checked_sub(self.after.bytes.len())?;
            if end < start || event[end..] != self.after.bytes[..] {
                return None;
            }
            (end, None)
        } else {
            let end = literal_end(event, start)?;
            let (rest, after) = self.after.prefix_of(&event[end..])?;
            if end + rest != event.len() {
                return None;
            }
            (end, after)
        };
        Some(ShapedDelta {
            text: string_literal(&event[start..end])?,
            sequence: before.or(after),
            literal: start..end,
        })
    }

    /// Whether `event` has this shape.
    pub fn matches(&self, event: &[u8]) -> bool {
        self.read(event).is_some()
    }

    /// `event`, read as `delta` (it has this shape), carrying `text` instead of its own:
    /// every other byte is its own (free members keep their values).
    pub fn with_text(event: &[u8], delta: &ShapedDelta<'_>, text: &str, out: &mut BytesMut) {
        out.extend_from_slice(&event[..delta.literal.start]);
        // serde_json escapes exactly what JSON requires; a str never fails to serialize.
        if let Ok(literal) = serde_json::to_string(text) {
            out.extend_from_slice(literal.as_bytes());
        }
        out.extend_from_slice(&event[delta.literal.end..]);
    }
}

/// The end (one past the closing quote) of the JSON string literal that opens at
/// `bytes[start]`, skipping escaped characters; `None` when none opens or closes there.
fn literal_end(bytes: &[u8], start: usize) -> Option<usize> {
    if bytes.get(start) != Some(&b'"') {
        return None;
    }
    let mut i = start + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The string a JSON string literal (with its quotes) holds, if it is one. Literals
/// without escapes (most deltas) are borrowed.
pub fn string_literal(lit: &[u8]) -> Option<Cow<'_, str>> {
    let inner = lit.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.iter().any(|&b| b < 0x20) {
        return None;
    }
    match memchr::memchr2(b'"', b'\\', inner) {
        None => std::str::from_utf8(inner).ok().map(Cow::Borrowed),
        Some(_) => {
            let text: String = serde_json::from_slice(lit).ok()?;
            Some(Cow::Owned(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_framed_whatever_the_line_endings_and_reads() {
        let stream =
            "data: a\n\n: keep-alive\r\n\r\nid: 7\revent: x\rdata: b\rdata: c\r\rdata: d\r\n\r\n";
        for cut in 0..=stream.len() {
            let mut s = EventSplitter::default();
            let mut events = Vec::new();
            for piece in [&stream[..cut], &stream[cut..]] {
                s.push(piece.as_bytes());
                while let Some(e) = s.next_event() {
                    events.push(e);
                }
            }
            assert_eq!(events.len(), 4, "cut {cut}");
            assert_eq!(event_data(&events[0]).as_deref(), Some("a"));
            assert_eq!(event_data(&events[1]), None);
            assert_eq!(event_data(&events[2]).as_deref(), Some("b\nc"));
            assert_eq!(event_name(&events[2]).as_deref(), Some("x"));
            assert_eq!(event_data(&events[3]).as_deref(), Some("d"));
            assert!(s.take_rest().is_none());
        }
    }

    #[test]
    fn with_data_keeps_other_fields_and_line_endings() {
        let e = b"id: 3\r\nevent: content_block_delta\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n";
        let out = with_data(e, "{\"a\":2}");
        assert_eq!(
            &out[..],
            b"id: 3\r\nevent: content_block_delta\r\ndata: {\"a\":2}\r\n\r\n"
        );
    }

    #[test]
    fn openai_chunk_texts_and_ends() {
        let data = r#"{"id":"c1","model":"m","created":5,"choices":[{"index":1,"delta":{"content":"Hi \"you\"","tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}}]},"finish_reason":null}]}"#;
        let f = read_event(StreamFormat::OpenAiChat, None, data, true);
        assert_eq!(f.deltas.len(), 2);
        assert_eq!(f.deltas[0].key, TextKey::Text(1, 0));
        assert_eq!(f.deltas[0].text, "Hi \"you\"");
        assert_eq!(&data[f.deltas[0].span.clone()], r#""Hi \"you\"""#);
        assert_eq!(f.deltas[1].key, TextKey::Args(1, 0));
        assert_eq!(f.deltas[1].text, "{\"a\"");
        assert!(f.ends.is_empty());
        assert_eq!(f.header.as_ref().map(|h| h.created), Some(5));
        let end = read_event(
            StreamFormat::OpenAiChat,
            None,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            false,
        );
        assert_eq!(end.ends[0], TextKey::Text(0, 0));
        assert!(read_event(StreamFormat::OpenAiChat, None, "[DONE]", false).ends_all);
    }

    #[test]
    fn string_literals_are_read_only_when_valid() {
        let read = |b: &[u8]| string_literal(b).map(Cow::into_owned);
        assert_eq!(
            read("\"plain 안녕\"".as_bytes()).as_deref(),
            Some("plain 안녕")
        );
        assert!(matches!(
            string_literal(br#""plain""#),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(
            read(br#""say \"hi\" \u00e9\n""#).as_deref(),
            Some("say \"hi\" é\n")
        );
        for bad in [
            &br#""ab"cd""#[..],
            br#""ab\""#,
            b"\"tab\there\"",
            b"\"\xff\"",
            br#""\ud800""#,
            br#"plain"#,
            br#"""#,
        ] {
            assert_eq!(read(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    /// The text of `event` if it has `shape`.
    fn text_of<'a>(shape: &DeltaShape, event: &'a [u8]) -> Option<Cow<'a, str>> {
        shape.read(event).map(|d| d.text)
    }

    #[test]
    fn a_delta_shape_reads_and_writes_events_like_it() {
        let event = Bytes::from_static(
            b"event: content_block_delta\r\ndata: {\"delta\":{\"text\":\"Hi\"}}\r\n\r\n",
        );
        let data = r#"{"delta":{"text":"Hi"}}"#;
        let at = memchr::memmem::find(&event, br#""Hi""#).expect("the literal");
        let shape = DeltaShape::of(&event, data, at..at + 4).expect("a shape");
        let other =
            b"event: content_block_delta\r\ndata: {\"delta\":{\"text\":\"a \\\"b\\\"\"}}\r\n\r\n";
        assert_eq!(text_of(&shape, other).as_deref(), Some("a \"b\""));
        assert_eq!(
            text_of(
                &shape,
                b"event: content_block_delta\r\ndata: {\"delta\":{\"text\":\"x\",\"y\":1}}\r\n\r\n"
            ),
            None
        );
        assert_eq!(
            text_of(&shape, b"data: {\"delta\":{\"text\":\"Hi\"}}\r\n\r\n"),
            None
        );
        let mut out = BytesMut::new();
        let own = shape.read(&event).expect("its own shape");
        DeltaShape::with_text(&event, &own, "say \"x\"", &mut out);
        let want = with_data(&event, r#"{"delta":{"text":"say \"x\""}}"#);
        assert_eq!(&out[..], &want[..]);
        // `data:` without its space is written back with one: no shape.
        let tight = Bytes::from_static(b"data:{\"t\":\"Hi\"}\n\n");
        assert_eq!(DeltaShape::of(&tight, r#"{"t":"Hi"}"#, 10..14), None);
    }

    #[test]
    fn a_free_member_may_change_from_event_to_event() {
        let chunk = |text: &str, pad: &str| {
            format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{text}}}}}],\"obfuscation\":{pad}}}\n\n"
            )
        };
        let first = Bytes::from(chunk("\"Hi\"", "\"x1\""));
        let data = event_data(&first).expect("data");
        let at = first
            .windows(4)
            .position(|w| w == b"\"Hi\"")
            .expect("literal");
        let shape = DeltaShape::of(&first, &data, at..at + 4).expect("a shape");
        let other = chunk("\"a \\\"b\\\"\"", "\"Qz\\\"9\"");
        assert_eq!(
            text_of(&shape, other.as_bytes()).as_deref(),
            Some("a \"b\"")
        );
        // The rewritten event keeps its own padding.
        let mut out = BytesMut::new();
        let read = shape.read(other.as_bytes()).expect("the shape");
        DeltaShape::with_text(other.as_bytes(), &read, "c", &mut out);
        assert_eq!(&out[..], chunk("\"c\"", "\"Qz\\\"9\"").as_bytes());
        // Not a string there, or other bytes around it: not this shape.
        assert_eq!(text_of(&shape, chunk("\"a\"", "7").as_bytes()), None);
        assert_eq!(
            text_of(&shape, chunk("\"a\"", "\"x\",\"usage\":{}").as_bytes()),
            None
        );
        assert_eq!(text_of(&shape, chunk("\"a\"", "\"x").as_bytes()), None);
    }

    #[test]
    fn a_sequence_number_may_change_and_is_read() {
        let event = |seq: &str, text: &str, pad: &str| {
            format!(
                "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{seq},\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":{text},\"logprobs\":[],\"obfuscation\":{pad}}}\n\n"
            )
        };
        let first = Bytes::from(event("4", "\"Hi\"", "\"x1\""));
        let data = event_data(&first).expect("data");
        let at = memchr::memmem::find(&first, b"\"Hi\"").expect("literal");
        let shape = DeltaShape::of(&first, &data, at..at + 4).expect("a shape");
        let later = event("1234", "\"a \\\"b\\\"\"", "\"Qz\"");
        let read = shape.read(later.as_bytes()).expect("the shape");
        assert_eq!(read.text, "a \"b\"");
        assert_eq!(read.sequence, Some(1234));
        // The rewritten event keeps its own number and padding.
        let mut out = BytesMut::new();
        DeltaShape::with_text(later.as_bytes(), &read, "c", &mut out);
        assert_eq!(&out[..], event("1234", "\"c\"", "\"Qz\"").as_bytes());
        // Not a count there (a sign, a fraction, a string, nothing), or another text's
        // event: not this shape.
        for seq in ["-1", "1.5", "\"7\"", "", "07"] {
            assert!(
                !shape.matches(event(seq, "\"a\"", "\"x\"").as_bytes()),
                "{seq}"
            );
        }
        let other_part =
            event("5", "\"a\"", "\"x\"").replace("\"content_index\":0", "\"content_index\":1");
        assert!(!shape.matches(other_part.as_bytes()));
        // Events without a number have none.
        let chat =
            Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n");
        let data = event_data(&chat).expect("data");
        let at = memchr::memmem::find(&chat, b"\"Hi\"").expect("literal");
        let shape = DeltaShape::of(&chat, &data, at..at + 4).expect("a shape");
        assert_eq!(shape.read(&chat).map(|d| d.sequence), Some(None));
    }

    #[test]
    fn anthropic_and_responses_texts() {
        let f = read_event(
            StreamFormat::Anthropic,
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"안녕"}}"#,
            false,
        );
        assert_eq!(f.deltas[0].key, TextKey::Text(2, 0));
        assert_eq!(f.deltas[0].text, "안녕");
        let stop = read_event(
            StreamFormat::Anthropic,
            None,
            r#"{"type":"content_block_stop","index":2}"#,
            false,
        );
        assert!(stop.ends.contains(&TextKey::Text(2, 0)));
        let r = read_event(
            StreamFormat::OpenAiResponses,
            None,
            r#"{"type":"response.output_text.delta","output_index":1,"content_index":0,"delta":"x"}"#,
            false,
        );
        assert_eq!(r.deltas[0].key, TextKey::Text(1, 0));
        let done = r#"{"type":"response.output_text.done","output_index":1,"content_index":0,"text":"secret a@b.co"}"#;
        let facts = read_event(StreamFormat::OpenAiResponses, None, done, false);
        assert!(facts.repeats_texts);
        let new = replace_repeated_texts(done, &|k| {
            (k == TextKey::Text(1, 0)).then(|| "secret {EMAIL}".to_string())
        })
        .expect("changed");
        assert!(new.contains("secret {EMAIL}") && !new.contains("a@b.co"));
        let completed = r#"{"type":"response.completed","response":{"output":[{"type":"message","content":[{"type":"output_text","text":"a@b.co"}]},{"type":"function_call","arguments":"{}"}]}}"#;
        let new = replace_repeated_texts(completed, &|k| match k {
            TextKey::Text(0, 0) => Some("{EMAIL}".into()),
            _ => None,
        })
        .expect("changed");
        assert!(!new.contains("a@b.co"));
    }
}
