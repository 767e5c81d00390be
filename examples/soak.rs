//! Steady mixed load for the soak harness (`bench/soak.sh`), and the audit check after it.
//!
//! `soak run URLS SECONDS CONCURRENCY RATE IDS_FILE` spreads requests over the
//! comma-separated gateway URLs at about RATE requests/s for SECONDS: streamed and not,
//! plain, masked (an e-mail address), blocked (a banned word) and over quota (tenant
//! `tiny`). Every answer is checked against what its kind must give; anything else is an
//! unexpected error. Each request id and kind goes to IDS_FILE; one JSON summary line is
//! printed.
//!
//! `soak check IDS_FILE AUDIT_FILE...` checks every request id is in the audit logs
//! exactly once, with the outcome its kind implies, and that no record is unaccounted
//! for. Prints one JSON line; exits 1 on any mismatch.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// API keys of the soak config (`bench/soak.sh` writes their hashes).
const ACME_KEY: &str = "hk_soak_acme";
const TINY_KEY: &str = "hk_soak_tiny";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Plain,
    Masked,
    Blocked,
    OverQuota,
}

impl Kind {
    /// The mix: of every 10 requests, 5 plain, 2 masked, 1 blocked, 2 for the tenant
    /// whose quota is far below its share.
    fn of(n: u64) -> Self {
        match n % 10 {
            0 | 3 | 5 | 7 | 9 => Kind::Plain,
            1 | 6 => Kind::Masked,
            2 => Kind::Blocked,
            _ => Kind::OverQuota,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Masked => "masked",
            Kind::Blocked => "blocked",
            Kind::OverQuota => "over_quota",
        }
    }
    fn from_name(s: &str) -> Option<Self> {
        [Kind::Plain, Kind::Masked, Kind::Blocked, Kind::OverQuota]
            .into_iter()
            .find(|k| k.name() == s)
    }
    fn prompt(self, n: u64) -> String {
        match self {
            Kind::Masked => format!("Please write to jiwoo.park{n}@example.com about the order."),
            Kind::Blocked => format!("Can you frobnicate order {n} for me?"),
            _ => format!("Summarise order {n} in one line."),
        }
    }
}

#[derive(Default)]
struct Tally {
    /// Outcome label → count (`ok`, `ok_stream`, `masked`, `blocked`, `quota_refused`, ...).
    outcomes: BTreeMap<String, u64>,
    /// Unexpected answers by a short description.
    unexpected: BTreeMap<String, u64>,
    ids: Vec<(String, Kind)>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Sends one request and classifies the answer; `Err` is an unexpected result.
async fn one(
    client: &HttpClient,
    url: &str,
    n: u64,
    stream: bool,
) -> (Option<String>, Kind, Result<&'static str, String>) {
    let kind = Kind::of(n);
    let key = if kind == Kind::OverQuota {
        TINY_KEY
    } else {
        ACME_KEY
    };
    let body = serde_json::json!({"model":"gpt-4o-mini","max_tokens":32,"stream":stream,
        "messages":[{"role":"user","content":kind.prompt(n)}]})
    .to_string();
    let request = match http::Request::post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::from(body)))
    {
        Ok(r) => r,
        Err(e) => return (None, kind, Err(format!("request: {e}"))),
    };
    let response = match client.request(request).await {
        Ok(r) => r,
        Err(e) => return (None, kind, Err(format!("transport: {e}"))),
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let id = header("x-haechi-request-id");
    let action = header("x-haechi-action");
    let retry_after = header("retry-after");
    let body = match response.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return (id, kind, Err(format!("body cut ({status}): {e}"))),
    };
    let complete = if stream && status == 200 {
        body.ends_with(b"data: [DONE]\n\n")
    } else {
        serde_json::from_slice::<serde_json::Value>(&body).is_ok()
    };
    if !complete {
        return (id, kind, Err(format!("incomplete body ({status})")));
    }
    let outcome = match (kind, status, action.as_deref()) {
        (Kind::Blocked, 200 | 400, Some("block")) => Ok("blocked"),
        (Kind::Masked, 200, Some("anonymize")) => Ok("masked"),
        (Kind::Plain, 200, None) => Ok(if stream { "ok_stream" } else { "ok" }),
        (Kind::OverQuota, 200, None) => Ok("over_quota_tenant_admitted"),
        (Kind::OverQuota, 429, _) if retry_after.is_some() => Ok("quota_refused"),
        (k, s, a) => Err(format!("{} got {s} action {a:?}", k.name())),
    };
    (id, kind, outcome)
}

async fn run(urls: Vec<String>, seconds: u64, concurrency: u64, rate: f64) -> Tally {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    // Each worker sends one request per `every`, so all together about `rate` per second.
    let every = Duration::from_secs_f64(concurrency as f64 / rate);
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, tally, stop, urls) =
            (client.clone(), tally.clone(), stop.clone(), urls.clone());
        workers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let n = i * concurrency + w;
                let url = &urls[(n % urls.len() as u64) as usize];
                let stream = (n / 10).is_multiple_of(2);
                let (id, kind, outcome) = one(&client, url, n, stream).await;
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                match outcome {
                    Ok(label) => *t.outcomes.entry(label.to_string()).or_default() += 1,
                    Err(what) => *t.unexpected.entry(what).or_default() += 1,
                }
                if let Some(id) = id {
                    t.ids.push((id, kind));
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *t)
}

fn usage() -> ! {
    eprintln!(
        "usage: soak run URLS SECONDS CONCURRENCY RATE IDS_FILE | soak check IDS_FILE AUDIT..."
    );
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") if args.len() == 6 => {
            let urls: Vec<String> = args[1].split(',').map(str::to_string).collect();
            let (Ok(seconds), Ok(concurrency), Ok(rate)) = (
                args[2].parse::<u64>(),
                args[3].parse::<u64>(),
                args[4].parse::<f64>(),
            ) else {
                usage()
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("runtime: {e}");
                    std::process::exit(1);
                }
            };
            let started = Instant::now();
            let tally = runtime.block_on(run(urls, seconds, concurrency.max(1), rate));
            let mut ids = String::new();
            for (id, kind) in &tally.ids {
                ids.push_str(&format!("{id}\t{}\n", kind.name()));
            }
            if let Err(e) = std::fs::write(&args[5], ids) {
                eprintln!("writing {}: {e}", args[5]);
                std::process::exit(1);
            }
            let total: u64 =
                tally.outcomes.values().sum::<u64>() + tally.unexpected.values().sum::<u64>();
            let line = serde_json::json!({
                "seconds": started.elapsed().as_secs_f64().round(),
                "requests": total,
                "rps": (total as f64 / started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                "outcomes": tally.outcomes,
                "unexpected": tally.unexpected,
                "unexpected_total": tally.unexpected.values().sum::<u64>(),
            });
            println!("{line}");
        }
        Some("check") if args.len() >= 3 => std::process::exit(check(&args[1], &args[2..])),
        _ => usage(),
    }
}

/// The audit outcome a kind's answer must be recorded with.
fn expected_outcomes(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Plain | Kind::Masked => &["ok"],
        Kind::Blocked => &["blocked"],
        Kind::OverQuota => &["ok", "quota_refused"],
    }
}

fn check(ids_file: &str, audits: &[String]) -> i32 {
    let ids = match std::fs::read_to_string(ids_file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{ids_file}: {e}");
            return 1;
        }
    };
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let mut records = 0u64;
    for path in audits {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: {e}");
                return 1;
            }
        };
        for line in text.lines() {
            records += 1;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                eprintln!("{path}: a line is not JSON");
                return 1;
            };
            let id = v["request_id"].as_str().unwrap_or_default().to_string();
            let outcome = v["outcome"].as_str().unwrap_or_default().to_string();
            seen.entry(id).or_default().push(outcome);
        }
    }
    let (mut sent, mut missing, mut duplicated, mut wrong) = (0u64, 0u64, 0u64, 0u64);
    let mut sent_ids = std::collections::HashSet::new();
    for line in ids.lines() {
        let Some((id, kind)) = line.split_once('\t') else {
            continue;
        };
        let Some(kind) = Kind::from_name(kind) else {
            continue;
        };
        sent += 1;
        sent_ids.insert(id.to_string());
        match seen.get(id).map(Vec::as_slice) {
            None | Some([]) => missing += 1,
            Some([outcome]) => {
                if !expected_outcomes(kind).contains(&outcome.as_str()) {
                    wrong += 1;
                }
            }
            Some(_) => duplicated += 1,
        }
    }
    let unaccounted = seen.keys().filter(|id| !sent_ids.contains(*id)).count();
    let line = serde_json::json!({
        "request_ids": sent, "audit_records": records, "missing": missing,
        "duplicated": duplicated, "wrong_outcome": wrong, "records_not_sent_by_soak": unaccounted,
    });
    println!("{line}");
    let _ = std::io::stdout().flush();
    i32::from(missing + duplicated + wrong > 0 || unaccounted > 0)
}
