//! Quota admission costs.
//!
//! `cargo bench --bench quota` runs:
//! - in-memory admission + settlement (three scopes, all four limits), sync and through
//!   the `QuotaStore` trait object;
//! - when `redis-server` is on PATH: a plain `PING` and one admission (one `EVALSHA`)
//!   over the same kind of connection to a loopback Redis started here, measured in
//!   the same run, as criterion groups and as per-call p50/p99 over 20 000 interleaved
//!   calls each (printed as `LATENCY ...` lines);
//! - token estimates of 1 KB English and Korean prompts.

use std::hint::black_box;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures_util::FutureExt;
use haechi::tenancy::memory::MemoryQuota;
use haechi::tenancy::quota::{Admission, Limits, QuotaSpec, QuotaStore};
use haechi::tenancy::redis::{connection_manager, FailMode, RedisQuota, RedisQuotaConfig};
use haechi::tenancy::tokens::{self, Encoding};

fn big_spec() -> QuotaSpec {
    let huge = Limits {
        requests_per_minute: Some(u32::MAX as u64),
        tokens_per_minute: Some(u64::from(u32::MAX) * 1000),
        tokens_per_day: Some(u64::MAX / 4),
        monthly_budget_usd: Some(1e12),
    };
    let mut s = QuotaSpec {
        requests_per_minute: huge.requests_per_minute,
        tokens_per_minute: huge.tokens_per_minute,
        tokens_per_day: huge.tokens_per_day,
        monthly_budget_usd: huge.monthly_budget_usd,
        per_key: Some(huge.clone()),
        ..Default::default()
    };
    s.per_model.insert("gpt-4o".into(), huge);
    s
}

fn memory(c: &mut Criterion) {
    let q = MemoryQuota::new();
    let spec = big_spec();
    let a = Admission::new("acme", Some("9f86d081884c"), "gpt-4o", 1200, 3000, &spec);
    let mut g = c.benchmark_group("quota_memory");
    g.bench_function("admit+settle (3 scopes, sync)", |b| {
        b.iter(|| {
            let out = q.admit_sync(black_box(&a));
            if let Some(r) = out.reservation() {
                q.settle_sync(r, 900, 2500);
            }
        })
    });
    let dynq: Arc<dyn QuotaStore> = Arc::new(MemoryQuota::new());
    g.bench_function("admit+settle (3 scopes, dyn QuotaStore)", |b| {
        b.iter(|| {
            let out = dynq.admit(black_box(&a)).now_or_never();
            if let Some(Ok(out)) = out {
                if let Some(r) = out.reservation() {
                    let _ = dynq.settle(r, 900, 2500).now_or_never();
                }
            }
        })
    });
    g.bench_function("build Admission from spec", |b| {
        b.iter(|| {
            Admission::new(
                black_box("acme"),
                Some("9f86d081884c"),
                "gpt-4o",
                1200,
                3000,
                &spec,
            )
        })
    });
    g.finish();
}

fn tokens(c: &mut Criterion) {
    let en = "The quarterly report shows revenue growth in every region. ".repeat(18);
    let ko = "서울 지사의 분기 보고서에 따르면 모든 지역에서 매출이 늘었습니다. ".repeat(12);
    tokens::warm_up();
    let mut g = c.benchmark_group("tokens_1kb");
    for (name, text) in [("en", &en[..1024.min(en.len())]), ("ko", ko.as_str())] {
        for enc in [
            Encoding::O200kBase,
            Encoding::Cl100kBase,
            Encoding::Estimate,
        ] {
            g.bench_function(format!("{name} {} bytes {enc:?}", text.len()), |b| {
                b.iter(|| tokens::count_text(enc, black_box(text)))
            });
        }
    }
    g.finish();
}

struct RedisProc(Child);
impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<(RedisProc, String, tempfile::TempDir)> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("redis-server").is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED redis benchmarks: redis-server not on PATH");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = tempfile::tempdir().ok()?;
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let url = format!("redis://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let ok = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok();
        if ok {
            return Some((RedisProc(child), url, dir));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn redis_benches(c: &mut Criterion) {
    let Some((_proc, url, _dir)) = start_redis() else {
        return;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let (ping_conn, q) = rt.block_on(async {
        let conn = connection_manager(&url, Duration::from_millis(200), Duration::from_millis(250));
        let mut cfg = RedisQuotaConfig::new(url.as_str());
        cfg.fail_mode = FailMode::Closed;
        (conn, RedisQuota::new(cfg))
    });
    let (Ok(mut ping_conn), Ok(q)) = (ping_conn, q) else {
        return;
    };
    let spec = big_spec();
    let a = Admission::new("acme", Some("9f86d081884c"), "gpt-4o", 1200, 3000, &spec);
    let ping = |conn: &mut redis::aio::ConnectionManager| {
        let mut conn = conn.clone();
        async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok()
        }
    };
    // Warm up: load the script, open the connections.
    rt.block_on(async {
        for _ in 0..200 {
            ping(&mut ping_conn).await;
            let _ = q.admit(&a).await;
        }
    });

    // Per-call latency distribution, interleaved so both see the same conditions.
    let n = 20_000;
    let (mut tp, mut ta, mut ts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    rt.block_on(async {
        for _ in 0..n {
            let t = Instant::now();
            black_box(ping(&mut ping_conn).await);
            tp.push(t.elapsed());
            let t = Instant::now();
            let out = q.admit(&a).await;
            ta.push(t.elapsed());
            if let Ok(out) = out {
                if let Some(r) = out.reservation() {
                    let t = Instant::now();
                    let _ = q.settle(r, 900, 2500).await;
                    ts.push(t.elapsed());
                }
            }
        }
    });
    let (p50p, p99p) = (pct(&mut tp, 0.5), pct(&mut tp, 0.99));
    let (p50a, p99a) = (pct(&mut ta, 0.5), pct(&mut ta, 0.99));
    let (p50s, p99s) = (pct(&mut ts, 0.5), pct(&mut ts, 0.99));
    println!("LATENCY redis PING            p50 {p50p:?} p99 {p99p:?} (n={n})");
    println!("LATENCY redis admit (EVALSHA) p50 {p50a:?} p99 {p99a:?} (n={n})");
    println!(
        "LATENCY redis settle          p50 {p50s:?} p99 {p99s:?} (n={})",
        ts.len()
    );
    println!(
        "LATENCY admit added over PING p50 {:?}",
        p50a.saturating_sub(p50p)
    );
    println!("redis errors during the run: {}", q.stats().redis_errors);

    let mut g = c.benchmark_group("quota_redis_loopback");
    g.bench_function("PING round trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(ping(&mut ping_conn).await);
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("admit round trip (3 scopes)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    let _ = black_box(q.admit(&a).await);
                }
                t.elapsed()
            })
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    memory(&mut c);
    tokens(&mut c);
    redis_benches(&mut c);
    c.final_summary();
}
