//! Every overlapping match of an Aho-Corasick automaton, found by walking the text in
//! three lanes at once.
//!
//! Why: a DFA walk is a chain of dependent loads (each byte's row is found from the state
//! the previous byte left), so a single walk waits on memory at every byte, and the word
//! list DFAs (1.5 MB English, 3.4 MB Korean) do not stay in the nearer caches next to the
//! classifiers' weights. Three lanes, each starting `longest pattern - 1` bytes before its
//! third of the text and stepped together, keep three loads in flight. A lane reports
//! only the matches that end in its own third, so the result is the list
//! `AhoCorasick::find_overlapping_iter` gives, in the same order (by end, then in the
//! automaton's order), which a property test checks. Measured on the profanity DFAs over
//! the `bench/scan.sh` texts: 2.3 -> 1.2 ns a byte (two lanes 1.5, four 2.4: the four
//! states no longer stay in registers).

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{Anchored, PatternID};

/// Texts with fewer bytes than this per lane (or than the lanes' overlap) are walked in
/// one lane: the lanes' set-up and overlap would cost more.
const MIN_SHARE: usize = 96;
/// How many walks are in flight.
const LANES: usize = 3;

/// Calls `f(pattern, start, end)` for every match of `aut` in `hay`, overlapping ones
/// included, as an unanchored overlapping search reports them. `aut` is searched
/// unanchored: it must be built with an unanchored start state, `MatchKind::Standard`
/// and no prefilter (its only special states are then match states).
pub fn for_each_match<A: Automaton>(
    aut: &A,
    hay: &[u8],
    mut f: impl FnMut(PatternID, usize, usize),
) {
    let Ok(start) = aut.start_state(Anchored::No) else {
        return;
    };
    let mut report = |sid: StateID, end: usize| {
        for i in 0..aut.match_len(sid) {
            let pid = aut.match_pattern(sid, i);
            f(pid, end - aut.pattern_len(pid), end);
        }
    };
    // An empty pattern matches before the first byte.
    if aut.is_match(start) {
        report(start, 0);
    }
    let overlap = aut.max_pattern_len().saturating_sub(1);
    if hay.len() < LANES * MIN_SHARE.max(overlap) {
        let mut sid = start;
        for (i, &b) in hay.iter().enumerate() {
            sid = aut.next_state(Anchored::No, sid, b);
            if aut.is_special(sid) && aut.is_match(sid) {
                report(sid, i + 1);
            }
        }
        return;
    }
    // Lane k reports the matches ending in (cut[k], cut[k + 1]] and starts `overlap`
    // bytes before cut[k], from where any such match may start.
    let cut: [usize; LANES + 1] = std::array::from_fn(|k| hay.len() * k / LANES);
    let from: [usize; LANES] = std::array::from_fn(|k| cut[k].saturating_sub(overlap));
    let lanes: [&[u8]; LANES] = std::array::from_fn(|k| &hay[from[k]..cut[k + 1]]);
    // Matches are rare: each lane keeps (end, state) of its own until all are walked.
    let mut found: [Vec<(usize, StateID)>; LANES] = Default::default();
    let mut sid = [start; LANES];
    let mut walk = |k: usize, sid: &mut StateID, t: usize, b: u8| {
        *sid = aut.next_state(Anchored::No, *sid, b);
        let end = from[k] + t + 1;
        if aut.is_special(*sid) && aut.is_match(*sid) && end > cut[k] {
            found[k].push((end, *sid));
        }
    };
    // The lanes together for as long as the shortest (lane 0: no overlap before it)...
    let together = lanes.iter().map(|l| l.len()).min().unwrap_or(0);
    // Indexed by step, not iterated: the lanes advance in lockstep.
    #[allow(clippy::needless_range_loop)]
    for t in 0..together {
        for k in 0..LANES {
            walk(k, &mut sid[k], t, lanes[k][t]);
        }
    }
    // ...then each the rest of its way.
    for (k, (lane, sid)) in lanes.iter().zip(&mut sid).enumerate() {
        for (t, &b) in lane.iter().enumerate().skip(together) {
            walk(k, sid, t, b);
        }
    }
    for lane in found {
        for (end, sid) in lane {
            report(sid, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::{dfa, nfa, AhoCorasickBuilder, MatchKind};
    use proptest::prelude::*;

    fn reference(patterns: &[String], hay: &str) -> Vec<(usize, usize, usize)> {
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(patterns)
            .expect("reference automaton");
        ac.find_overlapping_iter(hay)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect()
    }

    fn lanes<A: Automaton>(aut: &A, hay: &str) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for_each_match(aut, hay.as_bytes(), |p, s, e| {
            out.push((p.as_usize(), s, e))
        });
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The lanes report what one overlapping search reports, in its order, for the
        /// DFA and the NFA, on texts short (one lane) and long (matches across the cuts,
        /// patterns overlapping, nested and repeated, an empty one now and then).
        #[test]
        fn lanes_equal_one_overlapping_search(
            patterns in proptest::collection::vec(
                proptest::sample::select(vec![
                    "ab", "b", "abc", "bca", "cab", "AB", "aaaa", "a", "시발", "발",
                    "ㅗ", "x발", "naïve", "",
                ]),
                1..8,
            ),
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "b", "c", "ab", "ABC", " ", "시", "발", "ㅗ", "x", "naï", "ve",
                    "lorem ipsum ",
                ]),
                0..400,
            ),
        ) {
            let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
            let hay = parts.concat();
            let want = reference(&patterns, &hay);
            let d = dfa::Builder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(&patterns)
                .expect("dfa");
            prop_assert_eq!(&lanes(&d, &hay), &want, "{:?}", hay);
            let n = nfa::contiguous::Builder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(&patterns)
                .expect("nfa");
            prop_assert_eq!(&lanes(&n, &hay), &want, "{:?}", hay);
        }
    }

    /// The long-text path is taken and finds matches on every side of every cut.
    #[test]
    fn matches_at_the_cuts_are_found_once() {
        let patterns = vec!["xyzzy".to_string(), "zz".to_string()];
        let d = dfa::Builder::new()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&patterns)
            .expect("dfa");
        let len = LANES * MIN_SHARE * 2;
        for at in 0..len - 5 {
            let mut hay = vec![b'.'; len];
            hay[at..at + 5].copy_from_slice(b"xyzzy");
            let hay = String::from_utf8(hay).expect("ascii");
            assert_eq!(
                lanes(&d, &hay),
                vec![(1, at + 2, at + 4), (0, at, at + 5)],
                "at {at}"
            );
        }
    }
}
