//! Provider dialects: the only place that knows a provider's JSON.
//!
//! `decode` turns a request body into the provider-neutral [`Exchange`]; every later
//! stage works on the `Exchange`. Each text part remembers the byte span of its JSON
//! string literal in the original body, so that a rewrite (masking, pseudonymizing)
//! replaces exactly that literal and leaves every other byte of the body untouched.

use std::ops::Range;

/// Which provider API shape a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Bedrock,
}

/// The API operation a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ChatCompletions,
    Completions,
    Responses,
    Embeddings,
    Messages,
    CountTokens,
    Converse,
    ConverseStream,
    /// Bedrock `InvokeModel`: the body is the model's own native request shape.
    Invoke,
    /// Bedrock `InvokeModelWithResponseStream`.
    InvokeStream,
}

/// Role of a message in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One piece of text inside a request or response body.
#[derive(Debug, Clone, PartialEq)]
pub struct TextPart {
    /// The decoded (unescaped) text.
    pub text: String,
    /// Byte span of the JSON string literal (quotes included) in the original body.
    pub span: Range<usize>,
}

/// One message of a conversation: a role and its text parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<TextPart>,
}

/// A provider-neutral view of one model request.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub provider: Provider,
    pub operation: Operation,
    pub model: Option<String>,
    pub stream: bool,
    /// Messages in order; system prompts given outside the list (Anthropic `system`)
    /// come first with [`Role::System`].
    pub messages: Vec<Message>,
    /// Names of the tools the request offers to the model.
    pub tools: Vec<String>,
    /// Upper bound the client set on answer tokens, if any.
    pub max_tokens: Option<u64>,
    /// Retrieved context for grounding checks (from the `haechi` extension field).
    pub context: Vec<String>,
    /// The question that context answers, if given.
    pub query: Option<String>,
    /// Byte span of the `haechi` extension value in the body, stripped before forwarding.
    pub extension: Option<Range<usize>>,
}

impl Exchange {
    /// All text parts with their roles, in order.
    pub fn texts(&self) -> impl Iterator<Item = (Role, &TextPart)> {
        self.messages
            .iter()
            .flat_map(|m| m.parts.iter().map(move |p| (m.role, p)))
    }
}

pub mod anthropic;
pub mod bedrock;
pub mod context;
pub mod openai;
pub mod response;
pub mod sse;

use serde_json::value::RawValue;

/// A request body that does not decode, with a message that says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub message: String,
}

impl DecodeError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// Wraps a serde_json error, keeping its line and column but not the client's values
    /// (error bodies and logs never carry prompt text).
    fn json(e: &serde_json::Error) -> Self {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "invalid JSON"
            }
            _ => "unexpected request shape",
        };
        Self::new(format!("{what}: {}", crate::text::scrub_json_error(e)))
    }
}

/// Decodes a request body for `operation` into an [`Exchange`].
pub fn decode(operation: Operation, body: &[u8]) -> Result<Exchange, DecodeError> {
    // JSON is UTF-8 (RFC 8259). serde skips the members it ignores without checking
    // them, so without this a body with invalid UTF-8 outside the read texts was
    // forwarded (found by fuzz/decode; tests/fuzz-regressions/decode).
    if let Err(e) = std::str::from_utf8(body) {
        return Err(DecodeError::new(format!(
            "request body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        )));
    }
    match operation {
        Operation::ChatCompletions
        | Operation::Completions
        | Operation::Responses
        | Operation::Embeddings => openai::decode(operation, body),
        Operation::Messages | Operation::CountTokens => anthropic::decode(operation, body),
        Operation::Converse
        | Operation::ConverseStream
        | Operation::Invoke
        | Operation::InvokeStream => bedrock::decode(operation, body),
    }
}

/// Byte span of a borrowed raw JSON value inside `body`.
///
/// `raw` must borrow from `body` (serde_json borrows `&RawValue` from the input slice),
/// so the span is plain pointer arithmetic and costs nothing.
fn span_of(body: &[u8], raw: &RawValue) -> Range<usize> {
    let start = (raw.get().as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    start..start + raw.get().len()
}

/// Decodes a raw JSON value as a text part if it is a string, `None` otherwise.
fn text_part(body: &[u8], raw: &RawValue) -> Result<Option<TextPart>, DecodeError> {
    if !raw.get().starts_with('"') {
        return Ok(None);
    }
    let text: String = serde_json::from_str(raw.get()).map_err(|e| DecodeError::json(&e))?;
    Ok(Some(TextPart {
        text,
        span: span_of(body, raw),
    }))
}

/// The text parts of a value that is either a string (one part) or a list, whose items
/// `item` turns into parts; any other value carries no text.
fn string_or_list<'a, T: serde::Deserialize<'a>>(
    body: &[u8],
    raw: &'a RawValue,
    objects: bool,
    mut item: impl FnMut(T, &mut Vec<TextPart>) -> Result<(), DecodeError>,
) -> Result<Vec<TextPart>, DecodeError> {
    if let Some(part) = text_part(body, raw)? {
        return Ok(vec![part]);
    }
    if !raw.get().starts_with('[') {
        // Anything but null here is a shape the provider rejects; refusing it keeps
        // text in an unexpected shape from reaching a lenient upstream unchecked.
        if raw.get() == "null" {
            return Ok(Vec::new());
        }
        return Err(DecodeError::new("expected a string or a list of parts"));
    }
    let items: Vec<T> = if objects {
        objects_only(raw)?
    } else {
        serde_json::from_str(raw.get()).map_err(|e| DecodeError::json(&e))?
    };
    let mut out = Vec::new();
    for i in items {
        item(i, &mut out)?;
    }
    Ok(out)
}

/// A JSON list whose items must be objects (content parts, blocks, input items).
/// serde reads a struct from a JSON array too (fields by position), so without this
/// `[["text"]]` or deeply nested arrays passed as parts; providers reject them (400).
fn objects_only<'a, T: serde::Deserialize<'a>>(raw: &'a RawValue) -> Result<Vec<T>, DecodeError> {
    let items: Vec<&RawValue> =
        serde_json::from_str(raw.get()).map_err(|e| DecodeError::json(&e))?;
    items
        .into_iter()
        .map(|item| {
            if !item.get().starts_with('{') {
                return Err(DecodeError::new(
                    "expected a list of objects (content parts or messages)",
                ));
            }
            serde_json::from_str(item.get()).map_err(|e| DecodeError::json(&e))
        })
        .collect()
}

/// Replaces the string literals at the given spans with new texts, keeping every
/// other byte of `body` as it was. Spans must not overlap.
pub fn rewrite_strings(body: &[u8], replacements: &[(Range<usize>, &str)]) -> Vec<u8> {
    let mut sorted: Vec<&(Range<usize>, &str)> = replacements.iter().collect();
    sorted.sort_by_key(|(span, _)| span.start);
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut at = 0;
    for (span, text) in sorted {
        if span.start < at || span.end > body.len() {
            continue;
        }
        out.extend_from_slice(&body[at..span.start]);
        // serde_json escapes exactly what JSON requires; a String never fails to serialize.
        let literal = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string());
        out.extend_from_slice(literal.as_bytes());
        at = span.end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

/// Removes the top-level member whose value spans `value` (e.g. the `haechi`
/// extension) from a JSON object body, with its key and one separating comma, keeping
/// every other byte. Returns `None` if the bytes around the span are not a member.
pub fn remove_member(body: &[u8], value: Range<usize>) -> Option<Vec<u8>> {
    remove_member_with_cut(body, value).map(|(out, _)| out)
}

/// Like [`remove_member`], also returning the byte range that was cut from `body`.
pub fn remove_member_with_cut(body: &[u8], value: Range<usize>) -> Option<(Vec<u8>, Range<usize>)> {
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    // Walk back over `"key"\s*:\s*` to the key's opening quote.
    let mut i = value.start;
    while i > 0 && is_ws(body[i - 1]) {
        i -= 1;
    }
    if i == 0 || body[i - 1] != b':' {
        return None;
    }
    i -= 1;
    while i > 0 && is_ws(body[i - 1]) {
        i -= 1;
    }
    if i == 0 || body[i - 1] != b'"' {
        return None;
    }
    i -= 1; // closing quote of the key
    let mut key_start = None;
    let mut j = i;
    while j > 0 {
        j -= 1;
        if body[j] == b'"' && (j == 0 || body[j - 1] != b'\\') {
            key_start = Some(j);
            break;
        }
    }
    let key_start = key_start?;
    // Prefer removing the comma before the member; else the one after it.
    let mut before = key_start;
    while before > 0 && is_ws(body[before - 1]) {
        before -= 1;
    }
    let (cut_start, cut_end) = if before > 0 && body[before - 1] == b',' {
        (before - 1, value.end)
    } else {
        let mut after = value.end;
        while after < body.len() && is_ws(body[after]) {
            after += 1;
        }
        if after < body.len() && body[after] == b',' {
            (key_start, after + 1)
        } else {
            (key_start, value.end)
        }
    };
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..cut_start]);
    out.extend_from_slice(&body[cut_end..]);
    Some((out, cut_start..cut_end))
}

/// The `haechi` extension object a client may add to any request body.
#[derive(Debug, Default, serde::Deserialize)]
struct HaechiExtension {
    #[serde(default)]
    context: Option<serde_json::Value>,
    #[serde(default)]
    query: Option<String>,
}

impl HaechiExtension {
    /// Parses the extension from its raw value, returning it with its span in `body`.
    fn parse(
        body: &[u8],
        raw: Option<&RawValue>,
    ) -> Result<(Self, Option<Range<usize>>), DecodeError> {
        match raw {
            None => Ok((Self::default(), None)),
            Some(raw) if !raw.get().starts_with('{') => Err(DecodeError::new(
                "invalid `haechi` extension: expected an object {\"context\", \"query\"}",
            )),
            Some(raw) => {
                let ext: Self = serde_json::from_str(raw.get()).map_err(|e| {
                    DecodeError::new(format!(
                        "invalid `haechi` extension: {}",
                        crate::text::scrub_json_error(&e)
                    ))
                })?;
                Ok((ext, Some(span_of(body, raw))))
            }
        }
    }

    fn context_texts(&self) -> Vec<String> {
        match &self.context {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn role_from(name: &str) -> Role {
    match name {
        "system" | "developer" => Role::System,
        "assistant" | "model" => Role::Assistant,
        "tool" | "function" => Role::Tool,
        _ => Role::User,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_member_is_removed_cleanly() {
        let cases = [
            (
                r#"{"model":"m", "haechi": {"context":["a"]}, "x":1}"#,
                r#"{"model":"m", "x":1}"#,
            ),
            (
                r#"{"haechi":{"query":"q"} ,"model":"m"}"#,
                r#"{"model":"m"}"#,
            ),
            (r#"{"model":"m","haechi":{}}"#, r#"{"model":"m"}"#),
            (r#"{"haechi":{}}"#, r#"{}"#),
        ];
        for (body, want) in cases {
            let start = body.find("\"haechi\"").expect("key") + "\"haechi\"".len();
            let colon = body[start..].find(':').expect("colon") + start + 1;
            let value_start = colon + body[colon..].len() - body[colon..].trim_start().len();
            let mut depth = 0;
            let mut value_end = value_start;
            for (k, c) in body[value_start..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            value_end = value_start + k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let out = remove_member(body.as_bytes(), value_start..value_end).expect("member");
            assert_eq!(String::from_utf8(out).expect("utf8"), want, "{body}");
        }
    }

    #[test]
    fn rewrite_keeps_other_bytes() {
        let body = br#"{"a": "x\u00e9",   "b":  "keep" , "z":1}"#;
        let ex = openai::decode(Operation::Completions, br#"{"model":"m","prompt":"hello"}"#)
            .expect("decodes");
        assert_eq!(ex.messages[0].parts[0].text, "hello");
        let start = body
            .windows(3)
            .position(|w| w == b"\"x\\")
            .expect("literal");
        let end = start + br#""x\u00e9""#.len();
        let out = rewrite_strings(body, &[(start..end, "전화 \"q\"")]);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#"{"a": "전화 \"q\"",   "b":  "keep" , "z":1}"#
        );
    }

    /// Inputs the fuzz targets found (tests/fuzz-regressions/decode; the first byte
    /// selects the operation as in fuzz/fuzz_targets/decode.rs): every operation either
    /// refuses them or decodes them to a body that is still JSON.
    #[test]
    fn fuzz_regressions_decode() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/decode");
        let files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(!files.is_empty(), "regression inputs in {}", dir.display());
        for path in files {
            let data = std::fs::read(&path).unwrap_or_default();
            let Some((_, body)) = data.split_first() else {
                continue;
            };
            for op in [
                Operation::ChatCompletions,
                Operation::Completions,
                Operation::Responses,
                Operation::Embeddings,
                Operation::Messages,
                Operation::CountTokens,
                Operation::Converse,
                Operation::ConverseStream,
                Operation::Invoke,
                Operation::InvokeStream,
            ] {
                if decode(op, body).is_ok() {
                    assert!(
                        serde_json::from_slice::<serde_json::Value>(body).is_ok(),
                        "{} decoded as {op:?}",
                        path.display()
                    );
                }
            }
        }
    }
}
