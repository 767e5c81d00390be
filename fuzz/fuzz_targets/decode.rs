//! Every request decoder (`haechi::dialect::decode`, all operations incl. Bedrock) on
//! arbitrary bodies. Beyond "no panic" it checks the contract the rewrite relies on:
//! each text part's span is the JSON string literal of its text, and rewriting every
//! part yields a body that decodes to the rewritten texts.
#![no_main]

use haechi::dialect::{decode, remove_member, rewrite_strings, Operation};
use libfuzzer_sys::fuzz_target;

const OPS: [Operation; 10] = [
    Operation::ChatCompletions,
    Operation::Completions,
    Operation::Responses,
    Operation::Embeddings,
    Operation::Messages,
    Operation::CountTokens,
    Operation::Converse,
    Operation::ConverseStream,
    Operation::Invoke,
    Operation::InvokeStream,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let op = OPS[selector as usize % OPS.len()];
    let Ok(ex) = decode(op, body) else {
        return;
    };
    let mut replacements = Vec::new();
    for (_, part) in ex.texts() {
        let literal = &body[part.span.clone()];
        let text: String = serde_json::from_slice(literal)
            .unwrap_or_else(|e| panic!("span {:?} is not a string literal: {e}", part.span));
        assert_eq!(text, part.text, "span text differs from decoded text");
        replacements.push((part.span.clone(), "X"));
    }
    let rewritten = rewrite_strings(body, &replacements);
    let again = decode(op, &rewritten)
        .unwrap_or_else(|e| panic!("rewritten body no longer decodes: {e}"));
    let count = ex.texts().count();
    assert_eq!(again.texts().count(), count, "rewrite changed the part count");
    assert!(again.texts().all(|(_, p)| p.text == "X"), "rewrite lost a part");
    if let Some(ext) = ex.extension.clone() {
        let stripped = remove_member(body, ext)
            .unwrap_or_else(|| panic!("extension span is not a member"));
        serde_json::from_slice::<serde_json::Value>(&stripped)
            .unwrap_or_else(|e| panic!("body without extension is not JSON: {e}"));
    }
});
