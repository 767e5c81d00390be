//! SSE framing and event reading (`dialect::sse`) on arbitrary bytes cut anywhere:
//! the splitter must lose no byte, and every event reader must accept anything.
#![no_main]

use haechi::dialect::sse::{event_data, event_name, read_event, EventSplitter, StreamFormat};
use libfuzzer_sys::fuzz_target;

const FORMATS: [StreamFormat; 5] = [
    StreamFormat::OpenAiChat,
    StreamFormat::OpenAiCompletions,
    StreamFormat::OpenAiResponses,
    StreamFormat::Anthropic,
    StreamFormat::BedrockConverse,
];

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(cut % 17) + 1;
    let mut splitter = EventSplitter::default();
    let mut seen = Vec::new();
    for chunk in stream.chunks(step) {
        splitter.push(chunk);
        while let Some(event) = splitter.next_event() {
            seen.extend_from_slice(&event);
            let name = event_name(&event);
            if let Some(payload) = event_data(&event) {
                for format in FORMATS {
                    let _ = read_event(format, name.as_deref(), &payload, true);
                }
            }
        }
    }
    if let Some(rest) = splitter.take_rest() {
        seen.extend_from_slice(&rest);
    }
    assert_eq!(seen, stream, "the splitter lost or changed bytes");
});
