//! `haechi scan`: JSON Lines in, one decision per line out, in constant memory.
//!
//! Input line: `{"id"?, "text", "stage"?: "input"|"output", "context"?: string|[string],
//! "query"?}` (other keys are ignored, so labelled datasets can be fed as they are).
//! Output line: `{"id", "action", "text"?, "findings": [{rule, kind, label, score, start,
//! end}], "scores": {...}}` where `start`/`end` are character offsets into the input
//! `text`, `text` is present only when rewritten, and `scores` has every detector's raw
//! score (all rules run, even after a block). A line that cannot be read yields
//! `{"id", "error"}` and the run goes on. Blank lines are skipped.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufWriter, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::detect::DetectContext;
use crate::engine::{evaluate, EvalOptions, PseudonymMap, Stage};
use crate::policy::compile::CompiledPolicy;
use crate::policy::model::Mode;
use crate::text::char_offset;

/// Settings of a scan run.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// HMAC key of the `hash` action.
    pub hash_key: Vec<u8>,
}

/// Counts of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Lines evaluated.
    pub lines: u64,
    /// Lines answered with an error line.
    pub errors: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct InLine {
    #[serde(default)]
    id: Option<Value>,
    text: String,
    #[serde(default)]
    stage: Option<Stage>,
    #[serde(default)]
    context: Option<OneOrMany>,
    #[serde(default)]
    query: Option<String>,
}

#[derive(Serialize)]
struct OutFinding<'a> {
    rule: &'a str,
    kind: &'static str,
    label: &'a str,
    score: f32,
    start: usize,
    end: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
}

#[derive(Serialize)]
struct OutLine<'a> {
    id: &'a Value,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    findings: Vec<OutFinding<'a>>,
    scores: &'a BTreeMap<&'static str, f32>,
    /// What each `llm_judge` rule came to (absent when the policy has none).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    judges: &'a [crate::detect::judge::JudgeReport],
}

#[derive(Serialize)]
struct ErrLine<'a> {
    id: &'a Value,
    error: String,
}

/// Evaluates every line of `input` against `policy` and writes one line per input line.
/// Returns an error only when reading or writing fails. Uses every available core (see
/// [`scan_threads`]).
pub fn scan<R: BufRead, W: Write>(
    policy: &CompiledPolicy,
    input: R,
    output: W,
    opts: &ScanOptions,
) -> io::Result<ScanStats> {
    scan_threads(policy, input, output, opts, 0)
}

/// Lines per chunk handed to a worker: small enough that the workers finish together,
/// large enough that the hand-over costs nothing next to evaluating the lines.
const CHUNK_LINES: usize = 64;
/// Input bytes per chunk at most (a chunk of huge lines closes early).
const CHUNK_BYTES: usize = 1024 * 1024;
/// Chunks read ahead per worker at most: memory stays bounded (a few MiB per worker)
/// while the reader keeps every worker busy.
const CHUNKS_AHEAD_PER_WORKER: usize = 4;

/// One chunk of non-blank input lines with their line numbers.
type Chunk = Vec<(u64, Vec<u8>)>;
/// A worker's answer for one chunk: its output lines and how many were error lines.
type ChunkResult = io::Result<(Vec<u8>, u64)>;

/// [`scan`] on `threads` worker threads (`0` = one per available core). The calling thread
/// reads chunks of lines and writes the results in input order (so the output is the
/// same as one thread's) while the workers, started once for the whole run, evaluate
/// them: each keeps its thread-local and per-thread regex caches warm for the whole
/// input. Policies with `llm_judge` rules run on one thread (their calls go through a
/// runtime of the scan's own).
pub fn scan_threads<R: BufRead, W: Write>(
    policy: &CompiledPolicy,
    mut input: R,
    output: W,
    opts: &ScanOptions,
    threads: usize,
) -> io::Result<ScanStats> {
    let mut out = BufWriter::with_capacity(64 * 1024, output);
    let mut stats = ScanStats::default();
    let mut line_no: u64 = 0;
    // `llm_judge` rules call out: a scan with judges runs them on a small runtime of its
    // own, one line at a time (each call within its rule's deadline).
    let judges = [Stage::Input, Stage::Output]
        .iter()
        .any(|&s| crate::proxy::judge::has_judges(policy, s))
        .then(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| (rt, crate::proxy::judge::JudgeClient::new()))
        })
        .transpose()?;
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if judges.is_some() || threads <= 1 {
        let mut buf = Vec::with_capacity(4096);
        loop {
            buf.clear();
            if input.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            line_no += 1;
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            stats.lines += 1;
            if !scan_line(policy, &buf, line_no, judges.as_ref(), opts, &mut out)? {
                stats.errors += 1;
            }
        }
        out.flush()?;
        return Ok(stats);
    }
    let jobs_limit = threads * CHUNKS_AHEAD_PER_WORKER;
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(u64, Chunk)>(jobs_limit);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, u64, ChunkResult)>();
    let job_rx = std::sync::Mutex::new(job_rx);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            s.spawn(move || loop {
                // The lock is held only to take one chunk off the queue.
                let job = match job_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((seq, chunk)) = job else { return };
                // A panic must still answer for its chunk, or the writer would wait for it.
                // The policy is only read: a panic cannot leave it half-changed.
                let evaluate = std::panic::AssertUnwindSafe(|| scan_chunk(policy, &chunk, opts));
                let result = std::panic::catch_unwind(evaluate)
                    .unwrap_or_else(|_| Err(io::Error::other("scan worker panicked")));
                if done_tx.send((seq, chunk.len() as u64, result)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let run = feed_and_collect(
            &mut input,
            &mut out,
            &mut stats,
            &mut line_no,
            &job_tx,
            &done_rx,
            jobs_limit,
        );
        // Closing the queue ends the workers (also when reading or writing failed).
        drop(job_tx);
        run
    })?;
    out.flush()?;
    Ok(stats)
}

/// Evaluates one chunk: its output lines and how many of them are error lines.
fn scan_chunk(policy: &CompiledPolicy, chunk: &Chunk, opts: &ScanOptions) -> ChunkResult {
    let mut buf = Vec::with_capacity(chunk.len() * 512);
    let mut errors = 0;
    for (no, line) in chunk {
        if !scan_line(policy, line, *no, None, opts, &mut buf)? {
            errors += 1;
        }
    }
    Ok((buf, errors))
}

/// The calling thread's side of [`scan_threads`]: reads chunks and queues them while
/// fewer than `limit` are in flight, and writes finished chunks in input order.
fn feed_and_collect<R: BufRead, W: Write>(
    input: &mut R,
    out: &mut W,
    stats: &mut ScanStats,
    line_no: &mut u64,
    jobs: &std::sync::mpsc::SyncSender<(u64, Chunk)>,
    done: &std::sync::mpsc::Receiver<(u64, u64, ChunkResult)>,
    limit: usize,
) -> io::Result<()> {
    let worker_gone = || io::Error::other("scan worker stopped");
    let (mut next_seq, mut next_out) = (0u64, 0u64);
    let mut finished: BTreeMap<u64, (u64, ChunkResult)> = BTreeMap::new();
    let mut eof = false;
    loop {
        while !eof && next_seq - next_out < limit as u64 {
            let mut chunk: Chunk = Vec::new();
            let mut bytes = 0;
            while chunk.len() < CHUNK_LINES && bytes < CHUNK_BYTES {
                let mut buf = Vec::new();
                if input.read_until(b'\n', &mut buf)? == 0 {
                    eof = true;
                    break;
                }
                *line_no += 1;
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                bytes += buf.len();
                chunk.push((*line_no, buf));
            }
            if chunk.is_empty() {
                continue;
            }
            jobs.send((next_seq, chunk)).map_err(|_| worker_gone())?;
            next_seq += 1;
        }
        if next_out == next_seq {
            return Ok(());
        }
        let (seq, lines, result) = done.recv().map_err(|_| worker_gone())?;
        finished.insert(seq, (lines, result));
        while let Some((lines, result)) = finished.remove(&next_out) {
            let (buf, errors) = result?;
            out.write_all(&buf)?;
            stats.lines += lines;
            stats.errors += errors;
            next_out += 1;
        }
    }
}

/// Evaluates one non-blank input line and writes its output line; `Ok(false)` when the
/// line could not be read (an error line was written).
fn scan_line<W: Write>(
    policy: &CompiledPolicy,
    buf: &[u8],
    line_no: u64,
    judges: Option<&(tokio::runtime::Runtime, crate::proxy::judge::JudgeClient)>,
    opts: &ScanOptions,
    mut out: W,
) -> io::Result<bool> {
    // A line that is valid UTF-8 (checked in SIMD) is parsed as a `str`, so serde_json does
    // not check every string again byte by byte (that check was 4% of a Korean line's
    // time); any other line goes to the byte parser, whose error names the bad byte.
    let parsed = match simdutf8::basic::from_utf8(buf) {
        Ok(s) => serde_json::from_str::<InLine>(s),
        Err(_) => serde_json::from_slice::<InLine>(buf),
    };
    let line: InLine = match parsed {
        Ok(l) => l,
        Err(e) => {
            // On the error path only: recover the id if the line is JSON at all.
            let id = serde_json::from_slice::<Value>(buf)
                .ok()
                .and_then(|v| v.get("id").cloned())
                .unwrap_or_else(|| Value::from(line_no));
            serde_json::to_writer(
                &mut out,
                &ErrLine {
                    id: &id,
                    error: e.to_string(),
                },
            )?;
            out.write_all(b"\n")?;
            return Ok(false);
        }
    };
    let id = line.id.unwrap_or_else(|| Value::from(line_no));
    let context = match line.context {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    let ctx = DetectContext {
        context: &context,
        query: line.query.as_deref(),
    };
    let mut map = PseudonymMap::new();
    let text = line.text.as_str();
    let stage = line.stage.unwrap_or_default();
    let judged = match judges {
        Some((rt, client)) => {
            rt.block_on(client.judge_stage(policy, stage, &[text], &[], &context))
        }
        None => Vec::new(),
    };
    let eval_opts = EvalOptions {
        hash_key: &opts.hash_key,
        language: None,
        run_all: true,
        trusted: &[],
        select: None,
        judged: &judged,
        skip: &[],
    };
    let d = evaluate(policy, stage, &[text], &ctx, &eval_opts, &mut map);
    let findings = d
        .hits
        .iter()
        .flat_map(|h| {
            h.findings.iter().map(move |f| OutFinding {
                rule: &h.rule,
                kind: h.kind,
                label: &f.label,
                score: f.score,
                start: char_offset(text, f.start),
                end: char_offset(text, f.end),
                mode: (h.mode == Mode::Shadow).then_some("shadow"),
            })
        })
        .collect();
    let o = OutLine {
        id: &id,
        action: d.action.as_str(),
        text: d.rewritten.first().and_then(|t| t.as_deref()),
        findings,
        scores: &d.scores,
        judges: &d.judges,
    };
    serde_json::to_writer(&mut out, &o)?;
    out.write_all(b"\n")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compile::compile_sources;
    use crate::policy::load::Source;

    const POLICY: &str = r#"id: default
input:
  - {id: email, detector: regex, patterns: [{label: EMAIL, pattern: '[a-z]+@[a-z]+\.com'}], action: mask}
  - {id: bad, detector: word, words: [바보], action: warn}
  - {id: shadowy, detector: word, words: [maybe], action: block, mode: shadow}
output:
  - {id: stop, detector: word, words: [stop], action: block}
"#;

    fn run(input: &str) -> Vec<Value> {
        let set = compile_sources(&[Source {
            name: "p.yaml".into(),
            text: POLICY.into(),
        }])
        .unwrap();
        let mut out = Vec::new();
        scan(
            &set.default_policy(),
            input.as_bytes(),
            &mut out,
            &ScanOptions::default(),
        )
        .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn threads_give_the_output_of_one_thread_in_order() {
        let set = compile_sources(&[Source {
            name: "p.yaml".into(),
            text: POLICY.into(),
        }])
        .unwrap();
        let policy = set.default_policy();
        let mut input = String::new();
        for i in 0..2500 {
            match i % 7 {
                0 => input.push_str("not json\n"),
                1 => input.push('\n'),
                2 => input.push_str(&format!(
                    "{{\"id\": {i}, \"text\": \"mail kim@example.com 바보\"}}\n"
                )),
                3 => input.push_str(&format!(
                    "{{\"text\": \"stop {i}\", \"stage\": \"output\"}}\n"
                )),
                _ => input.push_str(&format!(
                    "{{\"id\": \"x{i}\", \"text\": \"maybe {i} 바보야\"}}\n"
                )),
            }
        }
        let run = |threads| {
            let mut out = Vec::new();
            let stats = scan_threads(
                &policy,
                input.as_bytes(),
                &mut out,
                &ScanOptions::default(),
                threads,
            )
            .unwrap();
            (out, stats)
        };
        let (one, s1) = run(1);
        assert_eq!(s1.errors, 358);
        assert_eq!(
            String::from_utf8_lossy(&one).lines().count() as u64,
            s1.lines
        );
        for threads in [2, 3, 0] {
            let (many, s) = run(threads);
            assert_eq!(s, s1);
            assert!(one == many, "{threads} threads differ");
        }
    }

    #[test]
    fn jsonl_contract_with_character_offsets() {
        let out = run("{\"id\":\"a\",\"text\":\"바보 메일 kim@x.com\"}\n");
        let v = &out[0];
        assert_eq!(v["id"], "a");
        assert_eq!(v["action"], "anonymize");
        assert_eq!(v["text"], "바보 메일 {EMAIL}");
        let f: Vec<(String, String, u64, u64)> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["rule"].as_str().unwrap().into(),
                    f["label"].as_str().unwrap().into(),
                    f["start"].as_u64().unwrap(),
                    f["end"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            f,
            vec![
                ("email".into(), "EMAIL".into(), 6, 15),
                ("bad".into(), "DENIED_WORD".into(), 0, 2)
            ]
        );
        assert_eq!(v["findings"][0]["kind"], "regex");
        assert_eq!(v["scores"]["regex"], 1.0);
        assert_eq!(v["scores"]["word"], 1.0);
    }

    #[test]
    fn ids_stages_errors_and_blank_lines() {
        let input = concat!(
            "{\"text\":\"hello\"}\n",
            "not json\n",
            "\n",
            "{\"id\":7,\"txt\":\"typo\"}\n",
            "{\"id\":\"o\",\"text\":\"please stop\",\"stage\":\"output\",\"context\":\"doc\",\"query\":\"q\"}\n",
            "{\"id\":\"s\",\"text\":\"maybe\",\"context\":[\"a\",\"b\"],\"label\":\"x\"}",
        );
        let out = run(input);
        assert_eq!(out.len(), 5);
        assert_eq!(
            (out[0]["id"].clone(), out[0]["action"].clone()),
            (Value::from(1), Value::from("allow"))
        );
        assert!(out[0].get("text").is_none());
        assert_eq!(out[1]["id"], 2);
        assert!(out[1]["error"].is_string());
        assert_eq!(out[2]["id"], 7);
        assert!(out[2]["error"].as_str().unwrap().contains("text"));
        assert_eq!(out[3]["action"], "block");
        assert_eq!(out[4]["action"], "allow");
        assert_eq!(out[4]["findings"][0]["mode"], "shadow");
    }

    /// A line that is not UTF-8 gets an error line (from the byte parser, which names the
    /// position) and the run goes on; escapes and Korean text in valid lines are read
    /// exactly (the `str` parser).
    #[test]
    fn a_line_that_is_not_utf8_gets_an_error_line() {
        let set = compile_sources(&[Source {
            name: "p.yaml".into(),
            text: POLICY.into(),
        }])
        .unwrap();
        let mut input = b"{\"id\":1,\"text\":\"caf\xff\"}\n".to_vec();
        input.extend_from_slice(
            "{\"id\":2,\"text\":\"\\u00e9 \\\"q\\\" 한국어\\n kim@example.com\"}\n".as_bytes(),
        );
        let mut out = Vec::new();
        scan(
            &set.default_policy(),
            &input[..],
            &mut out,
            &ScanOptions::default(),
        )
        .unwrap();
        let out: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["id"], 1);
        let error = out[0]["error"].as_str().unwrap();
        assert!(
            error.contains("unicode") && error.contains("column 20"),
            "{error}"
        );
        assert_eq!(out[1]["id"], 2);
        assert_eq!(out[1]["action"], "anonymize");
        assert_eq!(out[1]["text"], "é \"q\" 한국어\n {EMAIL}");
    }
}

#[cfg(test)]
mod judge_tests {
    use super::*;
    use crate::policy::compile::compile_sources;
    use crate::policy::load::Source;

    /// `scan` runs judges on its own runtime; an unreachable judge follows its fail mode
    /// and the output line says which happened.
    #[test]
    fn scan_runs_judges_and_reports_fail_modes() {
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        let policy = r#"id: default
input:
  - {id: closed, detector: llm_judge, endpoint: 'http://127.0.0.1:9/v1', timeout_ms: 2000, fail: closed, action: block}
output:
  - {id: open, detector: llm_judge, endpoint: 'http://127.0.0.1:9/v1', fail: open, action: block}
"#;
        let set = compile_sources(&[Source {
            name: "p.yaml".into(),
            text: policy.into(),
        }])
        .expect("compiles");
        let input =
            "{\"id\":1,\"text\":\"hello\"}\n{\"id\":2,\"text\":\"hello\",\"stage\":\"output\"}\n";
        let mut out = Vec::new();
        scan(
            &set.default_policy(),
            input.as_bytes(),
            &mut out,
            &ScanOptions::default(),
        )
        .expect("scan runs");
        let lines: Vec<Value> = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines[0]["action"], "block", "{}", lines[0]);
        assert_eq!(lines[0]["judges"][0]["outcome"], "fail_closed");
        assert_eq!(lines[0]["judges"][0]["reason"], "connect");
        assert_eq!(lines[0]["findings"][0]["label"], "JUDGE_UNAVAILABLE");
        assert_eq!(lines[1]["action"], "allow", "{}", lines[1]);
        assert_eq!(lines[1]["judges"][0]["outcome"], "fail_open");
    }
}
