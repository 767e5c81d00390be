//! The policy loader and compiler (`policy::compile_sources`) on arbitrary YAML: one
//! or two files (split at the first NUL byte), so `extends` across files is reached.
#![no_main]

use haechi::policy::compile::compile_sources;
use haechi::policy::load::Source;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let sources: Vec<Source> = text
        .splitn(2, '\0')
        .enumerate()
        .map(|(i, t)| Source {
            name: format!("p{i}.yaml"),
            text: t.to_string(),
        })
        .collect();
    let _ = compile_sources(&sources);
});
