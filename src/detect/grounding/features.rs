//! Features of a claim against the retrieved context (grounding) and the question
//! (relevance). Every feature is a small, explainable quantity; a logistic regression
//! combines them (see `model.rs`).

use super::text::{self, pair_key, IdBuild, KeyMap, KeySet, Script, Tok, Tokens};

/// Names of the grounding features, in vector order (written into the weights file so a
/// mismatch between code and weights is caught at load time).
pub const GROUNDING_FEATURES: &[&str] = &[
    "wsup",
    "wsup_ctx",
    "frac_sup",
    "max_unsup_w",
    "unsup_numbers",
    "unsup_entities",
    "unsup_quotes",
    "neg_mismatch",
    "pair_sup",
    "best_sent_cov",
    "best2_cov",
    "copy_rate",
    "hangul_share",
    "no_content",
    "min_sent_wsup",
    "min_sent_cov2",
    "weak_sent_share",
    "unsup_mass_log",
    "copy3",
    "unsup_rare_log",
    "repeat_share",
];

/// Index of `no_content` and of the sentence aggregates, which the caller fills at answer
/// level (for a single sentence they equal its own values).
pub const NO_CONTENT: usize = 13;
pub const MIN_SENT_WSUP: usize = 14;
pub const MIN_SENT_COV2: usize = 15;
pub const WEAK_SENT_SHARE: usize = 16;
/// A sentence whose context support (`wsup_ctx`) is below this counts as weak.
pub const WEAK_SENT: f32 = 0.75;

/// Names of the relevance features, in vector order.
pub const RELEVANCE_FEATURES: &[&str] = &[
    "query_cov",
    "answer_in_query",
    "expects_number",
    "number_answered",
    "expects_entity",
    "entity_answered",
    "ctx_focus",
    "yesno_answered",
    "answer_len_log",
    "has_context",
    "ctx_support",
];

/// Rarity weights: a table of common words (weight < 1) estimated from training text;
/// any word not in the table is rare and weighs 1.
#[derive(Debug, Clone, Default)]
pub struct Rarity {
    table: KeyMap<f32>,
}

impl Rarity {
    /// Parses `word<TAB>weight` lines.
    pub fn parse(src: &str) -> Self {
        let mut table = KeyMap::default();
        for line in src.lines() {
            let mut parts = line.split('\t');
            let (Some(w), Some(v)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Some(key), Ok(v)) = (text::word_key(w), v.trim().parse::<f32>()) else {
                continue;
            };
            table.insert(key, v.clamp(0.0, 1.0));
        }
        Self { table }
    }

    pub fn weight(&self, t: &Tok) -> f32 {
        if t.stop {
            return 0.0;
        }
        if t.script == Script::Number {
            return 1.0;
        }
        self.table.get(&t.key).copied().unwrap_or(1.0)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// An index of the retrieved context, built once per request.
pub struct ContextIndex {
    keys: KeySet,
    prefixes: KeySet,
    hbigrams: KeySet,
    pairs: KeySet,
    /// Ordered pairs of adjacent tokens (all tokens): verbatim copying.
    seq: KeySet,
    /// Ordered triples of adjacent tokens.
    seq3: KeySet,
    /// token key (or prefix / Hangul bigram) → context sentences containing it.
    sent_of: KeyMap<Vec<u32>>,
    sent_neg: Vec<bool>,
    lower: String,
    n_sent: usize,
}

impl ContextIndex {
    pub fn new(context: &[String]) -> Self {
        let mut idx = ContextIndex {
            keys: KeySet::with_capacity_and_hasher(1024, IdBuild::default()),
            prefixes: KeySet::with_capacity_and_hasher(512, IdBuild::default()),
            hbigrams: KeySet::default(),
            pairs: KeySet::with_capacity_and_hasher(2048, IdBuild::default()),
            seq: KeySet::with_capacity_and_hasher(1024, IdBuild::default()),
            seq3: KeySet::with_capacity_and_hasher(1024, IdBuild::default()),
            sent_of: KeyMap::with_capacity_and_hasher(1024, IdBuild::default()),
            sent_neg: Vec::new(),
            lower: String::new(),
            n_sent: 0,
        };
        for doc in context {
            idx.lower.push_str(&doc.to_lowercase());
            idx.lower.push('\n');
            for (s, e) in text::sentences(doc) {
                let sid = idx.n_sent as u32;
                idx.n_sent += 1;
                let toks = text::tokenize(&doc[s..e], s);
                idx.sent_neg
                    .push(toks.toks.iter().filter(|t| t.neg).count() % 2 == 1);
                let content: Vec<u64> = toks
                    .toks
                    .iter()
                    .filter(|t| !t.stop)
                    .map(|t| t.key)
                    .collect();
                for t in &toks.toks {
                    idx.keys.insert(t.key);
                    add_sent(&mut idx.sent_of, t.key, sid);
                    if t.prefix != t.key {
                        idx.prefixes.insert(t.prefix);
                        add_sent(&mut idx.sent_of, t.prefix, sid);
                    }
                }
                for &b in &toks.run_bigrams {
                    idx.hbigrams.insert(b);
                    add_sent(&mut idx.sent_of, b, sid);
                }
                for w in toks.toks.windows(2) {
                    idx.seq.insert(seq_key(w[0].key, w[1].key));
                }
                for w in toks.toks.windows(3) {
                    idx.seq3
                        .insert(seq_key(seq_key(w[0].key, w[1].key), w[2].key));
                }
                for i in 0..content.len() {
                    for j in i + 1..(i + 4).min(content.len()) {
                        idx.pairs.insert(pair_key(content[i], content[j]));
                    }
                }
            }
        }
        idx
    }

    pub fn is_empty(&self) -> bool {
        self.n_sent == 0
    }

    /// Support of one token in [0, 1] and the context sentences that support it.
    fn support(&self, toks: &Tokens, t: &Tok) -> f32 {
        if self.keys.contains(&t.key) {
            return 1.0;
        }
        match t.script {
            Script::Latin => {
                if t.prefix != t.key && self.prefixes.contains(&t.prefix) {
                    0.8
                } else {
                    0.0
                }
            }
            Script::Number => 0.0,
            Script::Hangul => {
                let bg = toks.bigrams_of(t);
                if bg.is_empty() {
                    return 0.0;
                }
                let hit = bg.iter().filter(|b| self.hbigrams.contains(b)).count();
                hit as f32 / bg.len() as f32
            }
        }
    }

    /// Context-estimated IDF in (0, 1]: a word found in every sentence of the context
    /// (its topic) says little about which sentence supports a claim; a word found in
    /// one sentence pins it down. Unsupported words count fully.
    fn specificity(&self, toks: &Tokens, t: &Tok) -> f32 {
        let df = self
            .sent_of
            .get(&t.key)
            .or_else(|| self.sent_of.get(&t.prefix))
            .or_else(|| toks.bigrams_of(t).first().and_then(|b| self.sent_of.get(b)))
            .map_or(0, Vec::len);
        if df == 0 {
            return 1.0;
        }
        let n = self.n_sent.max(1) as f32;
        ((1.0 + n / df as f32).ln() / (1.0 + n).ln()).clamp(0.05, 1.0)
    }

    fn sents_of(&self, toks: &Tokens, t: &Tok, mut f: impl FnMut(u32, f32)) {
        if let Some(v) = self.sent_of.get(&t.key) {
            v.iter().for_each(|&s| f(s, 1.0));
            return;
        }
        match t.script {
            Script::Latin if t.prefix != t.key => {
                if let Some(v) = self.sent_of.get(&t.prefix) {
                    v.iter().for_each(|&s| f(s, 0.8));
                }
            }
            Script::Hangul => {
                let bg = toks.bigrams_of(t);
                let share = 1.0 / bg.len().max(1) as f32;
                for b in bg {
                    if let Some(v) = self.sent_of.get(b) {
                        v.iter().for_each(|&s| f(s, share));
                    }
                }
            }
            _ => {}
        }
    }
}

fn seq_key(a: u64, b: u64) -> u64 {
    pair_key(a.rotate_left(7) ^ 0x51, b)
}

fn add_sent(map: &mut KeyMap<Vec<u32>>, key: u64, sid: u32) {
    let v = map.entry(key).or_default();
    if v.last() != Some(&sid) {
        v.push(sid);
    }
}

/// The query's content tokens as a set.
pub struct QueryIndex {
    keys: KeySet,
    prefixes: KeySet,
    toks: Tokens,
}

impl QueryIndex {
    pub fn new(query: &str) -> Self {
        let toks = text::tokenize(query, 0);
        let mut keys = KeySet::default();
        let mut prefixes = KeySet::default();
        for t in &toks.toks {
            keys.insert(t.key);
            prefixes.insert(t.prefix);
        }
        Self {
            keys,
            prefixes,
            toks,
        }
    }

    fn has(&self, t: &Tok) -> bool {
        self.keys.contains(&t.key) || (t.prefix != t.key && self.prefixes.contains(&t.prefix))
    }
}

/// Per-claim grounding features for the answer span `[start, end)`.
///
/// `toks` are the answer's tokens (whole answer); only those inside the span count.
/// `min_sent_wsup` is filled by the caller for multi-sentence units (else = wsup).
pub fn grounding_features(
    answer: &str,
    span: (usize, usize),
    toks: &Tokens,
    ctx: &ContextIndex,
    query: Option<&QueryIndex>,
    rarity: &Rarity,
    scratch: &mut Vec<f32>,
) -> Vec<f32> {
    let (s, e) = span;
    let in_span: Vec<&Tok> = toks
        .toks
        .iter()
        .filter(|t| t.start >= s && t.end <= e)
        .collect();
    let mut wsum = 0.0f32;
    let mut wsup = 0.0f32;
    let mut wsup_ctx = 0.0f32;
    let mut n_content = 0usize;
    let mut n_sup = 0.0f32;
    let mut max_unsup = 0.0f32;
    let mut unsup_num = 0usize;
    let mut unsup_ent = 0usize;
    let mut hangul = 0usize;
    let mut neg = 0usize;
    scratch.clear();
    scratch.resize(ctx.n_sent, 0.0);
    let mut prev_content: Option<u64> = None;
    let (mut pairs, mut pairs_hit) = (0usize, 0usize);
    let (mut seqs, mut seqs_hit) = (0usize, 0usize);
    let mut first = true;
    let mut prev_any: Option<u64> = None;
    let mut prev2: Option<u64> = None;
    let (mut tri, mut tri_hit) = (0usize, 0usize);
    let mut unsup_rare = 0usize;
    let mut walign = 0.0f32;
    let mut seen: Vec<u64> = Vec::with_capacity(in_span.len());
    let mut repeats = 0usize;
    for t in &in_span {
        if let Some(p) = prev_any {
            seqs += 1;
            let k2 = seq_key(p, t.key);
            if ctx.seq.contains(&k2) {
                seqs_hit += 1;
            }
            if let Some(pp) = prev2 {
                tri += 1;
                if ctx.seq3.contains(&seq_key(pp, t.key)) {
                    tri_hit += 1;
                }
            }
            prev2 = Some(k2);
        }
        prev_any = Some(t.key);
        if t.neg {
            neg += 1;
        }
        if t.stop {
            first = false;
            continue;
        }
        let w = rarity.weight(t).max(0.05);
        n_content += 1;
        if seen.contains(&t.key) {
            repeats += 1;
        } else {
            seen.push(t.key);
        }
        if t.script == Script::Hangul {
            hangul += 1;
        }
        let sc = ctx.support(toks, t);
        let sq = if query.is_some_and(|q| q.has(t)) {
            1.0
        } else {
            0.0
        };
        let sup = sc.max(sq);
        wsum += w;
        wsup += w * sup;
        wsup_ctx += w * sc;
        n_sup += sup;
        if sup < 0.5 {
            max_unsup = max_unsup.max(w);
            if w >= 0.8 {
                unsup_rare += 1;
            }
            if t.script == Script::Number {
                unsup_num += 1;
            }
            let entity = (t.cap && t.script == Script::Latin && (!first || w > 0.6))
                || (t.script == Script::Latin && hangul_near(answer, t));
            if entity {
                unsup_ent += 1;
            }
        }
        let wa = w * ctx.specificity(toks, t);
        walign += wa;
        ctx.sents_of(toks, t, |sid, f| {
            if let Some(x) = scratch.get_mut(sid as usize) {
                *x += wa * f;
            }
        });
        if let Some(p) = prev_content {
            pairs += 1;
            if ctx.pairs.contains(&pair_key(p, t.key)) {
                pairs_hit += 1;
            }
        }
        prev_content = Some(t.key);
        first = false;
    }
    // Quoted strings that the context does not contain.
    let mut unsup_quotes = 0.0f32;
    for (qs, qe) in text::quoted(&answer[s..e]) {
        let q = answer[s + qs..s + qe].to_lowercase();
        if !ctx.lower.contains(q.trim()) {
            unsup_quotes = 1.0;
        }
    }
    // The two context sentences that cover the most of the claim.
    let (mut b1, mut b2) = (None::<usize>, None::<usize>);
    for (i, &v) in scratch.iter().enumerate() {
        if v <= 0.0 {
            continue;
        }
        if b1.is_none_or(|b| v > scratch[b]) {
            b2 = b1;
            b1 = Some(i);
        } else if b2.is_none_or(|b| v > scratch[b]) {
            b2 = Some(i);
        }
    }
    let best = b1.map_or(0.0, |b| scratch[b]);
    let mut cov2 = 0.0f32;
    if let Some(b1) = b1 {
        for t in in_span.iter().filter(|t| !t.stop) {
            let w = rarity.weight(t).max(0.05) * ctx.specificity(toks, t);
            let mut m = 0.0f32;
            ctx.sents_of(toks, t, |sid, f| {
                if sid as usize == b1 || Some(sid as usize) == b2 {
                    m = m.max(f);
                }
            });
            cov2 += w * m.min(1.0);
        }
    }
    let neg_mismatch = match b1 {
        Some(b) => {
            let ans_neg = neg % 2 == 1;
            let ctx_neg = ctx.sent_neg.get(b).copied().unwrap_or(false);
            f32::from(u8::from(ans_neg != ctx_neg))
        }
        None => 0.0,
    };
    if n_content == 0 {
        let mut x = vec![1.0; GROUNDING_FEATURES.len()];
        x[3] = 0.0;
        x[4] = 0.0;
        x[5] = 0.0;
        x[6] = unsup_quotes;
        x[7] = 0.0;
        x[11] = if seqs == 0 {
            1.0
        } else {
            seqs_hit as f32 / seqs as f32
        };
        x[12] = 0.0;
        x[WEAK_SENT_SHARE] = 0.0;
        x[17] = 0.0;
        x[18] = if tri == 0 {
            x[11]
        } else {
            tri_hit as f32 / tri as f32
        };
        x[19] = 0.0;
        x[20] = 0.0;
        return x;
    }
    let denom = wsum.max(1e-6);
    let wsup_f = wsup / denom;
    let pair_sup = if pairs == 0 {
        wsup_f
    } else {
        pairs_hit as f32 / pairs as f32
    };
    vec![
        wsup_f,
        wsup_ctx / denom,
        n_sup / n_content as f32,
        max_unsup,
        (1.0 + unsup_num as f32).ln(),
        (1.0 + unsup_ent as f32).ln(),
        unsup_quotes,
        neg_mismatch,
        pair_sup,
        (best / walign.max(1e-6)).min(1.0),
        (cov2 / walign.max(1e-6)).min(1.0),
        if seqs == 0 {
            wsup_f
        } else {
            seqs_hit as f32 / seqs as f32
        },
        hangul as f32 / n_content as f32,
        0.0,
        wsup_f,
        (cov2 / walign.max(1e-6)).min(1.0),
        f32::from(u8::from(wsup_ctx / denom < WEAK_SENT)),
        (1.0 + wsum - wsup).ln(),
        if tri == 0 {
            if seqs == 0 {
                wsup_f
            } else {
                seqs_hit as f32 / seqs as f32
            }
        } else {
            tri_hit as f32 / tri as f32
        },
        (1.0 + unsup_rare as f32).ln(),
        repeats as f32 / n_content as f32,
    ]
}

/// A Latin-script word inside Korean text is almost always a name or acronym.
fn hangul_near(answer: &str, t: &Tok) -> bool {
    let before = answer[..t.start].chars().rev().find(|c| !c.is_whitespace());
    let after = answer[t.end..].chars().find(|c| !c.is_whitespace());
    before.is_some_and(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
        || after.is_some_and(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
}

const EN_NUM_Q: &[&str] = &[
    "how many",
    "how much",
    "how old",
    "how long",
    "how far",
    "when",
    "what year",
    "which year",
    "what date",
    "how tall",
    "what age",
    "in what year",
    "what time",
    "how large",
    "how big",
];
const KO_NUM_Q: &[&str] = &["몇", "언제", "얼마", "연도", "년도", "며칠", "나이"];
const EN_ENT_Q: &[&str] = &["who", "whom", "whose", "which", "what", "where", "name"];
const KO_ENT_Q: &[&str] = &["누구", "누가", "어느", "어디", "무엇", "무슨", "뭐", "어떤"];
const EN_YN_START: &[&str] = &[
    "is", "are", "was", "were", "do", "does", "did", "can", "could", "has", "have", "had", "will",
    "would", "should",
];

/// Relevance features of an answer for a query (and optional context).
pub fn relevance_features(
    answer: &str,
    query: &str,
    ctx: Option<&ContextIndex>,
    rarity: &Rarity,
) -> Vec<f32> {
    let atoks = text::tokenize(answer, 0);
    let q = QueryIndex::new(query);
    let ql = query.to_lowercase();
    let al = answer.to_lowercase();
    // Query coverage: how much of the query's content mass the answer touches.
    let akeys: KeySet = atoks.toks.iter().flat_map(|t| [t.key, t.prefix]).collect();
    let mut qmass = 0.0f32;
    let mut qcov = 0.0f32;
    for t in q.toks.toks.iter().filter(|t| !t.stop) {
        let w = rarity.weight(t).max(0.05);
        qmass += w;
        let hit = akeys.contains(&t.key) || akeys.contains(&t.prefix) || {
            t.script == Script::Hangul
                && q.toks
                    .bigrams_of(t)
                    .iter()
                    .any(|b| atoks.run_bigrams.contains(b))
        };
        if hit {
            qcov += w;
        }
    }
    let mut amass = 0.0f32;
    let mut ain = 0.0f32;
    let mut has_num = false;
    let mut has_ent = false;
    let mut n_content = 0usize;
    for (i, t) in atoks.toks.iter().enumerate() {
        if t.script == Script::Number {
            has_num = true;
        }
        if t.cap && !t.stop && (i > 0 || rarity.weight(t) > 0.6) {
            has_ent = true;
        }
        if t.stop {
            continue;
        }
        n_content += 1;
        let w = rarity.weight(t).max(0.05);
        amass += w;
        if q.has(t) {
            ain += w;
        }
    }
    if atoks
        .toks
        .iter()
        .any(|t| t.script == Script::Hangul && !t.stop)
    {
        // Korean answers: a content eojeol counts as an entity answer.
        has_ent = true;
    }
    let expects_num =
        EN_NUM_Q.iter().any(|p| ql.contains(p)) || KO_NUM_Q.iter().any(|p| ql.contains(p));
    let first_word = ql.split_whitespace().next().unwrap_or("");
    let yesno_q = EN_YN_START.contains(&first_word)
        || ql.trim_end().ends_with("나요?")
        || ql.trim_end().ends_with("까?")
        || ql.trim_end().ends_with("니?");
    let expects_ent = !expects_num
        && !yesno_q
        && (EN_ENT_Q
            .iter()
            .any(|p| ql.split(|c: char| !c.is_alphanumeric()).any(|w| w == *p))
            || KO_ENT_Q.iter().any(|p| ql.contains(p)));
    let yn_answer = al.starts_with("yes")
        || al.starts_with("no")
        || al.starts_with("네")
        || al.starts_with("예")
        || al.starts_with("아니");
    // Context focus: does the answer draw on the context sentences the question points at?
    let (ctx_focus, ctx_support, has_ctx) = match ctx {
        Some(c) if !c.is_empty() => {
            let mut qs = vec![0.0f32; c.n_sent];
            for t in q.toks.toks.iter().filter(|t| !t.stop) {
                let w = rarity.weight(t).max(0.05);
                c.sents_of(&q.toks, t, |sid, f| {
                    if let Some(x) = qs.get_mut(sid as usize) {
                        *x += w * f;
                    }
                });
            }
            let top = qs.iter().copied().fold(0.0f32, f32::max);
            let mut focus = 0.0f32;
            let mut sup = 0.0f32;
            let mut mass = 0.0f32;
            for t in atoks.toks.iter().filter(|t| !t.stop) {
                let w = rarity.weight(t).max(0.05);
                mass += w;
                sup += w * c.support(&atoks, t);
                let mut best = 0.0f32;
                c.sents_of(&atoks, t, |sid, f| {
                    if let Some(&v) = qs.get(sid as usize) {
                        if top > 0.0 && v >= 0.5 * top {
                            best = best.max(f);
                        }
                    }
                });
                focus += w * best;
            }
            let m = mass.max(1e-6);
            (focus / m, sup / m, 1.0)
        }
        _ => (0.0, 0.0, 0.0),
    };
    vec![
        if qmass > 0.0 { qcov / qmass } else { 0.0 },
        if amass > 0.0 { ain / amass } else { 0.0 },
        f32::from(u8::from(expects_num)),
        f32::from(u8::from(expects_num && has_num)),
        f32::from(u8::from(expects_ent)),
        f32::from(u8::from(expects_ent && has_ent)),
        ctx_focus,
        f32::from(u8::from(yesno_q && yn_answer)),
        (1.0 + n_content as f32).ln(),
        has_ctx,
        ctx_support,
    ]
}
