//! Small text utilities shared by detectors, the engine and the CLI.

/// Converts a byte offset into a character (Unicode scalar) offset.
///
/// `byte` must lie on a char boundary of `text`; offsets past the end clamp to the
/// number of characters.
pub fn char_offset(text: &str, byte: usize) -> usize {
    let byte = byte.min(text.len());
    text[..byte].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_korean_as_one_char_each() {
        let s = "전화 010";
        assert_eq!(char_offset(s, "전화 ".len()), 3);
        assert_eq!(char_offset(s, s.len()), 6);
        assert_eq!(char_offset(s, 999), 6);
    }
}
