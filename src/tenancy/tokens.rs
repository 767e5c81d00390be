//! Token estimates for admission: how many tokens a request will cost before the
//! upstream says so.
//!
//! - OpenAI models are counted with their real tokenizer, embedded by `tiktoken-rs`
//!   (works offline): `o200k_base` for gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1/o3/o4 and
//!   gpt-oss; `cl100k_base` for gpt-4, gpt-3.5 and the text-embedding models.
//!   Special-token text in prompts is counted as ordinary text (never interpreted).
//! - Claude, Bedrock and unknown models have no offline tokenizer. Their estimate is
//!   `ceil(1.2 * (ascii_bytes / 4 + non_ascii_chars))`: about four ASCII characters per
//!   token (the usual English rate) and one token per non-ASCII character (Hangul,
//!   CJK: modern BPEs spend about one token per syllable or more), with a 20% safety
//!   margin. It is an over-estimate for English and roughly right for Korean; the
//!   settlement with the upstream's reported usage corrects it either way.
//! - Each message adds 3 tokens of framing and each request 3 more (OpenAI's published
//!   rule for chat models). Tool schemas are not in the [`Exchange`] and are not
//!   counted; settlement charges them.
//! - The answer is estimated as the request's `max_tokens`, else a configured default
//!   (0 for embeddings).

use crate::dialect::{Exchange, Operation};

/// Which counting method a model gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
    /// The documented character-class estimate (no offline tokenizer for the model).
    Estimate,
}

/// Model-name prefixes counted with `o200k_base`; checked before the cl100k ones so
/// `gpt-4o` is not taken for `gpt-4`.
const O200K_PREFIXES: &[&str] = &[
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "o1",
    "o3",
    "o4",
    "gpt-oss",
    "codex-",
];
const CL100K_PREFIXES: &[&str] = &[
    "gpt-4",
    "gpt-3.5",
    "gpt-35",
    "text-embedding-3",
    "text-embedding-ada-002",
];

/// The encoding of a model name (`ft:` fine-tune names and `openai/`-style provider
/// prefixes are looked through).
pub fn encoding_for(model: &str) -> Encoding {
    let mut m = model.trim();
    if let Some(rest) = m.strip_prefix("ft:") {
        m = rest.split(':').next().unwrap_or(rest);
    }
    if let Some((_, rest)) = m.rsplit_once('/') {
        m = rest;
    }
    let m = m.to_ascii_lowercase();
    if O200K_PREFIXES.iter().any(|p| m.starts_with(p)) {
        Encoding::O200kBase
    } else if CL100K_PREFIXES.iter().any(|p| m.starts_with(p)) {
        Encoding::Cl100kBase
    } else {
        Encoding::Estimate
    }
}

/// Loads the embedded tokenizer tables (about 0.1–0.3 s on first use); call at startup
/// so the first request does not pay for it.
pub fn warm_up() {
    let _ = tiktoken_rs::o200k_base_singleton();
    let _ = tiktoken_rs::cl100k_base_singleton();
}

/// Tokens of one text under an encoding.
pub fn count_text(encoding: Encoding, text: &str) -> u64 {
    match encoding {
        Encoding::O200kBase => tiktoken_rs::o200k_base_singleton().count_ordinary(text) as u64,
        Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton().count_ordinary(text) as u64,
        Encoding::Estimate => char_class_estimate(text),
    }
}

/// `ceil(1.2 * (ascii_bytes / 4 + non_ascii_chars))`, in integer arithmetic.
pub fn char_class_estimate(text: &str) -> u64 {
    let ascii = text.bytes().filter(u8::is_ascii).count() as u64;
    // Non-ASCII chars = UTF-8 lead bytes >= 0xC0 (continuation bytes are 0x80..0xBF).
    let other = text.bytes().filter(|&b| b >= 0xC0).count() as u64;
    // 1.2 * (a/4 + o) = (3a + 12o) / 10
    (3 * ascii + 12 * other).div_ceil(10)
}

/// Framing tokens per message and per request (OpenAI's rule for chat models).
pub const TOKENS_PER_MESSAGE: u64 = 3;
pub const TOKENS_PER_REQUEST: u64 = 3;

/// Bytes of prompt text counted with the real tokenizer per request by [`estimate`];
/// text beyond it gets the character-class estimate. The BPE costs about 30 µs per KB
/// of English and 95 µs per KB of Korean (`cargo bench --bench quota`, tokens_1kb), so
/// this caps the work at about 1–3 ms for a huge prompt; settlement corrects the rest.
pub const DEFAULT_EXACT_BYTES: usize = 32 * 1024;

/// Estimated tokens of a prompt: every text part of every message, plus framing. The
/// first `exact_bytes` of text are counted with the model's tokenizer.
pub fn prompt_tokens(exchange: &Exchange, exact_bytes: usize) -> u64 {
    let enc = encoding_for(exchange.model.as_deref().unwrap_or(""));
    let mut budget = exact_bytes;
    let text: u64 = exchange
        .texts()
        .map(|(_, p)| {
            if enc == Encoding::Estimate || p.text.len() > budget {
                budget = 0;
                char_class_estimate(&p.text)
            } else {
                budget -= p.text.len();
                count_text(enc, &p.text)
            }
        })
        .sum();
    let framing = match exchange.operation {
        Operation::Embeddings => 0,
        _ => TOKENS_PER_REQUEST + TOKENS_PER_MESSAGE * exchange.messages.len() as u64,
    };
    text + framing
}

/// A request's token estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEstimate {
    pub prompt: u64,
    pub answer: u64,
}

impl TokenEstimate {
    /// Prompt + answer: what admission reserves.
    pub fn total(&self) -> u64 {
        self.prompt.saturating_add(self.answer)
    }
}

/// Estimates a request: prompt tokens plus `max_tokens`, else `default_answer_tokens`
/// (0 for embeddings, which have no answer tokens).
pub fn estimate(exchange: &Exchange, default_answer_tokens: u64) -> TokenEstimate {
    let answer = match exchange.operation {
        Operation::Embeddings => 0,
        _ => exchange.max_tokens.unwrap_or(default_answer_tokens),
    };
    TokenEstimate {
        prompt: prompt_tokens(exchange, DEFAULT_EXACT_BYTES),
        answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{Message, Provider, Role, TextPart};

    #[test]
    fn model_families() {
        let cases = [
            ("gpt-4o-mini", Encoding::O200kBase),
            ("gpt-4o-2024-08-06", Encoding::O200kBase),
            ("gpt-4.1-nano", Encoding::O200kBase),
            ("gpt-5", Encoding::O200kBase),
            ("o3-mini", Encoding::O200kBase),
            ("openai/gpt-4o", Encoding::O200kBase),
            ("ft:gpt-4o-mini:acme::abc", Encoding::O200kBase),
            ("gpt-4", Encoding::Cl100kBase),
            ("gpt-4-turbo", Encoding::Cl100kBase),
            ("gpt-3.5-turbo", Encoding::Cl100kBase),
            ("text-embedding-3-small", Encoding::Cl100kBase),
            ("claude-sonnet-4-5", Encoding::Estimate),
            ("anthropic.claude-3-haiku-20240307-v1:0", Encoding::Estimate),
            ("llama3", Encoding::Estimate),
        ];
        for (m, want) in cases {
            assert_eq!(encoding_for(m), want, "{m}");
        }
    }

    #[test]
    fn real_tokenizer_counts() {
        // Reference counts from OpenAI's tiktoken.
        assert_eq!(count_text(Encoding::Cl100kBase, "hello world"), 2);
        assert_eq!(count_text(Encoding::O200kBase, "hello world"), 2);
        assert_eq!(count_text(Encoding::O200kBase, ""), 0);
        // Special-token text is ordinary text, not one special token.
        assert!(count_text(Encoding::O200kBase, "<|endoftext|>") > 1);
    }

    #[test]
    fn estimate_is_char_class_based() {
        let cases = [
            ("", 0),
            ("abcd", 2),       // ceil(1.2 * 1) = 2
            ("abcdefghij", 3), // ceil(1.2 * 2.5)
            ("안녕하세요", 6), // ceil(1.2 * 5)
        ];
        for (t, want) in cases {
            assert_eq!(char_class_estimate(t), want, "{t}");
        }
    }

    fn exchange(model: &str, texts: &[&str], max_tokens: Option<u64>, op: Operation) -> Exchange {
        Exchange {
            provider: Provider::OpenAi,
            operation: op,
            model: Some(model.into()),
            stream: false,
            messages: texts
                .iter()
                .map(|t| Message {
                    role: Role::User,
                    parts: vec![TextPart {
                        text: (*t).into(),
                        span: 0..0,
                    }],
                })
                .collect(),
            tools: vec![],
            max_tokens,
            context: vec![],
            query: None,
            extension: None,
        }
    }

    #[test]
    fn request_estimates() {
        let e = exchange(
            "gpt-4o",
            &["hello world", "hello world"],
            Some(50),
            Operation::ChatCompletions,
        );
        assert_eq!(
            estimate(&e, 1000),
            TokenEstimate {
                prompt: 2 + 2 + 3 * 2 + 3,
                answer: 50
            }
        );
        let e = exchange("gpt-4o", &["hello world"], None, Operation::ChatCompletions);
        assert_eq!(estimate(&e, 1000).total(), 2 + 3 + 3 + 1000);
        let e = exchange(
            "text-embedding-3-small",
            &["hello world"],
            None,
            Operation::Embeddings,
        );
        assert_eq!(
            estimate(&e, 1000),
            TokenEstimate {
                prompt: 2,
                answer: 0
            }
        );
    }

    #[test]
    fn exact_budget_falls_back_to_estimate() {
        let long = "hello world ".repeat(100); // 1200 bytes
        let e = exchange("gpt-4o", &[&long, &long], None, Operation::ChatCompletions);
        let exact = prompt_tokens(&e, 10_000);
        assert_eq!(exact, 2 * count_text(Encoding::O200kBase, &long) + 9);
        let capped = prompt_tokens(&e, 1500);
        let want = count_text(Encoding::O200kBase, &long) + char_class_estimate(&long) + 9;
        assert_eq!(capped, want);
    }

    #[test]
    fn korean_estimate_is_not_below_o200k() {
        let text = "안녕하세요, 저는 서울에 사는 김민수입니다. 내일 회의 일정을 알려주세요.";
        let real = count_text(Encoding::O200kBase, text);
        let est = char_class_estimate(text);
        assert!(est >= real, "estimate {est} < o200k {real}");
    }
}
