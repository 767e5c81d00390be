//! `llm_judge`: a remote model (Llama Guard or any chat model behind an OpenAI-compatible
//! server, or a moderation API) judges a text.
//!
//! Detectors are pure, so this module holds only the pure halves of a judge call: the
//! rule's settings ([`JudgeSpec`]), the request body a judge is sent, and the parsing of
//! its answer into a [`Judgement`]. The proxy (`proxy::judge`) does the I/O before the
//! engine runs, concurrently for every judge rule of a stage, and hands the outcomes to
//! the engine as [`JudgeVerdict`]s (`EvalOptions::judged`), where the rule is then
//! treated like any other: precedence, shadow mode, messages and audit records.

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use crate::policy::model::{FailMode, JudgeApi, RuleDto, VerdictFormat};

/// Deadline when a rule gives no `timeout_ms`.
pub const DEFAULT_DEADLINE_MS: u64 = 2000;
/// Longest deadline a rule may ask for.
pub const MAX_DEADLINE_MS: u64 = 60_000;
/// Most bytes of text sent to a judge; longer texts keep their end (the newest turn).
pub const MAX_JUDGED_BYTES: usize = 32 * 1024;
/// Label of the finding of a judge that said `unsafe` without naming a category.
pub const UNSAFE_LABEL: &str = "UNSAFE";
/// Label of the finding of a fail-closed judge that could not answer.
pub const UNAVAILABLE_LABEL: &str = "JUDGE_UNAVAILABLE";

/// A judge rule that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error(
        "detector `llm_judge` needs `endpoint` (the judge's base URL, e.g. http://vllm:8000/v1)"
    )]
    NoEndpoint,
    #[error("`endpoint` must be an http:// or https:// URL")]
    BadEndpoint,
    #[error("`timeout_ms` must be between 1 and {MAX_DEADLINE_MS}")]
    BadDeadline,
    #[error("`verdict` applies to `api: chat` only (a moderation API answers `flagged`)")]
    VerdictOnModeration,
    #[error("`verdict: {{json: ...}}` needs a field name or JSON pointer")]
    EmptyField,
}

/// One judge rule's settings, checked at policy compile time.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeSpec {
    /// Base URL without a trailing slash.
    pub endpoint: String,
    pub model: Option<String>,
    /// Environment variable with the API key (read at call time, never logged).
    pub api_key_env: Option<String>,
    pub api: JudgeApi,
    pub prompt: Option<String>,
    pub verdict: VerdictFormat,
    pub deadline: Duration,
    pub fail: FailMode,
    /// The rule's explicit `threshold`: the judge's score is compared with it. `None`:
    /// the judge's own flagged / unsafe verdict decides.
    pub threshold: Option<f32>,
}

impl JudgeSpec {
    /// Reads the judge settings of a rule.
    pub fn new(rule: &RuleDto) -> Result<Self, JudgeError> {
        let endpoint = rule
            .endpoint
            .as_deref()
            .ok_or(JudgeError::NoEndpoint)?
            .trim();
        let endpoint = endpoint.trim_end_matches('/');
        let valid = ["http://", "https://"]
            .iter()
            .any(|s| endpoint.len() > s.len() && endpoint.starts_with(s))
            && endpoint.parse::<http::Uri>().is_ok();
        if !valid {
            return Err(JudgeError::BadEndpoint);
        }
        let ms = rule.timeout_ms.unwrap_or(DEFAULT_DEADLINE_MS);
        if ms == 0 || ms > MAX_DEADLINE_MS {
            return Err(JudgeError::BadDeadline);
        }
        let api = rule.api.unwrap_or_default();
        if api == JudgeApi::Moderation && rule.verdict.is_some() {
            return Err(JudgeError::VerdictOnModeration);
        }
        let verdict = rule.verdict.clone().unwrap_or_default();
        if matches!(&verdict, VerdictFormat::Json(f) if f.trim().is_empty()) {
            return Err(JudgeError::EmptyField);
        }
        Ok(Self {
            endpoint: endpoint.to_string(),
            model: rule.model.clone(),
            api_key_env: rule.api_key_env.clone(),
            api,
            prompt: rule.prompt.clone(),
            verdict,
            deadline: Duration::from_millis(ms),
            fail: rule.fail.unwrap_or_default(),
            threshold: rule.threshold.as_ref().map(|t| t.value as f32),
        })
    }

    /// The URL the judge call goes to.
    pub fn url(&self) -> String {
        match self.api {
            JudgeApi::Chat => format!("{}/chat/completions", self.endpoint),
            JudgeApi::Moderation => format!("{}/moderations", self.endpoint),
        }
    }

    /// The JSON body of the judge call for `text` (and the request's retrieved context).
    pub fn request_body(&self, text: &str, context: &[String]) -> Value {
        let text = tail(text, MAX_JUDGED_BYTES);
        match self.api {
            JudgeApi::Moderation => {
                let mut body = json!({ "input": text });
                if let Some(m) = &self.model {
                    body["model"] = json!(m);
                }
                body
            }
            JudgeApi::Chat => {
                let messages = match self.prompt.as_deref() {
                    Some(p) if p.contains("{text}") => {
                        let ctx = tail(&context.join("\n\n"), MAX_JUDGED_BYTES).to_string();
                        vec![json!({"role": "user", "content": render(p, text, &ctx)})]
                    }
                    Some(p) => vec![
                        json!({"role": "system", "content": p}),
                        json!({"role": "user", "content": text}),
                    ],
                    None => vec![json!({"role": "user", "content": text})],
                };
                let mut body = json!({
                    "messages": messages,
                    "temperature": 0,
                    "max_tokens": 64,
                    "stream": false,
                });
                if let Some(m) = &self.model {
                    body["model"] = json!(m);
                }
                body
            }
        }
    }

    /// Reads a judge's HTTP answer body into a judgement.
    pub fn parse_response(&self, body: &[u8]) -> Result<Judgement, ParseError> {
        match self.api {
            JudgeApi::Chat => parse_chat(body, &self.verdict),
            JudgeApi::Moderation => parse_moderation(body),
        }
    }
}

/// The last `max` bytes of `s`, starting on a char boundary.
fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Fills `{text}` and `{context}` in one pass, so that a text containing `{context}` is
/// not expanded again. Other braces are left as written.
pub fn render(template: &str, text: &str, context: &str) -> String {
    let mut out = String::with_capacity(template.len() + text.len() + context.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("{text}") {
            out.push_str(text);
            rest = r;
        } else if let Some(r) = after.strip_prefix("{context}") {
            out.push_str(context);
            rest = r;
        } else {
            out.push('{');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

/// What a judge said about a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    /// The judge's own verdict (`unsafe`, `flagged: true`, a score ≥ 0.5).
    pub flagged: bool,
    /// Its score in `[0, 1]`: 1 / 0 for word and boolean verdicts, the number for a JSON
    /// score, the highest category score of a moderation API.
    pub score: f32,
    /// Categories it named (`S1`, `harassment`, ...), for finding labels.
    pub labels: Vec<String>,
}

/// Why a judge's answer could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("the answer is not JSON of the expected shape")]
    Shape,
    #[error("the answer holds no recognizable verdict")]
    NoVerdict,
}

fn parse_chat(body: &[u8], format: &VerdictFormat) -> Result<Judgement, ParseError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| ParseError::Shape)?;
    let content = v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or(ParseError::Shape)?;
    parse_verdict(content, format)
}

/// Reads a chat judge's answer text.
pub fn parse_verdict(content: &str, format: &VerdictFormat) -> Result<Judgement, ParseError> {
    match format {
        VerdictFormat::FirstWord => parse_first_word(content),
        VerdictFormat::Json(field) => parse_json_verdict(content, field),
    }
}

/// Llama Guard: `safe`, or `unsafe` and on the next line the categories (`S1,S10`).
fn parse_first_word(content: &str) -> Result<Judgement, ParseError> {
    let content = content.trim_start();
    let first = content
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .find(|w| !w.is_empty())
        .ok_or(ParseError::NoVerdict)?;
    let flagged = if first.eq_ignore_ascii_case("unsafe") {
        true
    } else if first.eq_ignore_ascii_case("safe") {
        false
    } else {
        return Err(ParseError::NoVerdict);
    };
    let labels = if flagged {
        content
            .lines()
            .nth(1)
            .unwrap_or("")
            .split([',', ' ', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    Ok(Judgement {
        flagged,
        score: if flagged { 1.0 } else { 0.0 },
        labels,
    })
}

/// A JSON answer (possibly inside a ```json fence, as chat models like to write it).
fn parse_json_verdict(content: &str, field: &str) -> Result<Judgement, ParseError> {
    let start = content.find('{').ok_or(ParseError::Shape)?;
    let end = content.rfind('}').ok_or(ParseError::Shape)?;
    let object = content.get(start..=end).ok_or(ParseError::Shape)?;
    let v: Value = serde_json::from_str(object).map_err(|_| ParseError::Shape)?;
    let field = field.trim();
    let found = if field.starts_with('/') {
        v.pointer(field)
    } else {
        v.get(field)
    }
    .ok_or(ParseError::NoVerdict)?;
    let (flagged, score) = match found {
        Value::Bool(b) => (*b, if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => {
            let s = n.as_f64().ok_or(ParseError::NoVerdict)?;
            if !(0.0..=1.0).contains(&s) {
                return Err(ParseError::NoVerdict);
            }
            (s >= 0.5, s as f32)
        }
        Value::String(s) => {
            let j = parse_first_word(s)?;
            (j.flagged, j.score)
        }
        _ => return Err(ParseError::NoVerdict),
    };
    let labels = match v.get("categories") {
        Some(Value::Array(items)) if flagged => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Judgement {
        flagged,
        score,
        labels,
    })
}

/// OpenAI moderation shape: `results[0].flagged`, `categories`, `category_scores`.
fn parse_moderation(body: &[u8]) -> Result<Judgement, ParseError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| ParseError::Shape)?;
    let result = v.pointer("/results/0").ok_or(ParseError::Shape)?;
    let flagged = result
        .get("flagged")
        .and_then(Value::as_bool)
        .ok_or(ParseError::NoVerdict)?;
    let mut labels: Vec<String> = result
        .get("categories")
        .and_then(Value::as_object)
        .map(|cats| {
            cats.iter()
                .filter(|(_, v)| v.as_bool() == Some(true))
                .map(|(k, _)| k.clone())
                .filter(|k| k.len() <= 64)
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let top = result
        .get("category_scores")
        .and_then(Value::as_object)
        .map(|s| {
            s.values()
                .filter_map(Value::as_f64)
                .fold(0.0_f64, f64::max)
                .clamp(0.0, 1.0) as f32
        });
    let score = top.unwrap_or(if flagged { 1.0 } else { 0.0 });
    Ok(Judgement {
        flagged,
        score,
        labels,
    })
}

/// Why a judge call gave no judgement. Fixed labels only: never a message that could
/// echo the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// The deadline passed.
    Timeout,
    /// The connection could not be made or broke.
    Connect,
    /// The judge answered with a non-2xx status.
    Status,
    /// The answer could not be read as a verdict.
    Parse,
    /// The call could not be made (bad URL, `api_key_env` not set).
    Config,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Status => "status",
            Self::Parse => "parse",
            Self::Config => "config",
        }
    }
}

/// What a judge call came to.
#[derive(Debug, Clone, PartialEq)]
pub enum JudgeOutcome {
    Judged(Judgement),
    Failed(FailReason),
}

/// The outcome of one judge rule on one stage, computed before the engine runs.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeVerdict {
    /// Rule id.
    pub rule: String,
    /// Index (in the texts given to the engine) of the text a hit is reported on.
    pub text: usize,
    pub outcome: JudgeOutcome,
    /// Time the call took, milliseconds.
    pub latency_ms: f64,
}

/// What happened to one judge rule, as the decision and the audit record tell it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeReport {
    pub rule: String,
    /// `flagged`, `safe`, `fail_open`, `fail_closed` or `not_run` (no verdict was
    /// computed for this evaluation, e.g. `policy test` or a streamed answer).
    pub outcome: &'static str,
    /// For `fail_*`: why the judge failed (`timeout`, `connect`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Result<JudgeSpec, JudgeError> {
        let rule: RuleDto = serde_saphyr::from_str(yaml).expect("rule parses");
        JudgeSpec::new(&rule)
    }

    #[test]
    fn render_fills_placeholders_once() {
        let cases = [
            ("Judge: {text}", "hi", "", "Judge: hi"),
            ("{context} | {text}", "q", "doc", "doc | q"),
            // A text that itself contains a placeholder is not expanded again.
            ("T={text}", "{context}", "SECRET", "T={context}"),
            ("{json} {text}", "x", "", "{json} x"),
            ("trailing {", "x", "", "trailing {"),
            ("한국어 {text} 끝", "안녕", "", "한국어 안녕 끝"),
        ];
        for (template, text, ctx, want) in cases {
            assert_eq!(render(template, text, ctx), want, "{template}");
        }
    }

    #[test]
    fn first_word_verdicts() {
        let f = VerdictFormat::FirstWord;
        let j = parse_verdict("unsafe\nS1,S10", &f).expect("verdict");
        assert!(j.flagged);
        assert_eq!(j.labels, vec!["S1", "S10"]);
        assert_eq!(j.score, 1.0);
        let j = parse_verdict("  Safe.", &f).expect("verdict");
        assert!(!j.flagged && j.labels.is_empty() && j.score == 0.0);
        let j = parse_verdict("UNSAFE", &f).expect("verdict");
        assert!(j.flagged && j.labels.is_empty());
        for bad in ["", "I cannot decide", "unsafely", "not safe"] {
            assert_eq!(
                parse_verdict(bad, &f),
                Err(ParseError::NoVerdict),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json_verdicts() {
        let field = |f: &str| VerdictFormat::Json(f.to_string());
        let j = parse_verdict(
            r#"{"flagged": true, "categories": ["hate"]}"#,
            &field("flagged"),
        )
        .expect("verdict");
        assert!(j.flagged);
        assert_eq!(j.labels, vec!["hate"]);
        let j = parse_verdict(
            "Here you go:\n```json\n{\"r\": {\"score\": 0.2}}\n```",
            &field("/r/score"),
        )
        .expect("verdict");
        assert!(!j.flagged);
        assert!((j.score - 0.2).abs() < 1e-6);
        let j = parse_verdict(r#"{"verdict": "unsafe"}"#, &field("verdict")).expect("verdict");
        assert!(j.flagged);
        assert_eq!(
            parse_verdict(r#"{"other": 1}"#, &field("verdict")),
            Err(ParseError::NoVerdict)
        );
        assert_eq!(
            parse_verdict(r#"{"score": 7}"#, &field("score")),
            Err(ParseError::NoVerdict)
        );
        assert_eq!(
            parse_verdict("no json here", &field("x")),
            Err(ParseError::Shape)
        );
    }

    #[test]
    fn chat_and_moderation_responses() {
        let chat = spec("{id: j, endpoint: 'http://x/v1'}").expect("spec");
        let body = br#"{"choices":[{"message":{"role":"assistant","content":"unsafe\nS2"}}]}"#;
        let j = chat.parse_response(body).expect("judged");
        assert!(j.flagged);
        assert_eq!(j.labels, vec!["S2"]);
        assert_eq!(chat.parse_response(b"{}"), Err(ParseError::Shape));
        assert_eq!(chat.parse_response(b"not json"), Err(ParseError::Shape));

        let moderation =
            spec("{id: m, endpoint: 'https://api.openai.com/v1', api: moderation}").expect("spec");
        let body = br#"{"id":"modr","results":[{"flagged":true,
            "categories":{"harassment":true,"violence":false},
            "category_scores":{"harassment":0.91,"violence":0.02}}]}"#;
        let j = moderation.parse_response(body).expect("judged");
        assert!(j.flagged);
        assert_eq!(j.labels, vec!["harassment"]);
        assert!((j.score - 0.91).abs() < 1e-6);
        let body =
            br#"{"results":[{"flagged":false,"categories":{},"category_scores":{"hate":0.1}}]}"#;
        let j = moderation.parse_response(body).expect("judged");
        assert!(!j.flagged && j.labels.is_empty());
        assert_eq!(
            moderation.parse_response(br#"{"results":[{}]}"#),
            Err(ParseError::NoVerdict)
        );
    }

    #[test]
    fn request_bodies() {
        let s = spec("{id: j, endpoint: 'http://x/v1/', model: guard, prompt: 'Is this safe? {text} Context: {context}'}")
            .expect("spec");
        assert_eq!(s.url(), "http://x/v1/chat/completions");
        let b = s.request_body("hello", &["doc one".to_string()]);
        assert_eq!(b["model"], "guard");
        assert_eq!(
            b["messages"][0]["content"],
            "Is this safe? hello Context: doc one"
        );
        let s = spec("{id: j, endpoint: 'http://x/v1', prompt: 'Answer safe or unsafe.'}")
            .expect("spec");
        let b = s.request_body("hello", &[]);
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(b["messages"][1]["content"], "hello");
        assert!(b.get("model").is_none());
        let s = spec(
            "{id: m, endpoint: 'http://x/v1', api: moderation, model: omni-moderation-latest}",
        )
        .expect("spec");
        assert_eq!(s.url(), "http://x/v1/moderations");
        let b = s.request_body("hi", &[]);
        assert_eq!(b["input"], "hi");
        assert_eq!(b["model"], "omni-moderation-latest");
        // Long texts keep their end, cut on a char boundary.
        let long = "가".repeat(MAX_JUDGED_BYTES);
        let b = s.request_body(&long, &[]);
        let sent = b["input"].as_str().expect("input");
        assert!(sent.len() <= MAX_JUDGED_BYTES && long.ends_with(sent));
    }

    #[test]
    fn invalid_specs_are_rejected() {
        let cases = [
            ("{id: j}", "endpoint"),
            ("{id: j, endpoint: 'ftp://x'}", "http"),
            ("{id: j, endpoint: 'http://'}", "http"),
            ("{id: j, endpoint: 'http://x', timeout_ms: 0}", "timeout_ms"),
            (
                "{id: j, endpoint: 'http://x', timeout_ms: 600000}",
                "timeout_ms",
            ),
            (
                "{id: j, endpoint: 'http://x', api: moderation, verdict: first_word}",
                "moderation",
            ),
            (
                "{id: j, endpoint: 'http://x', verdict: {json: ' '}}",
                "field",
            ),
        ];
        for (yaml, needle) in cases {
            let e = spec(yaml).expect_err(yaml).to_string();
            assert!(e.contains(needle), "{yaml}: {e}");
        }
        let s = spec("{id: j, endpoint: 'http://x', timeout_ms: 150, fail: closed, threshold: 0.8, verdict: {json: score}}")
            .expect("spec");
        assert_eq!(s.deadline, Duration::from_millis(150));
        assert_eq!(s.fail, FailMode::Closed);
        assert_eq!(s.threshold, Some(0.8));
        assert_eq!(s.verdict, VerdictFormat::Json("score".into()));
    }
}
