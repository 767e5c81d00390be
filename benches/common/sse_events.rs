//! Provider SSE streams of an answer's deltas, and the gateway's way of reading them
//! (`benches/stream.rs`, `examples/sse_cost.rs`).

use bytes::BytesMut;
use haechi::dialect::sse::EventSplitter;
use haechi::proxy::stream_guard::GuardedEvents;

/// OpenAI chat completion chunks carrying `pieces`, then the closing chunk and `[DONE]`.
pub fn openai_sse(pieces: &[&str]) -> Vec<u8> {
    let mut s = String::new();
    for p in pieces {
        let lit = serde_json::to_string(p).unwrap_or_default();
        s.push_str(&format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{lit}}},\"finish_reason\":null}}]}}\n\n"));
    }
    s.push_str("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

/// The same deltas as OpenAI Responses API events (each with its own sequence number and
/// padding).
pub fn responses_sse(pieces: &[&str]) -> Vec<u8> {
    let mut s = String::from("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-4o-mini\",\"output\":[]}}\n\n");
    for (n, p) in pieces.iter().enumerate() {
        let lit = serde_json::to_string(p).unwrap_or_default();
        s.push_str(&format!("event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{},\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":{lit},\"logprobs\":[],\"obfuscation\":\"p{n}\"}}\n\n", n + 1));
    }
    s.push_str(&format!("event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":{},\"response\":{{\"id\":\"resp_1\",\"status\":\"completed\",\"output\":[]}}}}\n\n", pieces.len() + 1));
    s.into_bytes()
}

/// The stream cut after each event's blank line.
pub fn event_reads(sse: &[u8]) -> Vec<&[u8]> {
    let mut reads = Vec::new();
    let mut rest = sse;
    while let Some(end) = rest.windows(2).position(|w| w == b"\n\n") {
        let (event, tail) = rest.split_at(end + 2);
        reads.push(event);
        rest = tail;
    }
    if !rest.is_empty() {
        reads.push(rest);
    }
    reads
}

/// `sse` through `events` in reads of `read_size` bytes (0: one event per read), as the
/// gateway's body does: each event knows the next one when it arrived in the same read.
pub fn relay(events: &mut GuardedEvents, sse: &[u8], read_size: usize, out: &mut BytesMut) {
    let mut splitter = EventSplitter::default();
    let reads: Vec<&[u8]> = if read_size == 0 {
        event_reads(sse)
    } else {
        sse.chunks(read_size).collect()
    };
    for read in reads {
        splitter.push(read);
        let mut next = splitter.next_event();
        while let Some(e) = next.take() {
            next = splitter.next_event();
            events.event_before(e, next.as_deref(), out);
        }
    }
}
