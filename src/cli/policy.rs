//! `haechi policy check` and `haechi policy test`, for CI on policy repositories.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::detect::DetectContext;
use crate::engine::{evaluate, EvalOptions, PseudonymMap, Stage, Verdict};
use crate::policy::compile::{embedded_default, load_path, PolicySet};
use crate::policy::load::{is_test_file, list_dir, parse_tests, PolicyErrors, Problem};
use crate::policy::model::{Mode, TestFile};

/// The policy set of `--policy PATH` (file or directory), or the embedded default.
pub fn load_policy_arg(path: Option<&Path>) -> Result<PolicySet, PolicyErrors> {
    match path {
        Some(p) => load_path(p),
        None => Ok(embedded_default()),
    }
}

/// Test files beside a policy: every `*.tests.yaml` of a directory, or `X.tests.yaml`
/// next to a file `X.yaml`.
fn test_files(path: &Path) -> Result<Vec<PathBuf>, PolicyErrors> {
    if path.is_dir() {
        return list_dir(path, is_test_file);
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    Ok(["yaml", "yml"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.tests.{ext}")))
        .filter(|p| p.is_file())
        .collect())
}

/// Reads and parses test files, collecting problems.
fn read_tests(files: &[PathBuf]) -> (Vec<(String, TestFile)>, Vec<Problem>) {
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        let name = f.display().to_string();
        match std::fs::read_to_string(f) {
            Ok(text) => match parse_tests(&name, &text) {
                Ok(t) => ok.push((name, t)),
                Err(p) => problems.push(p),
            },
            Err(e) => problems.push(Problem::file(&name, format!("cannot read: {e}"))),
        }
    }
    (ok, problems)
}

/// Validates a policy file or directory (and the test files beside it). Prints every
/// problem as `file:line:column: message`; returns the process exit code (0 = valid).
pub fn policy_check(path: &Path, out: &mut dyn Write) -> io::Result<i32> {
    let mut problems = Vec::new();
    let set = match load_path(path) {
        Ok(set) => Some(set),
        Err(e) => {
            problems.extend(e.0);
            None
        }
    };
    match test_files(path) {
        Ok(files) => problems.extend(read_tests(&files).1),
        Err(e) => problems.extend(e.0),
    }
    if problems.is_empty() {
        if let Some(set) = set {
            let list: Vec<String> = set
                .ids()
                .filter_map(|id| set.get(id))
                .map(|p| format!("{}@{}", p.id, p.version))
                .collect();
            writeln!(
                out,
                "ok: {} polic{} ({})",
                list.len(),
                if list.len() == 1 { "y" } else { "ies" },
                list.join(", ")
            )?;
        }
        return Ok(0);
    }
    let problems = PolicyErrors::sorted_public(problems);
    for p in &problems.0 {
        writeln!(out, "{p}")?;
    }
    writeln!(
        out,
        "{} problem{}",
        problems.0.len(),
        if problems.0.len() == 1 { "" } else { "s" }
    )?;
    Ok(1)
}

/// Runs the test cases beside a policy file or directory and reports like a test
/// runner, ending with `N passed, M failed`. Returns the exit code: 0 when every case
/// passed, 1 when a case failed, a file is invalid, or no test file was found.
pub fn policy_test(path: &Path, out: &mut dyn Write) -> io::Result<i32> {
    let set = match load_path(path) {
        Ok(s) => s,
        Err(e) => {
            writeln!(out, "{e}")?;
            writeln!(out, "policies are invalid; no tests run")?;
            return Ok(1);
        }
    };
    let files = match test_files(path) {
        Ok(f) => f,
        Err(e) => {
            writeln!(out, "{e}")?;
            return Ok(1);
        }
    };
    let (tests, problems) = read_tests(&files);
    for p in &problems {
        writeln!(out, "{p}")?;
    }
    let (mut passed, mut failed) = (0usize, problems.len());
    for (name, tf) in &tests {
        let policy_id = tf.policy.clone().unwrap_or_else(|| {
            let base = Path::new(name)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            base.split(".tests.").next().unwrap_or_default().to_string()
        });
        let Some(policy) = set.get(&policy_id) else {
            writeln!(out, "{name}: unknown policy `{policy_id}`")?;
            failed += 1;
            continue;
        };
        writeln!(
            out,
            "running {} cases from {name} (policy {}@{})",
            tf.cases.len(),
            policy.id,
            policy.version
        )?;
        for (i, case) in tf.cases.iter().enumerate() {
            let case_name = case
                .name
                .clone()
                .unwrap_or_else(|| format!("case {}", i + 1));
            let failure = run_case(&policy, case);
            match failure {
                None => {
                    passed += 1;
                    writeln!(out, "test {policy_id}::{case_name} ... ok")?;
                }
                Some(why) => {
                    failed += 1;
                    writeln!(out, "test {policy_id}::{case_name} ... FAILED\n    {why}")?;
                }
            }
        }
    }
    if tests.is_empty() && problems.is_empty() {
        writeln!(
            out,
            "no test files (*.tests.yaml) found beside {}",
            path.display()
        )?;
        writeln!(out, "0 passed, 0 failed")?;
        return Ok(1);
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(i32::from(failed > 0))
}

/// Why a case failed, or `None` when it passed.
fn run_case(
    policy: &crate::policy::CompiledPolicy,
    case: &crate::policy::model::TestCase,
) -> Option<String> {
    let stage = match case.stage.as_deref() {
        None => Stage::Input,
        Some(s) => match Stage::parse(s) {
            Some(st) => st,
            None => return Some(format!("unknown stage `{s}` (expected input or output)")),
        },
    };
    let Some(expect) = Verdict::parse(&case.expect) else {
        return Some(format!(
            "unknown expected action `{}` (expected allow, warn, anonymize or block)",
            case.expect
        ));
    };
    let context = case.context.clone().unwrap_or_default();
    let ctx = DetectContext {
        context: &context,
        query: case.query.as_deref(),
    };
    let opts = EvalOptions {
        run_all: true,
        ..Default::default()
    };
    let d = evaluate(
        policy,
        stage,
        &[case.text.as_str()],
        &ctx,
        &opts,
        &mut PseudonymMap::new(),
    );
    let mut why = Vec::new();
    if d.action != expect {
        let rules: Vec<&str> = d.acting_rules().collect();
        why.push(format!(
            "expected {}, got {} (rules: [{}])",
            expect.as_str(),
            d.action.as_str(),
            rules.join(", ")
        ));
    }
    if let Some(want) = &case.labels {
        let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
        let got: BTreeSet<&str> = d
            .hits
            .iter()
            .filter(|h| h.mode == Mode::Enforce)
            .flat_map(|h| h.findings.iter().map(|f| f.label.as_str()))
            .collect();
        if want != got {
            why.push(format!("expected labels {want:?}, got {got:?}"));
        }
    }
    if let Some(want) = &case.rewritten {
        let got = d
            .rewritten
            .first()
            .cloned()
            .flatten()
            .unwrap_or_else(|| case.text.clone());
        if &got != want {
            why.push(format!("expected rewritten text {want:?}, got {got:?}"));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn run(f: fn(&Path, &mut dyn Write) -> io::Result<i32>, path: &Path) -> (i32, String) {
        let mut out = Vec::new();
        let code = f(path, &mut out).unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn check_reports_every_problem_with_positions() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "id: a\nextends: nope\ninput:\n  - {id: x, detector: word, words: [w]}\n  - {id: x, detector: wordz}\n");
        write(dir.path(), "b.yaml", "id: b\ninput:\n  - id: r\n    detector: regex\n    patterns: [{label: X, pattern: '(bad'}]\n");
        write(
            dir.path(),
            "a.tests.yaml",
            "cases:\n  - {text: hi, expect: allow, typo: 1}\n",
        );
        let (code, out) = run(policy_check, dir.path());
        assert_eq!(code, 1);
        let a = dir.path().join("a.yaml").display().to_string();
        let b = dir.path().join("b.yaml").display().to_string();
        for want in [
            format!("{a}:2:10: unknown base policy `nope`"),
            format!("{a}:5:10: duplicate rule id `x` in input"),
            format!("{b}:5:16: rule `r`: pattern 0 is not a valid regex"),
            "a.tests.yaml:2:31: unknown field `typo`".to_string(),
            "4 problems".to_string(),
        ] {
            assert!(out.contains(&want), "missing {want:?} in:\n{out}");
        }
    }

    #[test]
    fn check_ok_lists_policies_with_versions() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x.yaml", "id: x\nextends: default\n");
        let (code, out) = run(policy_check, dir.path());
        assert_eq!(code, 0, "{out}");
        assert!(out.starts_with("ok: 2 policies (default@"), "{out}");
    }

    #[test]
    fn test_runner_reports_pass_and_fail() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "default.yaml", "id: default\ninput:\n  - {id: b, detector: word, words: [frob], action: block}\n  - {id: m, detector: regex, patterns: [{label: N, pattern: '[0-9]{3}'}], action: mask}\n");
        write(
            dir.path(),
            "default.tests.yaml",
            "cases:\n  - {name: blocks, text: please frob, expect: block, labels: [DENIED_WORD]}\n  - {name: masks, text: 'code 123', expect: anonymize, rewritten: 'code {N}'}\n  - {name: wrong, text: hello, expect: block}\n  - {text: hi, expect: allow, stage: output}\n",
        );
        let (code, out) = run(policy_test, dir.path());
        assert_eq!(code, 1);
        assert!(out.contains("test default::blocks ... ok"), "{out}");
        assert!(out.contains("test default::masks ... ok"), "{out}");
        assert!(
            out.contains("test default::wrong ... FAILED\n    expected block, got allow"),
            "{out}"
        );
        assert!(out.contains("test default::case 4 ... ok"), "{out}");
        assert!(out.trim_end().ends_with("3 passed, 1 failed"), "{out}");
    }

    #[test]
    fn shipped_policies_pass_their_tests() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let (code, out) = run(policy_test, &dir);
        assert_eq!(code, 0, "{out}");
        let (code, out) = run(policy_check, &dir);
        assert_eq!(code, 0, "{out}");
    }
}
