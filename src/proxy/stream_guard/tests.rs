//! The invariant on the wire: for OpenAI and Anthropic streams cut into reads anywhere
//! (inside events, inside UTF-8 characters), the text the client reads equals what the
//! non-streaming output stage makes of the same answer.

use super::*;
use crate::detect::DetectContext;
use crate::dialect::sse::event_data;
use crate::dialect::Provider;
use crate::engine::{EvalOptions, PseudonymMap};
use crate::policy::compile::{compile_sources, embedded_default, CompiledPolicy};
use crate::policy::load::Source;
use crate::proxy::guard::guard_output;
use proptest::prelude::*;

fn shipped() -> Arc<CompiledPolicy> {
    static P: std::sync::OnceLock<Arc<CompiledPolicy>> = std::sync::OnceLock::new();
    Arc::clone(P.get_or_init(|| embedded_default().default_policy()))
}

fn blocking() -> Arc<CompiledPolicy> {
    static P: std::sync::OnceLock<Arc<CompiledPolicy>> = std::sync::OnceLock::new();
    Arc::clone(P.get_or_init(|| {
        let set = compile_sources(&[Source {
            name: "b.yaml".into(),
            text: "id: b\nextends: default\noutput:\n  - {id: deny, detector: word, words: [frobnicate], action: block}\n".into(),
        }])
        .unwrap_or_else(|e| panic!("{e}"));
        set.get("b").unwrap_or_else(|| panic!("policy b"))
    }))
}

fn pseudonyms() -> PseudonymMap {
    let mut m = PseudonymMap::new();
    m.placeholder("EMAIL", "kim@corp.example");
    m.placeholder("KR_PHONE", "010-9876-5432");
    m
}

fn guard(policy: &Arc<CompiledPolicy>, format: StreamFormat) -> GuardedEvents {
    GuardedEvents::new(
        format,
        StreamGuard::new(
            Arc::clone(policy),
            Vec::new(),
            None,
            b"k".to_vec(),
            None,
            pseudonyms(),
        ),
    )
}

fn openai_stream(deltas: &[&str]) -> String {
    let mut s = String::new();
    let head = r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m""#;
    s.push_str(&format!(
        "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n"
    ));
    for d in deltas {
        let lit = serde_json::to_string(d).unwrap_or_default();
        s.push_str(&format!(
            "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{lit}}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    s.push_str(&format!(
        "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n"
    ));
    s.push_str(": keep-alive\n\ndata: [DONE]\n\n");
    s
}

fn anthropic_stream(deltas: &[&str]) -> String {
    let mut s = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n");
    s.push_str("event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n");
    for d in deltas {
        let lit = serde_json::to_string(d).unwrap_or_default();
        s.push_str(&format!(
            "event: content_block_delta\r\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{lit}}}}}\r\n\r\n"
        ));
    }
    s.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s
}

/// Runs `stream` cut at `cuts` (byte offsets) through the stage; returns what the
/// client received.
fn relay(
    policy: &Arc<CompiledPolicy>,
    format: StreamFormat,
    stream: &[u8],
    cuts: &[usize],
) -> Vec<u8> {
    relay_through(guard(policy, format), stream, cuts)
}

/// Runs `stream` cut at `cuts` through `g` as `GuardedBody` does (each event knows the
/// one after it when that arrived in the same read); returns what the client received.
fn relay_through(mut g: GuardedEvents, stream: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut splitter = EventSplitter::default();
    let mut out = BytesMut::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.sort_unstable();
    points.push(stream.len());
    let mut last = 0;
    'read: for p in points {
        splitter.push(&stream[last..p]);
        last = p;
        let mut next = splitter.next_event();
        while let Some(e) = next.take() {
            next = splitter.next_event();
            if g.event_before(e, next.as_deref(), &mut out) == Flow::Stop {
                break 'read;
            }
        }
    }
    if let Some(rest) = splitter.take_rest() {
        g.event(rest, &mut out);
    }
    g.end(&mut out);
    out.to_vec()
}

/// The text deltas the client read, concatenated, and the stop signal it got.
fn client_text(format: StreamFormat, bytes: &[u8]) -> (String, Vec<String>) {
    let mut splitter = EventSplitter::default();
    splitter.push(bytes);
    let mut text = String::new();
    let mut stops = Vec::new();
    while let Some(e) = splitter.next_event() {
        let Some(data) = event_data(&e) else { continue };
        if data == "[DONE]" {
            stops.push("[DONE]".to_string());
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&data)
            .unwrap_or_else(|e| panic!("client got invalid JSON {data:?}: {e}"));
        match format {
            StreamFormat::Anthropic => {
                if let Some(t) = v["delta"]["text"].as_str() {
                    text.push_str(t);
                }
                if let Some(r) = v["delta"]["stop_reason"].as_str() {
                    stops.push(r.to_string());
                }
            }
            StreamFormat::OpenAiResponses => {
                match v["type"].as_str() {
                    Some("response.output_text.delta") => {
                        text.push_str(v["delta"].as_str().unwrap_or_default());
                    }
                    // The repeated texts are what the client saw (checked elsewhere).
                    Some("response.output_text.done") => {}
                    Some(other) => stops.push(other.to_string()),
                    None => {}
                }
            }
            _ => {
                if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                    text.push_str(t);
                }
                if let Some(r) = v["choices"][0]["finish_reason"].as_str() {
                    stops.push(r.to_string());
                }
            }
        }
    }
    (text, stops)
}

/// What the non-streaming stage returns for the same answer (`None`: blocked).
fn whole(policy: &Arc<CompiledPolicy>, provider: Provider, text: &str) -> Option<String> {
    let body = match provider {
        Provider::Anthropic => {
            serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": text}], "model": "claude", "stop_reason": "end_turn"})
        }
        _ => serde_json::json!({"id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}),
    };
    let bytes = body.to_string().into_bytes();
    let out = guard_output(
        policy,
        provider,
        &bytes,
        &DetectContext::default(),
        &EvalOptions {
            hash_key: b"k",
            ..EvalOptions::default()
        },
        &mut pseudonyms(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    if out
        .decision
        .as_ref()
        .is_some_and(|d| d.action == crate::engine::Verdict::Block)
    {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(out.body.as_deref().unwrap_or(&bytes))
        .unwrap_or_else(|e| panic!("{e}"));
    let t = match provider {
        Provider::Anthropic => v["content"][0]["text"].as_str(),
        _ => v["choices"][0]["message"]["content"].as_str(),
    };
    Some(t.unwrap_or_default().to_string())
}

fn check(policy: &Arc<CompiledPolicy>, deltas: &[&str], cuts: &[usize]) {
    let text: String = deltas.concat();
    for (format, provider, stream) in [
        (
            StreamFormat::OpenAiChat,
            Provider::OpenAi,
            openai_stream(deltas),
        ),
        (
            StreamFormat::Anthropic,
            Provider::Anthropic,
            anthropic_stream(deltas),
        ),
    ] {
        let out = relay(policy, format, stream.as_bytes(), cuts);
        let (got, stops) = client_text(format, &out);
        match whole(policy, provider, &text) {
            Some(want) => {
                assert_eq!(got, want, "{format:?} {deltas:?} cuts {cuts:?}");
                let last = if format == StreamFormat::Anthropic {
                    "end_turn"
                } else {
                    "[DONE]"
                };
                assert_eq!(stops.last().map(String::as_str), Some(last));
            }
            None => {
                assert!(
                    !has_word(&got, "frobnicate"),
                    "{format:?}: offending text released: {got:?}"
                );
                let want = if format == StreamFormat::Anthropic {
                    vec!["refusal".to_string()]
                } else {
                    vec!["content_filter".to_string(), "[DONE]".to_string()]
                };
                assert_eq!(stops, want, "{format:?} {deltas:?}");
            }
        }
    }
}

/// Whether `word` stands in `text` as a word (as the word rule reads it: not inside a
/// longer run of letters or digits, so `jane.doefrobnicate` holds no `frobnicate`).
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, w)| {
        let before = text[..at].chars().next_back();
        let after = text[at + w.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

const WORDS: &[&str] = &[
    "Sure",
    ", ",
    "mail ",
    "jane.doe",
    "@",
    "example.com",
    " or ",
    "<EMAIL_1>",
    "<EMA",
    "IL_1>",
    "010-",
    "1234-5678",
    " 전화 ",
    "010-9876-5432",
    "<KR_PHONE_1>",
    ". ",
    "\n",
    "카드 ",
    "4111 1111 1111 1111",
    "sk-proj-",
    "abcdefghijklmnopqrstuvwx1234",
    " done",
    "frob",
    "nicate",
    "frobnicate ",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(150)
    ))]

    #[test]
    fn any_byte_cuts_of_openai_and_anthropic_streams(
        ix in proptest::collection::vec(0usize..WORDS.len(), 1..16),
        cuts in proptest::collection::vec(0usize..8192, 0..30),
        block in any::<bool>(),
    ) {
        let deltas: Vec<&str> = ix.iter().map(|&i| WORDS[i]).collect();
        let policy = if block { blocking() } else { shipped() };
        check(&policy, &deltas, &cuts);
    }
}

/// Delta events of varied shapes: the usual one, one with a member that changes per
/// event (as OpenAI's `obfuscation`), `data:` without its space, an `id` line, LF or
/// CRLF, and a second choice or content block.
fn varied_stream(format: StreamFormat, deltas: &[(&str, u8)]) -> String {
    let mut s = String::new();
    for (n, (d, variant)) in deltas.iter().enumerate() {
        let lit = serde_json::to_string(d).unwrap_or_default();
        let index = u8::from(*variant == 5);
        let eol = if *variant == 4 { "\r\n" } else { "\n" };
        let data = match format {
            StreamFormat::Anthropic => format!(
                "{{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"text_delta\",\"text\":{lit}}}}}"
            ),
            // Every event has its own sequence number.
            StreamFormat::OpenAiResponses => {
                let extra = if *variant == 1 {
                    format!(",\"obfuscation\":\"{n}\"")
                } else {
                    String::new()
                };
                format!(
                    "{{\"type\":\"response.output_text.delta\",\"sequence_number\":{},\"item_id\":\"msg_{index}\",\"output_index\":{index},\"content_index\":0,\"delta\":{lit},\"logprobs\":[]{extra}}}",
                    n + 1
                )
            }
            _ => {
                let extra = if *variant == 1 {
                    format!(",\"obfuscation\":\"{n}\"")
                } else {
                    String::new()
                };
                format!(
                    "{{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":{index},\"delta\":{{\"content\":{lit}}},\"finish_reason\":null}}]{extra}}}"
                )
            }
        };
        match format {
            StreamFormat::Anthropic => s.push_str(&format!("event: content_block_delta{eol}")),
            StreamFormat::OpenAiResponses => {
                s.push_str(&format!("event: response.output_text.delta{eol}"));
            }
            _ => {}
        }
        match variant {
            2 => s.push_str(&format!("data:{data}{eol}")),
            3 => s.push_str(&format!("id: {n}{eol}data: {data}{eol}")),
            _ => s.push_str(&format!("data: {data}{eol}")),
        }
        s.push_str(eol);
        if *variant == 6 {
            s.push_str(": keep-alive\n\n");
        }
    }
    if format == StreamFormat::Anthropic {
        s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    } else if format == StreamFormat::OpenAiResponses {
        // Each output's text repeated whole, then the end of the response.
        let mut seq = deltas.len();
        for index in [0u8, 1] {
            let text: String = deltas
                .iter()
                .filter(|(_, v)| u8::from(*v == 5) == index)
                .map(|(d, _)| *d)
                .collect();
            if text.is_empty() {
                continue;
            }
            seq += 1;
            let lit = serde_json::to_string(&text).unwrap_or_default();
            s.push_str(&format!("event: response.output_text.done\ndata: {{\"type\":\"response.output_text.done\",\"sequence_number\":{seq},\"item_id\":\"msg_{index}\",\"output_index\":{index},\"content_index\":0,\"text\":{lit}}}\n\n"));
        }
        s.push_str(&format!("event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":{},\"response\":{{\"id\":\"resp_1\",\"status\":\"completed\",\"output\":[]}}}}\n\n", seq + 1));
    } else {
        s.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    }
    s
}

/// Texts whose literals need escapes, or that look like event names.
const ESCAPED: &[&str] = &[
    "say \"hi\" ",
    "C:\\path ",
    "tab\there ",
    "message_delta",
    "\"message_delta\"",
    "é ",
    "😀 ",
    "\u{2028}",
    "</script>",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(150)
    ))]

    /// Events read by their shape are written byte for byte as the full read writes
    /// them, whatever the texts, the shapes and the reads; deciding a read's run of them
    /// once gives the client the same text.
    #[test]
    fn shaped_deltas_write_what_the_full_read_writes(
        picks in proptest::collection::vec((0usize..WORDS.len() + ESCAPED.len(), 0u8..10), 1..24),
        cuts in proptest::collection::vec(0usize..8192, 0..12),
        block in any::<bool>(),
        format in prop_oneof![
            Just(StreamFormat::OpenAiChat),
            Just(StreamFormat::Anthropic),
            Just(StreamFormat::OpenAiResponses),
        ],
        grounded in any::<bool>(),
    ) {
        let deltas: Vec<(&str, u8)> = picks
            .iter()
            .map(|&(i, v)| (WORDS.get(i).copied().unwrap_or_else(|| ESCAPED[i - WORDS.len()]), v))
            .collect();
        let policy = if block { blocking() } else { shipped() };
        let stream = varied_stream(format, &deltas);
        // With context, the closing event carries the grounding verdict.
        let context = if grounded { vec!["Jane Doe answers mail at the help desk.".to_string()] } else { Vec::new() };
        let make = || {
            GuardedEvents::new(
                format,
                StreamGuard::new(Arc::clone(&policy), context.clone(), None, b"k".to_vec(), None, pseudonyms()),
            )
        };
        let shaped = relay_through(make().without_batched_reads(), stream.as_bytes(), &cuts);
        let full = relay_through(make().without_shaped_deltas(), stream.as_bytes(), &cuts);
        // Runs decided once per read move text to their last event; the client reads
        // the same text and the same ending. A block found in a run stops it before any
        // of the run goes out, where event by event its first events went out: the text
        // before a block may be shorter, never longer.
        let batched = relay_through(make(), stream.as_bytes(), &cuts);
        let (batched_text, batched_ending) = client_text(format, &batched);
        let (full_text, full_ending) = client_text(format, &full);
        prop_assert_eq!(&batched_ending, &full_ending);
        let blocked = full_ending
            .iter()
            .any(|e| ["content_filter", "refusal", "response.incomplete"].contains(&e.as_str()));
        if blocked {
            prop_assert!(full_text.starts_with(&batched_text), "{batched_text:?} {full_text:?}");
        } else {
            prop_assert_eq!(batched_text, full_text);
        }
        // (An OpenAI answer is closed once every choice it opened has finished.)
        let anthropic = format == StreamFormat::Anthropic;
        let chat = format == StreamFormat::OpenAiChat;
        if grounded && !block && (anthropic || (chat && deltas.iter().all(|d| d.1 != 5))) {
            prop_assert!(String::from_utf8_lossy(&full).contains("\"haechi\""));
        }
        prop_assert_eq!(String::from_utf8_lossy(&shaped), String::from_utf8_lossy(&full));
    }
}

#[test]
fn single_byte_reads() {
    let deltas = [
        "Reply to <EM",
        "AIL_1> or jane",
        ".doe@example.com",
        " — 한국어도 돼요.",
    ];
    let stream = openai_stream(&deltas);
    let cuts: Vec<usize> = (0..stream.len()).collect();
    check(&shipped(), &deltas, &cuts);
}

#[test]
fn responses_done_events_repeat_what_the_client_saw() {
    let stream = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"model\":\"m\",\"output\":[]}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"output_index\":0,\"content_index\":0,\"delta\":\"mail jane.doe@exa\"}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"output_index\":0,\"content_index\":0,\"delta\":\"mple.com\"}\n\n",
        "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":3,\"output_index\":0,\"content_index\":0,\"text\":\"mail jane.doe@example.com\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":4,\"response\":{\"id\":\"resp_1\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"mail jane.doe@example.com\"}]}]}}\n\n",
    );
    let out = relay(
        &shipped(),
        StreamFormat::OpenAiResponses,
        stream.as_bytes(),
        &[],
    );
    let out = String::from_utf8(out).unwrap_or_default();
    assert!(!out.contains("jane.doe"), "{out}");
    let mut splitter = EventSplitter::default();
    splitter.push(out.as_bytes());
    let mut deltas = String::new();
    let mut done = None;
    while let Some(e) = splitter.next_event() {
        let v: serde_json::Value =
            serde_json::from_str(&event_data(&e).unwrap_or_default()).unwrap_or_default();
        match v["type"].as_str() {
            Some("response.output_text.delta") => {
                deltas.push_str(v["delta"].as_str().unwrap_or(""))
            }
            Some("response.output_text.done") => done = v["text"].as_str().map(str::to_string),
            _ => {}
        }
    }
    assert_eq!(deltas, "mail {EMAIL}");
    assert_eq!(done.as_deref(), Some("mail {EMAIL}"));
}

#[test]
fn tool_call_arguments_are_restored_in_streams() {
    let head = r#""id":"c","object":"chat.completion.chunk","created":1,"model":"m""#;
    let args = ["{\"to\": \"<EM", "AIL_1>\"}"];
    let mut stream = String::new();
    for a in args {
        let lit = serde_json::to_string(a).unwrap_or_default();
        stream.push_str(&format!("data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":{lit}}}}}]}},\"finish_reason\":null}}]}}\n\n"));
    }
    stream.push_str(&format!("data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"tool_calls\"}}]}}\n\ndata: [DONE]\n\n"));
    let out = relay(&shipped(), StreamFormat::OpenAiChat, stream.as_bytes(), &[]);
    let mut splitter = EventSplitter::default();
    splitter.push(&out);
    let mut got = String::new();
    while let Some(e) = splitter.next_event() {
        let d = event_data(&e).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&d) {
            if let Some(a) =
                v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            {
                got.push_str(a);
            }
        }
    }
    assert_eq!(got, "{\"to\": \"kim@corp.example\"}");
}

#[test]
fn grounding_verdict_rides_on_the_closing_event() {
    let policy = shipped();
    let stream = openai_stream(&["The parcel ", "arrives on ", "Friday."]);
    let mut g = GuardedEvents::new(
        StreamFormat::OpenAiChat,
        StreamGuard::new(
            Arc::clone(&policy),
            vec!["The parcel was shipped on Monday and arrives on Friday.".to_string()],
            Some("When does my parcel arrive?".to_string()),
            Vec::new(),
            None,
            PseudonymMap::new(),
        ),
    );
    let mut splitter = EventSplitter::default();
    splitter.push(stream.as_bytes());
    let mut out = BytesMut::new();
    while let Some(e) = splitter.next_event() {
        g.event(e, &mut out);
    }
    let mut notes = Vec::new();
    let mut splitter = EventSplitter::default();
    splitter.push(&out);
    while let Some(e) = splitter.next_event() {
        let data = event_data(&e).unwrap_or_default().into_owned();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) {
            if let Some(n) = v.get("haechi") {
                assert_eq!(
                    v["choices"][0]["finish_reason"], "stop",
                    "on the closing chunk"
                );
                notes.push(n.clone());
            }
        }
    }
    assert_eq!(notes.len(), 1, "{notes:?}");
    let g_score = notes[0]["grounding"].as_f64().expect("grounding score");
    assert!((0.0..=1.0).contains(&g_score));
    assert!(notes[0]["relevance"].as_f64().is_some());
    // Without context there is nothing to say.
    let mut plain = guard(&policy, StreamFormat::OpenAiChat);
    let mut splitter = EventSplitter::default();
    splitter.push(stream.as_bytes());
    let mut out = BytesMut::new();
    while let Some(e) = splitter.next_event() {
        plain.event(e, &mut out);
    }
    assert!(!String::from_utf8_lossy(&out).contains("haechi"));
}

#[tokio::test]
async fn an_endless_event_ends_the_stream_with_an_error() {
    use http_body_util::BodyExt;
    // An upstream that never ends its event: 2 MiB of one `data:` line.
    let mut chunks: Vec<Result<Frame<Bytes>, BoxError>> = vec![Ok(Frame::data(
        Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\""),
    ))];
    for _ in 0..32 {
        chunks.push(Ok(Frame::data(Bytes::from(vec![b'a'; 64 * 1024]))));
    }
    let inner = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
    let slot: DecisionSlot = Arc::default();
    let body = GuardedBody::new(inner, guard(&shipped(), StreamFormat::OpenAiChat), slot);
    let out = body.collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&out);
    assert!(
        out.len() < 4096,
        "nothing unchecked is relayed ({} bytes)",
        out.len()
    );
    assert!(text.contains("upstream_bad_stream"), "{text}");
}
