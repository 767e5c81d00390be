//! Where the streaming output stage's time goes, rule by rule, against the issue's
//! target of 50 MB/s per core (20 ns per byte): each rule of the shipped default
//! policy's output stage alone, all of them, and none (the engine and stream guard with
//! no rule), on whole answers and streamed in 4- and 32-byte deltas, alternated round by
//! round in one process so every row sees the same host speed.
//!
//! A host-speed reference runs in the same rounds: FNV-1a over the same bytes, a serial
//! multiply chain of about four cycles per byte, so its MiB/s tracks the core's clock.
//!
//! `cargo run --release --example output_budget -- en_real 15` (sets `en_real`,
//! `ko_real`: four different 16 KB answers of the benches' real texts; the second
//! argument is the number of rounds). Pin it to one core with `taskset -c 1`. A third
//! and fourth argument keep one row and one column (`pii-out 4`), for a profiler.
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use haechi::policy::{compile_sources, CompiledPolicy, Source};

#[path = "../benches/common/real_texts.rs"]
mod real_texts;
#[path = "../benches/common/stream_answer.rs"]
#[allow(dead_code)] // the support-desk seeds are for the other examples
mod stream_answer;
use stream_answer::{four_answers, run_output_stage};

const DEFAULT_YAML: &str = include_str!("../policies/default.yaml");
/// The target: 50 MB/s, in MiB/s.
const TARGET_MIB_S: f64 = 50.0e6 / (1024.0 * 1024.0);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let set = args.get(1).map_or("en_real", String::as_str);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(15);
    if set != "en_real" && set != "ko_real" {
        eprintln!("unknown set {set:?} (en_real, ko_real)");
        std::process::exit(2);
    }
    let answers = four_answers(&real_texts::texts(&set[..2]));
    let bytes: usize = answers.iter().map(String::len).sum();
    // Optional filters, for profiling one row: a rule name (`all`, `none`, a rule id)
    // and a delta size (0 for whole answers).
    let only_rules = args.get(3).cloned();
    let only_mode: Option<usize> = args.get(4).and_then(|s| s.parse().ok());
    let mut policies = rule_policies();
    policies.retain(|(name, _)| only_rules.as_ref().is_none_or(|o| o == name));
    let mut modes = vec![0usize, 32, 4];
    modes.retain(|m| only_mode.is_none_or(|o| o == *m));

    // times[policy][mode] over rounds; reference FNV times.
    let mut times = vec![vec![Vec::with_capacity(rounds); modes.len()]; policies.len()];
    let mut reference = Vec::with_capacity(rounds);
    // One warm-up round: lazy DFAs, weight pages, per-thread buffers.
    for (_, policy) in &policies {
        for &mode in &modes {
            run(policy, &answers, mode);
        }
    }
    for _ in 0..rounds {
        let started = Instant::now();
        for a in &answers {
            black_box(fnv(a.as_bytes()));
        }
        reference.push(started.elapsed().as_secs_f64());
        for (p, (_, policy)) in policies.iter().enumerate() {
            for (m, &mode) in modes.iter().enumerate() {
                let started = Instant::now();
                black_box(run(policy, &answers, mode));
                times[p][m].push(started.elapsed().as_secs_f64());
            }
        }
    }
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let reference_mib_s = mib / median(&mut reference);
    println!(
        "{set}: {} answers, {bytes} bytes, {rounds} rounds (median); \
         host reference (FNV-1a) {reference_mib_s:.0} MiB/s; target {TARGET_MIB_S:.1} MiB/s \
         = {:.1} ns/byte",
        answers.len(),
        1e9 / (TARGET_MIB_S * 1024.0 * 1024.0),
    );
    println!(
        "{:<14} {:>22} {:>22} {:>22}",
        "rules", "whole MiB/s (ns/B)", "32-byte MiB/s (ns/B)", "4-byte MiB/s (ns/B)"
    );
    for (p, (name, _)) in policies.iter().enumerate() {
        let mut cells: Vec<String> = times[p]
            .iter_mut()
            .map(|t| {
                let secs = median(t);
                format!("{:>8.1} ({:>6.1})", mib / secs, secs * 1e9 / bytes as f64)
            })
            .collect();
        cells.resize(3, String::new());
        println!(
            "{name:<14} {:>22} {:>22} {:>22}",
            cells[0], cells[1], cells[2]
        );
    }
}

/// The default policy, a policy with no output rule, and one policy per output rule of
/// the default (its YAML block as shipped, alone in the output stage).
fn rule_policies() -> Vec<(String, Arc<CompiledPolicy>)> {
    let blocks = output_rule_blocks(DEFAULT_YAML);
    let mut sources = vec![Source {
        name: "none.yaml".into(),
        text: "id: none\noutput: []\n".into(),
    }];
    for (id, block) in &blocks {
        sources.push(Source {
            name: format!("only-{id}.yaml"),
            text: format!("id: only-{id}\noutput:\n{block}"),
        });
    }
    let set = match compile_sources(&sources) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("policies do not compile: {e}");
            std::process::exit(1);
        }
    };
    let mut out = vec![("all".to_string(), set.default_policy())];
    let mut names = vec!["none".to_string()];
    names.extend(blocks.iter().map(|(id, _)| id.clone()));
    for name in names {
        let id = if name == "none" {
            name.clone()
        } else {
            format!("only-{name}")
        };
        if let Some(policy) = set.get(&id) {
            out.push((name, policy));
        }
    }
    out
}

/// The output rules of a policy file in the shipped layout: each `  - id:` block after
/// `output:`, with its id.
fn output_rule_blocks(yaml: &str) -> Vec<(String, String)> {
    let Some((_, output)) = yaml.split_once("\noutput:\n") else {
        return Vec::new();
    };
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in output.lines() {
        if let Some(id) = line.strip_prefix("  - id: ") {
            blocks.push((id.trim().to_string(), String::new()));
        }
        if let Some((_, block)) = blocks.last_mut() {
            if !line.trim_start().starts_with('#') {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

/// Evaluates (`size` 0) or streams every answer once; bytes released.
fn run(policy: &Arc<CompiledPolicy>, answers: &[String], size: usize) -> usize {
    answers
        .iter()
        .map(|answer| run_output_stage(policy, answer, size, |_| {}))
        .sum()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
