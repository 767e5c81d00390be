//! Small text utilities shared by detectors, the engine and the CLI.

/// Converts a byte offset into a character (Unicode scalar) offset.
///
/// `byte` must lie on a char boundary of `text`; offsets past the end clamp to the
/// number of characters.
pub fn char_offset(text: &str, byte: usize) -> usize {
    let byte = byte.min(text.len());
    text[..byte].chars().count()
}

/// A serde_json error message without the client's values in it.
///
/// serde_json quotes the offending value (`invalid type: string "4111 1111 …", expected a
/// boolean`, ``unknown variant `…` ``, ``integer `…` ``), and these messages go into error
/// bodies and logs, which must never carry prompt text. The first quoted item (the value
/// or key the client sent) becomes `…`; what was expected and the position stay.
pub fn scrub_json_error(e: &serde_json::Error) -> String {
    scrub_quoted(&e.to_string())
}

fn scrub_quoted(message: &str) -> String {
    // Only these messages quote what the client sent; others (`missing field `x``,
    // `duplicate field`) quote our own schema's names.
    let quotes_client = [
        "invalid type",
        "invalid value",
        "unknown variant",
        "unknown field",
    ]
    .iter()
    .any(|p| message.starts_with(p));
    let Some(open) = message.find(['"', '`']).filter(|_| quotes_client) else {
        return message.to_string();
    };
    let quote = &message[open..open + 1];
    let rest = &message[open + 1..];
    // The value ends at the last `<quote>, expected` (our schema's own wording never
    // contains that), else at the last closing quote, else at the end.
    let close = rest
        .rfind(&format!("{quote}, expected"))
        .or_else(|| rest.rfind(quote))
        .unwrap_or(rest.len());
    let mut out = String::with_capacity(message.len().min(256));
    out.push_str(&message[..open + 1]);
    out.push('…');
    out.push_str(&rest[close..]);
    out
}

/// Whether three single ASCII letters or digits (each with no ASCII letter or digit on
/// either side) stand one byte apart, `x?y?z`, each byte between passing `between`: the
/// shortest run the spaced-letter folds join (`i g n`, `a.b.c`). Bytes of other
/// characters count as neither.
///
/// Why not a walk over the runs: that walk branches at every word edge of prose. Here
/// every start is tested on the seven bytes around it with comparisons only, which the
/// compiler turns into vector code (about a tenth of the walk's instructions).
#[inline]
pub fn has_spaced_singles(b: &[u8], between: impl Fn(u8) -> bool) -> bool {
    let al = |x: u8| x.is_ascii_alphanumeric();
    has_spaced_singles_by(b, al, al, between)
}

/// [`has_spaced_singles`] over any units: `single` says which units may stand alone
/// (ASCII letters and digits), `al` which units a single must not touch (every letter
/// and digit, in any script the units hold). Keep both to comparisons, so the loop
/// stays vector code.
#[inline]
pub fn has_spaced_singles_by<T: Copy>(
    b: &[T],
    al: impl Fn(T) -> bool,
    single: impl Fn(T) -> bool,
    between: impl Fn(T) -> bool,
) -> bool {
    let n = b.len();
    if n < 5 {
        return false;
    }
    // The seven units around singles at p, p + 2 and p + 4, where the text has them.
    let at = |i: isize| usize::try_from(i).ok().and_then(|i| b.get(i)).copied();
    let chain_at = |p: isize| {
        let not_al = |i: isize| !at(i).is_some_and(&al);
        let one = |i: isize| at(i).is_some_and(&single) && not_al(i - 1) && not_al(i + 1);
        one(p)
            && one(p + 2)
            && one(p + 4)
            && at(p + 1).is_some_and(&between)
            && at(p + 3).is_some_and(&between)
    };
    // Starts whose seven units all lie in the text: branch-free over shifted views.
    let m = n.saturating_sub(6);
    let w = |k: usize| b.get(k..k + m).unwrap_or_default();
    let (c0, c1, c2, c3, c4, c5, c6) = (w(0), w(1), w(2), w(3), w(4), w(5), w(6));
    // Equal lengths, visible to the compiler: no bounds checks in the loop.
    let k = c0.len();
    let (c1, c2, c3, c4, c5, c6) = (&c1[..k], &c2[..k], &c3[..k], &c4[..k], &c5[..k], &c6[..k]);
    let mut any = false;
    for j in 0..k {
        any |= !al(c0[j])
            & single(c1[j])
            & !al(c2[j])
            & between(c2[j])
            & single(c3[j])
            & !al(c4[j])
            & between(c4[j])
            & single(c5[j])
            & !al(c6[j]);
    }
    // The first and last start, which touch an edge of the text.
    any || chain_at(0) || chain_at(n as isize - 5)
}

/// Whether at most a quarter of `b`'s bytes are non-ASCII (English with a few names or
/// dashes, not Korean or other non-Latin prose).
pub fn mostly_ascii(b: &[u8]) -> bool {
    let high = b.iter().filter(|&&x| x >= 0x80).count();
    4 * high <= b.len()
}

/// Bit `i` set when `pred` holds for byte `i` of `chunk` (at most 64 bytes).
///
/// Why not a plain loop setting bits: the compiler turns the tests into vector compares
/// only when they fill an array, one byte per test; the array is then packed sixteen
/// bytes at a time ([`pack_bytes`]).
#[inline]
pub fn byte_mask(chunk: &[u8], pred: impl Fn(u8) -> bool) -> u64 {
    let Ok(block) = <&[u8; 64]>::try_from(chunk) else {
        return chunk
            .iter()
            .enumerate()
            .fold(0, |m, (i, &x)| m | u64::from(pred(x)) << i);
    };
    let mut hits = [0u8; 64];
    for (hit, &x) in hits.iter_mut().zip(block) {
        *hit = u8::from(pred(x));
    }
    pack_bytes(&hits)
}

/// Bit `i` set when byte `i` of `hits` (each 0 or 1) is 1.
#[cfg(target_arch = "x86_64")]
#[inline]
fn pack_bytes(hits: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{_mm_loadu_si128, _mm_movemask_epi8, _mm_slli_epi16};
    let mut mask = 0u64;
    for (k, sixteen) in hits.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of every x86_64 CPU; the unaligned load reads the sixteen
        // bytes of `sixteen`. Shifting 16-bit lanes left by 7 moves each byte's 0/1 to its
        // top bit (a byte's upper bits are zero, so nothing crosses into the next byte's
        // top bit), which `movemask` gathers.
        let bits = unsafe {
            let v = _mm_loadu_si128(sixteen.as_ptr().cast());
            _mm_movemask_epi8(_mm_slli_epi16(v, 7))
        };
        mask |= u64::from(bits as u16) << (16 * k);
    }
    mask
}

/// Bit `i` set when byte `i` of `hits` (each 0 or 1) is 1: each eight gathered into a
/// byte by one multiplication (byte `j` lands on bit `56 + j`; every other product falls
/// outside the top byte, without carrying into it).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn pack_bytes(hits: &[u8; 64]) -> u64 {
    hits.chunks_exact(8).enumerate().fold(0, |m, (k, eight)| {
        let mut v = [0u8; 8];
        v.copy_from_slice(eight);
        let bits = u64::from_le_bytes(v).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        m | bits << (8 * k)
    })
}

/// Index of the first byte of `b` at or after `from` for which `pred` holds. Chunks of
/// 32 bytes are tested with `pred` folded over the chunk, which vectorises when `pred` is
/// made of comparisons, so long runs without such a byte are crossed several times
/// faster than byte by byte.
#[inline]
pub fn next_byte_where(b: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> Option<usize> {
    let rest = b.get(from..)?;
    let mut base = from;
    for chunk in rest.chunks(32) {
        if chunk.iter().fold(false, |any, &x| any | pred(x)) {
            return chunk.iter().position(|&x| pred(x)).map(|k| base + k);
        }
        base += chunk.len();
    }
    None
}

/// Index of the first byte of `b` at or after `from` that is not ASCII (`b.len()` when
/// none), by [`next_byte_where`]: the ASCII runs of mostly-English text are crossed 32
/// bytes at a time.
pub fn next_non_ascii(b: &[u8], from: usize) -> usize {
    next_byte_where(b, from, |x| x >= 0x80).unwrap_or(b.len())
}

/// Where to cut `b` into pieces of about `piece` bytes (from every `piece` bytes on, at
/// the next [`is_plain_word_gap`]), as bounds from 0 to `b.len()`; just those two when
/// `b` is at most twice `piece` long or has no such gap. The evasion folds
/// (`detect::fold`, `detect::normalize`) give the same result on the pieces as on the
/// whole text, and only the pieces that need their slow passes take them.
pub fn piece_bounds(b: &[u8], piece: usize) -> Vec<usize> {
    let mut bounds = vec![0];
    if piece > 0 && b.len() > 2 * piece {
        let mut at = piece;
        while at + piece / 2 < b.len() {
            // Gaps follow a space: jump from space to space (Korean text, which seldom
            // has a gap, is crossed in a few hundred steps).
            let (from, end) = (at - 1, b.len() - piece / 2);
            let gap = memchr::memchr_iter(b' ', &b[from..end - 1])
                .map(|i| from + i + 1)
                .find(|&g| is_plain_word_gap(b, g));
            let Some(gap) = gap else {
                break;
            };
            bounds.push(gap);
            at = gap + piece;
        }
    }
    bounds.push(b.len());
    bounds
}

/// Whether `at` lies between two words of three or more ASCII letters, each with one
/// space on either side (` word| word `), neither of them `dot`. Every evasion fold
/// that joins across spaces needs a single character beside each space it crosses
/// (spaced letters), Hangul (spaced syllables, numerals), a digit (dotted groups) or an
/// `at` / `dot` / bracket (spelled addresses); every other fold stays inside a word.
pub fn is_plain_word_gap(b: &[u8], at: usize) -> bool {
    if at < 2 || b.get(at - 1) != Some(&b' ') {
        return false;
    }
    let letters_before = b[..at - 1]
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    let letters_after = b[at..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if letters_before < 3 || letters_after < 3 {
        return false;
    }
    let before = at - 1 - letters_before;
    let after = at + letters_after;
    let is_dot = |w: &[u8]| w.eq_ignore_ascii_case(b"dot");
    before > 0
        && b[before - 1] == b' '
        && b.get(after) == Some(&b' ')
        && !is_dot(&b[before..at - 1])
        && !is_dot(&b[at..after])
}

/// Test texts made of words, each followed by a separator (properties of the evasion
/// folds hold over such mixes, with plain-word gaps to cut at among them).
#[cfg(test)]
pub fn words_with_separators(
    words: Vec<&'static str>,
    separators: Vec<&'static str>,
    count: std::ops::Range<usize>,
) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::strategy::Strategy;
    let n = count.end;
    (
        proptest::collection::vec(proptest::sample::select(words), count),
        proptest::collection::vec(proptest::sample::select(separators), n),
    )
        .prop_map(|(words, seps)| {
            words
                .iter()
                .zip(&seps)
                .flat_map(|(w, s)| [*w, *s])
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The gathered mask has the bit of every byte the test holds for, and no other,
        /// in whole blocks and short tails alike.
        #[test]
        fn byte_mask_is_the_bit_by_bit_mask(chunk in proptest::collection::vec(0u8.., 0..=64)) {
            let pred = |x: u8| x.is_ascii_alphanumeric() || x >= 0xF0;
            let want = chunk
                .iter()
                .enumerate()
                .filter(|(_, &x)| pred(x))
                .fold(0u64, |m, (i, _)| m | 1 << i);
            proptest::prop_assert_eq!(byte_mask(&chunk, pred), want);
        }
    }

    #[test]
    fn pieces_are_cut_only_between_plain_words() {
        let text = b"one two three four five six seven eight nine ten dot com at x y";
        let bounds = piece_bounds(text, 8);
        assert_eq!(bounds.first(), Some(&0));
        assert_eq!(bounds.last(), Some(&text.len()));
        for &cut in &bounds[1..bounds.len() - 1] {
            assert!(is_plain_word_gap(text, cut), "{cut}");
        }
        assert!(bounds.len() > 3, "{bounds:?}");
        // Cut from every `piece` bytes on, at the first gap.
        assert_eq!(bounds[1], 8, "{bounds:?}");
        assert!(!is_plain_word_gap(b"kim at example", 4));
        assert!(!is_plain_word_gap(b" mail dot com ", 6));
        assert!(!is_plain_word_gap(b" a1b word ", 5));
        assert!(is_plain_word_gap(b" some words ", 6));
        assert_eq!(
            piece_bounds("한국어 문장 ".repeat(200).as_bytes(), 64).len(),
            2
        );
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The chunked search finds the first non-ASCII byte a byte walk finds.
        #[test]
        fn next_non_ascii_is_the_first_one(
            bytes in proptest::collection::vec(prop_oneof![9 => 0u8..0x80, 1 => 0x80u8..=0xFF], 0..100),
            from in 0usize..110,
        ) {
            let walk = (from..bytes.len()).find(|&i| bytes[i] >= 0x80).unwrap_or(bytes.len());
            prop_assert_eq!(next_non_ascii(&bytes, from), walk);
        }

        /// The shifted-view test finds a chain exactly where the runs of letters and
        /// digits hold three of length one, one byte apart, with passing bytes between.
        #[test]
        fn spaced_singles_equal_the_runs(parts in proptest::collection::vec(
            proptest::sample::select(vec!["a", "b", "7", "ab", " ", ".", "-", ",", "é", "가"]),
            0..30,
        )) {
            let text = parts.concat();
            let b = text.as_bytes();
            let sep = |x: u8| matches!(x, b' ' | b'.' | b'-');
            // Starts of runs of length one.
            let mut singles = Vec::new();
            let mut i = 0;
            while i < b.len() {
                let start = i;
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                if i - start == 1 {
                    singles.push(start);
                }
                i = i.max(start + 1);
            }
            for between in [&sep as &dyn Fn(u8) -> bool, &|_| true] {
                let want = singles.iter().any(|&p| {
                    singles.contains(&(p + 2))
                        && singles.contains(&(p + 4))
                        && between(b[p + 1])
                        && between(b[p + 3])
                });
                prop_assert_eq!(has_spaced_singles(b, between), want, "{:?}", text);
            }
        }
    }

    #[test]
    fn json_errors_lose_the_values_but_keep_the_shape() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            stream: Option<bool>,
            source: Option<Kind>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Kind {
            Input,
        }
        let secret = "4111 1111 1111 1111 kim@example.com";
        for body in [
            format!(r#"{{"stream": "{secret}"}}"#),
            r#"{"stream": 4111111111111111}"#.to_string(),
            format!(r#"{{"source": "{secret}"}}"#),
            format!(r#"{{"{secret}": 1}}"#),
            format!(r#"{{"stream": "a", expected `x` {secret}"}}"#),
        ] {
            let e = serde_json::from_str::<S>(&body).expect_err("bad body");
            let scrubbed = scrub_json_error(&e);
            for needle in ["4111", "kim@", "example"] {
                assert!(!scrubbed.contains(needle), "{scrubbed}");
            }
            assert!(scrubbed.contains("at line 1"), "{scrubbed}");
        }
        let e = serde_json::from_str::<S>(r#"{"stream": "x"}"#).expect_err("bad");
        assert!(scrub_json_error(&e).contains("expected a boolean"));
        let e = serde_json::from_str::<S>("{").expect_err("eof");
        assert_eq!(scrub_json_error(&e), e.to_string());
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct M {
            messages: Vec<u8>,
        }
        let e = serde_json::from_str::<M>("{}").expect_err("missing");
        assert!(scrub_json_error(&e).contains("`messages`"));
    }

    #[test]
    fn counts_korean_as_one_char_each() {
        let s = "전화 010";
        assert_eq!(char_offset(s, "전화 ".len()), 3);
        assert_eq!(char_offset(s, s.len()), 6);
        assert_eq!(char_offset(s, 999), 6);
    }
}
