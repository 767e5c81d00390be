//! Evaluates the `pii` detector.
//!
//! cargo run --release --example eval_pii -- [CORPORA_DIR] [--threshold T] [--verbose]
//!
//! * presidio_synth_pii: per-entity precision / recall / F1 with span-overlap matching
//!   (a gold span counts as found when a prediction of the mapped label overlaps it; a
//!   prediction counts as correct when it overlaps a gold span of its label).
//! * piguard_wildguard_benign: findings per 1,000 benign prompts (all are false positives).
//! * tests/data/pii_ko.jsonl (in this repo): Korean recall and precision.

use std::collections::BTreeMap;

use haechi::detect::pii::PiiDetector;
use haechi::detect::DetectContext;
use haechi::text::char_offset;
use serde::Deserialize;

#[derive(Deserialize)]
struct Span {
    entity_type: String,
    start_position: usize,
    end_position: usize,
}

#[derive(Deserialize)]
struct Row {
    full_text: String,
    spans: Vec<Span>,
}

#[derive(Deserialize)]
struct Benign {
    prompt: String,
}

#[derive(Deserialize)]
struct KoSpan {
    label: String,
    start: usize,
    end: usize,
}

#[derive(Deserialize)]
struct KoRow {
    text: String,
    spans: Vec<KoSpan>,
}

/// presidio label -> our label; `None` = a type we do not score (GPE, ORG, ...).
fn map_gold(l: &str) -> Option<&'static str> {
    Some(match l {
        "PERSON" => "NAME",
        "STREET_ADDRESS" => "ADDRESS",
        "CREDIT_CARD" => "CREDIT_DEBIT_CARD_NUMBER",
        "PHONE_NUMBER" => "PHONE",
        "EMAIL_ADDRESS" => "EMAIL",
        "US_SSN" => "US_SOCIAL_SECURITY_NUMBER",
        "IBAN_CODE" => "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
        "IP_ADDRESS" => "IP_ADDRESS",
        "AGE" => "AGE",
        "US_DRIVER_LICENSE" => "DRIVER_ID",
        _ => return None,
    })
}

/// Our Korean variants compare as their generic entity on the English corpus.
fn map_pred(l: &str) -> &str {
    match l {
        "KR_PHONE" => "PHONE",
        "KR_NAME" => "NAME",
        "KR_ADDRESS" => "ADDRESS",
        other => other,
    }
}

fn overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[derive(Default)]
struct Counts {
    gold: usize,
    found: usize,
    pred: usize,
    tp: usize,
    fp_on: BTreeMap<String, usize>,
}

fn prf(c: &Counts) -> (f64, f64, f64) {
    let p = if c.pred == 0 {
        0.0
    } else {
        c.tp as f64 / c.pred as f64
    };
    let r = if c.gold == 0 {
        0.0
    } else {
        c.found as f64 / c.gold as f64
    };
    let f = if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    };
    (p, r, f)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = "/work/shared/corpora".to_string();
    let mut threshold = 0.5f32;
    let mut verbose = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--threshold" => {
                i += 1;
                threshold = args.get(i).ok_or("--threshold needs a value")?.parse()?;
            }
            "--verbose" => verbose = true,
            d => dir = d.to_string(),
        }
        i += 1;
    }
    let det = PiiDetector::new(None, &[])?;
    let ctx = DetectContext::default();
    println!("threshold {threshold} (medium strength)\n");

    // presidio synthetic set.
    let path = format!("{dir}/presidio_synth_pii/synth_dataset_v2_templates_mod3_ne0.json");
    let rows: Vec<Row> = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let mut unscored_preds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for row in &rows {
        let preds: Vec<(String, (usize, usize))> = det
            .detect(&row.full_text, &ctx)
            .findings
            .into_iter()
            .filter(|f| f.score >= threshold)
            .map(|f| {
                let l = map_pred(&f.label).to_string();
                (
                    l,
                    (
                        char_offset(&row.full_text, f.start),
                        char_offset(&row.full_text, f.end),
                    ),
                )
            })
            .collect();
        for g in &row.spans {
            if let Some(l) = map_gold(&g.entity_type) {
                let c = counts.entry(l.to_string()).or_default();
                c.gold += 1;
                let gs = (g.start_position, g.end_position);
                if preds.iter().any(|(pl, ps)| pl == l && overlap(*ps, gs)) {
                    c.found += 1;
                } else if verbose {
                    println!(
                        "MISS {l}: {:?} in {:?}",
                        &row.full_text
                            .chars()
                            .skip(gs.0)
                            .take(gs.1 - gs.0)
                            .collect::<String>(),
                        row.full_text
                    );
                }
            }
        }
        for (pl, ps) in &preds {
            let scored = counts.contains_key(pl.as_str())
                || [
                    "NAME",
                    "ADDRESS",
                    "CREDIT_DEBIT_CARD_NUMBER",
                    "PHONE",
                    "EMAIL",
                    "US_SOCIAL_SECURITY_NUMBER",
                    "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
                    "IP_ADDRESS",
                    "AGE",
                    "DRIVER_ID",
                ]
                .contains(&pl.as_str());
            let hit = row.spans.iter().any(|g| {
                map_gold(&g.entity_type) == Some(pl.as_str())
                    && overlap(*ps, (g.start_position, g.end_position))
            });
            let on: Vec<&str> = row
                .spans
                .iter()
                .filter(|g| overlap(*ps, (g.start_position, g.end_position)))
                .map(|g| g.entity_type.as_str())
                .collect();
            if !scored {
                let e = unscored_preds.entry(pl.clone()).or_default();
                e.0 += 1;
                if !on.is_empty() {
                    e.1 += 1;
                }
                continue;
            }
            let c = counts.entry(pl.clone()).or_default();
            c.pred += 1;
            if hit {
                c.tp += 1;
            } else {
                let key = on.first().map_or("nothing".to_string(), |s| s.to_string());
                *c.fp_on.entry(key).or_default() += 1;
                if verbose {
                    println!(
                        "FP {pl}: {:?} in {:?}",
                        row.full_text
                            .chars()
                            .skip(ps.0)
                            .take(ps.1 - ps.0)
                            .collect::<String>(),
                        row.full_text
                    );
                }
            }
        }
    }
    println!(
        "presidio_synth_pii ({} sentences), span-overlap matching",
        rows.len()
    );
    println!(
        "{:<36} {:>5} {:>5} {:>6} {:>6} {:>6}  false positives overlapping",
        "entity", "gold", "pred", "P", "R", "F1"
    );
    for (l, c) in &counts {
        let (p, r, f) = prf(c);
        let fps: Vec<String> = c.fp_on.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        println!(
            "{l:<36} {:>5} {:>5} {p:>6.3} {r:>6.3} {f:>6.3}  {}",
            c.gold,
            c.pred,
            fps.join(" ")
        );
    }
    for (l, (n, on)) in &unscored_preds {
        println!("{l:<36} (no gold type) predictions {n}, overlapping some labelled span {on}");
    }

    // Benign prompts.
    let path = format!("{dir}/piguard_wildguard_benign/wildguard.json");
    let benign: Vec<Benign> = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for b in &benign {
        for f in det
            .detect(&b.prompt, &ctx)
            .findings
            .into_iter()
            .filter(|f| f.score >= threshold)
        {
            total += 1;
            if verbose {
                println!("BENIGN {}: {:?}", f.label, &b.prompt[f.start..f.end]);
            }
            *per.entry(f.label).or_default() += 1;
        }
    }
    let secret = haechi::detect::secret::SecretDetector::new()?;
    let secret_fp: usize = benign
        .iter()
        .map(|b| {
            secret
                .detect(&b.prompt, &ctx)
                .findings
                .iter()
                .filter(|f| f.score >= threshold)
                .count()
        })
        .sum();
    let k = 1000.0 / benign.len() as f64;
    println!(
        "\npiguard_wildguard_benign ({} prompts): {total} findings = {:.1} per 1,000 prompts",
        benign.len(),
        total as f64 * k
    );
    for (l, n) in &per {
        println!("  {l:<34} {n:>4}  ({:.1} per 1,000)", *n as f64 * k);
    }
    println!(
        "  secret detector: {secret_fp} findings ({:.1} per 1,000)",
        secret_fp as f64 * k
    );

    // Korean generated set.
    let path = "tests/data/pii_ko.jsonl";
    if let Ok(s) = std::fs::read_to_string(path) {
        let (mut gold, mut found, mut pred, mut tp) = (0, 0, 0, 0);
        let mut per: BTreeMap<String, (usize, usize, usize, usize)> = BTreeMap::new();
        for line in s.lines().filter(|l| !l.trim().is_empty()) {
            let row: KoRow = serde_json::from_str(line)?;
            let preds: Vec<(String, (usize, usize))> = det
                .detect(&row.text, &ctx)
                .findings
                .into_iter()
                .filter(|f| f.score >= threshold)
                .map(|f| {
                    (
                        f.label,
                        (
                            char_offset(&row.text, f.start),
                            char_offset(&row.text, f.end),
                        ),
                    )
                })
                .collect();
            for g in &row.spans {
                gold += 1;
                let e = per.entry(g.label.clone()).or_default();
                e.0 += 1;
                if preds
                    .iter()
                    .any(|(l, p)| *l == g.label && overlap(*p, (g.start, g.end)))
                {
                    found += 1;
                    e.1 += 1;
                } else if verbose {
                    println!("KO MISS {} {:?}", g.label, row.text);
                }
            }
            for (l, p) in &preds {
                pred += 1;
                let e = per.entry(l.clone()).or_default();
                e.2 += 1;
                if row
                    .spans
                    .iter()
                    .any(|g| g.label == *l && overlap(*p, (g.start, g.end)))
                {
                    tp += 1;
                    e.3 += 1;
                } else if verbose {
                    println!("KO FP {l} {:?}", row.text);
                }
            }
        }
        let c = Counts {
            gold,
            found,
            pred,
            tp,
            fp_on: BTreeMap::new(),
        };
        let (p, r, f) = prf(&c);
        println!(
            "\n{path}: gold {gold}, predicted {pred}: precision {p:.3} recall {r:.3} F1 {f:.3}"
        );
        for (l, (g, fo, pr, t)) in &per {
            let c = Counts {
                gold: *g,
                found: *fo,
                pred: *pr,
                tp: *t,
                fp_on: BTreeMap::new(),
            };
            let (p, r, f) = prf(&c);
            println!("  {l:<20} gold {g:>4} pred {pr:>4}  P {p:.3} R {r:.3} F1 {f:.3}");
        }
    }
    Ok(())
}
