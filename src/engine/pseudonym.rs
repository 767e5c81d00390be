//! Consistent placeholders for pseudonymized values, and putting the originals back.

use std::collections::HashMap;
use std::fmt;

/// Value ↔ placeholder map of one request (or conversation).
///
/// The same (label, value) always gets the same placeholder, `<EMAIL_1>`, `<EMAIL_2>`, ...
/// numbered per label. It holds the original sensitive values, so it never prints them:
/// its `Debug` shows only counts.
#[derive(Clone, Default)]
pub struct PseudonymMap {
    forward: HashMap<(String, String), String>,
    reverse: HashMap<String, String>,
    counters: HashMap<String, u32>,
}

impl fmt::Debug for PseudonymMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PseudonymMap")
            .field("entries", &self.reverse.len())
            .finish()
    }
}

/// Longest placeholder `restore` looks for, in bytes (labels are short identifiers).
const MAX_PLACEHOLDER: usize = 80;

impl PseudonymMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// The placeholder for `value` found as `label`, allocating the next number if new.
    pub fn placeholder(&mut self, label: &str, value: &str) -> String {
        let key = (label.to_string(), value.to_string());
        if let Some(p) = self.forward.get(&key) {
            return p.clone();
        }
        let n = self.counters.entry(label.to_string()).or_insert(0);
        *n += 1;
        let p = format!("<{label}_{n}>");
        self.reverse.insert(p.clone(), value.to_string());
        self.forward.insert(key, p.clone());
        p
    }

    /// The original value behind a placeholder such as `<EMAIL_1>`.
    pub fn original(&self, placeholder: &str) -> Option<&str> {
        self.reverse.get(placeholder).map(String::as_str)
    }

    /// Number of distinct values.
    pub fn len(&self) -> usize {
        self.reverse.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reverse.is_empty()
    }

    /// The map as JSON `[[label, value, placeholder], ...]`, for the pseudonym vault (which
    /// encrypts it at rest). Holds the sensitive values: never log it.
    pub fn export(&self) -> String {
        let entries: Vec<(&str, &str, &str)> = self
            .forward
            .iter()
            .map(|((label, value), placeholder)| {
                (label.as_str(), value.as_str(), placeholder.as_str())
            })
            .collect();
        serde_json::to_string(&entries).unwrap_or_else(|_| "[]".to_string())
    }

    /// Rebuilds a map from [`PseudonymMap::export`]; numbering continues after the
    /// highest number of each label. `None` for text that is not an export.
    pub fn import(text: &str) -> Option<Self> {
        let entries: Vec<(String, String, String)> = serde_json::from_str(text).ok()?;
        let mut map = Self::new();
        for (label, value, placeholder) in entries {
            let n: u32 = placeholder
                .strip_prefix('<')
                .and_then(|p| p.strip_suffix('>'))
                .and_then(|p| p.rsplit_once('_'))
                .and_then(|(_, n)| n.parse().ok())
                .unwrap_or(0);
            let counter = map.counters.entry(label.clone()).or_insert(0);
            *counter = (*counter).max(n);
            map.reverse.insert(placeholder.clone(), value.clone());
            map.forward.insert((label, value), placeholder);
        }
        Some(map)
    }
}

/// Puts the original values back in place of every known placeholder (non-streaming).
/// Unknown `<...>` sequences are left as they are.
pub fn restore(text: &str, map: &PseudonymMap) -> String {
    restore_with(text, map, |out, value| out.push_str(value))
}

/// Like [`restore`] for text that is JSON source (tool-call arguments): placeholders sit
/// inside string literals, so each original is written JSON-escaped. Everything else is
/// kept byte for byte.
pub fn restore_json_escaped(text: &str, map: &PseudonymMap) -> String {
    restore_with(text, map, |out, value| {
        let quoted = serde_json::to_string(value).unwrap_or_default();
        out.push_str(quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or(""));
    })
}

/// Replaces each known placeholder of `text`, writing its original with `write`.
fn restore_with(text: &str, map: &PseudonymMap, write: impl Fn(&mut String, &str)) -> String {
    if map.is_empty() || !text.contains('<') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let window = &tail[..floor_boundary(tail, MAX_PLACEHOLDER)];
        match window
            .find('>')
            .and_then(|j| map.original(&tail[..=j]).map(|v| (j, v)))
        {
            Some((j, value)) => {
                write(&mut out, value);
                rest = &tail[j + 1..];
            }
            None => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where a placeholder that [`restore`] could still complete starts in `text[from..]`:
/// the first `<` with no `>` after it, within a placeholder's length of the end.
/// Text before it restores the same whatever follows.
pub fn open_placeholder(text: &str, from: usize) -> Option<usize> {
    let mut floor = text.len().saturating_sub(MAX_PLACEHOLDER).max(from);
    while !text.is_char_boundary(floor) {
        floor += 1;
    }
    let region = text.get(floor..)?;
    let mut at = 0;
    while let Some(i) = region[at..].find('<') {
        let start = at + i;
        if !region[start..].contains('>') {
            return Some(floor + start);
        }
        at = start + 1;
    }
    None
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod export_tests {
    use super::*;

    #[test]
    fn export_import_keeps_placeholders_and_numbering() {
        let mut m = PseudonymMap::new();
        let a = m.placeholder("EMAIL", "a@x.io");
        let b = m.placeholder("EMAIL", "b@x.io");
        let mut back = PseudonymMap::import(&m.export()).expect("import");
        assert_eq!(back.placeholder("EMAIL", "a@x.io"), a);
        assert_eq!(back.placeholder("EMAIL", "b@x.io"), b);
        assert_eq!(back.placeholder("EMAIL", "c@x.io"), "<EMAIL_3>");
        assert_eq!(restore("to <EMAIL_2>", &back), "to b@x.io");
        assert!(PseudonymMap::import("not json").is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_placeholder_and_counters_per_label() {
        let mut m = PseudonymMap::new();
        assert_eq!(m.placeholder("EMAIL", "a@x.io"), "<EMAIL_1>");
        assert_eq!(m.placeholder("EMAIL", "b@x.io"), "<EMAIL_2>");
        assert_eq!(m.placeholder("PHONE", "010-1234-5678"), "<PHONE_1>");
        assert_eq!(m.placeholder("EMAIL", "a@x.io"), "<EMAIL_1>");
        assert_eq!(m.len(), 3);
        assert!(!format!("{m:?}").contains("a@x.io"));
    }

    #[test]
    fn restore_puts_originals_back() {
        let mut m = PseudonymMap::new();
        m.placeholder("EMAIL", "김철수@예시.kr");
        m.placeholder("NAME", "김철수");
        let cases = [
            (
                "메일 <EMAIL_1> 로 <NAME_1>님께",
                "메일 김철수@예시.kr 로 김철수님께",
            ),
            (
                "<EMAIL_9> stays, so does <b> and < and <",
                "<EMAIL_9> stays, so does <b> and < and <",
            ),
            ("<<NAME_1>>", "<김철수>"),
            ("no placeholders", "no placeholders"),
        ];
        for (text, want) in cases {
            assert_eq!(restore(text, &m), want);
        }
    }
}
