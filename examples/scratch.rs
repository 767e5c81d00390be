use regex_automata::{meta::Regex, util::syntax};
use std::time::Instant;
fn t(re: &Regex, s: &str) -> f64 { let st = Instant::now(); for _ in 0..20000 { std::hint::black_box(re.find_iter(s.as_bytes()).count()); } st.elapsed().as_secs_f64() / 20000.0 * 1e6 }
fn main() {
    let en = include_str!("../benches/data/prompt_en_1k.txt");
    let rules = haechi::detect::pii::rules::rules();
    let any: Vec<_> = rules.iter().filter(|(f, _)| !haechi::detect::pii::rules::needs_digit(*f)).cloned().collect();
    let b = |ps: &[String]| Regex::builder().syntax(syntax::Config::new().unicode(false).utf8(false)).build_many(ps).unwrap();
    let all: Vec<String> = any.iter().map(|(_, p)| p.clone()).collect();
    println!("any-group: {:.2}us", t(&b(&all), en));
    let noeu: Vec<String> = any.iter().filter(|(f, _)| !matches!(f, haechi::detect::pii::rules::Family::Email | haechi::detect::pii::rules::Family::Url)).map(|(_, p)| p.clone()).collect();
    println!("any-group w/o email,url: {:.2}us", t(&b(&noeu), en));
    let lit: Vec<String> = vec![r"(?:password|Password|PASSWORD|passwd|pwd|passcode|passphrase|비밀번호|패스워드|암호|username|Username|USERNAME|user name|User name|user id|User ID|userid|login|Login|아이디|사용자명|계정|name|Name|NAME|님|씨|성명|이름|고객명|예금주|담당자|수취인|받는|swift|SWIFT|Swift|bic|BIC|@|://|www\.)".to_string()];
    println!("literal alternation: {:.2}us", t(&b(&lit), en));
    for (f, p) in &any { println!("  {f:?}: {:.2}us", t(&b(&[p.clone()]), en)); }
    for skip in 0..any.len() {
        let ps: Vec<String> = any.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, (_, p))| p.clone()).collect();
        println!("  without {:?}: {:.2}us", any[skip].0, t(&b(&ps), en));
    }
}
