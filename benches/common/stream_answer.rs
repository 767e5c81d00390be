//! The answer the streaming benches send through the output stage (`benches/stream.rs`,
//! `examples/stream_cost.rs`): support-desk prose with an e-mail address and a phone
//! number, in English or Korean (repeated to a size with `repeat.rs`), or real texts
//! joined into answers; cut into deltas.

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
