//! Eight-bytes-at-a-time byte-class tests ("SWAR", after Bit Twiddling Hacks), used to
//! skip text that cannot start a candidate without a per-byte loop.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Does any byte of `x` equal zero?
pub fn has_zero(x: u64) -> bool {
    x.wrapping_sub(LO) & !x & HI != 0
}

/// Does any byte `b` of `x` satisfy `m < b < n` (ASCII bounds, `n <= 128`)?
pub fn has_between(x: u64, m: u64, n: u64) -> bool {
    let low7 = x & (LO * 127);
    (LO * (127 + n)).wrapping_sub(low7) & !x & (low7 + LO * (127 - m)) & HI != 0
}

/// Does any byte of `x` equal `b`?
pub fn has_byte(x: u64, b: u8) -> bool {
    has_zero(x ^ (LO * u64::from(b)))
}

/// Loads 8 bytes little-endian.
pub fn load(chunk: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&chunk[..8]);
    u64::from_le_bytes(a)
}

/// Position of the first ASCII digit.
pub fn first_digit(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= b.len() {
        if has_between(load(&b[i..]), 0x2F, 0x3A) {
            break;
        }
        i += 8;
    }
    b[i..].iter().position(u8::is_ascii_digit).map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_digit_matches_naive_scan() {
        let cases = [
            "",
            "abc",
            "abcdefghijklmnop7",
            "가나다라마바사1",
            "////::::",
            "x9",
            "0",
            "한국어 텍스트 without digits at all",
        ];
        for c in cases {
            assert_eq!(
                first_digit(c.as_bytes()),
                c.bytes().position(|b| b.is_ascii_digit()),
                "{c:?}"
            );
        }
    }
}
