//! Korean NAME and ADDRESS rules. They work on char boundaries found by walking UTF-8
//! around a cue the regex pass found, so no Unicode-aware regex runs over the text.

use super::context::{Cue, CueFinder};

/// Korean surnames (Statistics Korea 2015 census; the ~130 most common, which cover
/// over 99% of the population). Two-syllable surnames are listed separately.
const SURNAMES_1: &str = "김이박최정강조윤장임한오서신권황안송류유전홍고문양손배백허남심노하곽성차주우구민진나지엄채원천방공현함변염여추도소석선설마길연위표명기반라왕금옥육인맹제모탁국어은편용예경봉사부가복태목형피두감호제음빈동온시범좌팽승간상갈단견당화창뇌";
const SURNAMES_2: &[&str] = &[
    "남궁", "황보", "제갈", "선우", "독고", "사공", "서문", "동방", "어금", "망절",
];

/// Honorific titles that sit between a name and 님/씨 ("김철수 고객님").
const TITLES: &[&str] = &[
    "고객",
    "회원",
    "선생",
    "사장",
    "부장",
    "과장",
    "차장",
    "대리",
    "팀장",
    "교수",
    "기사",
    "원장",
    "대표",
    "선배",
    "후배",
    "작가",
    "의원",
    "장관",
    "총장",
    "실장",
    "이사",
    "상무",
    "전무",
    "주임",
    "사원",
    "매니저",
    "환자",
    "보호자",
    "학생",
    "변호사",
    "의사",
    "간호사",
    "님",
];

/// Words that end in 님/씨 or precede them but are not names.
const NOT_NAMES: &[&str] = &[
    "하나",
    "부처",
    "주인",
    "공주",
    "왕자",
    "도련",
    "아가",
    "아저",
    "마음",
    "솜",
    "날",
    "말",
    "글",
    "맵",
    "불",
    "임금",
    "나라",
    "형",
    "누",
    "언니",
    "오빠",
    "아버",
    "어머",
    "할머",
    "할아버",
    "이모",
    "고모",
    "삼촌",
    "손",
    "여러분",
    "사모",
    "스승",
    "선녀",
    "신랑",
    "신부",
    "조상",
    "해",
    "달",
    "별",
    "사부",
    "부모",
    "교장",
    "원",
    "감독",
    "목사",
    "신부",
    "스님",
    "수녀",
    "주교",
    "대통령",
    "고객",
    "회원",
    "선생",
    "사장",
    "부장",
    "과장",
    "차장",
    "대리",
    "팀장",
    "교수",
    "기사",
    "이사",
    "어르",
    "아드",
    "따",
    "아씨",
    "양",
    "군",
];

fn is_hangul(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c)
}

fn starts_with_surname(w: &str) -> bool {
    SURNAMES_2
        .iter()
        .any(|s| w.starts_with(s) && w.chars().count() >= 3)
        || w.chars().next().is_some_and(|c| SURNAMES_1.contains(c))
}

fn plausible_name(w: &str) -> bool {
    let n = w.chars().count();
    (2..=4).contains(&n)
        && w.chars().all(is_hangul)
        && starts_with_surname(w)
        && !NOT_NAMES.contains(&w)
}

/// Start of the Hangul word that ends at byte `end`.
fn word_start(text: &str, end: usize) -> usize {
    let mut s = end;
    for (i, c) in text[..end].char_indices().rev() {
        if !is_hangul(c) {
            break;
        }
        s = i;
    }
    s
}

/// A name right before 님 / 씨 at `cue`: "홍길동님", "홍길동 씨", "김철수 고객님".
pub fn name_before_cue(text: &str, cue: usize) -> Option<(usize, usize, f32)> {
    // The cue must end a word: "님께서" is fine, but "님비" (NIMBY) is not a title.
    let mut end = cue;
    let mut ws = word_start(text, end);
    let mut word = &text[ws..end];
    if word.is_empty() && text[..end].ends_with(' ') {
        end -= 1;
        ws = word_start(text, end);
        word = &text[ws..end];
    }
    if let Some(t) = TITLES.iter().find(|t| word.ends_with(**t)) {
        let stripped = &word[..word.len() - t.len()];
        if stripped.is_empty() {
            // "김철수 고객님": the name is the previous word.
            if !text[..ws].ends_with(' ') {
                return None;
            }
            end = ws - 1;
            ws = word_start(text, end);
        } else {
            end = ws + stripped.len();
        }
        word = &text[ws..end];
    }
    plausible_name(word).then_some((ws, end, 0.85))
}

/// A name right after a lead word such as 성명, 이름, 예금주 (the regex consumed `: `).
pub fn name_after_lead(text: &str, at: usize) -> Option<(usize, usize)> {
    let mut e = at;
    for (i, c) in text[at..].char_indices() {
        if !is_hangul(c) {
            break;
        }
        e = at + i + c.len_utf8();
    }
    let w = &text[at..e];
    // Strip a trailing particle or copula: 홍길동입니다, 홍길동이고, 홍길동은.
    let w = PARTICLES
        .iter()
        .find_map(|p| w.strip_suffix(p).filter(|r| plausible_name(r)))
        .unwrap_or(w);
    plausible_name(w).then_some((at, at + w.len()))
}

/// Particles and copulas that follow a name ("홍길동에게", "홍길동입니다"), longest first.
const PARTICLES: &[&str] = &[
    "입니다",
    "에게서",
    "이에요",
    "께서",
    "에게",
    "한테",
    "이고",
    "이며",
    "님",
    "은",
    "는",
    "이",
    "가",
    "을",
    "를",
    "의",
    "와",
    "과",
    "도",
    "께",
];

const ADMIN_SUFFIXES: &[char] = &['시', '도', '구', '군', '읍', '면'];
const PROVINCES: &[&str] = &[
    "서울", "부산", "대구", "인천", "광주", "대전", "울산", "세종", "경기", "강원", "충북", "충남",
    "전북", "전남", "경북", "경남", "제주",
];

fn admin_token(w: &str) -> bool {
    let n = w.chars().count();
    n >= 2 && w.chars().all(is_hangul) && (w.ends_with(ADMIN_SUFFIXES) || PROVINCES.contains(&w))
}

/// A Korean road-name (도로명) or lot-number (지번) address around the cue `s..e`
/// (the cue is "…로 123" / "…길 12" or "…동 123-4"). Walks back over district tokens and
/// forward over 동/호/층 details.
pub fn address(
    text: &str,
    cues: &CueFinder,
    road: bool,
    s: usize,
    e: usize,
) -> Option<(usize, usize, f32)> {
    let num_at = s + text[s..e].find(|c: char| c.is_ascii_digit())?;
    let wend = text[s..num_at].trim_end().len() + s;
    let ws = word_start(text, wend);
    let word = &text[ws..wend];
    let syll = word.chars().count();
    if syll < 2 || word.ends_with("으로") || word.ends_with("에로") {
        return None;
    }
    // District tokens before the road word.
    let mut start = ws;
    let mut admins = 0;
    loop {
        let before = &text[..start];
        if !before.ends_with(' ') {
            break;
        }
        let te = start - 1;
        let ts = word_start(text, te);
        if ts == te || !admin_token(&text[ts..te]) {
            break;
        }
        admins += 1;
        start = ts;
    }
    // The building number, then details: "-4", ", 101동 202호", " 3층", " (역삼동)".
    let b = text.as_bytes();
    let mut end = e;
    while end < b.len() && (b[end].is_ascii_digit() || b[end] == b'-') {
        end += 1;
    }
    let after = &text[end..];
    let next = after.chars().next();
    if next.is_some_and(|c| is_hangul(c) && !"번동호층".contains(c)) && admins == 0 {
        // "…로 3개", "…로 2시간": a counter, not a building number.
        return None;
    }
    let mut rest = after;
    loop {
        let r = rest.trim_start_matches([',', ' ']);
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        let tail = &r[digits..];
        let unit = ["번지", "동", "호", "층"]
            .iter()
            .find(|u| digits > 0 && tail.starts_with(**u));
        if let Some(u) = unit {
            rest = &tail[u.len()..];
        } else if r.starts_with('(') {
            match r.find(')') {
                Some(i) if i < 40 => rest = &r[i + 1..],
                _ => break,
            }
        } else {
            break;
        }
        end = text.len() - rest.len();
    }
    let cue = cues.cues(text, start, end, 24, 0) & Cue::Address.bit() != 0;
    let score = match (road, admins, cue) {
        (_, 1.., _) => 0.9,
        (_, 0, true) => 0.8,
        (true, 0, false) if syll >= 3 => 0.55,
        (false, 0, false) if text[..end].ends_with("번지") => 0.7,
        _ => return None,
    };
    Some((start, end, score))
}
