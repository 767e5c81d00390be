//! The answer side of each dialect: where the text of a (non-streaming) response lives,
//! and what a refusal looks like when a policy blocks.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{text_part, DecodeError, Operation, Provider, TextPart};

/// What kind of string a response text part is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// Natural-language text shown to the user.
    Text,
    /// A JSON document encoded as a string (OpenAI tool-call `arguments`).
    JsonText,
    /// A string value inside a JSON object the model produced (Anthropic `tool_use.input`).
    JsonValue,
}

/// One string of a response body with its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsePart {
    pub part: TextPart,
    pub kind: PartKind,
}

#[derive(Deserialize)]
struct OpenAiResponse<'a> {
    #[serde(default, borrow)]
    choices: Vec<OpenAiChoice<'a>>,
    /// Responses API.
    #[serde(default, borrow)]
    output: Vec<ResponsesItem<'a>>,
}

#[derive(Deserialize)]
struct OpenAiChoice<'a> {
    #[serde(default, borrow)]
    message: Option<OpenAiMessage<'a>>,
    /// Completions API.
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OpenAiMessage<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Vec<OpenAiToolCall<'a>>,
}

#[derive(Deserialize)]
struct OpenAiToolCall<'a> {
    #[serde(default, borrow)]
    function: Option<OpenAiFunction<'a>>,
}

#[derive(Deserialize)]
struct OpenAiFunction<'a> {
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ResponsesItem<'a> {
    #[serde(default, borrow)]
    content: Vec<ResponsesContent<'a>>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ResponsesContent<'a> {
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AnthropicResponse<'a> {
    #[serde(default, borrow)]
    content: Vec<AnthropicBlock<'a>>,
}

#[derive(Deserialize)]
struct AnthropicBlock<'a> {
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
}

/// The strings of a non-streaming response body that output rules look at.
pub fn response_parts(provider: Provider, body: &[u8]) -> Result<Vec<ResponsePart>, DecodeError> {
    // JSON is UTF-8; serde skips fields it ignores without checking them, so an answer
    // with invalid bytes in an unknown field would otherwise pass as readable.
    if provider != Provider::Bedrock {
        if let Err(e) = std::str::from_utf8(body) {
            return Err(DecodeError::new(format!(
                "answer is not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            )));
        }
    }
    let mut out = Vec::new();
    let mut push = |raw: Option<&RawValue>, kind: PartKind| -> Result<(), DecodeError> {
        if let Some(raw) = raw {
            if let Some(part) = text_part(body, raw)? {
                out.push(ResponsePart { part, kind });
            }
        }
        Ok(())
    };
    match provider {
        Provider::Bedrock => return super::bedrock::response_parts(body),
        Provider::OpenAi => {
            let r: OpenAiResponse =
                serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
            for choice in r.choices {
                push(choice.text, PartKind::Text)?;
                if let Some(message) = choice.message {
                    push(message.content, PartKind::Text)?;
                    for call in message.tool_calls {
                        push(call.function.and_then(|f| f.arguments), PartKind::JsonText)?;
                    }
                }
            }
            for item in r.output {
                for c in item.content {
                    push(c.text, PartKind::Text)?;
                }
                push(item.arguments, PartKind::JsonText)?;
            }
        }
        Provider::Anthropic => {
            let r: AnthropicResponse =
                serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
            for block in r.content {
                push(block.text, PartKind::Text)?;
                if let Some(input) = block.input {
                    for raw in string_values(input)? {
                        push(Some(raw), PartKind::JsonValue)?;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Every string value (not key) inside a raw JSON value, depth-first.
pub(super) fn string_values(raw: &RawValue) -> Result<Vec<&RawValue>, DecodeError> {
    let mut out = Vec::new();
    let mut stack = vec![raw];
    while let Some(value) = stack.pop() {
        match value.get().as_bytes().first() {
            Some(b'"') => out.push(value),
            Some(b'{') => {
                let map: std::collections::BTreeMap<String, &RawValue> =
                    serde_json::from_str(value.get()).map_err(|e| DecodeError::json(&e))?;
                stack.extend(map.into_values());
            }
            Some(b'[') => {
                let list: Vec<&RawValue> =
                    serde_json::from_str(value.get()).map_err(|e| DecodeError::json(&e))?;
                stack.extend(list);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A refusal: a normal, successful answer whose text is the policy message and whose
/// finish reason says a content filter stopped it. `None` when the operation has no
/// answer to put a message in (embeddings, token counting): use the error style then.
pub fn refusal_json(
    operation: Operation,
    model: &str,
    message: &str,
    request_id: &str,
) -> Option<serde_json::Value> {
    let id = request_id.trim_start_matches("req_");
    let value = match operation {
        Operation::ChatCompletions => serde_json::json!({
            "id": format!("chatcmpl-haechi-{id}"), "object": "chat.completion",
            "created": now_secs(), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": message, "refusal": null},
                         "logprobs": null, "finish_reason": "content_filter"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        }),
        Operation::Completions => serde_json::json!({
            "id": format!("cmpl-haechi-{id}"), "object": "text_completion",
            "created": now_secs(), "model": model,
            "choices": [{"index": 0, "text": message, "logprobs": null, "finish_reason": "content_filter"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        }),
        Operation::Responses => serde_json::json!({
            "id": format!("resp_haechi_{id}"), "object": "response", "created_at": now_secs(),
            "status": "incomplete", "incomplete_details": {"reason": "content_filter"},
            "model": model, "error": null,
            "output": [{"type": "message", "id": format!("msg_haechi_{id}"), "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": message, "annotations": []}]}],
            "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}
        }),
        Operation::Messages => serde_json::json!({
            "id": format!("msg_haechi_{id}"), "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": message}],
            "stop_reason": "refusal", "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}
        }),
        _ => return None,
    };
    Some(value)
}

/// The same refusal as a complete event stream, for clients that asked to stream.
/// `None` where the operation has no stream form we can produce (use the error style).
pub fn refusal_stream(
    operation: Operation,
    model: &str,
    message: &str,
    request_id: &str,
) -> Option<String> {
    let id = request_id.trim_start_matches("req_");
    match operation {
        Operation::ChatCompletions => {
            let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
                serde_json::json!({"id": format!("chatcmpl-haechi-{id}"), "object": "chat.completion.chunk",
                    "created": now_secs(), "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
            };
            Some(format!(
                "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
                chunk(
                    serde_json::json!({"role": "assistant", "content": message}),
                    serde_json::Value::Null
                ),
                chunk(serde_json::json!({}), serde_json::json!("content_filter")),
            ))
        }
        Operation::Messages => {
            let events = [
                (
                    "message_start",
                    serde_json::json!({"type": "message_start", "message": {
                    "id": format!("msg_haechi_{id}"), "type": "message", "role": "assistant", "model": model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}}),
                ),
                (
                    "content_block_start",
                    serde_json::json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
                ),
                (
                    "content_block_delta",
                    serde_json::json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": message}}),
                ),
                (
                    "content_block_stop",
                    serde_json::json!({"type": "content_block_stop", "index": 0}),
                ),
                (
                    "message_delta",
                    serde_json::json!({"type": "message_delta",
                    "delta": {"stop_reason": "refusal", "stop_sequence": null},
                    "usage": {"output_tokens": 0}}),
                ),
                ("message_stop", serde_json::json!({"type": "message_stop"})),
            ];
            Some(
                events
                    .iter()
                    .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
                    .collect(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_and_anthropic_answer_strings() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":"mail <EMAIL_1>","tool_calls":[{"function":{"name":"f","arguments":"{\"to\":\"<EMAIL_1>\"}"}}]}}]}"#;
        let parts = response_parts(Provider::OpenAi, body).expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].part.text, "mail <EMAIL_1>");
        assert_eq!(parts[1].kind, PartKind::JsonText);
        assert_eq!(parts[1].part.text, r#"{"to":"<EMAIL_1>"}"#);

        let body = br#"{"content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t","name":"send","input":{"to":"<EMAIL_1>","n":3,"cc":["x"]}}]}"#;
        let parts = response_parts(Provider::Anthropic, body).expect("parts");
        let texts: Vec<_> = parts
            .iter()
            .map(|p| (p.kind, p.part.text.as_str()))
            .collect();
        assert!(texts.contains(&(PartKind::Text, "hi")));
        assert!(texts.contains(&(PartKind::JsonValue, "<EMAIL_1>")));
        assert!(texts.contains(&(PartKind::JsonValue, "x")));
    }

    #[test]
    fn refusals_are_valid_provider_shapes() {
        let r = refusal_json(Operation::ChatCompletions, "m", "no", "req_1").expect("chat");
        assert_eq!(r["choices"][0]["finish_reason"], "content_filter");
        let r = refusal_json(Operation::Messages, "c", "no", "req_1").expect("messages");
        assert_eq!(r["stop_reason"], "refusal");
        assert!(refusal_json(Operation::Embeddings, "e", "no", "req_1").is_none());
        let s = refusal_stream(Operation::Messages, "c", "안 돼요", "req_1").expect("stream");
        assert!(s.contains("event: message_stop"));
        let s = refusal_stream(Operation::ChatCompletions, "m", "no", "req_1").expect("stream");
        assert!(s.ends_with("data: [DONE]\n\n"));
    }
}
