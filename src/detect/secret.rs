//! `secret` detector: API keys, tokens, private keys and passwords in connection strings.
//!
//! One pass of a multi-pattern byte regex proposes candidates; a per-kind check then
//! verifies structure (JWT header decodes, PEM block has an END line, generic values are
//! high-entropy) and sets the score. Labels name the kind (`AWS_ACCESS_KEY`, `JWT`, ...).

use base64::Engine;
use regex_automata::{meta::Regex, util::syntax, Input, Match};

use super::partial::{PartialMatcher, StreamMemo, Tail};
use super::{DetectContext, Detection, Finding};

/// Every label the detector can emit.
pub const SECRET_LABELS: &[&str] = &[
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "SLACK_TOKEN",
    "SLACK_WEBHOOK",
    "STRIPE_KEY",
    "GOOGLE_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "JWT",
    "PRIVATE_KEY",
    "CONNECTION_STRING_PASSWORD",
    "GENERIC_SECRET",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AwsAccess,
    Github,
    Gitlab,
    Slack,
    SlackWebhook,
    Stripe,
    Google,
    Anthropic,
    OpenAi,
    Jwt,
    Pem,
    UrlPassword,
    KvPassword,
    AwsSecret,
    Generic,
}

/// How far before a `key=value` password the detector looks for the rest of a connection
/// string (`server=`, `host=`...): the longest look-behind of any span detector.
pub const CONNECTION_CONTEXT: usize = 160;

const RULES: &[(Kind, &str)] = &[
    (
        Kind::AwsAccess,
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b",
    ),
    (
        Kind::Github,
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b|\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
    ),
    (
        Kind::Gitlab,
        r"\b(?:glpat|gldt|glrt|glptt|glsoat)-[A-Za-z0-9_\-]{20,}",
    ),
    (
        Kind::SlackWebhook,
        r"https://hooks\.slack\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+",
    ),
    (Kind::Slack, r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    (
        Kind::Stripe,
        r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b|\bwhsec_[A-Za-z0-9]{24,}\b",
    ),
    (Kind::Google, r"\bAIza[0-9A-Za-z_\-]{35}"),
    (
        Kind::Anthropic,
        r"\bsk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_\-]{32,}",
    ),
    (
        Kind::OpenAi,
        r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
    ),
    (
        Kind::Jwt,
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    ),
    (
        Kind::Pem,
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
    ),
    (
        Kind::UrlPassword,
        r"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@]{1,64}:[^\s@/]{1,128}@[A-Za-z0-9.\-_\[\]]+",
    ),
    (Kind::KvPassword, r"(?i)\b(?:password|pwd)\s*=\s*[^;\s]{3,}"),
    (
        Kind::AwsSecret,
        r"(?i)\baws.{0,24}(?:secret|private).{0,24}?[:=]\s*.?[A-Za-z0-9/+]{40}",
    ),
    (
        Kind::Generic,
        r#"(?i)\b(?:api[_\-]?key|apikey|secret(?:[_\-]?key)?|access[_\-]?token|auth[_\-]?token|refresh[_\-]?token|token|client[_\-]?secret|private[_\-]?key|passwd|password|bearer|credential)s?["']?\s*(?:[:=]|=>|:=|\s)\s*["']?[A-Za-z0-9_\-+/=.~]{16,}"#,
    ),
];

/// Errors building a [`SecretDetector`].
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("building the secret patterns failed: {0}")]
    Build(String),
}

/// The rules searched apart, only in text that holds their literal: connection strings
/// need `://`, and their scheme (`[A-Za-z][A-Za-z0-9+.\-]{1,20}`) may start at any letter,
/// which in the shared automaton multiplied the states every word of prose walks through
/// (measured: the other rules together searched English prose ~1.8x faster without it).
const APART: &[(Kind, &[u8])] = &[(Kind::UrlPassword, b"://")];

/// The flag of the rules searched on the text's ASCII lower case (see
/// [`SecretDetector::lowered`]).
const CASELESS: &str = "(?i)";

/// The compiled secret detector.
#[derive(Debug)]
pub struct SecretDetector {
    /// Every rule but the [`APART`] and caseless ones; pattern id -> index into [`RULES`].
    re: Regex,
    shared_rules: Vec<usize>,
    /// The [`APART`] rules: (index into [`RULES`], its literal, its regex).
    apart: Vec<(usize, &'static [u8], Regex)>,
    /// The rules written case-insensitively (passwords, AWS secrets, `api_key=` values):
    /// searched without the flag on the text's ASCII lower case, where the regex skips
    /// ahead to their lower-case keywords instead of stepping its automaton through every
    /// byte (English prose: ~0.2 us a KB instead of ~2). The spans are the same: ASCII
    /// lower-casing keeps every byte in place, their literals are lower case and their
    /// classes hold both cases (the byte regexes fold ASCII only). Pattern id -> index
    /// into [`RULES`].
    lowered: Option<(Vec<usize>, Regex)>,
    partial: Option<PartialMatcher>,
}

/// The rules' shared byte-regex configuration.
fn build(patterns: &[&str]) -> Result<Regex, SecretError> {
    Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .build_many(patterns)
        .map_err(|e| SecretError::Build(e.to_string()))
}

impl SecretDetector {
    /// Compiles the built-in patterns (a fixed list: failure would be a bug, reported as an error).
    pub fn new() -> Result<Self, SecretError> {
        let is_apart = |kind: Kind| APART.iter().any(|(k, _)| *k == kind);
        let caseless = |i: usize| !is_apart(RULES[i].0) && RULES[i].1.starts_with(CASELESS);
        let shared_rules: Vec<usize> = (0..RULES.len())
            .filter(|&i| !is_apart(RULES[i].0) && !caseless(i))
            .collect();
        let shared: Vec<&str> = shared_rules.iter().map(|&i| RULES[i].1).collect();
        let mut apart = Vec::new();
        for &(kind, literal) in APART {
            if let Some(i) = RULES.iter().position(|(k, _)| *k == kind) {
                apart.push((i, literal, build(&[RULES[i].1])?));
            }
        }
        let lowered_rules: Vec<usize> = (0..RULES.len()).filter(|&i| caseless(i)).collect();
        let lowered_patterns: Vec<&str> = lowered_rules
            .iter()
            .map(|&i| RULES[i].1.trim_start_matches(CASELESS))
            .collect();
        let lowered = if lowered_rules.is_empty() {
            None
        } else {
            Some((lowered_rules, build(&lowered_patterns)?))
        };
        let patterns: Vec<String> = RULES.iter().map(|(_, p)| p.to_string()).collect();
        Ok(Self {
            re: build(&shared)?,
            shared_rules,
            apart,
            lowered,
            partial: PartialMatcher::new(&patterns, false),
        })
    }

    /// The next match at or after `at` of all rules together, as one leftmost-first
    /// multi-pattern regex of [`RULES`] would report it: the leftmost start, and at equal
    /// starts the earlier rule. `lower` is `b` in ASCII lower case. `apart_next` caches
    /// each apart rule's next match and `lowered_next` the caseless rules' one (a match
    /// starting at or after `at` is also the next one from any later `at` before it).
    fn next_match(
        &self,
        (b, lower): (&[u8], &[u8]),
        at: usize,
        apart_next: &mut [Option<Option<Match>>],
        lowered_next: &mut Option<Option<Match>>,
    ) -> Option<(Match, Kind)> {
        let mut best = self
            .re
            .search(&Input::new(b).range(at..))
            .and_then(|m| Some((m, *self.shared_rules.get(m.pattern().as_usize())?)));
        let consider = |next: &mut Option<Option<Match>>, re: &Regex, hay: &[u8]| {
            let stale = match next {
                Some(Some(m)) => m.start() < at,
                Some(None) => false,
                None => true,
            };
            if stale {
                *next = Some(re.search(&Input::new(hay).range(at..)));
            }
            match *next {
                Some(Some(m)) => Some(m),
                _ => None,
            }
        };
        let mut take = |m: Match, rule: usize| {
            if best.is_none_or(|(b, r)| (m.start(), rule) < (b.start(), r)) {
                best = Some((m, rule));
            }
        };
        for ((rule, _, re), next) in self.apart.iter().zip(apart_next.iter_mut()) {
            if let Some(m) = consider(next, re, b) {
                take(m, *rule);
            }
        }
        if let Some((rules, re)) = &self.lowered {
            if let Some(m) = consider(lowered_next, re, lower) {
                if let Some(&rule) = rules.get(m.pattern().as_usize()) {
                    take(m, rule);
                }
            }
        }
        best.map(|(m, rule)| (m, RULES[rule].0))
    }

    /// Where a secret may still be in progress at the end of a growing text. A private
    /// key's finding runs to its END line, so an open PEM block is held whole.
    pub fn stream_tail(&self, text: &str, from: usize, memo: &mut StreamMemo) -> Tail {
        let mut tail = match &self.partial {
            Some(p) => p.tail_memo(text.as_bytes(), from, 0, &mut memo.parts[0]),
            None => Tail::fixed_window(text, from),
        };
        // Built once: the undecided text is searched on every delta.
        static BEGIN: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"-----BEGIN "));
        let bytes = text.as_bytes();
        let mut at = from;
        // Only a BEGIN line that starts before the hold matters.
        let searched = (tail.hold + BEGIN.needle().len()).min(bytes.len());
        while let Some(i) = bytes.get(at..searched).and_then(|t| BEGIN.find(t)) {
            let begin = at + i;
            if begin >= tail.hold {
                break;
            }
            let closed = memchr::memmem::find(&bytes[begin..], b"-----END ")
                .is_some_and(|j| memchr::memmem::find(&bytes[begin + j + 9..], b"-----").is_some());
            if !closed {
                // Held until its END line, which no length bounds.
                tail.hold = begin;
                tail.firm_until = 0;
                break;
            }
            at = begin + 11;
        }
        tail
    }

    /// Finds secrets in `text`.
    pub fn detect(&self, text: &str, _ctx: &DetectContext) -> Detection {
        let b = text.as_bytes();
        // An apart rule whose literal is absent has no match: `Some(None)` up front.
        let mut apart_next: Vec<Option<Option<Match>>> = self
            .apart
            .iter()
            .map(|(_, literal, _)| memchr::memmem::find(b, literal).is_none().then_some(None))
            .collect();
        let lower = match &self.lowered {
            Some(_) => b.to_ascii_lowercase(),
            None => Vec::new(),
        };
        let mut lowered_next = None;
        scan(text, |at| {
            self.next_match((b, &lower), at, &mut apart_next, &mut lowered_next)
        })
    }
}

/// The detector's loop over the matches `next_match(at)` reports: classify each, and go
/// on after it (or after the span its check extended it to).
fn scan(text: &str, mut next_match: impl FnMut(usize) -> Option<(Match, Kind)>) -> Detection {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let Some((m, kind)) = next_match(at) else {
            break;
        };
        let mut next = m.end();
        if let Some((label, score, s, e)) = classify(text, kind, m.start(), m.end()) {
            // Spans must lie on char boundaries (a value may run into UTF-8 text).
            if text.is_char_boundary(s) && text.is_char_boundary(e) {
                out.push(Finding {
                    kind: "secret",
                    label: label.to_string(),
                    score,
                    start: s,
                    end: e,
                });
            }
            next = next.max(e);
        }
        while next < b.len() && !text.is_char_boundary(next) {
            next += 1;
        }
        at = next.max(m.start() + 1);
    }
    Detection::from_findings(out)
}

/// Shannon entropy in bits per byte.
fn entropy(s: &[u8]) -> f32 {
    let mut counts = [0u32; 256];
    for &c in s {
        counts[c as usize] += 1;
    }
    let n = s.len() as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

fn classes(s: &[u8]) -> usize {
    [
        s.iter().any(u8::is_ascii_lowercase),
        s.iter().any(u8::is_ascii_uppercase),
        s.iter().any(u8::is_ascii_digit),
    ]
    .iter()
    .filter(|x| **x)
    .count()
}

const PLACEHOLDERS: &[&str] = &[
    "password", "passwd", "secret", "changeme", "example", "xxxx", "****", "<", "${", "{{", "%s",
    "your",
];

fn placeholder(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    PLACEHOLDERS.iter().any(|p| l.contains(p))
}

fn classify(
    text: &str,
    kind: Kind,
    s: usize,
    e: usize,
) -> Option<(&'static str, f32, usize, usize)> {
    let t = &text[s..e];
    let b = text.as_bytes();
    Some(match kind {
        Kind::AwsAccess => ("AWS_ACCESS_KEY", 0.95, s, e),
        Kind::Github => ("GITHUB_TOKEN", 0.95, s, e),
        Kind::Gitlab => ("GITLAB_TOKEN", 0.95, s, e),
        Kind::Slack => ("SLACK_TOKEN", 0.95, s, e),
        Kind::SlackWebhook => ("SLACK_WEBHOOK", 0.95, s, e),
        Kind::Stripe => (
            "STRIPE_KEY",
            if t.starts_with("pk_") { 0.5 } else { 0.95 },
            s,
            e,
        ),
        Kind::Google => ("GOOGLE_API_KEY", 0.9, s, e),
        Kind::Anthropic => ("ANTHROPIC_API_KEY", 0.95, s, e),
        Kind::OpenAi => {
            // "sk-" followed by ordinary words ("sk-learn-classifier") is not a key.
            let body = t.trim_start_matches("sk-");
            if classes(body.as_bytes()) < 2 || entropy(body.as_bytes()) < 3.5 {
                return None;
            }
            let legacy = t.contains("T3BlbkFJ");
            ("OPENAI_API_KEY", if legacy { 0.98 } else { 0.85 }, s, e)
        }
        Kind::Jwt => {
            let header = t.split('.').next()?;
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header.trim_end_matches('='))
                .ok()?;
            let alg = String::from_utf8_lossy(&decoded).contains("\"alg\"");
            ("JWT", if alg { 0.95 } else { 0.7 }, s, e)
        }
        Kind::Pem => {
            let rest = &text[e..];
            let end = match rest.find("-----END ") {
                Some(i) => {
                    let tail = &rest[i + 9..];
                    let close = tail.find("-----").map_or(tail.len(), |j| j + 5);
                    e + i + 9 + close
                }
                None => e,
            };
            ("PRIVATE_KEY", 0.99, s, end)
        }
        Kind::UrlPassword => {
            let scheme_end = t.find("://")? + 3;
            let colon = scheme_end + t[scheme_end..].find(':')?;
            let at = colon + t[colon..].rfind('@')?;
            let pw = &t[colon + 1..at];
            if pw.is_empty() || pw.bytes().all(|c| c.is_ascii_digit()) {
                return None; // host:port, not user:password
            }
            let score = if placeholder(pw) { 0.3 } else { 0.9 };
            ("CONNECTION_STRING_PASSWORD", score, s + colon + 1, s + at)
        }
        Kind::KvPassword => {
            let eq = t.find('=')?;
            let vs = eq + 1 + (t[eq + 1..].len() - t[eq + 1..].trim_start().len());
            let mut ve = t.len();
            while ve > vs && matches!(t.as_bytes()[ve - 1], b'"' | b'\'' | b',' | b')') {
                ve -= 1;
            }
            let v = &t[vs..ve];
            let ws = s.saturating_sub(CONNECTION_CONTEXT);
            let window = String::from_utf8_lossy(&b[ws..s]).to_ascii_lowercase();
            let conn = [
                "server=",
                "data source=",
                "host=",
                "user id=",
                "uid=",
                "database=",
                "initial catalog=",
            ]
            .iter()
            .any(|k| window.contains(k));
            let base: f32 = if conn { 0.9 } else { 0.7 };
            let score = if placeholder(v) { 0.3 } else { base };
            (
                if conn {
                    "CONNECTION_STRING_PASSWORD"
                } else {
                    "GENERIC_SECRET"
                },
                score,
                s + vs,
                s + ve,
            )
        }
        Kind::AwsSecret => {
            let v = &t[t.len() - 40..];
            if classes(v.as_bytes()) < 3
                || e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'/' || b[e] == b'+')
            {
                return None;
            }
            ("AWS_SECRET_KEY", 0.9, e - 40, e)
        }
        Kind::Generic => {
            let vs = t.len()
                - t.bytes()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || b"_-+/=.~".contains(c))
                    .count();
            let v = t[vs..].trim_end_matches(['.', '=']);
            let vb = v.as_bytes();
            let h = entropy(vb);
            if v.len() < 16 || classes(vb) < 2 || h < 3.3 || placeholder(v) {
                return None;
            }
            let score = (0.45 + (h - 3.3) * 0.25).clamp(0.45, 0.85);
            ("GENERIC_SECRET", score, s + vs, s + vs + v.len())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Joins fragments at run time so that no complete fake key sits in the source.
    fn k(parts: &[&str]) -> String {
        parts.concat()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Searching the apart rules on their own, and the caseless ones on the lower-cased
        /// text, gives the findings one regex of all rules gives: same matches, same order,
        /// same ties (a connection string and a `token:` value starting at one letter, keys
        /// inside URLs, URLs without `://`, keywords in any case).
        #[test]
        fn apart_rules_find_what_one_regex_finds(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "token", "password", "pwd", "=", ":", "://", "//", "user", "p4ssW0rd", "@",
                "db.example.com", " ", "\n", "Xy7Qp2Lm9Rt4Vb8Nc1Kd6Fh3", "sk-", "postgres",
                "AK", "IAZ7Q3KX9TLMW2PVB4", "/", "한", "é", "aws", "secret", "-----BEGIN ",
                "IAZ7Q3KX9TLMW2PVB4://u:p4ss@h", "TOKEN", "Password", "PWD", "AWS", "Secret",
                "API_Key", "Bearer ", "x-Auth-Token", "PRIVATE", "\u{00C4}", "ACCESS",
            ]),
            0..16,
        )) {
            static BUILT: std::sync::OnceLock<(SecretDetector, Regex)> = std::sync::OnceLock::new();
            let (d, one) = BUILT.get_or_init(|| {
                let all: Vec<&str> = RULES.iter().map(|(_, p)| *p).collect();
                (
                    SecretDetector::new().expect("built-in patterns"),
                    build(&all).expect("built-in patterns"),
                )
            });
            let text = parts.concat();
            let b = text.as_bytes();
            let reference = scan(&text, |at| {
                let m = one.search(&Input::new(b).range(at..))?;
                Some((m, RULES[m.pattern().as_usize()].0))
            });
            let got = d.detect(&text, &DetectContext::default());
            let spans = |d: &Detection| -> Vec<(usize, usize, String)> {
                d.findings.iter().map(|f| (f.start, f.end, f.label.clone())).collect()
            };
            proptest::prop_assert_eq!(spans(&got), spans(&reference), "{:?}", text);
        }
    }

    /// An access key that is also a URL scheme: the earlier rule wins the tie, as in
    /// one regex of all rules.
    #[test]
    fn a_tie_at_one_start_goes_to_the_earlier_rule() {
        let text = k(&["AK", "IAZ7Q3KX9TLMW2PVB4", "://u:p4ssW0rd@db.example.com"]);
        let got: Vec<String> = labels(&text).into_iter().map(|(l, _)| l).collect();
        assert_eq!(got, vec!["AWS_ACCESS_KEY"]);
    }

    fn labels(text: &str) -> Vec<(String, String)> {
        let d = SecretDetector::new().unwrap();
        d.detect(text, &DetectContext::default())
            .findings
            .into_iter()
            .filter(|f| f.score >= 0.5)
            .map(|f| (f.label, text[f.start..f.end].to_string()))
            .collect()
    }

    #[test]
    fn each_kind_is_found_with_its_label() {
        let body36 = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";
        let cases: Vec<(String, &str, String)> = vec![
            (
                k(&["AK", "IA", "Z7Q3KX9TLMW2PVB4"]),
                "AWS_ACCESS_KEY",
                k(&["AK", "IA", "Z7Q3KX9TLMW2PVB4"]),
            ),
            (
                format!(
                    "aws_secret_access_key = {}",
                    k(&["wJalrXUtnFEMI/K7MDENG/", "bPxRfiCYz9Q2mR5tLk"])
                ),
                "AWS_SECRET_KEY",
                k(&["wJalrXUtnFEMI/K7MDENG/", "bPxRfiCYz9Q2mR5tLk"]),
            ),
            (
                k(&["gh", "p_", body36]),
                "GITHUB_TOKEN",
                k(&["gh", "p_", body36]),
            ),
            (
                k(&["gl", "pat-", "Zx8_Qw3eRt5yUi9oPa1s"]),
                "GITLAB_TOKEN",
                k(&["gl", "pat-", "Zx8_Qw3eRt5yUi9oPa1s"]),
            ),
            (
                k(&["xo", "xb-", "1234567890-0987654321-", "AbCdEfGhIjKlMnOpQr"]),
                "SLACK_TOKEN",
                k(&["xo", "xb-", "1234567890-0987654321-", "AbCdEfGhIjKlMnOpQr"]),
            ),
            (
                k(&["sk", "_live_", "4eC39HqLyjWDarjtT1zdp7dc"]),
                "STRIPE_KEY",
                k(&["sk", "_live_", "4eC39HqLyjWDarjtT1zdp7dc"]),
            ),
            (
                k(&["AI", "za", "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"]),
                "GOOGLE_API_KEY",
                k(&["AI", "za", "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"]),
            ),
            (
                k(&["sk-", "proj-", "Xy7Qp2Lm9Rt4Vb8Nc1Kd6Fh3Jw5Zs0Ga"]),
                "OPENAI_API_KEY",
                k(&["sk-", "proj-", "Xy7Qp2Lm9Rt4Vb8Nc1Kd6Fh3Jw5Zs0Ga"]),
            ),
            (
                k(&[
                    "sk-",
                    "ant-api03-",
                    "Xy7Qp2Lm9Rt4Vb8Nc1Kd6Fh3Jw5Zs0GaQq1Ww2Ee3Rr4",
                ]),
                "ANTHROPIC_API_KEY",
                k(&[
                    "sk-",
                    "ant-api03-",
                    "Xy7Qp2Lm9Rt4Vb8Nc1Kd6Fh3Jw5Zs0GaQq1Ww2Ee3Rr4",
                ]),
            ),
            (
                k(&[
                    "ey",
                    "JhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
                    ".",
                    "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
                    ".",
                    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                ]),
                "JWT",
                k(&[
                    "ey",
                    "JhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
                    ".",
                    "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
                    ".",
                    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                ]),
            ),
            (
                format!("postgres://app:{}@db.internal:5432/prod", "S3cr3tPw9x"),
                "CONNECTION_STRING_PASSWORD",
                "S3cr3tPw9x".to_string(),
            ),
            (
                "Server=db;User Id=sa;Password=Tr0ub4dor3x;".to_string(),
                "CONNECTION_STRING_PASSWORD",
                "Tr0ub4dor3x".to_string(),
            ),
            (
                format!("api_key: \"{}\"", "q8Zr2LmX9vT4pW7nK3sB6yD1"),
                "GENERIC_SECRET",
                "q8Zr2LmX9vT4pW7nK3sB6yD1".to_string(),
            ),
        ];
        for (text, label, span) in cases {
            let got = labels(&text);
            assert!(
                got.contains(&(label.to_string(), span.clone())),
                "{label}: {got:?} in {text}"
            );
        }
    }

    #[test]
    fn pem_block_spans_to_end_line() {
        let text = k(&[
            "key:\n-----BEGIN ",
            "RSA PRIVATE KEY-----\nMIIEow\nAAAA\n-----END RSA ",
            "PRIVATE KEY-----\nbye",
        ]);
        let got = labels(&text);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "PRIVATE_KEY");
        assert!(got[0].1.ends_with("KEY-----") && got[0].1.contains("MIIEow"));
    }

    #[test]
    fn near_misses_are_not_secrets() {
        for text in [
            "the token is valid for two hours",
            "use sk-learn-classifier-model-for-this",
            "password = changeme_please_now_ok",
            "postgres://localhost:5432/db",
            "redis://user:${REDIS_PASSWORD}@host",
            "AKIA is a prefix, not a key",
            "my secret: aaaaaaaaaaaaaaaaaaaaaaaa",
            "비밀 토큰은 없습니다",
        ] {
            assert!(labels(text).is_empty(), "{text}: {:?}", labels(text));
        }
    }
}
