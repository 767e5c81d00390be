//! OpenAI API shapes: chat completions, completions, responses, embeddings.

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
    messages: Option<Vec<ChatMessage<'a>>>,
    #[serde(default, borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
    #[serde(default, borrow)]
    instructions: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default, borrow)]
    haechi: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChatMessage<'a> {
    #[serde(default)]
    role: Option<String>,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ContentPart<'a> {
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    /// Responses API: `function_call_output` items carry their text here.
    #[serde(default, borrow)]
    output: Option<&'a RawValue>,
    #[serde(default)]
    role: Option<String>,
    /// Responses API message items nest their parts.
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    function: Option<ToolFunction>,
}

#[derive(Deserialize)]
struct ToolFunction {
    #[serde(default)]
    name: Option<String>,
}

/// Decodes an OpenAI-shaped request body.
pub fn decode(operation: Operation, body: &[u8]) -> Result<Exchange, DecodeError> {
    let req: Request = serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
    let mut messages = Vec::new();
    match operation {
        Operation::ChatCompletions => {
            let list = req
                .messages
                .ok_or_else(|| DecodeError::new("missing required field `messages`"))?;
            for m in list {
                let role = role_from(m.role.as_deref().unwrap_or("user"));
                let parts = match m.content {
                    Some(raw) => content_parts(body, raw)?,
                    None => Vec::new(),
                };
                messages.push(Message { role, parts });
            }
        }
        Operation::Completions => {
            let raw = req
                .prompt
                .ok_or_else(|| DecodeError::new("missing required field `prompt`"))?;
            messages.push(Message {
                role: Role::User,
                parts: string_or_strings(body, raw)?,
            });
        }
        Operation::Embeddings => {
            let raw = req
                .input
                .ok_or_else(|| DecodeError::new("missing required field `input`"))?;
            messages.push(Message {
                role: Role::User,
                parts: string_or_strings(body, raw)?,
            });
        }
        Operation::Responses => {
            if let Some(raw) = req.instructions {
                if let Some(part) = text_part(body, raw)? {
                    messages.push(Message {
                        role: Role::System,
                        parts: vec![part],
                    });
                }
            }
            if let Some(raw) = req.input {
                responses_input(body, raw, &mut messages)?;
            }
        }
        _ => return Err(DecodeError::new("not an OpenAI operation")),
    }
    let tools = req
        .tools
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.function.and_then(|f| f.name).or(t.name))
        .collect();
    let (haechi, extension) = HaechiExtension::parse(body, req.haechi)?;
    Ok(Exchange {
        provider: Provider::OpenAi,
        operation,
        model: req.model,
        stream: req.stream.unwrap_or(false),
        messages,
        tools,
        max_tokens: req
            .max_completion_tokens
            .or(req.max_tokens)
            .or(req.max_output_tokens),
        context: haechi.context_texts(),
        query: haechi.query,
        extension,
    })
}

/// `content` of a chat message: a string, or a list of parts with `text`.
fn content_parts(body: &[u8], raw: &RawValue) -> Result<Vec<TextPart>, DecodeError> {
    string_or_list(body, raw, true, |p: ContentPart, out| {
        for field in [p.text, p.output].into_iter().flatten() {
            out.extend(text_part(body, field)?);
        }
        Ok(())
    })
}

/// A string or an array of strings (token arrays are skipped: they carry no text).
fn string_or_strings(body: &[u8], raw: &RawValue) -> Result<Vec<TextPart>, DecodeError> {
    string_or_list(body, raw, false, |item: &RawValue, out| {
        out.extend(text_part(body, item)?);
        Ok(())
    })
}

/// Responses API `input`: a string, or a list of message / tool-output items.
fn responses_input(
    body: &[u8],
    raw: &RawValue,
    messages: &mut Vec<Message>,
) -> Result<(), DecodeError> {
    if let Some(part) = text_part(body, raw)? {
        messages.push(Message {
            role: Role::User,
            parts: vec![part],
        });
        return Ok(());
    }
    if !raw.get().starts_with('[') {
        return Ok(());
    }
    let items: Vec<ContentPart> = objects_only(raw)?;
    for item in items {
        let role = match item.kind.as_deref() {
            Some("function_call_output") => Role::Tool,
            _ => role_from(item.role.as_deref().unwrap_or("user")),
        };
        let mut parts = Vec::new();
        if let Some(content) = item.content {
            parts.extend(content_parts(body, content)?);
        }
        for field in [item.text, item.output].into_iter().flatten() {
            if let Some(t) = text_part(body, field)? {
                parts.push(t);
            }
        }
        messages.push(Message { role, parts });
    }
    Ok(())
}

/// An OpenAI-shaped error body.
pub fn error_body(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
    serde_json::json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(ex: &Exchange) -> Vec<(Role, String)> {
        ex.texts().map(|(r, p)| (r, p.text.clone())).collect()
    }

    #[test]
    fn chat_strings_and_parts_with_spans() {
        let body = br#"{"model":"gpt-4o-mini","stream":true,"messages":[
            {"role":"system","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"hi \u00e9 \"x\""},{"type":"image_url","image_url":{"url":"data:"}}]},
            {"role":"assistant","content":null,"tool_calls":[]},
            {"role":"tool","tool_call_id":"1","content":"42"}],
            "max_tokens":5,"tools":[{"type":"function","function":{"name":"calc"}}],
            "unknown_field":{"kept":true}}"#;
        let ex = decode(Operation::ChatCompletions, body).expect("decodes");
        assert!(ex.stream);
        assert_eq!(ex.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(ex.max_tokens, Some(5));
        assert_eq!(ex.tools, vec!["calc".to_string()]);
        assert_eq!(
            texts(&ex),
            vec![
                (Role::System, "Be brief.".into()),
                (Role::User, "hi é \"x\"".into()),
                (Role::Tool, "42".into()),
            ]
        );
        for (_, part) in ex.texts() {
            let literal = &body[part.span.clone()];
            let back: String = serde_json::from_slice(literal).expect("span is a literal");
            assert_eq!(back, part.text);
        }
    }

    #[test]
    fn responses_and_embeddings_and_completions() {
        let ex = decode(
            Operation::Responses,
            br#"{"model":"m","instructions":"sys","input":[{"role":"user","content":[{"type":"input_text","text":"q"}]},{"type":"function_call_output","call_id":"c","output":"out"}]}"#,
        )
        .expect("responses");
        assert_eq!(
            texts(&ex),
            vec![
                (Role::System, "sys".into()),
                (Role::User, "q".into()),
                (Role::Tool, "out".into())
            ]
        );
        let ex = decode(Operation::Responses, br#"{"model":"m","input":"plain"}"#).expect("str");
        assert_eq!(texts(&ex), vec![(Role::User, "plain".into())]);
        let ex = decode(
            Operation::Embeddings,
            br#"{"model":"e","input":["a","b",[1,2]]}"#,
        )
        .expect("emb");
        assert_eq!(ex.messages[0].parts.len(), 2);
        let ex = decode(Operation::Completions, br#"{"model":"c","prompt":"p"}"#).expect("cmp");
        assert_eq!(texts(&ex), vec![(Role::User, "p".into())]);
    }

    #[test]
    fn haechi_extension_is_read() {
        let ex = decode(
            Operation::ChatCompletions,
            br#"{"model":"m","messages":[],"haechi":{"context":["doc1","doc2"],"query":"q?"}}"#,
        )
        .expect("decodes");
        assert_eq!(ex.context, vec!["doc1".to_string(), "doc2".to_string()]);
        assert_eq!(ex.query.as_deref(), Some("q?"));
        let body = br#"{"model":"m","messages":[],"haechi":{"context":"one"}}"#;
        let ex = decode(Operation::ChatCompletions, body).expect("decodes");
        let stripped =
            super::super::remove_member(body, ex.extension.expect("span")).expect("strip");
        assert_eq!(stripped, br#"{"model":"m","messages":[]}"#.to_vec());
        let err = decode(
            Operation::ChatCompletions,
            br#"{"messages":[],"haechi":{"context":3}}"#,
        );
        assert!(err.is_ok(), "a non-text context is ignored, not fatal");
        let err = decode(
            Operation::ChatCompletions,
            br#"{"messages":[],"haechi":[1]}"#,
        )
        .expect_err("bad extension");
        assert!(err.message.contains("haechi"), "{}", err.message);
    }

    #[test]
    fn errors_say_where() {
        let err = decode(
            Operation::ChatCompletions,
            b"{\"model\": \"m\",\n \"messages\": [}",
        )
        .expect_err("malformed");
        assert!(err.message.contains("invalid JSON"), "{}", err.message);
        assert!(err.message.contains("line 2"), "{}", err.message);
        let err = decode(Operation::ChatCompletions, br#"{"model":"m"}"#).expect_err("missing");
        assert!(err.message.contains("messages"), "{}", err.message);
        let err = decode(Operation::ChatCompletions, br#"{"messages": 3}"#).expect_err("shape");
        assert!(
            err.message.contains("unexpected request shape"),
            "{}",
            err.message
        );
    }
}
