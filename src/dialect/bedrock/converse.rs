//! OpenAI chat completions ↔ Bedrock Converse, so that OpenAI SDK clients can call a
//! Bedrock model through the gateway: the request is rewritten into a Converse body, the
//! answer back into a `chat.completion`, and a ConverseStream event stream into
//! `chat.completion.chunk` SSE events ending in `data: [DONE]`.

use serde_json::{json, Map, Value};

use super::eventstream::{Event, FrameDecoder, FrameError};
use crate::dialect::DecodeError;

/// An OpenAI chat request rewritten for Converse.
#[derive(Debug, Clone, PartialEq)]
pub struct ConverseCall {
    pub model: String,
    pub stream: bool,
    /// The client asked for the final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// The Converse request body.
    pub body: Vec<u8>,
}

/// Text of an OpenAI `content` (a string, or a list of `{type: text, text}` parts).
fn content_text(content: Option<&Value>) -> Result<Option<String>, DecodeError> {
    match content {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") | None => {
                        if let Some(t) = p.get("text").and_then(Value::as_str) {
                            texts.push(t);
                        }
                    }
                    Some(other) => {
                        return Err(DecodeError::new(format!(
                            "content part `{other}` cannot be sent to a Bedrock model by this gateway (text only)"
                        )))
                    }
                }
            }
            Ok(Some(texts.join("")))
        }
        Some(_) => Err(DecodeError::new("`content` must be a string or a list")),
    }
}

/// Appends blocks to the conversation, merging into the last message when the role
/// repeats (Converse wants user and assistant turns to alternate).
fn push_blocks(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut() {
        if last["role"] == role {
            if let Some(content) = last["content"].as_array_mut() {
                content.extend(blocks);
                return;
            }
        }
    }
    messages.push(json!({"role": role, "content": blocks}));
}

/// Rewrites an OpenAI chat-completions body as a Converse request.
pub fn chat_to_converse(body: &[u8]) -> Result<ConverseCall, DecodeError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| DecodeError::new("`model` is required"))?
        .to_string();
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    let empty = Vec::new();
    let list = req
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for m in list {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let text = content_text(m.get("content"))?;
        match role {
            "system" | "developer" => {
                if let Some(t) = text.filter(|t| !t.is_empty()) {
                    system.push(json!({"text": t}));
                }
            }
            "assistant" => {
                let mut blocks = Vec::new();
                if let Some(t) = text.filter(|t| !t.is_empty()) {
                    blocks.push(json!({"text": t}));
                }
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .unwrap_or(&empty)
                {
                    let args = call
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("{}");
                    let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
                    blocks.push(json!({"toolUse": {
                        "toolUseId": call.get("id").cloned().unwrap_or(Value::Null),
                        "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
                        "input": input,
                    }}));
                }
                push_blocks(&mut messages, "assistant", blocks);
            }
            "tool" | "function" => {
                let id = m
                    .get("tool_call_id")
                    .cloned()
                    .unwrap_or_else(|| json!("unknown"));
                let block = json!({"toolResult": {
                    "toolUseId": id,
                    "content": [{"text": text.unwrap_or_default()}],
                }});
                push_blocks(&mut messages, "user", vec![block]);
            }
            _ => {
                let blocks = text.map(|t| vec![json!({"text": t})]).unwrap_or_default();
                push_blocks(&mut messages, "user", blocks);
            }
        }
    }
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    let max = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"));
    if let Some(v) = max.filter(|v| v.is_u64()) {
        inference.insert("maxTokens".into(), v.clone());
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(v) = req.get(from).filter(|v| v.is_number()) {
            inference.insert(to.into(), v.clone());
        }
    }
    match req.get("stop") {
        Some(Value::String(s)) => {
            inference.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(items)) => {
            inference.insert("stopSequences".into(), Value::Array(items.clone()));
        }
        _ => {}
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    let tools: Vec<Value> = req
        .get("tools")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .filter_map(|t| t.get("function"))
        .map(|f| {
            let mut spec = Map::new();
            spec.insert("name".into(), f.get("name").cloned().unwrap_or(Value::Null));
            if let Some(d) = f.get("description") {
                spec.insert("description".into(), d.clone());
            }
            let schema = f
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            spec.insert("inputSchema".into(), json!({ "json": schema }));
            json!({ "toolSpec": spec })
        })
        .collect();
    if !tools.is_empty() {
        let mut config = Map::new();
        config.insert("tools".into(), Value::Array(tools));
        let choice = match req.get("tool_choice") {
            Some(Value::String(s)) if s == "required" => Some(json!({"any": {}})),
            Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|name| json!({"tool": {"name": name}})),
            _ => None,
        };
        if let Some(choice) = choice {
            config.insert("toolChoice".into(), choice);
        }
        out.insert("toolConfig".into(), Value::Object(config));
    }
    Ok(ConverseCall {
        model,
        stream,
        include_usage,
        body: Value::Object(out).to_string().into_bytes(),
    })
}

/// Converse `stopReason` → OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

fn openai_usage(usage: Option<&Value>) -> Value {
    let get = |k: &str| {
        usage
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let (input, output) = (get("inputTokens"), get("outputTokens"));
    json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output})
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Rewrites a Converse answer as an OpenAI `chat.completion`.
pub fn converse_to_chat(body: &[u8], model: &str, id: &str) -> Result<Vec<u8>, DecodeError> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
    let empty = Vec::new();
    let blocks = answer
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(tool) = block.get("toolUse") {
            let input = tool.get("input").cloned().unwrap_or_else(|| json!({}));
            tool_calls.push(json!({
                "id": tool.get("toolUseId").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": tool.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": input.to_string(),
                },
            }));
        }
    }
    let stop = answer
        .get("stopReason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let mut message = json!({"role": "assistant", "content": text, "refusal": null});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
        if text.is_empty() {
            message["content"] = Value::Null;
        }
    }
    let out = json!({
        "id": id, "object": "chat.completion", "created": now_secs(), "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": finish_reason(stop)}],
        "usage": openai_usage(answer.get("usage")),
    });
    Ok(out.to_string().into_bytes())
}

/// A Bedrock error answer (`{"message"}` with `x-amzn-ErrorType`) as an OpenAI error.
pub fn error_to_openai(body: &[u8], error_type: Option<&str>) -> Vec<u8> {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect());
    // `x-amzn-ErrorType` reads `ThrottlingException:http://...`.
    let code = error_type.map(|t| t.split(':').next().unwrap_or(t).to_string());
    crate::dialect::openai::error_body(
        &format!("bedrock: {message}"),
        "upstream_error",
        code.as_deref(),
    )
}

/// Turns a ConverseStream event stream into OpenAI chat-completion chunks, frame by
/// frame. Bad framing (a CRC mismatch, a truncated frame) or a Bedrock exception
/// ends the stream with an OpenAI error event, which the OpenAI SDKs raise.
pub struct StreamTranslator {
    decoder: FrameDecoder,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// Converse content block index → OpenAI tool call index.
    tools: Vec<(u64, usize)>,
    finished: bool,
}

impl StreamTranslator {
    pub fn new(id: &str, model: &str, include_usage: bool) -> Self {
        Self {
            decoder: FrameDecoder::new(),
            id: id.to_string(),
            model: model.to_string(),
            created: now_secs(),
            include_usage,
            tools: Vec::new(),
            finished: false,
        }
    }

    /// Whether the stream has ended (normally or on an error).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let data = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        format!("data: {data}\n\n")
    }

    /// Ends the stream with an error event (the upstream failed, e.g. timed out).
    pub fn abort(&mut self, message: &str) -> Vec<u8> {
        if self.finished {
            return Vec::new();
        }
        self.error(&format!("haechi: {message}"), "upstream_error")
            .into_bytes()
    }

    fn error(&mut self, message: &str, code: &str) -> String {
        self.finished = true;
        let body = crate::dialect::openai::error_body(message, "upstream_error", Some(code));
        format!("data: {}\n\n", String::from_utf8_lossy(&body))
    }

    /// Feeds bytes from the upstream; returns the SSE bytes to send on.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if self.finished {
            return Vec::new();
        }
        self.decoder.push(data);
        let mut out = String::new();
        loop {
            match self.decoder.next_frame() {
                Ok(None) => break,
                Ok(Some((_, event))) => {
                    out.push_str(&self.event(event));
                    if self.finished {
                        break;
                    }
                }
                Err(e) => {
                    out.push_str(&self.framing_error(&e));
                    break;
                }
            }
        }
        out.into_bytes()
    }

    fn framing_error(&mut self, e: &FrameError) -> String {
        self.error(
            &format!("haechi: the Bedrock upstream sent a malformed event stream: {e}"),
            "upstream_bad_stream",
        )
    }

    /// The upstream body ended: `[DONE]`, or an error if it stopped inside a frame.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.finished {
            return Vec::new();
        }
        if let Err(e) = self.decoder.finish() {
            return self.framing_error(&e).into_bytes();
        }
        self.finished = true;
        b"data: [DONE]\n\n".to_vec()
    }

    fn event(&mut self, event: Event) -> String {
        let (event_type, payload) = match event {
            Event::Event {
                event_type,
                payload,
            } => (event_type, payload),
            Event::Exception {
                exception_type,
                message,
            } => {
                return self.error(
                    &format!("bedrock: {exception_type}: {message}"),
                    "upstream_error",
                )
            }
            Event::Error { code, message } => {
                return self.error(&format!("bedrock: {code}: {message}"), "upstream_error")
            }
        };
        let Ok(p) = serde_json::from_slice::<Value>(&payload) else {
            return self.error(
                "haechi: the Bedrock upstream sent an event that is not JSON",
                "upstream_bad_stream",
            );
        };
        let index = p
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match event_type.as_str() {
            "messageStart" => self.chunk(json!({"role": "assistant", "content": ""}), None),
            "contentBlockStart" => match p.pointer("/start/toolUse") {
                Some(tool) => {
                    let k = self.tools.len();
                    self.tools.push((index, k));
                    self.chunk(
                        json!({"tool_calls": [{"index": k,
                            "id": tool.get("toolUseId").cloned().unwrap_or(Value::Null),
                            "type": "function",
                            "function": {"name": tool.get("name").cloned().unwrap_or(Value::Null),
                                         "arguments": ""}}]}),
                        None,
                    )
                }
                None => String::new(),
            },
            "contentBlockDelta" => {
                if let Some(text) = p.pointer("/delta/text").and_then(Value::as_str) {
                    return self.chunk(json!({ "content": text }), None);
                }
                if let Some(input) = p.pointer("/delta/toolUse/input").and_then(Value::as_str) {
                    let k = self
                        .tools
                        .iter()
                        .find(|(i, _)| *i == index)
                        .map_or(0, |(_, k)| *k);
                    return self.chunk(
                        json!({"tool_calls": [{"index": k, "function": {"arguments": input}}]}),
                        None,
                    );
                }
                String::new()
            }
            "messageStop" => {
                let stop = p
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("end_turn");
                self.chunk(json!({}), Some(finish_reason(stop)))
            }
            "metadata" if self.include_usage => {
                let data = json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "choices": [],
                    "usage": openai_usage(p.get("usage")),
                });
                format!("data: {data}\n\n")
            }
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::eventstream::{encode_event, encode_exception};
    use super::*;

    #[test]
    fn chat_request_becomes_converse() {
        let body = br#"{"model":"anthropic.claude-3-haiku-20240307-v1:0","stream":true,
          "stream_options":{"include_usage":true},"max_tokens":50,"temperature":0.2,"stop":"END",
          "messages":[{"role":"system","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"Weather in Seoul?"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
               "function":{"name":"weather","arguments":"{\"city\":\"Seoul\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"Sunny"},
            {"role":"user","content":"Thanks"}],
          "tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object"}}}],
          "tool_choice":"required"}"#;
        let call = chat_to_converse(body).expect("translates");
        assert!(call.stream && call.include_usage);
        assert_eq!(call.model, "anthropic.claude-3-haiku-20240307-v1:0");
        let v: Value = serde_json::from_slice(&call.body).expect("json");
        assert_eq!(v["system"], json!([{"text": "Be brief."}]));
        assert_eq!(v["inferenceConfig"]["maxTokens"], 50);
        assert_eq!(v["inferenceConfig"]["stopSequences"], json!(["END"]));
        let msgs = v["messages"].as_array().expect("messages");
        // user, assistant(toolUse), user(toolResult + "Thanks" merged)
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1]["content"][0]["toolUse"]["input"]["city"], "Seoul");
        assert_eq!(msgs[2]["content"][0]["toolResult"]["toolUseId"], "call_1");
        assert_eq!(msgs[2]["content"][1]["text"], "Thanks");
        assert_eq!(v["toolConfig"]["toolChoice"], json!({"any": {}}));
        assert_eq!(
            v["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"],
            "object"
        );
    }

    #[test]
    fn converse_answer_becomes_chat_completion() {
        let cases = [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
        ];
        for (stop, finish) in cases {
            let body = json!({"output": {"message": {"role": "assistant", "content": [
                {"text": "Hi"}, {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}]}},
                "stopReason": stop, "usage": {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}});
            let out = converse_to_chat(body.to_string().as_bytes(), "m", "chatcmpl-1").expect("ok");
            let v: Value = serde_json::from_slice(&out).expect("json");
            assert_eq!(v["choices"][0]["finish_reason"], finish);
            assert_eq!(v["choices"][0]["message"]["content"], "Hi");
            assert_eq!(
                v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
                r#"{"a":1}"#
            );
            assert_eq!(v["usage"]["total_tokens"], 8);
        }
    }

    fn stream_bytes() -> Vec<u8> {
        let events = [
            ("messageStart", json!({"role": "assistant"})),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
            ),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "lo"}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 0})),
            ("messageStop", json!({"stopReason": "end_turn"})),
            (
                "metadata",
                json!({"usage": {"inputTokens": 2, "outputTokens": 1, "totalTokens": 3}, "metrics": {"latencyMs": 5}}),
            ),
        ];
        events
            .iter()
            .flat_map(|(n, p)| encode_event(n, p).to_vec())
            .collect()
    }

    fn data_lines(sse: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(sse)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: ").map(str::to_string))
            .collect()
    }

    #[test]
    fn stream_translates_in_any_piece_sizes() {
        let bytes = stream_bytes();
        for piece in [1, 5, bytes.len()] {
            let mut t = StreamTranslator::new("c1", "m", true);
            let mut out = Vec::new();
            for chunk in bytes.chunks(piece) {
                out.extend(t.push(chunk));
            }
            out.extend(t.finish());
            let lines = data_lines(&out);
            assert_eq!(lines.last().map(String::as_str), Some("[DONE]"));
            let chunks: Vec<Value> = lines[..lines.len() - 1]
                .iter()
                .map(|l| serde_json::from_str(l).expect("json"))
                .collect();
            let text: String = chunks
                .iter()
                .filter_map(|c| {
                    c.pointer("/choices/0/delta/content")
                        .and_then(Value::as_str)
                })
                .collect();
            assert_eq!(text, "Hello");
            assert!(chunks
                .iter()
                .any(|c| c.pointer("/choices/0/finish_reason") == Some(&json!("stop"))));
            assert_eq!(
                chunks.last().and_then(|c| c.pointer("/usage/total_tokens")),
                Some(&json!(3))
            );
        }
    }

    #[test]
    fn broken_streams_end_with_an_error_event() {
        let good = stream_bytes();
        let mut crc = good.clone();
        let last = crc.len() - 1;
        crc[last] ^= 1;
        let truncated = good[..good.len() - 3].to_vec();
        let mut exception = good[..40].to_vec();
        exception.truncate(0);
        exception.extend_from_slice(&encode_exception("throttlingException", "slow down"));
        for (name, bytes) in [
            ("crc", crc),
            ("truncated", truncated),
            ("exception", exception),
        ] {
            let mut t = StreamTranslator::new("c1", "m", false);
            let mut out = t.push(&bytes);
            out.extend(t.finish());
            let lines = data_lines(&out);
            let last: Value = serde_json::from_str(lines.last().expect("an event")).expect("json");
            assert!(last.get("error").is_some(), "{name}: {last}");
            assert!(!lines.iter().any(|l| l == "[DONE]"), "{name}");
            assert!(t.is_finished());
        }
    }
}
