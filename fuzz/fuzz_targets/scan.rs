//! The `haechi scan` line reader on arbitrary input under the shipped policy: every
//! non-blank input line gets exactly one JSON output line.
#![no_main]

use std::sync::{Arc, OnceLock};

use haechi::cli::{scan, ScanOptions};
use haechi::policy::compile::{embedded_default, CompiledPolicy};
use libfuzzer_sys::fuzz_target;

fn policy() -> &'static Arc<CompiledPolicy> {
    static P: OnceLock<Arc<CompiledPolicy>> = OnceLock::new();
    P.get_or_init(|| embedded_default().default_policy())
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let stats = scan(policy(), data, &mut out, &ScanOptions::default())
        .unwrap_or_else(|e| panic!("scan failed on in-memory I/O: {e}"));
    let nonblank = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count() as u64;
    assert_eq!(stats.lines, nonblank);
    let mut lines = 0u64;
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        serde_json::from_slice::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("output line is not JSON: {e}"));
        lines += 1;
    }
    assert_eq!(lines, nonblank, "one output line per input line");
});
