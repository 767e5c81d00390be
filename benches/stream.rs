//! Streaming output stage throughput: an answer's text through the shipped default
//! policy's output stage, delta by delta, against the same policy on the whole answer
//! (the non-streaming stage, measured in the same run as the baseline), on a repeated
//! support-desk answer and on real text.
//!
//! Run: `cargo bench --bench stream`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use haechi::detect::DetectContext;
use haechi::dialect::sse::StreamFormat;
use haechi::engine::{evaluate, restore, EvalOptions, PseudonymMap, Stage, TextKind};
use haechi::policy::embedded_default;
use haechi::proxy::stream_guard::GuardedEvents;

#[path = "common/real_texts.rs"]
mod real_texts;
#[path = "common/repeat.rs"]
mod repeat;
#[path = "common/sse_events.rs"]
mod sse_events;
#[path = "common/stream_answer.rs"]
#[allow(dead_code)] // `run_output_stage` is for the examples
mod stream_answer;
use real_texts::texts;
use repeat::text;
use sse_events::{openai_sse, relay, responses_sse};
use stream_answer::{deltas, four_answers, plain_guard, EN, KO};

fn stream(c: &mut Criterion) {
    let policy = embedded_default().default_policy();
    let mut g = c.benchmark_group("output_stage_16kb");
    g.sample_size(20);
    // The support-desk answer (an e-mail and a phone number every ~350 bytes, repeated)
    // and real prose: encyclopedia passages and Korean sentences. Every row takes its
    // answers in turn: the folds, `normalize` and the classifiers keep the last text's
    // work per thread, and one text (or the same text with a space added) evaluated
    // again and again is answered from those caches (it measured half the instructions
    // per byte of different texts). The repeated answers are two texts of the same
    // seed; the real ones four different answers.
    let answers = [
        ("en", vec![text(EN, 16 * 1024), text(EN, 16 * 1024 + 5)]),
        ("ko", vec![text(KO, 16 * 1024), text(KO, 16 * 1024 + 5)]),
        ("en_real", four_answers(&texts("en"))),
        ("ko_real", four_answers(&texts("ko"))),
    ];
    for (lang, answers) in answers {
        let mean = answers.iter().map(String::len).sum::<usize>() / answers.len();
        g.throughput(Throughput::Bytes(mean as u64));
        g.bench_with_input(
            BenchmarkId::new("whole_answer", lang),
            &answers,
            |b, answers| {
                let mut turn = 0;
                b.iter(|| {
                    turn = (turn + 1) % answers.len();
                    let t = &answers[turn];
                    let mut m = PseudonymMap::new();
                    let d = evaluate(
                        &policy,
                        Stage::Output,
                        &[t.as_str()],
                        &DetectContext::default(),
                        &EvalOptions::default(),
                        &mut m,
                    );
                    let out = d.rewritten[0].as_deref().unwrap_or(t);
                    black_box(restore(out, &m))
                })
            },
        );
        for size in [4usize, 32] {
            let streams: Vec<Vec<&str>> = answers.iter().map(|a| deltas(a, size)).collect();
            g.bench_with_input(
                BenchmarkId::new(format!("stream_deltas_{size}b"), lang),
                &streams,
                |b, streams| {
                    let mut turn = 0;
                    b.iter(|| {
                        turn = (turn + 1) % streams.len();
                        let pieces = &streams[turn];
                        let mut sg = plain_guard(&policy);
                        let id = sg.open(TextKind::Text);
                        let mut n = 0;
                        for p in pieces {
                            n += sg.push(id, p).map(|s| s.len()).unwrap_or(0);
                        }
                        n += sg.finish_text(id).map(|s| s.len()).unwrap_or(0);
                        black_box((n, sg.finish()))
                    })
                },
            );
        }
        // Reads of 1,400 bytes (about eight events each, as when the upstream is ahead
        // of the gateway), and one event per read (a model's pace: nothing to batch), for
        // chat chunks and for Responses API events.
        let chat: Vec<Vec<u8>> = answers.iter().map(|a| openai_sse(&deltas(a, 4))).collect();
        let responses: Vec<Vec<u8>> = answers
            .iter()
            .map(|a| responses_sse(&deltas(a, 4)))
            .collect();
        for (name, format, sses, read_size) in [
            ("sse_openai_4b", StreamFormat::OpenAiChat, &chat, 1400),
            (
                "sse_openai_4b_event_reads",
                StreamFormat::OpenAiChat,
                &chat,
                0,
            ),
            (
                "sse_responses_4b_event_reads",
                StreamFormat::OpenAiResponses,
                &responses,
                0,
            ),
        ] {
            g.bench_with_input(BenchmarkId::new(name, lang), sses, |b, sses| {
                let mut turn = 0;
                b.iter(|| {
                    turn = (turn + 1) % sses.len();
                    let sse = &sses[turn];
                    let mut events = GuardedEvents::new(format, plain_guard(&policy));
                    let mut out = BytesMut::new();
                    relay(&mut events, sse, read_size, &mut out);
                    events.end(&mut out);
                    black_box((out.len(), events.finish()))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, stream);
criterion_main!(benches);
