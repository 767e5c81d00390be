//! Reading policy files from disk and parsing them, with file:line:column on every error.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

use super::model::{PolicyFile, TestFile};

/// The shipped default policy, embedded so the binary runs without a policy directory.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../policies/default.yaml");
/// Display name of the embedded default policy in problems and versions.
pub const EMBEDDED_DEFAULT_NAME: &str = "<embedded>/default.yaml";

/// One problem in a policy file, printed as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: u64,
    /// 1-based; 0 when unknown.
    pub column: u64,
    pub message: String,
}

impl Problem {
    /// A problem at a YAML location.
    pub fn at(file: &str, loc: &Location, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line: loc.line(),
            column: loc.column(),
            message: message.into(),
        }
    }

    /// A problem about a whole file.
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every problem found while loading or compiling, sorted by file and position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<Problem>);

impl PolicyErrors {
    /// Sorts by file and position and drops duplicates.
    pub fn sorted_public(problems: Vec<Problem>) -> Self {
        Self::sorted(problems)
    }

    pub(crate) fn sorted(mut problems: Vec<Problem>) -> Self {
        problems.sort();
        problems.dedup();
        Self(problems)
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The text of one policy file and the name it is reported under.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// A parsed policy file.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub name: String,
    pub text: String,
    pub file: PolicyFile,
}

/// Whether a directory entry is a policy file (not a test file, not hidden).
fn is_policy_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.')
        && (name.ends_with(".yaml") || name.ends_with(".yml"))
        && !name.ends_with(".tests.yaml")
        && !name.ends_with(".tests.yml")
}

/// Whether a directory entry is a test file beside a policy.
pub fn is_test_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && (name.ends_with(".tests.yaml") || name.ends_with(".tests.yml"))
}

/// Files of a directory (not recursive, sorted by name) passing `keep`.
pub fn list_dir(dir: &Path, keep: fn(&Path) -> bool) -> Result<Vec<PathBuf>, PolicyErrors> {
    let name = dir.display().to_string();
    let rd = std::fs::read_dir(dir)
        .map_err(|e| PolicyErrors(vec![Problem::file(&name, e.to_string())]))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| PolicyErrors(vec![Problem::file(&name, e.to_string())]))?;
        let path = entry.path();
        // Follow symlinks (Kubernetes ConfigMaps mount files as links into `..data/`).
        if keep(&path) && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a policy file, or every `*.yaml`/`*.yml` policy file of a directory (test files
/// `*.tests.yaml` and hidden files are skipped).
pub fn read_sources(path: &Path) -> Result<Vec<Source>, PolicyErrors> {
    let files = if path.is_dir() {
        list_dir(path, is_policy_file)?
    } else {
        vec![path.to_path_buf()]
    };
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        let name = f.display().to_string();
        match std::fs::read_to_string(&f) {
            Ok(text) => sources.push(Source { name, text }),
            Err(e) => problems.push(Problem::file(&name, format!("cannot read: {e}"))),
        }
    }
    if !problems.is_empty() {
        return Err(PolicyErrors::sorted(problems));
    }
    Ok(sources)
}

/// Parses one policy file.
pub fn parse_policy(source: &Source) -> Result<Parsed, Problem> {
    match serde_saphyr::from_str::<PolicyFile>(&source.text) {
        Ok(file) => Ok(Parsed {
            name: source.name.clone(),
            text: source.text.clone(),
            file,
        }),
        Err(e) => Err(yaml_problem(&source.name, &e)),
    }
}

/// Parses one test file.
pub fn parse_tests(name: &str, text: &str) -> Result<TestFile, Problem> {
    serde_saphyr::from_str::<TestFile>(text).map_err(|e| yaml_problem(name, &e))
}

/// Turns a YAML error into a one-line problem at its location.
fn yaml_problem(name: &str, e: &serde_saphyr::Error) -> Problem {
    let message = plain_message(e);
    match e.location() {
        Some(loc) => Problem::at(name, &loc, message),
        None => Problem::file(name, message),
    }
}

/// The error message without the source snippet that serde-saphyr draws under it.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let mut msg = full.lines().next().unwrap_or_default().trim();
    msg = msg.strip_prefix("error: ").unwrap_or(msg);
    // Drop a leading "line X column Y: ": we print the location ourselves.
    if let Some(rest) = msg.strip_prefix("line ") {
        if let Some(i) = rest.find(": ") {
            if rest[..i]
                .chars()
                .all(|c| c.is_ascii_digit() || c == ' ' || c.is_ascii_alphabetic())
            {
                msg = &rest[i + 2..];
            }
        }
    }
    msg.to_string()
}
