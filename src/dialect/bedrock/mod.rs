//! Amazon Bedrock runtime shapes.
//!
//! `Converse` / `ConverseStream` are Bedrock's provider-neutral chat API; `InvokeModel`
//! carries the model's native body (Anthropic Messages on Bedrock, or a plain `prompt` /
//! `inputText`). The model id is in the path, not the body: [`model_from_path`].
//! Converse `guardContent` blocks keep Bedrock Guardrails' meaning: text qualified
//! `grounding_source` is retrieved context for the grounding check, `query` is the
//! question it answers, `guard_content` (or no qualifier) is text to check.

pub mod converse;
pub mod eventstream;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::response::{PartKind, ResponsePart};
use super::{
    anthropic, role_from, text_part, DecodeError, Exchange, HaechiExtension, Message, Operation,
    Provider, Role, TextPart,
};

#[derive(Deserialize)]
struct ConverseRequest<'a> {
    #[serde(default, borrow)]
    messages: Vec<ConverseMessage<'a>>,
    #[serde(default, borrow)]
    system: Vec<Block<'a>>,
    #[serde(default, rename = "inferenceConfig")]
    inference: Option<InferenceConfig>,
    #[serde(default, rename = "toolConfig")]
    tool_config: Option<ToolConfig>,
    #[serde(default, borrow)]
    haechi: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ConverseMessage<'a> {
    #[serde(default)]
    role: Option<String>,
    #[serde(default, borrow)]
    content: Vec<Block<'a>>,
}

/// A Converse content block; only the members that carry text are read.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "guardContent")]
    guard_content: Option<GuardContent<'a>>,
    #[serde(default, borrow, rename = "toolResult")]
    tool_result: Option<ToolResult<'a>>,
}

#[derive(Deserialize)]
struct GuardContent<'a> {
    #[serde(default, borrow)]
    text: Option<GuardText<'a>>,
}

#[derive(Deserialize)]
struct GuardText<'a> {
    #[serde(borrow)]
    text: &'a RawValue,
    #[serde(default)]
    qualifiers: Vec<String>,
}

#[derive(Deserialize)]
struct ToolResult<'a> {
    #[serde(default, borrow)]
    content: Vec<Block<'a>>,
}

#[derive(Deserialize)]
struct InferenceConfig {
    #[serde(default, rename = "maxTokens")]
    max_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ToolConfig {
    #[serde(default)]
    tools: Vec<ToolEntry>,
}

#[derive(Deserialize)]
struct ToolEntry {
    #[serde(default, rename = "toolSpec")]
    tool_spec: Option<ToolSpec>,
}

#[derive(Deserialize)]
struct ToolSpec {
    #[serde(default)]
    name: Option<String>,
}

/// What a run of Converse blocks holds once qualifiers are applied.
#[derive(Default)]
struct Collected {
    context: Vec<String>,
    query: Option<String>,
}

impl Collected {
    fn blocks(&mut self, body: &[u8], blocks: &[Block]) -> Result<Vec<TextPart>, DecodeError> {
        let mut parts = Vec::new();
        for block in blocks {
            if let Some(raw) = block.text {
                parts.extend(text_part(body, raw)?);
            }
            if let Some(guard) = block.guard_content.as_ref().and_then(|g| g.text.as_ref()) {
                if let Some(part) = text_part(body, guard.text)? {
                    let grounding = guard.qualifiers.iter().any(|q| q == "grounding_source");
                    let query = guard.qualifiers.iter().any(|q| q == "query");
                    if grounding {
                        self.context.push(part.text.clone());
                    }
                    if query {
                        self.query = Some(part.text.clone());
                    }
                    // Grounding sources are reference text, not the user's words.
                    if !grounding {
                        parts.push(part);
                    }
                }
            }
            if let Some(result) = &block.tool_result {
                parts.extend(self.blocks(body, &result.content)?);
            }
        }
        Ok(parts)
    }
}

/// Decodes a Bedrock request body. The model stays `None`: it is in the path.
pub fn decode(operation: Operation, body: &[u8]) -> Result<Exchange, DecodeError> {
    match operation {
        Operation::Invoke | Operation::InvokeStream => decode_invoke(operation, body),
        _ => decode_converse(operation, body),
    }
}

fn decode_converse(operation: Operation, body: &[u8]) -> Result<Exchange, DecodeError> {
    let req: ConverseRequest = serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
    let mut collected = Collected::default();
    let mut messages = Vec::new();
    let system = collected.blocks(body, &req.system)?;
    if !system.is_empty() {
        messages.push(Message {
            role: Role::System,
            parts: system,
        });
    }
    for m in &req.messages {
        let role = role_from(m.role.as_deref().unwrap_or("user"));
        let parts = collected.blocks(body, &m.content)?;
        messages.push(Message { role, parts });
    }
    let (haechi, extension) = HaechiExtension::parse(body, req.haechi)?;
    let mut context = collected.context;
    context.extend(haechi.context_texts());
    Ok(Exchange {
        provider: Provider::Bedrock,
        operation,
        model: None,
        stream: operation == Operation::ConverseStream,
        messages,
        tools: req
            .tool_config
            .map(|t| {
                t.tools
                    .into_iter()
                    .filter_map(|e| e.tool_spec.and_then(|s| s.name))
                    .collect()
            })
            .unwrap_or_default(),
        max_tokens: req.inference.and_then(|i| i.max_tokens),
        context,
        query: collected.query.or(haechi.query),
        extension,
    })
}

#[derive(Deserialize)]
struct InvokeProbe<'a> {
    #[serde(default, borrow)]
    messages: Option<&'a RawValue>,
    #[serde(default, borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "inputText")]
    input_text: Option<&'a RawValue>,
    #[serde(default, alias = "max_gen_len", rename = "max_tokens")]
    max_tokens: Option<u64>,
}

/// InvokeModel bodies are model-native: chat-style `messages` (Anthropic, Mistral, Llama
/// chat) decode like Anthropic Messages; `prompt` / `inputText` are one user text. Any
/// other shape is refused rather than forwarded unchecked.
fn decode_invoke(operation: Operation, body: &[u8]) -> Result<Exchange, DecodeError> {
    let probe: InvokeProbe = serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
    let stream = operation == Operation::InvokeStream;
    if probe.messages.is_some() {
        let mut exchange = anthropic::decode(operation, body)?;
        exchange.provider = Provider::Bedrock;
        exchange.model = None;
        exchange.stream = stream;
        return Ok(exchange);
    }
    let Some(raw) = probe.prompt.or(probe.input_text) else {
        return Err(DecodeError::new(
            "haechi reads InvokeModel bodies with `messages`, `prompt` or `inputText`; \
             use Converse for other models",
        ));
    };
    let parts: Vec<TextPart> = text_part(body, raw)?.into_iter().collect();
    Ok(Exchange {
        provider: Provider::Bedrock,
        operation,
        model: None,
        stream,
        messages: vec![Message {
            role: Role::User,
            parts,
        }],
        tools: Vec::new(),
        max_tokens: probe.max_tokens,
        context: Vec::new(),
        query: None,
        extension: None,
    })
}

/// The operation and (percent-decoded) model id of a Bedrock runtime path,
/// `/model/{modelId}/converse` and its siblings.
pub fn model_from_path(path: &str) -> Option<(Operation, String)> {
    let rest = path.strip_prefix("/model/")?;
    let (id, action) = rest.rsplit_once('/')?;
    let operation = match action {
        "converse" => Operation::Converse,
        "converse-stream" => Operation::ConverseStream,
        "invoke" => Operation::Invoke,
        "invoke-with-response-stream" => Operation::InvokeStream,
        _ => return None,
    };
    let id = percent_decode(id)?;
    // `.` and `..` would be dot-segments on the upstream (RFC 3986 §5.2.4), not ids.
    if id.is_empty() || id == "." || id == ".." || id.contains('/') && !id.starts_with("arn:") {
        return None;
    }
    Some((operation, id))
}

/// The path of `operation` on `model`, encoded as the AWS SDKs encode it.
pub fn path_for(operation: Operation, model: &str) -> String {
    let action = match operation {
        Operation::ConverseStream => "converse-stream",
        Operation::Invoke => "invoke",
        Operation::InvokeStream => "invoke-with-response-stream",
        _ => "converse",
    };
    format!("/model/{}/{action}", percent_encode(model))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 3986 unreserved characters stay; everything else is `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct AnswerProbe<'a> {
    #[serde(default, borrow)]
    output: Option<ConverseOutput<'a>>,
    /// InvokeModel, Anthropic shape.
    #[serde(default, borrow)]
    content: Vec<AnswerBlock<'a>>,
    /// InvokeModel, prompt-style models.
    #[serde(default, borrow)]
    completion: Option<&'a RawValue>,
    #[serde(default, borrow)]
    generation: Option<&'a RawValue>,
    #[serde(default, borrow)]
    results: Vec<TitanResult<'a>>,
}

#[derive(Deserialize)]
struct ConverseOutput<'a> {
    #[serde(default, borrow)]
    message: Option<ConverseAnswer<'a>>,
}

#[derive(Deserialize)]
struct ConverseAnswer<'a> {
    #[serde(default, borrow)]
    content: Vec<AnswerBlock<'a>>,
}

#[derive(Deserialize)]
struct AnswerBlock<'a> {
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    /// Converse `toolUse` block.
    #[serde(default, borrow, rename = "toolUse")]
    tool_use: Option<ToolUse<'a>>,
    /// Anthropic `tool_use` block.
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolUse<'a> {
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct TitanResult<'a> {
    #[serde(default, borrow, rename = "outputText")]
    output_text: Option<&'a RawValue>,
}

/// The strings of a Bedrock answer (Converse or InvokeModel) that output rules look at.
pub fn response_parts(body: &[u8]) -> Result<Vec<ResponsePart>, DecodeError> {
    let probe: AnswerProbe = serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
    let mut out = Vec::new();
    let mut push = |raw: Option<&RawValue>, kind: PartKind| -> Result<(), DecodeError> {
        if let Some(part) = raw.map(|r| text_part(body, r)).transpose()?.flatten() {
            out.push(ResponsePart { part, kind });
        }
        Ok(())
    };
    let blocks = probe
        .output
        .and_then(|o| o.message)
        .map(|m| m.content)
        .unwrap_or_default()
        .into_iter()
        .chain(probe.content);
    for block in blocks {
        push(block.text, PartKind::Text)?;
        let input = block.tool_use.and_then(|t| t.input).or(block.input);
        if let Some(input) = input {
            for raw in super::response::string_values(input)? {
                push(Some(raw), PartKind::JsonValue)?;
            }
        }
    }
    push(probe.completion, PartKind::Text)?;
    push(probe.generation, PartKind::Text)?;
    for r in probe.results {
        push(r.output_text, PartKind::Text)?;
    }
    Ok(out)
}

/// What Bedrock answers when a guardrail intervenes: a normal answer whose text is the
/// policy's message and whose stop reason is `guardrail_intervened` (Converse), or an
/// Anthropic-shaped message flagged `amazon-bedrock-guardrailAction: INTERVENED` (Invoke).
pub fn refusal_json(operation: Operation, message: &str, request_id: &str) -> serde_json::Value {
    match operation {
        Operation::Invoke | Operation::InvokeStream => serde_json::json!({
            "id": format!("msg_haechi_{}", request_id.trim_start_matches("req_")),
            "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": message}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
            "amazon-bedrock-guardrailAction": "INTERVENED"
        }),
        _ => serde_json::json!({
            "output": {"message": {"role": "assistant", "content": [{"text": message}]}},
            "stopReason": "guardrail_intervened",
            "usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0},
            "metrics": {"latencyMs": 0}
        }),
    }
}

/// The same refusal as a complete event stream (ConverseStream events, or
/// InvokeModelWithResponseStream `chunk` events carrying Anthropic stream events).
pub fn refusal_stream(operation: Operation, message: &str, request_id: &str) -> Vec<u8> {
    use base64::Engine;
    use eventstream::encode_event;
    let mut out = Vec::new();
    match operation {
        Operation::Invoke | Operation::InvokeStream => {
            let id = format!("msg_haechi_{}", request_id.trim_start_matches("req_"));
            let events = [
                serde_json::json!({"type": "message_start", "message": {"id": id, "type": "message",
                    "role": "assistant", "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}}),
                serde_json::json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
                serde_json::json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": message}}),
                serde_json::json!({"type": "content_block_stop", "index": 0}),
                serde_json::json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                    "usage": {"output_tokens": 0},
                    "amazon-bedrock-guardrailAction": "INTERVENED"}),
                serde_json::json!({"type": "message_stop"}),
            ];
            for event in events {
                let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
                out.extend_from_slice(&encode_event("chunk", &serde_json::json!({"bytes": bytes})));
            }
        }
        _ => {
            let events = [
                ("messageStart", serde_json::json!({"role": "assistant"})),
                (
                    "contentBlockDelta",
                    serde_json::json!({"contentBlockIndex": 0, "delta": {"text": message}}),
                ),
                (
                    "contentBlockStop",
                    serde_json::json!({"contentBlockIndex": 0}),
                ),
                (
                    "messageStop",
                    serde_json::json!({"stopReason": "guardrail_intervened"}),
                ),
                (
                    "metadata",
                    serde_json::json!({"usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0},
                        "metrics": {"latencyMs": 0}}),
                ),
            ];
            for (name, payload) in events {
                out.extend_from_slice(&encode_event(name, &payload));
            }
        }
    }
    out
}

/// A Bedrock error body (`{"message"}`; the error type travels in `x-amzn-ErrorType`).
pub fn error_body(message: &str) -> Vec<u8> {
    serde_json::json!({ "message": message })
        .to_string()
        .into_bytes()
}

/// The Bedrock error type for an HTTP status, as the AWS SDKs map it to exceptions.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 408 | 413 => "ValidationException",
        401 | 403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        502 | 504 => "ModelErrorException",
        _ => "InternalServerException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converse_with_guard_content_qualifiers() {
        let body = br#"{"system":[{"text":"Be brief."}],
          "messages":[{"role":"user","content":[
             {"guardContent":{"text":{"text":"Seoul has 9.4 million people.","qualifiers":["grounding_source"]}}},
             {"guardContent":{"text":{"text":"How many people live in Seoul?","qualifiers":["query"]}}},
             {"text":"Answer from the source."}]},
            {"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"calc","input":{}}}]},
            {"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"text":"42"}]}}]}],
          "inferenceConfig":{"maxTokens":128},
          "toolConfig":{"tools":[{"toolSpec":{"name":"calc","inputSchema":{"json":{}}}}]}}"#;
        let ex = decode(Operation::ConverseStream, body).expect("decodes");
        assert!(ex.stream);
        assert_eq!(
            ex.context,
            vec!["Seoul has 9.4 million people.".to_string()]
        );
        assert_eq!(ex.query.as_deref(), Some("How many people live in Seoul?"));
        let texts: Vec<(Role, &str)> = ex.texts().map(|(r, p)| (r, p.text.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (Role::System, "Be brief."),
                (Role::User, "How many people live in Seoul?"),
                (Role::User, "Answer from the source."),
                (Role::User, "42"),
            ]
        );
        assert_eq!(ex.max_tokens, Some(128));
        assert_eq!(ex.tools, vec!["calc".to_string()]);
        // Spans point at the literals, so rewrites replace exactly them.
        for (_, part) in ex.texts() {
            let literal = &body[part.span.clone()];
            let back: String = serde_json::from_slice(literal).expect("literal");
            assert_eq!(back, part.text);
        }
    }

    #[test]
    fn invoke_bodies() {
        let ex = decode(
            Operation::Invoke,
            br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .expect("anthropic");
        assert_eq!(ex.provider, Provider::Bedrock);
        assert_eq!(ex.messages[0].parts[0].text, "hi");
        let ex = decode(Operation::InvokeStream, br#"{"inputText":"hello"}"#).expect("titan");
        assert!(ex.stream);
        assert_eq!(ex.messages[0].parts[0].text, "hello");
        assert!(decode(Operation::Invoke, br#"{"texts":["x"]}"#).is_err());
    }

    #[test]
    fn paths() {
        let cases = [
            (
                "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
                Some((
                    Operation::Converse,
                    "anthropic.claude-3-haiku-20240307-v1:0",
                )),
            ),
            (
                "/model/m/converse-stream",
                Some((Operation::ConverseStream, "m")),
            ),
            ("/model/m/invoke", Some((Operation::Invoke, "m"))),
            (
                "/model/m/invoke-with-response-stream",
                Some((Operation::InvokeStream, "m")),
            ),
            ("/model/m/other", None),
            ("/model//converse", None),
            ("/v1/chat/completions", None),
        ];
        for (path, want) in cases {
            let got = model_from_path(path);
            assert_eq!(got.as_ref().map(|(o, m)| (*o, m.as_str())), want, "{path}");
        }
        assert_eq!(
            path_for(Operation::Converse, "a.b-v1:0"),
            "/model/a.b-v1%3A0/converse"
        );
    }

    #[test]
    fn answers_and_refusals() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"hello"},{"toolUse":{"toolUseId":"t","name":"f","input":{"to":"a@b.c"}}}]}},"stopReason":"tool_use"}"#;
        let parts = response_parts(body).expect("parts");
        let got: Vec<_> = parts
            .iter()
            .map(|p| (p.kind, p.part.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![(PartKind::Text, "hello"), (PartKind::JsonValue, "a@b.c")]
        );
        let r = refusal_json(Operation::Converse, "blocked", "req_1");
        assert_eq!(r["stopReason"], "guardrail_intervened");
        assert_eq!(r["output"]["message"]["content"][0]["text"], "blocked");
        let stream = refusal_stream(Operation::ConverseStream, "막힘", "req_1");
        let mut decoder = eventstream::FrameDecoder::new();
        decoder.push(&stream);
        let mut names = Vec::new();
        while let Some((_, eventstream::Event::Event { event_type, .. })) =
            decoder.next_frame().expect("valid")
        {
            names.push(event_type);
        }
        assert_eq!(
            names,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
    }
}
