//! Trains one shipped classifier: `cargo run --release --example train -- <toxicity|prompt-attack|topic> CORPORA_DIR OUT_DIR`.
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(kind), Some(corpora), Some(out)) = (
        args.first().and_then(|k| haechi::train::Kind::parse(k)),
        args.get(1),
        args.get(2),
    ) else {
        eprintln!("usage: train <toxicity|prompt-attack|topic> CORPORA_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    let started = std::time::Instant::now();
    match haechi::train::run(kind, &PathBuf::from(corpora), &PathBuf::from(out)) {
        Ok(report) => {
            print!("{report}");
            println!("trained in {:.1}s", started.elapsed().as_secs_f32());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("training failed: {e}");
            ExitCode::FAILURE
        }
    }
}
