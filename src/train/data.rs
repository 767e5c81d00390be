//! Corpus readers for the trainer (formats described in `../shared/corpora/README.md`)
//! and the deterministic split rule.

use std::path::Path;

use super::TrainError;

/// Which part of a corpus a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
}

/// A labelled text with its split.
#[derive(Debug, Clone)]
pub struct Row {
    pub text: String,
    pub targets: Vec<f32>,
    pub split: Split,
    /// Corpus name, for per-source metrics.
    pub source: &'static str,
}

/// Stable 64-bit FNV-1a hash of a key, used to assign splits reproducibly.
pub fn key_hash(key: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// 10% test, 10% validation, 80% train by hash of a group key.
pub fn split_of(key: &str) -> Split {
    match key_hash(key) % 10 {
        0 => Split::Test,
        1 => Split::Val,
        _ => Split::Train,
    }
}

pub fn read(path: &Path) -> Result<String, TrainError> {
    std::fs::read_to_string(path).map_err(|e| TrainError::Io(path.display().to_string(), e))
}

/// Minimal RFC 4180 CSV parser (quoted fields, doubled quotes, newlines inside quotes).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn malformed(what: &str) -> TrainError {
    TrainError::Malformed(what.to_string())
}

/// Davidson et al.: targets `[toxic, hate]`; toxic = hate or offensive (class 0/1).
pub fn davidson(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("davidson_hate_offensive/labeled_data.csv"))?;
    let mut out = Vec::new();
    for r in parse_csv(&text).into_iter().skip(1) {
        if r.len() < 7 {
            continue;
        }
        let class: u8 = r[5]
            .trim()
            .parse()
            .map_err(|_| malformed("davidson class"))?;
        let toxic = if class < 2 { 1.0 } else { 0.0 };
        let hate = if class == 0 { 1.0 } else { 0.0 };
        out.push(Row {
            text: r[6].clone(),
            targets: vec![toxic, hate],
            split: split_of(&format!("davidson{}", r[0])),
            source: "davidson",
        });
    }
    Ok(out)
}

/// ToxiGen seed statements: `hate` → toxic and HATE.
pub fn toxigen(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("toxigen_demonstrations/toxigen_prompt_statements.jsonl"))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|_| malformed("toxigen"))?;
        let t = v["text"]
            .as_str()
            .ok_or_else(|| malformed("toxigen text"))?;
        let hate = v["label"].as_str() == Some("hate");
        let y = if hate { 1.0 } else { 0.0 };
        out.push(Row {
            text: t.to_string(),
            targets: vec![y, y],
            split: split_of(t),
            source: "toxigen",
        });
    }
    Ok(out)
}

/// BEEP!: train.tsv split 90/10 into train/val, dev.tsv is the held-out test.
/// Targets `[toxic, hate]`: toxic = hate or offensive.
pub fn beep(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let mut out = Vec::new();
    for (file, is_dev) in [("train.tsv", false), ("dev.tsv", true)] {
        let text = read(&dir.join("kocohub_beep_ko").join(file))?;
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 4 {
                continue;
            }
            let hate = cols[3].trim();
            let toxic = if hate == "none" { 0.0 } else { 1.0 };
            let h = if hate == "hate" { 1.0 } else { 0.0 };
            let split = if is_dev {
                Split::Test
            } else if key_hash(cols[0]).is_multiple_of(10) {
                Split::Val
            } else {
                Split::Train
            };
            out.push(Row {
                text: cols[0].to_string(),
                targets: vec![toxic, h],
                split,
                source: "beep",
            });
        }
    }
    Ok(out)
}

/// Korean curse detection: `text|label`; HATE unknown (-1).
pub fn curse(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("curse_detection_ko/dataset.txt"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((t, l)) = line.rsplit_once('|') else {
            continue;
        };
        let y = match l.trim() {
            "1" => 1.0,
            "0" => 0.0,
            _ => continue,
        };
        out.push(Row {
            text: t.to_string(),
            targets: vec![y, -1.0],
            split: split_of(t),
            source: "curse",
        });
    }
    Ok(out)
}

/// UnSmile valid split (CC BY-NC-ND): measurement only, never trained on.
pub fn unsmile_valid(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("unsmile_ko/unsmile_valid_v1.0.tsv"))?;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 12 {
            continue;
        }
        let clean = cols[10].trim() == "1";
        out.push(Row {
            text: cols[0].to_string(),
            targets: vec![if clean { 0.0 } else { 1.0 }],
            split: Split::Test,
            source: "unsmile",
        });
    }
    Ok(out)
}

/// S-Labs: its own train/validation/test files.
pub fn s_labs(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let mut out = Vec::new();
    for (file, split) in [
        ("train.csv", Split::Train),
        ("validation.csv", Split::Val),
        ("test.csv", Split::Test),
    ] {
        let text = read(&dir.join("s_labs_prompt_injection").join(file))?;
        for r in parse_csv(&text).into_iter().skip(1) {
            if r.len() < 2 {
                continue;
            }
            let y = match r[1].trim() {
                "1" => 1.0,
                "0" => 0.0,
                _ => continue,
            };
            out.push(Row {
                text: r[0].clone(),
                targets: vec![y],
                split,
                source: "s_labs",
            });
        }
    }
    Ok(out)
}

/// neuralchemy core: its own splits, which are disjoint by `group_id`.
pub fn neuralchemy(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let mut out = Vec::new();
    for (file, split) in [
        ("core-train.jsonl", Split::Train),
        ("core-validation.jsonl", Split::Val),
        ("core-test.jsonl", Split::Test),
    ] {
        let text = read(&dir.join("neuralchemy_prompt_injection").join(file))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|_| malformed("neuralchemy"))?;
            let t = v["text"]
                .as_str()
                .ok_or_else(|| malformed("neuralchemy text"))?;
            let y = v["label"]
                .as_f64()
                .ok_or_else(|| malformed("neuralchemy label"))? as f32;
            out.push(Row {
                text: t.to_string(),
                targets: vec![y],
                split,
                source: "neuralchemy",
            });
        }
    }
    Ok(out)
}

/// yanismiraoui multilingual attacks (all label 1), split by hash of the text.
pub fn yanis(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("yanismiraoui_prompt_injections/prompt_injections.csv"))?;
    Ok(parse_csv(&text)
        .into_iter()
        .skip(1)
        .filter_map(|r| r.into_iter().next())
        .filter(|t| !t.trim().is_empty())
        .map(|t| Row {
            split: split_of(&t),
            text: t,
            targets: vec![1.0],
            source: "yanis",
        })
        .collect())
}

/// JailbreakBench artifacts: `prompt` = attack (1), `goal` = the plain request (0, a hard
/// negative: harmful topic without an attack wrapper). Split by behaviour index so the same
/// behaviour never sits on both sides.
pub fn jailbreakbench(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let root = dir.join("jailbreakbench_artifacts/attack-artifacts");
    let mut files = Vec::new();
    collect_json(&root, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    let mut seen_goals = std::collections::HashSet::new();
    for f in files {
        let text = read(&f)?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(items) = v["jailbreaks"].as_array() else {
            continue;
        };
        for it in items {
            let idx = it["index"].as_u64().unwrap_or(0);
            let split = match idx % 10 {
                0 => Split::Test,
                1 => Split::Val,
                _ => Split::Train,
            };
            if let Some(p) = it["prompt"].as_str() {
                out.push(Row {
                    text: p.to_string(),
                    targets: vec![1.0],
                    split,
                    source: "jailbreakbench",
                });
            }
            if let Some(g) = it["goal"].as_str() {
                if seen_goals.insert(g.to_string()) {
                    out.push(Row {
                        text: g.to_string(),
                        targets: vec![0.0],
                        split,
                        source: "jbb_goal",
                    });
                }
            }
        }
    }
    Ok(out)
}

fn collect_json(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), TrainError> {
    let rd = std::fs::read_dir(dir).map_err(|e| TrainError::Io(dir.display().to_string(), e))?;
    for entry in rd.flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect_json(&p, out)?;
        } else if p.extension().and_then(|e| e.to_str()) == Some("json")
            && p.parent() != Some(dir).filter(|d| d.ends_with("attack-artifacts"))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// PIGuard WildGuard benign prompts (label 0), split by hash of the prompt: 35% test
/// (the false-positive figure), 15% validation, 50% train (benign role-play framings that
/// look like jailbreaks; without them the model flags almost half of this set).
pub fn piguard(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("piguard_wildguard_benign/wildguard.json"))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| malformed("piguard"))?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["prompt"].as_str())
                .map(|t| Row {
                    text: t.to_string(),
                    targets: vec![0.0],
                    split: piguard_split(t),
                    source: "piguard",
                })
                .collect()
        })
        .unwrap_or_default())
}

fn piguard_split(t: &str) -> Split {
    match key_hash(t) % 20 {
        0..=6 => Split::Test,
        7..=9 => Split::Val,
        _ => Split::Train,
    }
}

/// Do-Not-Answer prompts (Apache-2.0): harmful but plain requests, no attack wrapper;
/// label 0 for the prompt-attack model (hard negatives), split by id.
pub fn do_not_answer(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("do_not_answer/do_not_answer_en_prompts.csv"))?;
    let rows = parse_csv(&text);
    let header = rows.first().cloned().unwrap_or_default();
    let q = header
        .iter()
        .position(|h| h == "question")
        .ok_or_else(|| malformed("do_not_answer header"))?;
    Ok(rows
        .into_iter()
        .skip(1)
        .filter_map(|r| {
            let t = r.get(q)?.clone();
            Some(Row {
                split: split_of(&t),
                text: t,
                targets: vec![0.0],
                source: "do_not_answer",
            })
        })
        .collect())
}

/// KLUE-NLI dev sentences (CC BY-SA 4.0): general-domain Korean text, non-toxic
/// negatives for the Korean toxicity model (BEEP! alone is entertainment comments only).
pub fn klue_sentences(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("klue_nli_ko/klue-nli-v1.1_dev.json"))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| malformed("klue"))?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for item in v.as_array().into_iter().flatten() {
        for k in ["premise", "hypothesis"] {
            if let Some(t) = item[k].as_str() {
                if seen.insert(t.to_string()) {
                    out.push(Row {
                        text: t.to_string(),
                        targets: vec![0.0, 0.0],
                        split: split_of(t),
                        source: "klue",
                    });
                }
            }
        }
    }
    Ok(out)
}

/// CLINC150 queries (CC BY 3.0) with their own train/val/test splits (in-scope and
/// out-of-scope): short everyday assistant requests, benign for toxicity. Targets
/// `[0, 0]`; `intent` is kept in `source` only as "clinc".
pub fn clinc_queries(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("clinc150_oos/data_full.json"))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| malformed("clinc"))?;
    let mut out = Vec::new();
    for (key, split) in [
        ("train", Split::Train),
        ("oos_train", Split::Train),
        ("val", Split::Val),
        ("oos_val", Split::Val),
        ("test", Split::Test),
        ("oos_test", Split::Test),
    ] {
        for item in v[key].as_array().into_iter().flatten() {
            if let Some(q) = item[0].as_str() {
                out.push(Row {
                    text: q.to_string(),
                    targets: vec![0.0, 0.0],
                    split,
                    source: "clinc",
                });
            }
        }
    }
    Ok(out)
}

/// HaluEval QA questions (MIT): encyclopaedic English questions, benign for toxicity.
/// Split 80/10/10 by hash of the question.
pub fn halueval_questions(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("halueval/qa_shared.jsonl"))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["question"].as_str().map(str::to_string))
        .map(|q| Row {
            split: split_of(&q),
            text: q,
            targets: vec![0.0, 0.0],
            source: "halueval_q",
        })
        .collect())
}

/// HaluEval QA knowledge passages (MIT): encyclopaedic English prose, benign for the
/// prompt-attack model (indirect-injection false positives on retrieved documents). Split
/// 80/10/10 by hash of the item's question, the same rule as [`halueval_questions`], so a
/// passage and its question are always on the same side.
pub fn halueval_knowledge(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("halueval/qa_shared.jsonl"))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let q = v["question"].as_str()?;
            let k = v["knowledge"].as_str()?;
            Some(Row {
                split: split_of(q),
                text: k.to_string(),
                targets: vec![0.0],
                source: "halueval_k",
            })
        })
        .collect())
}

/// HaluEval general user queries (MIT): Alpaca-style task instructions ("Summarize the
/// process of ...", "Edit the poem ..."), benign for the prompt-attack model. Split
/// 80/10/10 by hash of the item's `ID`.
pub fn halueval_instructions(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("halueval/general_data.json"))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let id = v["ID"].as_str().map(str::to_string).unwrap_or_default();
            let q = v["user_query"].as_str()?;
            Some(Row {
                split: split_of(&format!("halueval_g{id}")),
                text: q.to_string(),
                targets: vec![0.0],
                source: "halueval_g",
            })
        })
        .collect())
}

/// HaluEval dialogue user turns (MIT): short chatty requests ("Do you like Iron Man",
/// "Yes, he was very talented indeed."), benign for the prompt-attack model. One row per
/// distinct `[Human]:` turn; split 80/10/10 by hash of the dialogue's first turn, so all
/// turns of a conversation (and repeated openers) stay on one side.
pub fn halueval_dialogue_turns(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("halueval/dialogue.jsonl"))?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for v in text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let Some(h) = v["dialogue_history"].as_str() else {
            continue;
        };
        let turns: Vec<&str> = h
            .split("[Human]:")
            .skip(1)
            .map(|t| t.split("[Assistant]:").next().unwrap_or("").trim())
            .filter(|t| !t.is_empty())
            .collect();
        let Some(first) = turns.first() else {
            continue;
        };
        let split = split_of(&format!("halueval_d{first}"));
        for t in &turns {
            if seen.insert(t.to_string()) {
                out.push(Row {
                    text: t.to_string(),
                    targets: vec![0.0],
                    split,
                    source: "halueval_d",
                });
            }
        }
    }
    Ok(out)
}

/// presidio-research synthetic sentences and their bare entity values (MIT): text full of
/// personal data (names, addresses, card numbers, e-mail addresses), benign for the
/// prompt-attack model. Split 80/10/10 by `template_id`, so a sentence shape is on one
/// side only.
pub fn presidio_texts(dir: &Path) -> Result<Vec<Row>, TrainError> {
    let text = read(&dir.join("presidio_synth_pii/synth_dataset_v2_templates_mod3_ne0.json"))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| malformed("presidio"))?;
    let mut out = Vec::new();
    for item in v.as_array().into_iter().flatten() {
        let split = split_of(&format!("presidio{}", item["template_id"]));
        let row = |t: &str| Row {
            text: t.to_string(),
            targets: vec![0.0],
            split,
            source: "presidio",
        };
        if let Some(t) = item["full_text"].as_str() {
            out.push(row(t));
        }
        for s in item["spans"].as_array().into_iter().flatten() {
            if let Some(t) = s["entity_value"].as_str() {
                out.push(row(t));
            }
        }
    }
    Ok(out)
}

/// Hand-written seed rows shipped in the repo (`models/seed/*.tsv`: `label<TAB>text`).
pub fn seed_tsv(text: &str, source: &'static str) -> Vec<Row> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t'))
        .map(|(l, t)| Row {
            text: t.to_string(),
            targets: vec![if l.trim() == "1" { 1.0 } else { 0.0 }],
            split: Split::Train,
            source,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_handles_quotes_and_newlines() {
        let rows = parse_csv("a,b\n\"x, \"\"y\"\"\nz\",1\nlast,0");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][0], "x, \"y\"\nz");
        assert_eq!(rows[2], vec!["last".to_string(), "0".to_string()]);
    }

    #[test]
    fn split_is_stable_and_roughly_balanced() {
        let n = 10_000;
        let test = (0..n)
            .filter(|i| split_of(&format!("k{i}")) == Split::Test)
            .count();
        assert!((800..1200).contains(&test), "{test}");
        assert_eq!(split_of("abc"), split_of("abc"));
    }
}
