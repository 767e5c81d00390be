use haechi::detect::grounding::{Scorer, features::GROUNDING_FEATURES};
fn main() {
    let s = Scorer::embedded().unwrap();
    let ctx = vec!["The Oberoi Group is a hotel company with its head office in Delhi. It was founded in 1934 by Mohan Singh Oberoi and operates 31 hotels in seven countries. The group does not operate any casinos.".to_string()];
    for a in std::env::args().skip(1) {
        let (x, _) = s.grounding_features(&a, &ctx, None);
        println!("{a} -> {}", s.grounding_score(&a, &ctx, None));
        for (n, v) in GROUNDING_FEATURES.iter().zip(&x) { print!("{n}={v:.2} "); }
        println!();
    }
}
