//! Anthropic Messages API shape.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    objects_only, role_from, string_or_list, text_part, DecodeError, Exchange, HaechiExtension,
    Message, Operation, Provider, Role, TextPart,
};

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default, borrow)]
    system: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Vec<ChatMessage<'a>>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default, borrow)]
    haechi: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChatMessage<'a> {
    #[serde(default)]
    role: Option<String>,
    #[serde(borrow)]
    content: &'a RawValue,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    /// `tool_result` blocks: a string or a list of blocks.
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(default)]
    name: Option<String>,
}

/// Decodes an Anthropic-shaped request body.
pub fn decode(operation: Operation, body: &[u8]) -> Result<Exchange, DecodeError> {
    let req: Request = serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
    let mut messages = Vec::new();
    if let Some(raw) = req.system {
        let parts = blocks(body, raw)?;
        if !parts.is_empty() {
            messages.push(Message {
                role: Role::System,
                parts,
            });
        }
    }
    for m in req.messages {
        let role = role_from(m.role.as_deref().unwrap_or("user"));
        message_runs(body, m.content, role, &mut messages)?;
    }
    let (haechi, extension) = HaechiExtension::parse(body, req.haechi)?;
    Ok(Exchange {
        provider: Provider::Anthropic,
        operation,
        model: req.model,
        stream: req.stream.unwrap_or(false),
        messages,
        tools: req
            .tools
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| t.name)
            .collect(),
        max_tokens: req.max_tokens,
        context: haechi.context_texts(),
        query: haechi.query,
        extension,
    })
}

/// A string, or a list of content blocks (text, and tool results nesting either).
fn blocks(body: &[u8], raw: &RawValue) -> Result<Vec<TextPart>, DecodeError> {
    string_or_list(body, raw, true, |block: Block, out| {
        if let Some(text) = block.text {
            out.extend(text_part(body, text)?);
        }
        if block.kind.as_deref() == Some("tool_result") {
            if let Some(content) = block.content {
                out.extend(blocks(body, content)?);
            }
        }
        Ok(())
    })
}

/// One message's content as messages: `tool_result` blocks become [`Role::Tool`]
/// messages (they are tool output, not the user's words), the other blocks keep `role`;
/// order is kept, so a user message [tool_result, text] decodes as Tool then User.
fn message_runs(
    body: &[u8],
    raw: &RawValue,
    role: Role,
    messages: &mut Vec<Message>,
) -> Result<(), DecodeError> {
    if !raw.get().starts_with('[') {
        messages.push(Message {
            role,
            parts: blocks(body, raw)?,
        });
        return Ok(());
    }
    let items: Vec<Block> = objects_only(raw)?;
    let mut runs: Vec<Message> = Vec::new();
    for block in items {
        let (r, parts) = if block.kind.as_deref() == Some("tool_result") {
            let parts = match block.content {
                Some(content) => blocks(body, content)?,
                None => Vec::new(),
            };
            (Role::Tool, parts)
        } else {
            let parts = match block.text {
                Some(text) => text_part(body, text)?.into_iter().collect(),
                None => Vec::new(),
            };
            (role, parts)
        };
        match runs.last_mut() {
            Some(last) if last.role == r => last.parts.extend(parts),
            _ => runs.push(Message { role: r, parts }),
        }
    }
    if runs.is_empty() {
        runs.push(Message {
            role,
            parts: Vec::new(),
        });
    }
    messages.extend(runs);
    Ok(())
}

/// An Anthropic-shaped error body.
pub fn error_body(message: &str, kind: &str) -> Vec<u8> {
    serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_blocks_and_tool_results() {
        let body = br#"{"model":"claude-x","max_tokens":64,"stream":true,
            "system":[{"type":"text","text":"sys"}],
            "messages":[{"role":"user","content":"hello"},
              {"role":"assistant","content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t","name":"calc","input":{}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"42"}]}]}],
            "tools":[{"name":"calc","input_schema":{}}]}"#;
        let ex = decode(Operation::Messages, body).expect("decodes");
        let texts: Vec<(Role, &str)> = ex.texts().map(|(r, p)| (r, p.text.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (Role::System, "sys"),
                (Role::User, "hello"),
                (Role::Assistant, "hi"),
                (Role::Tool, "42")
            ]
        );
        assert!(ex.stream);
        assert_eq!(ex.max_tokens, Some(64));
        assert_eq!(ex.tools, vec!["calc".to_string()]);
    }

    #[test]
    fn missing_messages_is_an_error() {
        let err = decode(Operation::Messages, br#"{"model":"m"}"#).expect_err("missing");
        assert!(err.message.contains("messages"), "{}", err.message);
    }
}
