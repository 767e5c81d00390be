//! JSON Schema of policy files, generated from the Rust types so it cannot drift.
//!
//! `policies/schema.json` is the committed copy editors use; a unit test fails when it is
//! stale (regenerate with `HAECHI_BLESS=1 cargo test --lib policy::schema`).

use super::model::{PolicyFile, TestFile};

/// The schema of a policy file, pretty-printed with a trailing newline.
pub fn policy_schema_json() -> String {
    let schema = schemars::schema_for!(PolicyFile);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

/// The schema of a policy test file (`*.tests.yaml`).
pub fn tests_schema_json() -> String {
    let schema = schemars::schema_for!(TestFile);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, want: String) {
        let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("HAECHI_BLESS").is_some() {
            std::fs::write(&full, &want).unwrap();
        }
        let have = std::fs::read_to_string(&full).unwrap_or_default();
        assert!(
            have == want,
            "{path} is stale; regenerate with `HAECHI_BLESS=1 cargo test --lib policy::schema`"
        );
    }

    #[test]
    fn committed_schemas_are_current() {
        check("policies/schema.json", policy_schema_json());
        check("policies/tests.schema.json", tests_schema_json());
    }

    #[test]
    fn schema_lists_every_detector_and_rejects_unknown_keys() {
        let s = policy_schema_json();
        for k in crate::policy::model::DetectorKind::ALL {
            assert!(s.contains(&format!("\"{}\"", k.as_str())), "{}", k.as_str());
        }
        assert!(s.contains("\"additionalProperties\": false"));
    }
}
