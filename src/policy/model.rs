//! Policy file model: the YAML a security team writes, as plain data.
//!
//! These types only describe the file (serde + schemars). They are never evaluated:
//! `compile` turns them into engine types. Every struct rejects unknown keys so that a
//! typo (`acton: block`) is an error instead of a silently ignored rule. The doc comments
//! become the descriptions in `policies/schema.json`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// One policy file: an id, optional base policy, bindings and the rules of each stage.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Unique policy id. The policy with id `default` applies where no binding names another.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Id of a base policy whose rules this one inherits (add, override or disable by rule id).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub extends: Option<Spanned<String>>,
    /// Free text shown in tooling.
    #[serde(default)]
    pub description: Option<String>,
    /// Where this policy applies. A tenant's explicit `policy:` in the gateway config wins
    /// over bindings; see policies/README.md for the precedence.
    #[serde(default)]
    pub bindings: Vec<BindingDto>,
    /// How a block is returned to the caller: `refusal` (a normal assistant message with
    /// `finish_reason: content_filter`, the default) or `error` (HTTP 400 in the provider's
    /// error shape). Inherited from the base policy when absent.
    #[serde(default)]
    pub on_block: Option<BlockStyle>,
    /// Default block message for rules that have none. Inherited when absent.
    #[serde(default)]
    pub message: Option<MessageDto>,
    /// Where the grounding and relevance detectors find the retrieved context of a
    /// request. Inherited from the base policy when absent; default
    /// `{sources: [extension, tags]}`. Bind the policy to routes to set it per route.
    #[serde(default)]
    pub grounding: Option<GroundingDto>,
    /// Rules checked on the request before it is forwarded.
    #[serde(default)]
    #[schemars(with = "Vec<RuleDto>")]
    pub input: Vec<Spanned<RuleDto>>,
    /// Rules checked on the model's answer.
    #[serde(default)]
    #[schemars(with = "Vec<RuleDto>")]
    pub output: Vec<Spanned<RuleDto>>,
}

/// Grounding settings of a policy.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroundingDto {
    /// Context sources, any of `extension`, `tool`, `tags`; absent: `[extension, tags]`.
    /// An empty list turns grounding and relevance off (no context, no question).
    #[serde(default)]
    pub sources: Option<Vec<ContextSource>>,
}

/// One place a request can carry retrieved context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContextSource {
    /// The `haechi` extension field `{"context": [...], "query": "..."}` (stripped before
    /// forwarding); on Bedrock, `guardContent` qualified `grounding_source` / `query`.
    Extension,
    /// Tool results: OpenAI `role: tool` messages and `function_call_output` items,
    /// Anthropic `tool_result` blocks.
    Tool,
    /// Text inside `<context>`, `<document>` or `<search_results>` tags in system and
    /// user messages.
    Tags,
}

/// Which requests a policy applies to. Every listed dimension must match; an absent or
/// empty list matches anything. Entries may end in `*` to match a prefix.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingDto {
    /// Tenant ids, e.g. `["acme"]`.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Request paths, e.g. `["/v1/chat/completions", "/v1/messages"]` or `["/v1/*"]`.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Requested model names, e.g. `["gpt-4o*"]`.
    #[serde(default)]
    pub models: Vec<String>,
}

/// How a blocked request or answer is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockStyle {
    /// An assistant message carrying the policy message, `finish_reason: content_filter`
    /// (Anthropic: `stop_reason: refusal`).
    Refusal,
    /// HTTP 400 with the provider's error body carrying the policy message.
    Error,
}

/// A message in English and Korean. The language is chosen per request (Korean when the
/// text contains Hangul).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageDto {
    /// English text.
    #[serde(default)]
    pub en: Option<String>,
    /// Korean text.
    #[serde(default)]
    pub ko: Option<String>,
}

/// One rule: a detector, its parameters, when it fires and what happens then.
///
/// A rule in a child policy whose `id` matches an inherited rule overrides it: with a
/// `detector` the inherited rule is replaced whole; without one, only the keys given are
/// changed (e.g. `{id: toxicity, mode: enforce}`). `enabled: false` switches it off.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDto {
    /// Rule id, unique within a stage; reported in decisions, headers and audit records.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Detector that runs this rule.
    #[serde(default)]
    #[schemars(with = "Option<DetectorKind>")]
    pub detector: Option<Spanned<String>>,
    /// `false` switches the rule off (typically an inherited one). Default `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Free text shown in tooling.
    #[serde(default)]
    pub description: Option<String>,
    /// What to do when the rule fires.
    #[serde(default)]
    pub action: Option<Action>,
    /// `enforce` (default) or `shadow` (evaluate and report as `would_*`, never act).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Minimum score in `[0, 1]` for a finding to count. Exclusive with `strength`.
    #[serde(default)]
    #[schemars(with = "Option<f64>", range(min = 0.0, max = 1.0))]
    pub threshold: Option<Spanned<f64>>,
    /// Bedrock-style filter strength: `high` filters most (threshold 0.5), `medium` 0.7,
    /// `low` filters only high-confidence hits (0.9). Exclusive with `threshold`.
    #[serde(default)]
    pub strength: Option<Strength>,
    /// Message returned when this rule blocks.
    #[serde(default)]
    pub message: Option<MessageDto>,
    /// Notice appended to the answer when this rule annotates (action `annotate`);
    /// absent: a built-in notice in English and Korean.
    #[serde(default)]
    pub notice: Option<MessageDto>,
    /// Output rules on streamed answers: `buffer` (hold the answer until it is checked)
    /// or `annotate` (release it as it comes; the verdict goes in the audit record and a
    /// final event). Default: `buffer` for `block`, `annotate` for other actions.
    #[serde(default)]
    pub stream: Option<StreamMode>,

    // --- detector parameters (each applies to the detectors named in its doc) ---
    /// `pii`, `secret`: entity labels to look for (e.g. `EMAIL`, `KR_RRN`); absent: all.
    #[serde(default)]
    pub entities: Option<Vec<String>>,
    /// `word`: words and phrases to deny (case-insensitive; whole words in spaced scripts,
    /// substrings in Korean).
    #[serde(default)]
    pub words: Option<Vec<String>>,
    /// `word`: also use the managed profanity list (English and Korean).
    #[serde(default)]
    pub profanity: Option<bool>,
    /// `word`: phrases that are never findings even when they contain a denied word.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// `word`: label of findings from `words` (default `DENIED_WORD`).
    #[serde(default)]
    pub label: Option<String>,
    /// `regex`: patterns (Rust `regex` syntax), each with the label of its findings.
    #[serde(default)]
    #[schemars(with = "Option<Vec<PatternDto>>")]
    pub patterns: Option<Vec<Spanned<PatternDto>>>,
    /// `topic`: short name of the denied topic.
    #[serde(default)]
    pub name: Option<String>,
    /// `topic`: one or two sentences defining the topic.
    #[serde(default)]
    pub definition: Option<String>,
    /// `topic`: example prompts that belong to the topic.
    #[serde(default)]
    pub examples: Option<Vec<String>>,
    /// `toxicity`: categories to consider (e.g. `INSULTS`, `HATE`); absent: all.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// `pii`: custom entities: `{label, pattern, validator?, context?, score?}` (a regex,
    /// an optional named validator such as `luhn`, cue words that raise the score).
    #[serde(default)]
    pub custom: Option<Vec<crate::detect::pii::CustomEntity>>,
    /// `llm_judge`: instruction given to the judge model (`api: chat`). With `{text}` in
    /// it, it is a template sent as the user message (`{text}`: the text under check,
    /// `{context}`: the request's retrieved context); without, it is sent as the system
    /// message and the text as the user message. Absent: the text alone (Llama Guard
    /// brings its own template).
    #[serde(default)]
    pub prompt: Option<String>,
    /// `llm_judge`: model name sent to the judge endpoint.
    #[serde(default)]
    pub model: Option<String>,
    /// `llm_judge`: deadline in milliseconds for the whole judge call (default 2000, at
    /// most 60000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `llm_judge`: what happens when the judge fails or misses its deadline: `open`
    /// (allow; the default) or `closed` (treat as a hit: the rule's action applies).
    #[serde(default)]
    pub fail: Option<FailMode>,
    /// `llm_judge`: base URL of the judge, OpenAI convention (e.g.
    /// `http://vllm:8000/v1`); `/chat/completions` or `/moderations` is appended.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `llm_judge`: environment variable holding the judge's API key (sent as
    /// `Authorization: Bearer`), read at call time; absent: no key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `llm_judge`: `chat` (an OpenAI-compatible chat model such as Llama Guard; the
    /// default) or `moderation` (an OpenAI `/v1/moderations`-shaped API).
    #[serde(default)]
    pub api: Option<JudgeApi>,
    /// `llm_judge` with `api: chat`: how the answer is read. `first_word` (default):
    /// `unsafe` / `safe` as the first word, categories (e.g. `S1,S10`) on the next line,
    /// as Llama Guard answers. `{json: <field>}`: the answer is a JSON object and the
    /// field (a name or a JSON pointer like `/verdict/flagged`) holds a boolean, a
    /// score in `[0, 1]` or `safe` / `unsafe`.
    #[serde(default)]
    pub verdict: Option<VerdictFormat>,
}

/// Which API shape a judge endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JudgeApi {
    /// `POST {endpoint}/chat/completions`; the verdict is read from the answer.
    #[default]
    Chat,
    /// `POST {endpoint}/moderations`; the verdict is `results[0].flagged`.
    Moderation,
}

/// How a chat judge's answer is turned into a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerdictFormat {
    /// First word `unsafe` or `safe` (case-insensitive); the next line lists categories.
    #[default]
    FirstWord,
    /// A JSON answer; the named field (or JSON pointer) holds the verdict.
    Json(String),
}

/// One custom regular expression.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatternDto {
    /// Label of findings of this pattern, e.g. `ORDER_ID`.
    pub label: String,
    /// Pattern in Rust `regex` syntax (no look-around, no backreferences; linear time).
    pub pattern: String,
    /// Match ignoring case.
    #[serde(default)]
    pub case_insensitive: bool,
}

/// The detectors a rule can name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Personal data (EMAIL, PHONE, KR_RRN, ...).
    Pii,
    /// Credentials and keys (AWS_ACCESS_KEY, private keys, ...).
    Secret,
    /// Deny lists of words and phrases, with a managed profanity list.
    Word,
    /// Custom regular expressions.
    Regex,
    /// Denied topics described by a definition and examples.
    Topic,
    /// Insults, hate, harassment, sexual and violent content.
    Toxicity,
    /// Prompt injection and jailbreak attempts.
    PromptAttack,
    /// Answer not supported by the request's retrieved context.
    Grounding,
    /// Answer not relevant to the user's question.
    Relevance,
    /// A remote model judging the text against `prompt`.
    LlmJudge,
}

impl DetectorKind {
    /// Every kind, in declaration order.
    pub const ALL: [DetectorKind; 10] = [
        Self::Pii,
        Self::Secret,
        Self::Word,
        Self::Regex,
        Self::Topic,
        Self::Toxicity,
        Self::PromptAttack,
        Self::Grounding,
        Self::Relevance,
        Self::LlmJudge,
    ];

    /// The name used in policy files, findings and `scan` scores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pii => "pii",
            Self::Secret => "secret",
            Self::Word => "word",
            Self::Regex => "regex",
            Self::Topic => "topic",
            Self::Toxicity => "toxicity",
            Self::PromptAttack => "prompt_attack",
            Self::Grounding => "grounding",
            Self::Relevance => "relevance",
            Self::LlmJudge => "llm_judge",
        }
    }

    /// Parses a policy-file name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Relative cost, used to run cheap rules first (0 = microseconds per KB).
    pub fn cost(self) -> u8 {
        match self {
            Self::Word | Self::Regex => 0,
            Self::Pii | Self::Secret => 1,
            Self::Topic | Self::Toxicity | Self::PromptAttack => 2,
            Self::Grounding | Self::Relevance => 3,
            Self::LlmJudge => 4,
        }
    }

    /// Whether findings are spans of the text that can be rewritten (mask, pseudonymize,
    /// redact, hash). Classifiers judge the whole text and can only block or warn.
    pub fn has_spans(self) -> bool {
        matches!(self, Self::Pii | Self::Secret | Self::Word | Self::Regex)
    }

    /// Whether the detector judges the whole text (classifiers): when it reports no
    /// finding but its score crosses the threshold, the whole text is the finding.
    /// Grounding and relevance report their own sentence findings instead.
    pub fn judges_whole_text(self) -> bool {
        matches!(
            self,
            Self::Toxicity | Self::PromptAttack | Self::Topic | Self::LlmJudge
        )
    }
}

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse the request or answer with the rule's message.
    Block,
    /// Replace each finding with its label in braces, e.g. `{EMAIL}`.
    Mask,
    /// Replace each finding with a numbered placeholder such as `<EMAIL_1>` (same value,
    /// same placeholder within a request) and restore the originals in the answer.
    Pseudonymize,
    /// Remove each finding.
    Redact,
    /// Replace each finding with `<LABEL:8 hex>`, an HMAC-SHA256 keyed per tenant.
    Hash,
    /// Allow and record.
    Warn,
    /// Allow, record (as `warn`) and append the rule's `notice` to the answer
    /// (output rules).
    Annotate,
    /// Only record the detector's score (useful in `scan`).
    None,
}

impl Action {
    /// Name as written in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Mask => "mask",
            Self::Pseudonymize => "pseudonymize",
            Self::Redact => "redact",
            Self::Hash => "hash",
            Self::Warn => "warn",
            Self::Annotate => "annotate",
            Self::None => "none",
        }
    }

    /// Whether the action rewrites the text.
    pub fn rewrites(self) -> bool {
        matches!(
            self,
            Self::Mask | Self::Pseudonymize | Self::Redact | Self::Hash
        )
    }
}

/// How an output rule treats a streamed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamMode {
    /// Hold the answer until the rule has checked it (needed to block or rewrite).
    Buffer,
    /// Release the answer as it comes; the verdict goes in the audit record and in a final
    /// event the client can read.
    Annotate,
}

impl StreamMode {
    /// The mode a rule gets when it names none: a block must hold the answer.
    pub fn default_for(action: Action) -> Self {
        if action == Action::Block || action.rewrites() {
            Self::Buffer
        } else {
            Self::Annotate
        }
    }
}

/// Whether a rule acts or is only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Act on hits.
    #[default]
    Enforce,
    /// Report hits as `would_<action>`; never act.
    Shadow,
}

/// Bedrock-style strength, mapped to a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// Threshold 0.9: only high-confidence hits.
    Low,
    /// Threshold 0.7.
    Medium,
    /// Threshold 0.5: filters most.
    High,
}

impl Strength {
    /// The score threshold this strength stands for.
    pub fn threshold(self) -> f32 {
        match self {
            Self::Low => 0.9,
            Self::Medium => 0.7,
            Self::High => 0.5,
        }
    }
}

/// Behaviour of a remote check when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Treat a failure as no hit.
    #[default]
    Open,
    /// Treat a failure as a hit.
    Closed,
}

/// Test cases that live beside a policy (`<name>.tests.yaml`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Policy under test; default: the `<name>` of `<name>.tests.yaml`.
    #[serde(default)]
    pub policy: Option<String>,
    /// The cases.
    pub cases: Vec<TestCase>,
}

/// One expected decision.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Name shown in the report; default: the case number.
    #[serde(default)]
    pub name: Option<String>,
    /// Text to evaluate.
    pub text: String,
    /// Stage: `input` (default) or `output`.
    #[serde(default)]
    pub stage: Option<String>,
    /// Retrieved context (for grounding).
    #[serde(default)]
    pub context: Option<Vec<String>>,
    /// User question (for relevance).
    #[serde(default)]
    pub query: Option<String>,
    /// Expected final action: `allow`, `warn`, `anonymize` or `block`.
    pub expect: String,
    /// Expected labels of enforced findings (as a set); absent: not checked.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Expected rewritten text; absent: not checked.
    #[serde(default)]
    pub rewritten: Option<String>,
}
