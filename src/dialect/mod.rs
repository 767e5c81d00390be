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
}

impl Exchange {
    /// All text parts with their roles, in order.
    pub fn texts(&self) -> impl Iterator<Item = (Role, &TextPart)> {
        self.messages
            .iter()
            .flat_map(|m| m.parts.iter().map(move |p| (m.role, p)))
    }
}
