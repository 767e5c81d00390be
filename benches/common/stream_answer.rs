//! The answer the streaming benches send through the output stage (`benches/stream.rs`,
//! and the examples `stream_cost`, `sse_cost`, `output_budget`, `stream_holds`):
//! support-desk prose with an e-mail address and a phone
//! number, in English or Korean (repeated to a size with `repeat.rs`), or real texts
//! joined into answers; cut into deltas; and the output stage they go through.

use std::sync::Arc;

use haechi::detect::DetectContext;
use haechi::engine::{evaluate, EvalOptions, PseudonymMap, Stage, StreamGuard, TextKind};
use haechi::policy::CompiledPolicy;

pub const EN: &str = "Thanks for reaching out. I looked at your order history and the delivery \
was delayed by the carrier, not by our warehouse. You can expect the parcel by Friday; if it \
does not arrive, reply to this message and we will send a replacement at no cost. For billing \
questions write to billing@example.com or call 010-2345-6789 during office hours. ";
pub const KO: &str =
    "문의해 주셔서 감사합니다. 주문 내역을 확인해 보니 배송은 창고가 아니라 택배사 \
사정으로 늦어졌습니다. 금요일까지 받으실 수 있으며, 도착하지 않으면 이 메시지에 답장해 주시면 \
무료로 다시 보내 드리겠습니다. 결제 문의는 010-2345-6789 로 연락 주세요. ";

/// Four different 16 KB answers of real text: `texts` 0-15, 16-31, 32-47 and 48-63,
/// joined (a repeated seed measures less than new text costs).
pub fn four_answers(texts: &[String]) -> Vec<String> {
    texts
        .chunks(16)
        .take(4)
        .map(|part| part.join(" "))
        .collect()
}

/// `text` cut into deltas of about `size` bytes (on char boundaries), as a model streams.
pub fn deltas(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[at..end]);
        at = end;
    }
    out
}

/// A guard for one answer to a request that sent no context and whose input stage made
/// no pseudonyms (most requests).
pub fn plain_guard(policy: &Arc<CompiledPolicy>) -> StreamGuard {
    StreamGuard::new(
        Arc::clone(policy),
        Vec::new(),
        None,
        b"k".to_vec(),
        None,
        PseudonymMap::new(),
    )
}

/// The output stage on `answer`: evaluated whole when `size` is 0, else streamed through
/// a [`plain_guard`] in deltas of `size` bytes, `on_delta` seeing what each delta
/// released. Returns how many bytes the client got in all.
pub fn run_output_stage(
    policy: &Arc<CompiledPolicy>,
    answer: &str,
    size: usize,
    mut on_delta: impl FnMut(&str),
) -> usize {
    if size == 0 {
        let mut map = PseudonymMap::new();
        let d = evaluate(
            policy,
            Stage::Output,
            &[answer],
            &DetectContext::default(),
            &EvalOptions::default(),
            &mut map,
        );
        return d.rewritten[0].as_deref().unwrap_or(answer).len();
    }
    let mut guard = plain_guard(policy);
    let id = guard.open(TextKind::Text);
    let mut released = 0;
    for piece in deltas(answer, size) {
        let out = guard.push(id, piece).unwrap_or_default();
        on_delta(&out);
        released += out.len();
    }
    released += guard.finish_text(id).map(|s| s.len()).unwrap_or(0);
    let _ = guard.finish();
    released
}
