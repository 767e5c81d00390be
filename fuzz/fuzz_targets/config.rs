//! The gateway config loader (`config::GatewayConfig::parse`, YAML + validation).
#![no_main]

use haechi::config::GatewayConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = GatewayConfig::parse(&text, std::path::Path::new("fuzz.yaml"));
});
