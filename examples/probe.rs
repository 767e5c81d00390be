//! Prints classifier scores for lines on stdin (a debugging aid): `probe <toxicity|prompt-attack|topic:NAME>`.
use haechi::detect::DetectContext;
use std::io::BufRead;

fn main() {
    let kind = std::env::args().nth(1).unwrap_or_default();
    let ctx = DetectContext::default();
    let tox = haechi::detect::toxicity::ToxicityDetector::new(None).ok();
    // `HAECHI_PA_MODEL=file.hclf`: probe freshly trained prompt-attack weights.
    let pa = match std::env::var("HAECHI_PA_MODEL") {
        Ok(path) => std::fs::read(path)
            .ok()
            .and_then(|b| haechi::detect::classifier::LinearModel::from_bytes(&b).ok())
            .map(haechi::detect::prompt_attack::PromptAttackDetector::from_model),
        Err(_) => haechi::detect::prompt_attack::PromptAttackDetector::new().ok(),
    };
    let topic = kind
        .strip_prefix("topic:")
        .and_then(|n| haechi::detect::topic::TopicDetector::builtin(n).ok());
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let d = match kind.as_str() {
            "toxicity" => tox.as_ref().map(|t| t.detect(&line, &ctx)),
            "prompt-attack" => pa.as_ref().map(|t| t.detect(&line, &ctx)),
            _ => topic.as_ref().map(|t| t.detect(&line, &ctx)),
        };
        if let Some(d) = d {
            println!(
                "{:.3} {:?} {}",
                d.score,
                d.findings
                    .iter()
                    .map(|f| f.label.as_str())
                    .collect::<Vec<_>>(),
                line.chars().take(80).collect::<String>()
            );
        }
    }
}
