//! Partial matches: where, at the end of a text that is still growing (a streamed answer),
//! a pattern could still be matching.
//!
//! The streaming output stage releases text only once no rule can change it. For the
//! pattern-based detectors (PII candidates, secrets, custom regexes) the question "could
//! a match that starts here still be in progress?" is answered exactly by running the
//! pattern set's lazy DFA, anchored, from each start position to the end of the text: a
//! start whose DFA is not dead at the end is a live partial match. The same run says
//! whether a complete candidate starts in a region (if none does, the detector cannot
//! fire there and is not run at all).

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::util::pool::Pool;
use regex_automata::util::{start, syntax};
use regex_automata::Anchored;

type CachePool = Pool<Cache, Box<dyn Fn() -> Cache + Send + Sync + std::panic::UnwindSafe>>;

/// The lazy DFA of a pattern set, for partial-match questions.
pub struct PartialMatcher {
    dfa: DFA,
    caches: CachePool,
    /// Which first bytes can begin a match, per look-behind byte: most starts in a
    /// text die on their first byte, and this answers that without the DFA.
    first_bytes: Option<Box<FirstBytes>>,
}

/// For each look-behind (a byte, or the start of the text at index 256), the set of
/// bytes on which the anchored start state does not die. Built once per matcher from
/// the DFA itself, so it answers exactly as the DFA's first step would. One flat row per
/// look-behind, so that the scan over new starts is a load and a bit test per byte.
struct FirstBytes {
    /// Per look-behind, 256 bits; every bit set where the DFA has no start state (it
    /// cannot decide; such starts are probed).
    rows: [[u64; 4]; 257],
}

impl FirstBytes {
    fn build(dfa: &DFA) -> Option<Box<Self>> {
        let mut cache = dfa.create_cache();
        // Look-behinds share few start states: each state's set is computed once.
        let mut sets: Vec<(LazyStateID, [u64; 4])> = Vec::new();
        let mut rows = [[u64::MAX; 4]; 257];
        for (lb, row) in rows.iter_mut().enumerate() {
            let look_behind = u8::try_from(lb).ok();
            let config = start::Config::new()
                .anchored(Anchored::Yes)
                .look_behind(look_behind);
            let Ok(sid) = dfa.start_state(&mut cache, &config) else {
                continue;
            };
            if let Some(&(_, set)) = sets.iter().find(|(s, _)| *s == sid) {
                *row = set;
                continue;
            }
            let mut set = [0u64; 4];
            for byte in 0..=255u8 {
                // A byte the DFA cannot step on (an error) counts as a possible start.
                let dies = dfa
                    .next_state(&mut cache, sid, byte)
                    .is_ok_and(|next| next.is_dead());
                if !dies {
                    set[usize::from(byte >> 6)] |= 1 << (byte & 63);
                }
            }
            sets.push((sid, set));
            *row = set;
        }
        // State ids are only comparable within one cache generation.
        (cache.clear_count() == 0).then(|| Box::new(Self { rows }))
    }

    /// Whether a match can begin with `byte` after `look_behind` (`None`: the text's
    /// start); `true` when the DFA has to be asked.
    #[inline]
    fn may_start(&self, look_behind: Option<u8>, byte: u8) -> bool {
        let row = &self.rows[look_behind.map_or(256, usize::from)];
        row[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0
    }
}

impl std::fmt::Debug for PartialMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialMatcher").finish_non_exhaustive()
    }
}

/// What a scan of the tail of a growing text found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// Earliest start at or after `from` whose match may still be in progress, or whose
    /// complete match ends within `right` bytes of the end (its verdict can still depend
    /// on text to come). The text's length when there is none.
    pub hold: usize,
    /// Whether a complete match starts in `from..hold` (the detector must run there).
    pub candidate: bool,
    /// The hold cannot move past `hold` before the text is this long (a complete match
    /// waiting for the bytes after it); 0 when nothing is known beyond the text so far.
    /// The streaming stage skips deltas that cannot release anything.
    pub firm_until: usize,
}

/// How far back a detector without a partial-match model holds a growing text: the
/// longest span its free-text heuristics (names, addresses) report.
pub const FIXED_WINDOW: usize = 96;

impl Tail {
    /// The conservative answer for detectors without a partial-match model: everything
    /// in the last [`FIXED_WINDOW`] bytes may still change, and the detector must run.
    pub fn fixed_window(text: &str, from: usize) -> Self {
        let mut hold = text.len().saturating_sub(FIXED_WINDOW).max(from);
        while hold < text.len() && !text.is_char_boundary(hold) {
            hold += 1;
        }
        Self {
            hold,
            candidate: true,
            firm_until: 0,
        }
    }

    /// The more cautious of two answers. The earlier hold stays as long as the answer
    /// that asks for it stays (either one's, when both ask for the same byte).
    pub fn min(self, other: Self) -> Self {
        let firm_until = match self.hold.cmp(&other.hold) {
            std::cmp::Ordering::Less => self.firm_until,
            std::cmp::Ordering::Greater => other.firm_until,
            std::cmp::Ordering::Equal => self.firm_until.max(other.firm_until),
        };
        Self {
            hold: self.hold.min(other.hold),
            candidate: self.candidate || other.candidate,
            firm_until,
        }
    }
}

/// What earlier scans of the same growing text learned: a start whose DFA died stays
/// dead whatever follows, so only starts still alive and new starts are probed again.
#[derive(Debug, Clone, Default)]
pub struct TailMemo {
    /// Starts from this one on are still to be probed (the first of them may be known
    /// alive); below it only the starts in `live` may still match.
    scanned: usize,
    /// Starts below `scanned` alive at the end of the text last time.
    live: Vec<usize>,
    /// Dead starts with a complete match: (start, end of its longest match).
    matched: Vec<(usize, usize)>,
}

/// The memos one detector keeps for one growing text (a detector has at most two
/// pattern sets).
#[derive(Debug, Clone, Default)]
pub struct StreamMemo {
    pub parts: [TailMemo; 2],
}

impl PartialMatcher {
    /// Like [`tail`](Self::tail), probing only the starts that `memo` does not already
    /// know to be dead. `text` must extend the text of earlier calls with the same memo.
    pub fn tail_memo(&self, text: &[u8], from: usize, right: usize, memo: &mut TailMemo) -> Tail {
        self.tail_memo_inert(text, from, right, memo, |_, _| false)
    }

    /// [`tail_memo`](Self::tail_memo) for a detector that knows some complete matches
    /// can never be reported, whatever text follows them: `inert(start, end)` on the
    /// longest match from a dead start. Such a match neither holds the text for its
    /// right context nor asks for the detector to run (a year in prose, for PII, when
    /// no enabled entity takes a number that short).
    pub fn tail_memo_inert(
        &self,
        text: &[u8],
        from: usize,
        right: usize,
        memo: &mut TailMemo,
        inert: impl Fn(usize, usize) -> bool,
    ) -> Tail {
        let len = text.len();
        if memo.scanned < from || memo.scanned > len {
            *memo = TailMemo {
                scanned: from,
                ..TailMemo::default()
            };
        }
        memo.live.retain(|&s| s >= from);
        memo.matched.retain(|&(s, _)| s >= from);
        let mut cache = self.caches.get();
        // Starts are probed in order (the live ones, then the new ones) up to the first
        // one still alive: that one is the hold, and nothing after it can change the
        // answer (a candidate counts only before the hold). The starts after it stay
        // unprobed, kept as if alive; a start probed later with more text dies where it
        // would have died now, with the same last match, so the answer is the one a
        // full probe gives, without probing every start of a word in progress again on
        // each delta. No list is built: the live starts are consumed in place and the
        // new ones are the range from `scanned`.
        let known = self.first_alive(
            &mut cache,
            text,
            memo.live.iter().copied(),
            &mut memo.matched,
            &inert,
        );
        let dead = known.map_or(memo.live.len(), |s| memo.live.partition_point(|&l| l < s));
        memo.live.drain(..dead);
        if known.is_none() {
            // Every known live start died: go on with the new starts. `scanned` moves to
            // the live start found (probed again next time) or the end.
            let new = self.first_alive(
                &mut cache,
                text,
                memo.scanned..len,
                &mut memo.matched,
                &inert,
            );
            memo.scanned = new.unwrap_or(len);
        }
        memo.matched.sort_unstable();
        // The first start not known to be dead: a live one, or the first unprobed one.
        let mut hold = memo.live.first().copied().unwrap_or(memo.scanned);
        let mut firm_until = 0;
        // A complete match waiting for its right context holds its start until that
        // context has arrived, whatever the bytes are.
        if let Some(&(s, e)) = memo.matched.iter().find(|&&(_, e)| e + right > len) {
            if s <= hold {
                hold = s;
                firm_until = e + right;
            }
        }
        let candidate = memo.matched.iter().any(|&(s, _)| s < hold);
        Tail {
            hold,
            candidate,
            firm_until,
        }
    }

    /// The first of `starts` whose match may still be in progress; the dead starts
    /// before it that completed a match (not an `inert` one) are added to `matched`.
    fn first_alive(
        &self,
        cache: &mut Cache,
        text: &[u8],
        mut starts: impl Iterator<Item = usize>,
        matched: &mut Vec<(usize, usize)>,
        inert: &impl Fn(usize, usize) -> bool,
    ) -> Option<usize> {
        // Most starts die on their first byte: that test stays in this loop, and only
        // the starts that pass it are walked.
        starts.find(|&start| {
            if !self.may_start_at(text, start) {
                return false;
            }
            match self.walk(cache, text, start) {
                Probe::Live => true,
                Probe::Dead { last_match_end } => {
                    matched.extend(
                        last_match_end
                            .filter(|&end| !inert(start, end))
                            .map(|end| (start, end)),
                    );
                    false
                }
            }
        })
    }

    /// Builds the matcher for `patterns` with the same syntax as the detector's regexes.
    /// `None` when the lazy DFA cannot be built (the caller then holds conservatively).
    pub fn new(patterns: &[String], unicode: bool) -> Option<Self> {
        let dfa = DFA::builder()
            .syntax(syntax::Config::new().unicode(unicode).utf8(unicode))
            .configure(
                DFA::config()
                    .cache_capacity(1 << 20)
                    .unicode_word_boundary(true),
            )
            .build_many(patterns)
            .ok()?;
        let for_pool = dfa.clone();
        let create: Box<dyn Fn() -> Cache + Send + Sync + std::panic::UnwindSafe> =
            Box::new(move || for_pool.create_cache());
        Some(Self {
            first_bytes: FirstBytes::build(&dfa),
            dfa,
            caches: Pool::new(create),
        })
    }

    /// Scans every start in `from..text.len()` (see [`Tail`]). `right` is how many bytes
    /// after a match the detector looks at (cue words) before it decides.
    pub fn tail(&self, text: &[u8], from: usize, right: usize) -> Tail {
        let len = text.len();
        let mut cache = self.caches.get();
        let mut candidate = false;
        for start in from..len {
            match self.probe(&mut cache, text, start) {
                Probe::Live => {
                    return Tail {
                        hold: start,
                        candidate,
                        firm_until: 0,
                    }
                }
                Probe::Dead { last_match_end } => {
                    if let Some(end) = last_match_end {
                        if end + right > len {
                            return Tail {
                                hold: start,
                                candidate,
                                firm_until: end + right,
                            };
                        }
                        candidate = true;
                    }
                }
            }
        }
        Tail {
            hold: len,
            candidate,
            firm_until: 0,
        }
    }

    /// [`tail`](Self::tail) for the one start `start`: held from it when a match from it
    /// may still be in progress or ends within `right` bytes of the end.
    pub fn tail_at(&self, text: &[u8], start: usize, right: usize) -> Tail {
        let len = text.len();
        let mut cache = self.caches.get();
        let (hold, candidate, firm_until) = match self.probe(&mut cache, text, start) {
            Probe::Live => (start, false, 0),
            Probe::Dead {
                last_match_end: Some(end),
            } if end + right > len => (start, false, end + right),
            Probe::Dead { last_match_end } => (len, last_match_end.is_some(), 0),
        };
        Tail {
            hold,
            candidate,
            firm_until,
        }
    }

    /// Whether a match starting at `start` may still be in progress at the end of
    /// `text` (one start only; [`tail`](Self::tail) scans them all).
    pub fn live_from(&self, text: &[u8], start: usize) -> bool {
        let mut cache = self.caches.get();
        matches!(self.probe(&mut cache, text, start), Probe::Live)
    }

    fn probe(&self, cache: &mut Cache, text: &[u8], start: usize) -> Probe {
        if !self.may_start_at(text, start) {
            return Probe::Dead {
                last_match_end: None,
            };
        }
        self.walk(cache, text, start)
    }

    /// Whether the first byte at `start` lets a match begin there (`true` when unknown).
    #[inline]
    fn may_start_at(&self, text: &[u8], start: usize) -> bool {
        match (&self.first_bytes, text.get(start)) {
            (Some(first), Some(&byte)) => {
                let look_behind = start.checked_sub(1).and_then(|i| text.get(i)).copied();
                first.may_start(look_behind, byte)
            }
            _ => true,
        }
    }

    /// Runs the anchored DFA from `start` to the end of `text` (or its death). The start
    /// state comes from the byte before `start` directly (no search input to check), and
    /// ordinary states (not a match, dead, quit or not yet computed) step by the untagged
    /// transition: most walks are a few steps through one word, so the set-up and the
    /// per-step tests are most of their cost.
    fn walk(&self, cache: &mut Cache, text: &[u8], start: usize) -> Probe {
        let look_behind = start.checked_sub(1).and_then(|i| text.get(i)).copied();
        let config = start::Config::new()
            .anchored(Anchored::Yes)
            .look_behind(look_behind);
        let (Ok(mut sid), Some(rest)) = (self.dfa.start_state(cache, &config), text.get(start..))
        else {
            return Probe::Live;
        };
        let mut last_match_end = None;
        for (i, &byte) in rest.iter().enumerate() {
            let untagged =
                (!sid.is_tagged()).then(|| self.dfa.next_state_untagged(cache, sid, byte));
            sid = match untagged {
                Some(next) if !next.is_unknown() => next,
                _ => match self.dfa.next_state(cache, sid, byte) {
                    Ok(next) => next,
                    Err(_) => return Probe::Live,
                },
            };
            if sid.is_tagged() {
                if sid.is_match() {
                    // Matches are reported one byte late: the match ended before this byte.
                    last_match_end = Some(start + i);
                }
                if sid.is_dead() {
                    return Probe::Dead { last_match_end };
                }
                if sid.is_quit() {
                    // A byte the lazy DFA cannot decide (a Unicode word boundary next to
                    // non-ASCII text): assume the match may go on.
                    return Probe::Live;
                }
            }
        }
        Probe::Live
    }
}

enum Probe {
    /// The DFA is not dead at the end of the text: a match may be in progress.
    Live,
    /// The DFA died; `last_match_end` is the end of the longest complete match, if any.
    Dead { last_match_end: Option<usize> },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(p: &[&str]) -> PartialMatcher {
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        PartialMatcher::new(&p, false).expect("builds")
    }

    #[test]
    fn live_partial_match_is_held_from_its_start() {
        let m = matcher(&[r"[a-z]+@[a-z]+\.[a-z]{2,}"]);
        let cases: &[(&str, usize, bool)] = &[
            // Prose: the last word could still become an e-mail's local part.
            ("write to bob", 9, false),
            ("write to bob@exa", 9, false),
            // A complete e-mail at the end may still grow (".co" → ".com").
            ("write to bob@example.co", 9, false),
            // Terminated by a space: complete, not live; the next word is live.
            ("mail bob@example.com now", 21, true),
            // Nothing that could start a match at the end.
            ("done. ", 6, false),
        ];
        for &(text, hold, candidate) in cases {
            let t = m.tail(text.as_bytes(), 0, 0);
            assert_eq!(t.hold, hold, "{text:?}");
            assert_eq!(t.candidate, candidate, "{text:?}");
        }
    }

    #[test]
    fn memo_answers_like_a_full_scan_as_the_text_grows() {
        let m = matcher(&[r"[a-z]+@[a-z]+\.[a-z]{2,}", r"\b\d{3}-\d{4}\b"]);
        let text = "mail bob@example.com or call 555-1234 today, or ann@x.io";
        for right in [0, 24] {
            let mut memo = TailMemo::default();
            let mut from = 0;
            for end in 1..=text.len() {
                let t = &text.as_bytes()[..end];
                let want = m.tail(t, from, right);
                assert_eq!(m.tail_memo(t, from, right, &mut memo), want, "end {end}");
                // Release up to the hold now and then, as the streaming stage does.
                if end % 7 == 0 {
                    from = want.hold;
                }
            }
        }
    }

    proptest::proptest! {
        /// Whatever the text and the release points, the memo answers like a scan of
        /// every start.
        #[test]
        fn memo_equals_a_full_scan(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "bob", "@", "example", ".", "com", " ", "555", "-", "1234", "x", "\n", "io",
                ]),
                1..16,
            ),
            releases in proptest::collection::vec(0usize..8, 1..16),
            right in proptest::sample::select(vec![0usize, 3, 24]),
        ) {
            let m = matcher(&[r"[a-z]+@[a-z]+\.[a-z]{2,}", r"\b\d{3}-\d{4}\b"]);
            let text = parts.concat();
            let mut memo = TailMemo::default();
            let mut from = 0;
            for end in 1..=text.len() {
                let t = &text.as_bytes()[..end];
                let want = m.tail(t, from, right);
                proptest::prop_assert_eq!(m.tail_memo(t, from, right, &mut memo), want, "{:?} {}", text, end);
                if releases[end % releases.len()] == 0 {
                    from = want.hold;
                }
            }
        }
    }

    proptest::proptest! {
        /// The first-byte sets answer as the DFA's first step does: scans with and
        /// without them agree on any text, whatever precedes each start (word bytes,
        /// line ends, non-ASCII, the text's start).
        #[test]
        fn first_byte_sets_answer_like_the_dfa(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "bob", "@", "ex", ".", "com", " ", "555", "-", "12", "\n", "\r", "김",
                    "sk-", "AKIA", "_", "+82", "x",
                ]),
                1..14,
            ),
            right in proptest::sample::select(vec![0usize, 24]),
            unicode in proptest::prelude::any::<bool>(),
        ) {
            let patterns: Vec<String> = [
                r"[a-z0-9._%+-]+@[a-z0-9-]+\.[a-z]{2,}",
                r"\b\d{3}-\d{2,4}\b",
                r"(?m)^AKIA[0-9A-Z]{4}",
                r"\bsk-[a-z]{2,}",
                r"\+82[0-9 -]{2,}",
            ]
            .iter()
            .map(|p| p.to_string())
            .collect();
            let with = PartialMatcher::new(&patterns, unicode).expect("builds");
            proptest::prop_assert!(with.first_bytes.is_some());
            let mut without = PartialMatcher::new(&patterns, unicode).expect("builds");
            without.first_bytes = None;
            let text = parts.concat();
            for from in 0..=text.len() {
                proptest::prop_assert_eq!(
                    with.tail(text.as_bytes(), from, right),
                    without.tail(text.as_bytes(), from, right),
                    "{:?} from {}", text, from
                );
            }
        }
    }

    #[test]
    fn right_context_holds_complete_matches_near_the_end() {
        let m = matcher(&[r"\b\d{3}-\d{4}\b"]);
        let text = b"call 555-1234 today";
        assert_eq!(m.tail(text, 0, 0).hold, text.len());
        assert!(m.tail(text, 0, 0).candidate);
        // A cue word may follow within 24 bytes: hold from the candidate.
        assert_eq!(m.tail(text, 0, 24).hold, 5);
        // Scanning starts at `from`.
        assert_eq!(m.tail(text, 13, 24).hold, text.len());
        // The match ends at byte 13: with 6 bytes of right context the text (19 bytes)
        // already holds them all; with 7 it waits until byte 20.
        assert_eq!(m.tail(text, 0, 6).hold, text.len());
        let waiting = m.tail(text, 0, 7);
        assert_eq!((waiting.hold, waiting.firm_until), (5, 20));
        let mut memo = TailMemo::default();
        assert_eq!(m.tail_memo(text, 0, 7, &mut memo), waiting);
    }
}
