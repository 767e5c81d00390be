//! The `application/vnd.amazon.eventstream` framing of Bedrock's streaming answers.
//!
//! Frames are decoded and encoded with `aws-smithy-eventstream` (the AWS SDKs' own codec,
//! which checks both the prelude and the message CRC). This module only cuts the byte
//! stream into frames (bounded, so a lying length prefix cannot make us buffer without
//! end) and names the headers Bedrock uses.

use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Buf, Bytes, BytesMut};

/// Content type of an event-stream body.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Largest frame accepted (Bedrock's own frames are a few kilobytes).
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Prelude (total length, headers length, prelude CRC) plus the message CRC.
const MIN_FRAME_BYTES: usize = 16;

/// A stream that is not valid event-stream framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("invalid event-stream frame: {0}")]
    Invalid(String),
    #[error("event-stream frame length {0} is outside 16..={MAX_FRAME_BYTES} bytes")]
    BadLength(usize),
    #[error("event stream ended inside a frame ({0} bytes left over)")]
    Truncated(usize),
}

/// One decoded frame, classified by its `:message-type` header.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `:message-type: event`, named by `:event-type`; the payload is JSON.
    Event { event_type: String, payload: Bytes },
    /// `:message-type: exception` (a modelled error such as `throttlingException`).
    Exception {
        exception_type: String,
        message: String,
    },
    /// `:message-type: error` (an unmodelled error with `:error-code`).
    Error { code: String, message: String },
}

/// Cuts a byte stream into frames as bytes arrive in arbitrary pieces.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame: its raw bytes and what it says. `Ok(None)` until a whole
    /// frame has arrived. After an error the stream cannot be resynchronised.
    pub fn next_frame(&mut self) -> Result<Option<(Bytes, Event)>, FrameError> {
        if self.buf.len() < 12 {
            return Ok(None);
        }
        // Check the prelude CRC before trusting the length it announces.
        let prelude_crc = (&self.buf[8..12]).get_u32();
        if crc32fast::hash(&self.buf[..8]) != prelude_crc {
            return Err(FrameError::Invalid("prelude checksum mismatch".into()));
        }
        let total = (&self.buf[..4]).get_u32() as usize;
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&total) {
            return Err(FrameError::BadLength(total));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let raw = self.buf.split_to(total).freeze();
        let message =
            read_message_from(raw.clone()).map_err(|e| FrameError::Invalid(e.to_string()))?;
        Ok(Some((raw, classify(&message))))
    }

    /// The bytes buffered and not yet part of a frame (after an error: the rest of the
    /// stream as received, for a caller that passes it on untouched).
    pub fn take_buffered(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated(self.buf.len()))
        }
    }
}

fn header_str<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

fn classify(message: &Message) -> Event {
    let payload = message.payload().clone();
    match header_str(message, ":message-type").unwrap_or("event") {
        "exception" => Event::Exception {
            exception_type: header_str(message, ":exception-type")
                .unwrap_or("unknownException")
                .to_string(),
            message: payload_message(&payload),
        },
        "error" => Event::Error {
            code: header_str(message, ":error-code")
                .unwrap_or("InternalError")
                .to_string(),
            message: header_str(message, ":error-message")
                .unwrap_or("")
                .to_string(),
        },
        _ => Event::Event {
            event_type: header_str(message, ":event-type").unwrap_or("").to_string(),
            payload,
        },
    }
}

/// The `message` member of an exception payload, if there is one.
fn payload_message(payload: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn encode_message(message: &Message) -> Bytes {
    let mut out = Vec::with_capacity(message.payload().len() + 96);
    // Writing into a Vec fails only for headers or payloads over the format's limits,
    // which the gateway's own small events never reach.
    if write_message_to(message, &mut out).is_err() {
        return Bytes::new();
    }
    Bytes::from(out)
}

/// An event frame as Bedrock sends it: `:event-type`, JSON content type, `event` type.
pub fn encode_event(event_type: &str, payload: &serde_json::Value) -> Bytes {
    let message = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    encode_message(&message)
}

/// An exception frame (`internalServerException`, `throttlingException`, ...) with a
/// `{"message"}` payload, which the AWS SDKs raise as the named error.
pub fn encode_exception(exception_type: &str, message: &str) -> Bytes {
    let payload = serde_json::json!({ "message": message }).to_string();
    let frame = Message::new(Bytes::from(payload))
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String(exception_type.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("exception".into()),
        ));
    encode_message(&frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<u8> {
        let mut all = Vec::new();
        all.extend_from_slice(&encode_event(
            "messageStart",
            &serde_json::json!({"role": "assistant"}),
        ));
        all.extend_from_slice(&encode_event(
            "contentBlockDelta",
            &serde_json::json!({"contentBlockIndex": 0, "delta": {"text": "안녕"}}),
        ));
        all.extend_from_slice(&encode_exception("throttlingException", "slow down"));
        all
    }

    #[test]
    fn round_trip_in_any_piece_sizes() {
        let all = frames();
        for piece in [1, 3, 7, 64, all.len()] {
            let mut decoder = FrameDecoder::new();
            let mut events = Vec::new();
            for chunk in all.chunks(piece) {
                decoder.push(chunk);
                while let Some((_, event)) = decoder.next_frame().expect("valid") {
                    events.push(event);
                }
            }
            decoder.finish().expect("ends on a boundary");
            assert_eq!(events.len(), 3, "piece {piece}");
            match &events[1] {
                Event::Event {
                    event_type,
                    payload,
                } => {
                    assert_eq!(event_type, "contentBlockDelta");
                    let v: serde_json::Value = serde_json::from_slice(payload).expect("json");
                    assert_eq!(v["delta"]["text"], "안녕");
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(
                events[2],
                Event::Exception {
                    exception_type: "throttlingException".into(),
                    message: "slow down".into()
                }
            );
        }
    }

    #[test]
    fn corrupt_and_truncated_frames_are_errors() {
        let good = frames();
        // A flipped payload byte breaks the message CRC; a flipped length byte the prelude CRC.
        for at in [20, good.len() / 3, 2] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            let mut decoder = FrameDecoder::new();
            decoder.push(&bad);
            let mut result = Ok(None);
            for _ in 0..4 {
                result = decoder.next_frame();
                if !matches!(result, Ok(Some(_))) {
                    break;
                }
            }
            assert!(result.is_err(), "corruption at {at} must be caught");
        }
        let mut decoder = FrameDecoder::new();
        decoder.push(&good[..good.len() - 5]);
        while let Ok(Some(_)) = decoder.next_frame() {}
        assert!(matches!(decoder.finish(), Err(FrameError::Truncated(_))));
        let mut decoder = FrameDecoder::new();
        let mut huge = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        let crc = crc32fast::hash(&huge);
        huge.extend_from_slice(&crc.to_be_bytes());
        decoder.push(&huge);
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::BadLength(_))
        ));
    }
}
