//! Trains the grounding and relevance models.
//!
//! `cargo run --release --example train_grounding -- [CORPORA_DIR] [OUT_DIR]`
//! (defaults: `/work/shared/corpora`, `models`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let corpora = PathBuf::from(args.next().unwrap_or_else(|| "/work/shared/corpora".into()));
    let out = PathBuf::from(args.next().unwrap_or_else(|| "models".into()));
    let t = std::time::Instant::now();
    let report = haechi::detect::grounding::train::run(&corpora, &out)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("trained in {:.1}s", t.elapsed().as_secs_f64());
    Ok(())
}
