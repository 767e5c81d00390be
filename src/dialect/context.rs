//! Retrieved context for grounding checks, gathered from a decoded request.
//!
//! Pure: reads an [`Exchange`] and returns owned texts; spans and the body are never
//! touched (the `haechi` extension is stripped by the proxy whatever the sources are).
//! Which sources count is a policy setting (`grounding.sources`), so it follows the
//! policy's bindings (route, tenant, model).

use super::{Exchange, Role};

/// Tags whose content counts as retrieved context in system and user messages.
pub const CONTEXT_TAGS: [&str; 3] = ["context", "document", "search_results"];

/// Which parts of a request count as retrieved context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContextSources {
    /// The `haechi` extension field (`{"haechi": {"context": [...], "query": "..."}}`);
    /// on Bedrock, `guardContent` blocks qualified `grounding_source` / `query`.
    pub extension: bool,
    /// Tool results: OpenAI `role: tool` messages and Responses `function_call_output`
    /// items, Anthropic `tool_result` blocks (Bedrock `toolResult` blocks are not split
    /// out of their user message yet).
    pub tool: bool,
    /// Text inside `<context>`, `<document>` or `<search_results>` tags in system and
    /// user messages.
    pub tags: bool,
}

impl Default for ContextSources {
    /// The extension and tagged text: both are explicit retrieval markers. Tool results
    /// are opt-in, since many tools (calculators, actions) are not retrieval.
    fn default() -> Self {
        Self {
            extension: true,
            tool: false,
            tags: true,
        }
    }
}

/// The context and question the grounding and relevance detectors see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grounding {
    pub context: Vec<String>,
    /// The explicit `haechi.query`, else (when there is context) the last user message
    /// with its tagged context removed.
    pub query: Option<String>,
}

/// Gathers the context of `exchange` from the enabled sources, in request order
/// (extension first, then messages as they come).
pub fn gather(exchange: &Exchange, sources: ContextSources) -> Grounding {
    let mut context = Vec::new();
    if sources.extension {
        context.extend(exchange.context.iter().cloned());
    }
    for m in &exchange.messages {
        match m.role {
            Role::Tool if sources.tool => context.extend(
                m.parts
                    .iter()
                    .map(|p| p.text.trim())
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            ),
            Role::System | Role::User if sources.tags => {
                for p in &m.parts {
                    context.extend(tagged(&p.text).into_iter().map(|(_, inner)| inner));
                }
            }
            _ => {}
        }
    }
    let explicit = exchange.query.clone().filter(|_| sources.extension);
    let query = explicit.or_else(|| {
        if context.is_empty() {
            return None;
        }
        let last = exchange
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)?;
        let text = last
            .parts
            .iter()
            .map(|p| {
                if sources.tags {
                    untagged(&p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    });
    Grounding { context, query }
}

/// Byte range of each outermost context tag (open tag to close tag) and its inner text,
/// trimmed. An unclosed tag is not context (the text may merely mention a tag).
fn tagged(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((open_start, open_end, name)) = next_open(text, at) {
        let Some(close) = find_close(text, open_end, name) else {
            at = open_end;
            continue;
        };
        let inner = strip_markup(&text[open_end..close.start]);
        let inner = inner.trim();
        if !inner.is_empty() {
            out.push((open_start..close.end, inner.to_string()));
        }
        at = close.end;
    }
    out
}

/// `text` with every context tag and its content removed.
fn untagged(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, _) in tagged(text) {
        out.push_str(&text[at..range.start]);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The next opening context tag at or after `from`: (start, end, tag name). Tags match
/// ASCII case-insensitively and may carry attributes (`<document index="1">`).
fn next_open(text: &str, from: usize) -> Option<(usize, usize, &'static str)> {
    let bytes = text.as_bytes();
    let mut i = from;
    while let Some(rel) = text.get(i..)?.find('<') {
        let start = i + rel;
        let after = start + 1;
        for name in CONTEXT_TAGS {
            let end = after + name.len();
            let matches = bytes
                .get(after..end)
                .is_some_and(|b| b.eq_ignore_ascii_case(name.as_bytes()));
            if !matches {
                continue;
            }
            match bytes.get(end) {
                Some(b'>') => return Some((start, end + 1, name)),
                Some(b' ' | b'\t' | b'\n' | b'\r') => {
                    let close = text[end..].find('>')? + end;
                    return Some((start, close + 1, name));
                }
                _ => {}
            }
        }
        i = after;
    }
    None
}

/// The range of `</name>` (case-insensitive) at or after `from`.
fn find_close(text: &str, from: usize, name: &str) -> Option<std::ops::Range<usize>> {
    let bytes = text.as_bytes();
    let needle_len = name.len() + 3;
    let mut i = from;
    while let Some(rel) = text.get(i..)?.find("</") {
        let start = i + rel;
        let end = start + needle_len;
        let hit = bytes
            .get(start + 2..end - 1)
            .is_some_and(|b| b.eq_ignore_ascii_case(name.as_bytes()))
            && bytes.get(end - 1) == Some(&b'>');
        if hit {
            return Some(start..end);
        }
        i = start + 2;
    }
    None
}

/// Removes nested markup tags (`<document index="2">`, `</source>`) from extracted text,
/// keeping their content; a `<` that does not start a tag is kept.
fn strip_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let tail = &rest[lt..];
        let is_tag = tail[1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/');
        match (is_tag, tail.find('>')) {
            (true, Some(gt)) if !tail[..gt].contains('\n') => {
                out.push(' ');
                rest = &tail[gt + 1..];
            }
            _ => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{decode, Operation};

    fn all() -> ContextSources {
        ContextSources {
            extension: true,
            tool: true,
            tags: true,
        }
    }

    #[test]
    fn tags_are_extracted_outermost_with_attributes() {
        let cases: [(&str, &[&str], &str); 7] = [
            (
                "<context>Seoul has 9.4 million people.</context>\nHow many live in Seoul?",
                &["Seoul has 9.4 million people."],
                "How many live in Seoul?",
            ),
            (
                "<search_results><document index=\"1\">A</document><document index=\"2\">B</document></search_results> q",
                &["A  B"],
                "q",
            ),
            (
                "<DOCUMENT>upper</Document> and <document source=\"x\">two</document>?",
                &["upper", "two"],
                "and ?",
            ),
            ("no tags here", &[], "no tags here"),
            ("an unclosed <context> tag", &[], "an unclosed <context> tag"),
            ("<contextual>not a tag</contextual>", &[], "<contextual>not a tag</contextual>"),
            (
                "<context>서울의 인구는 약 940만 명이다.</context> 서울 인구는?",
                &["서울의 인구는 약 940만 명이다."],
                "서울 인구는?",
            ),
        ];
        for (text, want, rest) in cases {
            let got: Vec<String> = tagged(text).into_iter().map(|(_, t)| t).collect();
            assert_eq!(got, want, "{text}");
            assert_eq!(untagged(text).trim(), rest, "{text}");
        }
    }

    #[test]
    fn openai_tool_messages_and_tags() {
        let body = r#"{"model":"m","messages":[
            {"role":"system","content":"Answer from <document>Haechi was released in 2024.</document>"},
            {"role":"user","content":"When was Haechi released?"},
            {"role":"assistant","content":null,"tool_calls":[]},
            {"role":"tool","tool_call_id":"1","content":"Haechi runs in-process."}]}"#;
        let ex = decode(Operation::ChatCompletions, body.as_bytes()).expect("decodes");
        let g = gather(&ex, all());
        assert_eq!(
            g.context,
            vec![
                "Haechi was released in 2024.".to_string(),
                "Haechi runs in-process.".to_string()
            ]
        );
        assert_eq!(g.query.as_deref(), Some("When was Haechi released?"));
        let only_tags = gather(&ex, ContextSources::default());
        assert_eq!(
            only_tags.context,
            vec!["Haechi was released in 2024.".to_string()]
        );
        let none = gather(
            &ex,
            ContextSources {
                extension: true,
                tool: false,
                tags: false,
            },
        );
        assert!(none.context.is_empty());
        assert_eq!(none.query, None, "no context, no default question");
    }

    #[test]
    fn anthropic_tool_results_count_as_tool() {
        let body = r#"{"model":"c","max_tokens":9,"messages":[
            {"role":"user","content":"부산의 인구는?"},
            {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"search","input":{}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"부산의 인구는 약 330만 명이다."}]},{"type":"text","text":"위 자료로 답해 줘."}]}]}"#;
        let ex = decode(Operation::Messages, body.as_bytes()).expect("decodes");
        let g = gather(&ex, all());
        assert_eq!(
            g.context,
            vec!["부산의 인구는 약 330만 명이다.".to_string()]
        );
        assert_eq!(g.query.as_deref(), Some("위 자료로 답해 줘."));
        assert!(gather(&ex, ContextSources::default()).context.is_empty());
    }

    #[test]
    fn extension_source_can_be_switched_off() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"q1"}],"haechi":{"context":["doc"],"query":"q2"}}"#;
        let ex = decode(Operation::ChatCompletions, body).expect("decodes");
        let g = gather(&ex, ContextSources::default());
        assert_eq!(
            (g.context, g.query.as_deref()),
            (vec!["doc".to_string()], Some("q2"))
        );
        let off = gather(
            &ex,
            ContextSources {
                extension: false,
                ..all()
            },
        );
        assert!(off.context.is_empty());
        assert_eq!(off.query, None);
    }
}
