//! The streaming output stage as the proxy runs it (`proxy::stream_guard::GuardedBody`,
//! and `GuardedFrames` for Bedrock), fed arbitrary upstream bytes cut into arbitrary
//! reads, under the shipped policy and a blocking one, with pseudonyms to restore.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use haechi::dialect::sse::StreamFormat;
use haechi::engine::{PseudonymMap, StreamGuard};
use haechi::policy::compile::{compile_sources, embedded_default, CompiledPolicy};
use haechi::policy::load::Source;
use haechi::proxy::stream_guard::{GuardedBody, GuardedEvents, GuardedFrames};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const FORMATS: [StreamFormat; 5] = [
    StreamFormat::OpenAiChat,
    StreamFormat::OpenAiCompletions,
    StreamFormat::OpenAiResponses,
    StreamFormat::Anthropic,
    StreamFormat::BedrockConverse,
];

fn policies() -> &'static [Arc<CompiledPolicy>; 2] {
    static P: OnceLock<[Arc<CompiledPolicy>; 2]> = OnceLock::new();
    P.get_or_init(|| {
        let shipped = embedded_default().default_policy();
        let blocking = compile_sources(&[Source {
            name: "b.yaml".into(),
            text: "id: b\nextends: default\noutput:\n  - {id: deny, detector: word, words: [frobnicate], action: block}\n  - {id: mail, detector: pii, entities: [EMAIL], action: mask}\n".into(),
        }])
        .unwrap_or_else(|e| panic!("{e}"))
        .get("b")
        .unwrap_or_else(|| panic!("policy b"));
        [shipped, blocking]
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static R: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    R.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let [sel, cut, rest @ ..] = data else {
        return;
    };
    let format = FORMATS[usize::from(*sel) % FORMATS.len()];
    let policy = Arc::clone(&policies()[usize::from(*sel / 5) % 2]);
    let mut stream = rest.to_vec();
    if format == StreamFormat::BedrockConverse {
        common::fix_eventstream_crcs(&mut stream);
    }
    let mut pseudonyms = PseudonymMap::new();
    pseudonyms.placeholder("EMAIL", "kim@corp.example");
    let guard = StreamGuard::new(policy, Vec::new(), None, b"k".to_vec(), None, pseudonyms);
    let events = GuardedEvents::new(format, guard);
    let step = usize::from(*cut) + 1;
    let reads: Vec<Result<Frame<Bytes>, BoxError>> = stream
        .chunks(step)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let inner = StreamBody::new(futures_iter(reads));
    let slot = Arc::new(Mutex::new(None));
    let out = runtime().block_on(async {
        if format == StreamFormat::BedrockConverse {
            GuardedFrames::new(inner, events, slot).collect().await
        } else {
            GuardedBody::new(inner, events, slot).collect().await
        }
    });
    if let Ok(out) = out {
        let len = out.to_bytes().len();
        assert!(
            len <= 4 * stream.len() + 64 * 1024,
            "output {len} bytes for {} bytes in",
            stream.len()
        );
    }
});

/// A stream of ready items (no `futures` dependency needed).
fn futures_iter<T: Unpin>(items: Vec<T>) -> Iter<T> {
    Iter(items.into_iter())
}

struct Iter<T>(std::vec::IntoIter<T>);

impl<T: Unpin> futures_core::Stream for Iter<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        std::task::Poll::Ready(self.0.next())
    }
}
