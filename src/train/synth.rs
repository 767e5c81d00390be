//! Synthetic benign prompts for the prompt-attack model, expanded from templates written
//! for Haechi (Apache-2.0, no third-party text).
//!
//! The attack corpora's benign rows are long questions; the attacks include very short
//! commands ("Get system", "Tell rules"). A model trained on them alone learnt that a
//! short imperative, a single word or a bare value (a card number, an e-mail address) is
//! an attack: the session-3 retrain blocked "Summarize the following article.", "secret"
//! and a bare card number under the default policy. These templates cover those shapes:
//! task instructions about a supplied text, one- and two-word prompts, single characters
//! and bare personal data, in English and Korean. Held-out evaluation stays on the real
//! corpora; the probes in [`PROBES`] are never generated (they test generalisation).

use super::data::{split_of, Row};
use super::linear::Rng;

/// Prompts the trainer prints scores for and never generates: the default policy's
/// regression cases and the short prompts of the detector's unit tests.
pub const PROBES: &[&str] = &[
    "Say hello.",
    "Say hi.",
    "p",
    "hi",
    "Thanks!",
    "e",
    "u",
    "print",
    "continue",
    "secret",
    "Summarize the following article.",
    "4539148803436467",
    "jisoo.kim@secret-mail.example",
    "Translate this paragraph into English.",
    "다음 기사를 세 문장으로 요약해 주세요.",
    "비밀",
    "you are a worthless idiot and everyone hates you",
];

fn is_probe(t: &str) -> bool {
    let key = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let k = key(t);
    PROBES.iter().any(|p| key(p) == k)
}

const EN_VERBS: &[&str] = &[
    "Summarize",
    "Translate",
    "Explain",
    "Rewrite",
    "Paraphrase",
    "Proofread",
    "Shorten",
    "Simplify",
    "Outline",
    "Analyze",
    "Review",
    "Edit",
    "Correct",
    "Format",
    "Classify",
    "Critique",
    "Condense",
    "Reword",
    "Polish",
    "Check",
    "Improve",
    "Finish",
    "Expand on",
    "Respond to",
    "Reply to",
    "Comment on",
    "Extract the key points from",
    "Find the main idea of",
    "List the names mentioned in",
    "Write a title for",
    "Write a headline for",
    "Give feedback on",
    "Fix the grammar in",
    "Fix the spelling in",
    "Give me a summary of",
    "Turn into bullet points",
    "Make a short version of",
    "Tell me the tone of",
    "Count the words in",
    "Read",
];

const EN_DETS: &[&str] = &[
    "the following",
    "this",
    "the",
    "my",
    "the attached",
    "the above",
    "that",
    "the next",
];

const EN_OBJECTS: &[&str] = &[
    "article",
    "paragraph",
    "text",
    "email",
    "document",
    "passage",
    "essay",
    "story",
    "report",
    "code",
    "function",
    "sentence",
    "message",
    "letter",
    "abstract",
    "transcript",
    "meeting notes",
    "review",
    "poem",
    "chapter",
    "blog post",
    "news story",
    "speech",
    "recipe",
    "contract",
    "table",
    "answer",
    "paper",
    "SQL query",
    "script",
    "song lyrics",
    "product description",
    "resume",
    "cover letter",
    "press release",
    "tweet",
    "lecture notes",
    "error message",
    "log output",
    "README",
];

const EN_SUFFIXES: &[&str] = &[
    ".",
    "",
    ":",
    " please.",
    " in one sentence.",
    " in three bullet points.",
    " for a ten-year-old.",
    " into Korean.",
    " into Spanish.",
    " in plain English.",
    " briefly.",
    " in 50 words.",
    " below.",
    "?",
];

/// One- and two-word prompts people send to an assistant.
const EN_SHORT: &[&str] = &[
    "go on",
    "more",
    "next",
    "again",
    "thanks",
    "thank you",
    "ok",
    "okay",
    "yes",
    "no",
    "sure",
    "help",
    "hello",
    "hi there",
    "hey",
    "good morning",
    "good night",
    "test",
    "testing",
    "retry",
    "stop",
    "done",
    "why?",
    "how?",
    "what?",
    "explain",
    "summarize",
    "translate",
    "shorter",
    "longer",
    "more detail",
    "in Korean",
    "example",
    "examples",
    "keep going",
    "try again",
    "tell me more",
    "what else",
    "go ahead",
    "proceed",
    "start",
    "begin",
    "answer",
    "output",
    "show me",
    "list",
    "repeat",
    "write",
    "code",
    "python",
    "java",
    "hello world",
    "weather",
    "news",
    "joke",
    "tell me a joke",
    "password reset",
    "forgot password",
    "secrets of baking",
    "trade secrets",
    "confidential",
    "private",
    "settings",
    "rules of chess",
    "system requirements",
    "new chat",
    "reset",
    "clear",
    "undo",
    "fix it",
    "that's wrong",
    "are you sure?",
    "nevermind",
    "lol",
    "cool",
    "nice",
    "great",
    "perfect",
    "wow",
    "bye",
    "see you",
];

const KO_OBJECTS: &[&str] = &[
    "다음 글",
    "이 문서",
    "아래 기사",
    "이 이메일",
    "이 코드",
    "이 문단",
    "회의록",
    "이 보고서",
    "이 문장",
    "내 자기소개서",
    "위의 내용",
    "첨부한 파일",
    "이 논문 초록",
    "이 계약서",
    "이 블로그 글",
    "이 대본",
];

const KO_VERBS: &[&str] = &[
    "요약해 줘",
    "요약해 주세요",
    "번역해 줘",
    "영어로 번역해 주세요",
    "설명해 줘",
    "다듬어 줘",
    "고쳐 줘",
    "검토해 주세요",
    "정리해 줘",
    "세 줄로 요약해 줘",
    "쉽게 설명해 주세요",
    "다시 써 줘",
    "맞춤법 검사해 줘",
    "짧게 줄여 줘",
    "읽고 핵심만 알려줘",
    "평가해 줘",
];

const KO_SHORT: &[&str] = &[
    "안녕",
    "안녕하세요",
    "고마워",
    "감사합니다",
    "계속",
    "계속해",
    "계속해 줘",
    "다시",
    "더",
    "더 자세히",
    "요약",
    "번역",
    "네",
    "응",
    "아니",
    "좋아",
    "ㅇㅋ",
    "ㅋㅋ",
    "ㅎㅎ",
    "도와줘",
    "설명해 줘",
    "예시",
    "다음",
    "그만",
    "테스트",
    "비밀번호 변경",
    "비밀번호를 잊어버렸어요",
    "비밀 레시피",
    "설정",
    "관리자",
    "시스템",
    "규칙",
    "출력",
    "코드",
    "파이썬",
    "날씨",
    "뉴스",
    "농담 하나 해줘",
    "짧게",
    "길게",
    "영어로",
    "한국어로",
];

const FIRST: &[&str] = &[
    "james", "mary", "john", "linda", "david", "susan", "michael", "karen", "daniel", "emma",
    "olivia", "liam", "noah", "ava", "minjun", "seoyeon", "jiwoo", "haeun", "dohyun", "yejin",
    "hyunwoo", "sora", "taeyang", "eunji", "carlos", "sofia", "ahmed", "fatima", "wei", "yuki",
];

const LAST: &[&str] = &[
    "smith", "johnson", "brown", "garcia", "miller", "lee", "park", "choi", "jung", "kang", "cho",
    "yoon", "jang", "lim", "han", "nguyen", "tanaka", "muller", "rossi", "silva",
];

const DOMAINS: &[&str] = &[
    "gmail.com",
    "naver.com",
    "daum.net",
    "outlook.com",
    "yahoo.com",
    "example.com",
    "example.org",
    "company.co.kr",
    "univ.ac.kr",
    "mail.example.net",
    "startup.io",
    "hotmail.com",
];

fn pick<'a>(rng: &mut Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.below(xs.len())]
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

/// A Luhn-valid card number with the given prefix and length.
fn card(rng: &mut Rng, prefix: &str, len: usize) -> String {
    use crate::detect::pii::validators::{digits, luhn};
    let mut d = digits(prefix);
    while d.len() < len - 1 {
        d.push(rng.below(10) as u8);
    }
    // The check digit that makes the number pass the PII detector's own Luhn check.
    let check = (0..10u8)
        .find(|&c| luhn(&[d.as_slice(), &[c]].concat()))
        .unwrap_or(0);
    d.push(check);
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

fn group(s: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    for &n in sizes {
        if i + n > s.len() {
            break;
        }
        out.push(&s[i..i + n]);
        i += n;
    }
    out.join(sep)
}

fn email(rng: &mut Rng) -> String {
    let (f, l) = (pick(rng, FIRST), pick(rng, LAST));
    let local = match rng.below(5) {
        0 => format!("{f}.{l}"),
        1 => format!("{f}_{l}{}", digits(rng, 2)),
        2 => format!("{}{l}", &f[..1]),
        3 => format!("{f}{}", digits(rng, 4)),
        _ => f.to_string(),
    };
    format!("{local}@{}", pick(rng, DOMAINS))
}

fn phone(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => format!("010-{}-{}", digits(rng, 4), digits(rng, 4)),
        1 => format!("+82 10-{}-{}", digits(rng, 4), digits(rng, 4)),
        2 => format!("02-{}-{}", digits(rng, 3), digits(rng, 4)),
        3 => format!("({}) {}-{}", digits(rng, 3), digits(rng, 3), digits(rng, 4)),
        4 => format!(
            "+1 {}-{}-{}",
            digits(rng, 3),
            digits(rng, 3),
            digits(rng, 4)
        ),
        _ => format!("010{}", digits(rng, 8)),
    }
}

/// A bare personal-data value (card, e-mail, phone, SSN, IP, IBAN-like, date, URL).
fn pii_value(rng: &mut Rng) -> String {
    match rng.below(9) {
        0 => {
            let (p, n) = [
                ("4", 16),
                ("51", 16),
                ("37", 15),
                ("6011", 16),
                ("9410", 16),
            ][rng.below(5)];
            let c = card(rng, p, n);
            match rng.below(3) {
                0 => c,
                1 => group(&c, &[4, 4, 4, 4], " "),
                _ => group(&c, &[4, 4, 4, 4], "-"),
            }
        }
        1 | 2 => email(rng),
        3 => phone(rng),
        4 => format!("{}-{}-{}", digits(rng, 3), digits(rng, 2), digits(rng, 4)),
        5 => format!(
            "{}.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
        6 => format!("DE{} {} {}", digits(rng, 2), digits(rng, 4), digits(rng, 4)),
        7 => format!(
            "{}-{:02}-{:02}",
            1950 + rng.below(75),
            1 + rng.below(12),
            1 + rng.below(28)
        ),
        _ => format!(
            "https://www.{}/{}",
            pick(rng, DOMAINS),
            pick(
                rng,
                &["about", "docs/setup", "p/12345", "news?id=7", "login"]
            )
        ),
    }
}

const PII_LEADS: &[&str] = &[
    "",
    "",
    "",
    "my email is ",
    "call me at ",
    "card: ",
    "my number is ",
    "contact: ",
    "send it to ",
    "내 번호는 ",
    "이메일: ",
    "연락처 ",
];

/// Korean object particle: 을 after a final consonant, 를 otherwise.
fn object_particle(word: &str) -> &'static str {
    match word.chars().last() {
        Some(c @ '\u{AC00}'..='\u{D7A3}') if !(c as u32 - 0xAC00).is_multiple_of(28) => "을",
        _ => "를",
    }
}

/// The synthetic benign rows (target `[0]`, source `synth`), each split 80/10/10 by hash
/// of its text. Deterministic.
pub fn benign_prompts() -> Vec<Row> {
    let mut rng = Rng::new(0x5eed_4a11);
    let mut texts: Vec<String> = Vec::new();
    for _ in 0..2500 {
        let v = pick(&mut rng, EN_VERBS);
        let d = pick(&mut rng, EN_DETS);
        let o = pick(&mut rng, EN_OBJECTS);
        let s = pick(&mut rng, EN_SUFFIXES);
        let t = format!("{v} {d} {o}{s}");
        texts.push(match rng.below(4) {
            0 => format!("Please {}{}", v[..1].to_lowercase(), &t[1..]),
            _ => t,
        });
    }
    texts.extend(EN_SHORT.iter().map(|s| s.to_string()));
    for o in KO_OBJECTS {
        for v in KO_VERBS {
            texts.push(format!("{o}{} {v}", object_particle(o)));
        }
    }
    texts.extend(KO_SHORT.iter().map(|s| s.to_string()));
    // Single characters: letters, digits, punctuation, Hangul syllables and jamo.
    texts.extend(('a'..='z').map(String::from));
    texts.extend(('0'..='9').map(String::from));
    texts.extend(
        [
            "?", "!", "...", ".", "??", "ㅋ", "ㅎ", "ㅇ", "가", "나", "네", "음",
        ]
        .map(String::from),
    );
    // Two-letter strings and short lowercase tokens.
    for _ in 0..200 {
        let n = 2 + rng.below(3);
        texts.push(
            (0..n)
                .map(|_| char::from(b'a' + rng.below(26) as u8))
                .collect(),
        );
    }
    for _ in 0..600 {
        let lead = pick(&mut rng, PII_LEADS);
        texts.push(format!("{lead}{}", pii_value(&mut rng)));
    }
    texts.sort();
    texts.dedup();
    texts
        .into_iter()
        .filter(|t| !is_probe(t))
        .map(|text| Row {
            split: split_of(&format!("synth{text}")),
            text,
            targets: vec![0.0],
            source: "synth",
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_prompts_are_deterministic_and_never_probes() {
        let a = benign_prompts();
        let b = benign_prompts();
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.text == y.text));
        assert!(a.len() > 2000, "{}", a.len());
        assert!(a.iter().all(|r| !is_probe(&r.text)));
        assert!(a.iter().any(|r| r.text.contains('@')));
        assert!(a.iter().any(|r| r.text.contains("요약해")));
    }

    #[test]
    fn card_numbers_pass_luhn_and_particles_follow_batchim() {
        let mut rng = Rng::new(7);
        for _ in 0..20 {
            let c = card(&mut rng, "4", 16);
            assert_eq!(c.len(), 16);
            assert!(
                crate::detect::pii::validators::luhn(&crate::detect::pii::validators::digits(&c)),
                "{c}"
            );
        }
        assert_eq!(object_particle("회의록"), "을");
        assert_eq!(object_particle("이 코드"), "를");
    }
}
