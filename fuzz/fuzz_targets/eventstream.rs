//! The Bedrock event-stream frame decoder on arbitrary bytes (CRCs fixed up when the
//! first byte is odd, so the header and payload parsers are reached), cut anywhere.
#![no_main]

#[path = "common.rs"]
mod common;

use haechi::dialect::bedrock::eventstream::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut stream = rest.to_vec();
    if mode & 1 == 1 {
        common::fix_eventstream_crcs(&mut stream);
    }
    let step = usize::from(mode >> 1) + 1;
    let mut decoder = FrameDecoder::new();
    let mut framed = 0usize;
    'read: for chunk in stream.chunks(step) {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some((raw, _event))) => framed += raw.len(),
                Ok(None) => break,
                Err(_) => {
                    let rest = decoder.take_buffered();
                    assert!(framed + rest.len() <= stream.len());
                    break 'read;
                }
            }
        }
    }
    let _ = decoder.finish();
    assert!(framed <= stream.len(), "frames longer than the input");
});
