//! Shared helpers of the fuzz targets (included with `#[path]`).
#![allow(dead_code)]

/// Rewrites the prelude and message CRCs of every frame in `bytes` so that the fuzzer
/// reaches the header and payload parsers instead of stopping at a checksum.
pub fn fix_eventstream_crcs(bytes: &mut [u8]) {
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let total = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
            as usize;
        let crc = crc32(&bytes[at..at + 8]);
        bytes[at + 8..at + 12].copy_from_slice(&crc.to_be_bytes());
        if total < 16 || at + total > bytes.len() {
            return;
        }
        let crc = crc32(&bytes[at..at + total - 4]);
        bytes[at + total - 4..at + total].copy_from_slice(&crc.to_be_bytes());
        at += total;
    }
}

/// CRC-32 (IEEE), as the AWS event-stream framing uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
