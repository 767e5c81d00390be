//! Per-call cost of the detectors measured in CPU time (from /proc/self/stat), which is
//! robust to other processes competing for the cores, beside wall time and a baseline
//! memchr/`str::contains` pass. Linux only. Used for docs/pii.md next to `cargo bench`.
//!
//! cargo run --release --example pii_profile [-- --per-entity]
use haechi::detect::pii::{all_entities, PiiDetector};
use haechi::detect::secret::SecretDetector;
use haechi::detect::DetectContext;
use std::hint::black_box;
use std::time::Instant;

/// utime + stime of this process in clock ticks (100 Hz on Linux).
fn cpu_ticks() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Returns (cpu µs per call, wall µs per call).
fn measure(n: u64, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..1000 {
        f();
    }
    let c0 = cpu_ticks().unwrap_or(0);
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    let wall = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
    let cpu = (cpu_ticks().unwrap_or(0) - c0) as f64 * 10_000.0 / n as f64;
    (cpu, wall)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let en = include_str!("../benches/data/prompt_en_1k.txt");
    let ko = include_str!("../benches/data/prompt_ko_1k.txt");
    let ctx = DetectContext::default();
    let all = PiiDetector::new(None, &[])?;
    let secret = SecretDetector::new()?;
    for (name, t) in [("en_1k", en), ("ko_1k", ko)] {
        let mb = |us: f64| t.len() as f64 / us;
        let (bc, bw) = measure(10_000_000, || {
            black_box((
                memchr::memchr(b'@', black_box(t).as_bytes()).is_some(),
                black_box(t).contains("password"),
            ));
        });
        let (pc, pw) = measure(200_000, || {
            black_box(all.detect(black_box(t), &ctx));
        });
        let (sc, sw) = measure(200_000, || {
            black_box(secret.detect(black_box(t), &ctx));
        });
        println!("{name} ({} bytes)", t.len());
        println!(
            "  baseline memchr+contains  cpu {bc:7.3} us ({:8.0} MB/s)  wall {bw:7.3} us",
            mb(bc)
        );
        println!(
            "  pii (all entities)        cpu {pc:7.3} us ({:8.0} MB/s)  wall {pw:7.3} us",
            mb(pc)
        );
        println!(
            "  secret                    cpu {sc:7.3} us ({:8.0} MB/s)  wall {sw:7.3} us",
            mb(sc)
        );
    }
    if std::env::args().any(|a| a == "--per-entity") {
        for e in all_entities() {
            let d = PiiDetector::new(Some(&[e.to_string()]), &[])?;
            let (c1, _) = measure(50_000, || {
                black_box(d.detect(black_box(en), &ctx));
            });
            let (c2, _) = measure(50_000, || {
                black_box(d.detect(black_box(ko), &ctx));
            });
            println!("  {e:<40} en {c1:.2} us  ko {c2:.2} us");
        }
    }
    Ok(())
}
