//! Small text utilities shared by detectors, the engine and the CLI.

/// Converts a byte offset into a character (Unicode scalar) offset.
///
/// `byte` must lie on a char boundary of `text`; offsets past the end clamp to the
/// number of characters.
pub fn char_offset(text: &str, byte: usize) -> usize {
    let byte = byte.min(text.len());
    text[..byte].chars().count()
}

/// A serde_json error message without the client's values in it.
///
/// serde_json quotes the offending value (`invalid type: string "4111 1111 …", expected a
/// boolean`, ``unknown variant `…` ``, ``integer `…` ``), and these messages go into error
/// bodies and logs, which must never carry prompt text. The first quoted item (the value
/// or key the client sent) becomes `…`; what was expected and the position stay.
pub fn scrub_json_error(e: &serde_json::Error) -> String {
    scrub_quoted(&e.to_string())
}

fn scrub_quoted(message: &str) -> String {
    // Only these messages quote what the client sent; others (`missing field `x``,
    // `duplicate field`) quote our own schema's names.
    let quotes_client = [
        "invalid type",
        "invalid value",
        "unknown variant",
        "unknown field",
    ]
    .iter()
    .any(|p| message.starts_with(p));
    let Some(open) = message.find(['"', '`']).filter(|_| quotes_client) else {
        return message.to_string();
    };
    let quote = &message[open..open + 1];
    let rest = &message[open + 1..];
    // The value ends at the last `<quote>, expected` (our schema's own wording never
    // contains that), else at the last closing quote, else at the end.
    let close = rest
        .rfind(&format!("{quote}, expected"))
        .or_else(|| rest.rfind(quote))
        .unwrap_or(rest.len());
    let mut out = String::with_capacity(message.len().min(256));
    out.push_str(&message[..open + 1]);
    out.push('…');
    out.push_str(&rest[close..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_lose_the_values_but_keep_the_shape() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            stream: Option<bool>,
            source: Option<Kind>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Kind {
            Input,
        }
        let secret = "4111 1111 1111 1111 kim@example.com";
        for body in [
            format!(r#"{{"stream": "{secret}"}}"#),
            r#"{"stream": 4111111111111111}"#.to_string(),
            format!(r#"{{"source": "{secret}"}}"#),
            format!(r#"{{"{secret}": 1}}"#),
            format!(r#"{{"stream": "a", expected `x` {secret}"}}"#),
        ] {
            let e = serde_json::from_str::<S>(&body).expect_err("bad body");
            let scrubbed = scrub_json_error(&e);
            for needle in ["4111", "kim@", "example"] {
                assert!(!scrubbed.contains(needle), "{scrubbed}");
            }
            assert!(scrubbed.contains("at line 1"), "{scrubbed}");
        }
        let e = serde_json::from_str::<S>(r#"{"stream": "x"}"#).expect_err("bad");
        assert!(scrub_json_error(&e).contains("expected a boolean"));
        let e = serde_json::from_str::<S>("{").expect_err("eof");
        assert_eq!(scrub_json_error(&e), e.to_string());
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct M {
            messages: Vec<u8>,
        }
        let e = serde_json::from_str::<M>("{}").expect_err("missing");
        assert!(scrub_json_error(&e).contains("`messages`"));
    }

    #[test]
    fn counts_korean_as_one_char_each() {
        let s = "전화 010";
        assert_eq!(char_offset(s, "전화 ".len()), 3);
        assert_eq!(char_offset(s, s.len()), 6);
        assert_eq!(char_offset(s, 999), 6);
    }
}
