//! Trains one shipped classifier: `cargo run --release --example train -- <toxicity|prompt-attack|topic> CORPORA_DIR OUT_DIR`;
//! `... -- toxicity CORPORA_DIR --eval-only MODELS_DIR` measures existing toxicity weights on the held-out benign sets;
//! `... -- prompt-attack CORPORA_DIR --eval-only MODELS_DIR` measures existing prompt-attack weights on the held-out test rows.
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
    // `train toxicity|prompt-attack CORPORA --eval-only MODELS_DIR`: measure existing
    // weights on the held-out sets without training.
    if args.get(2).map(String::as_str) == Some("--eval-only") {
        let Some(models) = args.get(3).map(PathBuf::from) else {
            eprintln!("usage: train toxicity CORPORA_DIR --eval-only MODELS_DIR");
            return ExitCode::from(2);
        };
        let load = |name: &str| {
            std::fs::read(models.join(name))
                .ok()
                .and_then(|b| haechi::detect::classifier::LinearModel::from_bytes(&b).ok())
        };
        let corpora = PathBuf::from(corpora);
        let result = if kind == haechi::train::Kind::PromptAttack {
            let Some(model) = load("prompt_attack.hclf") else {
                eprintln!("cannot load prompt_attack.hclf from {}", models.display());
                return ExitCode::FAILURE;
            };
            haechi::train::prompt_attack_eval(&corpora, model)
        } else {
            let (Some(en), Some(ko)) = (load("toxicity_en.hclf"), load("toxicity_ko.hclf")) else {
                eprintln!("cannot load toxicity models from {}", models.display());
                return ExitCode::FAILURE;
            };
            let det = haechi::detect::toxicity::ToxicityDetector::from_models(en, ko);
            haechi::train::toxicity_benign_eval(&corpora, &det)
        };
        return match result {
            Ok(r) => {
                print!("{r}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("evaluation failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
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
