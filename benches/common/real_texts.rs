//! The benches' real texts (`benches/engine.rs`, `benches/stream.rs`): 128 different
//! ~1 KB texts per set in `benches/data/prompts_1k.jsonl` (sources and licences in
//! `benches/data/NOTICE`). Different texts matter: one text (or rotations of one) keeps
//! the lazy DFAs, the classifiers' weight rows and the branch predictors warm, and
//! measured about half of what a new text costs.

/// The texts of one set (`en`, `ko`, `en_prompts`), in file order.
pub fn texts(set: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Line {
        lang: String,
        text: String,
    }
    include_str!("../data/prompts_1k.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .filter(|l| l.lang == set)
        .map(|l| l.text)
        .collect()
}
