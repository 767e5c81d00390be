//! From parsed policy files to engine types: inheritance, validation, detector building.
//!
//! `compile_sources` is the only bridge from the file model to the engine, used at
//! startup, on hot reload, by `policy check` and by `scan` ("startup is a reload from
//! empty"). It reports every problem it finds, not just the first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::load::{
    parse_policy, read_sources, Parsed, PolicyErrors, Problem, Source, EMBEDDED_DEFAULT,
    EMBEDDED_DEFAULT_NAME,
};
use super::model::{
    Action, BlockStyle, ContextSource, DetectorKind, GroundingDto, MessageDto, Mode, RuleDto,
    StreamMode,
};
use crate::detect::registry::CompiledDetector;
use crate::dialect::context::ContextSources;
use crate::engine::Stage;

/// Id of the policy that applies where nothing else is bound.
pub const DEFAULT_POLICY_ID: &str = "default";
/// Default threshold when a rule gives neither `threshold` nor `strength`.
pub const DEFAULT_THRESHOLD: f32 = 0.5;
/// Length of the hex prefix of the content hash used as policy version.
const VERSION_HEX: usize = 12;

/// A block message in both shipped languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Messages {
    pub en: String,
    pub ko: String,
}

impl Messages {
    fn from_dto(m: &MessageDto) -> Option<Self> {
        match (&m.en, &m.ko) {
            (None, None) => None,
            (en, ko) => {
                let en = en.clone().or_else(|| ko.clone()).unwrap_or_default();
                let ko = ko.clone().unwrap_or_else(|| en.clone());
                Some(Self { en, ko })
            }
        }
    }
}

/// One rule, ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub id: String,
    pub kind: DetectorKind,
    pub detector: Arc<CompiledDetector>,
    /// Findings (or a classifier's score) at or above this count as hits.
    pub threshold: f32,
    pub action: Action,
    pub mode: Mode,
    pub message: Option<Messages>,
    /// Notice appended to the answer by an `annotate` rule (`None`: built-in).
    pub notice: Option<Messages>,
    /// How the streaming stage treats this rule (read by the streaming output stage).
    pub stream: StreamMode,
    /// Position in the policy as written (base rules first), for deterministic ties.
    pub order: usize,
}

impl CompiledRule {
    /// Whether the rule, when it fires, changes what the client gets (an enforced block
    /// or rewrite): such rules gate streamed text and must not be skipped.
    pub fn can_change_text(&self) -> bool {
        self.mode == Mode::Enforce && (self.action == Action::Block || self.action.rewrites())
    }
}

/// Where a policy applies (see [`PolicySet::select`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    pub tenants: Vec<String>,
    pub routes: Vec<String>,
    pub models: Vec<String>,
}

impl Binding {
    fn matches(&self, tenant: Option<&str>, route: &str, model: Option<&str>) -> bool {
        fn any(list: &[String], v: Option<&str>) -> bool {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|p| glob(p, v)))
        }
        any(&self.tenants, tenant) && any(&self.routes, Some(route)) && any(&self.models, model)
    }

    /// Tenant beats model beats route; more constrained bindings win.
    fn specificity(&self) -> u8 {
        (u8::from(!self.tenants.is_empty()) << 2)
            | (u8::from(!self.models.is_empty()) << 1)
            | u8::from(!self.routes.is_empty())
    }
}

/// `*` at the end of a pattern matches any suffix; otherwise the match is exact.
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

/// A policy with inheritance resolved and detectors built.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub id: String,
    /// Hex prefix of the SHA-256 of the files that make this policy (base first).
    pub version: String,
    pub description: Option<String>,
    pub extends: Option<String>,
    pub bindings: Vec<Binding>,
    pub on_block: BlockStyle,
    /// Block message for rules without one.
    pub message: Option<Messages>,
    /// Where grounding and relevance find the request's context.
    pub grounding: ContextSources,
    /// Enabled input rules, cheapest first (then as written).
    pub input: Vec<CompiledRule>,
    /// Enabled output rules, cheapest first (then as written).
    pub output: Vec<CompiledRule>,
}

impl CompiledPolicy {
    /// The rules of a stage, in evaluation order.
    pub fn rules(&self, stage: Stage) -> &[CompiledRule] {
        match stage {
            Stage::Input => &self.input,
            Stage::Output => &self.output,
        }
    }
}

/// Every compiled policy of a directory (plus the embedded default when the directory has
/// none), and the bindings that choose between them.
#[derive(Debug, Clone)]
pub struct PolicySet {
    policies: BTreeMap<String, Arc<CompiledPolicy>>,
    default: Arc<CompiledPolicy>,
    /// (binding, policy), most specific first, ties by policy id.
    bound: Vec<(Binding, Arc<CompiledPolicy>)>,
    version: String,
}

impl PolicySet {
    /// Chooses the policy for a request. Precedence:
    /// 1. `tenant_policy` (the tenant's `policy:` in the gateway config), when it names a
    ///    loaded policy;
    /// 2. the most specific matching binding (tenant > model > route; more listed
    ///    dimensions win; ties go to the smaller policy id);
    /// 3. the policy with id `default`.
    pub fn select(
        &self,
        tenant_policy: Option<&str>,
        tenant: Option<&str>,
        route: &str,
        model: Option<&str>,
    ) -> Arc<CompiledPolicy> {
        if let Some(name) = tenant_policy {
            if let Some(p) = self.policies.get(name) {
                return p.clone();
            }
            tracing::warn!(
                policy = name,
                "tenant policy not loaded; falling back to bindings"
            );
        }
        self.bound
            .iter()
            .find(|(b, _)| b.matches(tenant, route, model))
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| self.default.clone())
    }

    /// A policy by id.
    pub fn get(&self, id: &str) -> Option<Arc<CompiledPolicy>> {
        self.policies.get(id).cloned()
    }

    /// The `default` policy.
    pub fn default_policy(&self) -> Arc<CompiledPolicy> {
        self.default.clone()
    }

    /// Ids of all loaded policies, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    /// Hash of all policy versions: changes whenever any policy changes.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// Reads and compiles a policy file or directory.
pub fn load_path(path: &Path) -> Result<PolicySet, PolicyErrors> {
    compile_sources(&read_sources(path)?)
}

/// The shipped default policy, compiled from the copy embedded in the binary.
pub fn embedded_default() -> PolicySet {
    // The embedded file is part of the build and covered by tests; it cannot fail at runtime.
    compile_sources(&[]).expect("embedded default policy compiles")
}

fn hex_prefix(bytes: &[u8]) -> String {
    let mut s = hex::encode(bytes);
    s.truncate(VERSION_HEX);
    s
}

/// One effective rule with the place that defined (or last patched) it.
#[derive(Clone)]
struct Effective {
    dto: RuleDto,
    file: String,
    /// Whether a child patched it (then it cannot share the base's compiled detector).
    patched: bool,
}

/// Applies the keys a child rule gives onto an inherited rule.
fn patch(base: &mut RuleDto, over: &RuleDto) {
    macro_rules! take {
        ($($f:ident),*) => { $( if over.$f.is_some() { base.$f = over.$f.clone(); } )* };
    }
    take!(
        enabled,
        description,
        action,
        mode,
        threshold,
        strength,
        message,
        notice,
        stream,
        entities,
        words,
        profanity,
        allow,
        label,
        patterns,
        name,
        definition,
        examples,
        categories,
        custom,
        prompt,
        model,
        timeout_ms,
        fail,
        endpoint,
        api_key_env,
        api,
        verdict
    );
    if over.threshold.is_some() {
        base.strength = None;
    }
    if over.strength.is_some() {
        base.threshold = None;
    }
}

/// Compiles policy sources into a set. The embedded default is added when no source
/// has id `default`, so directory policies can `extends: default` without copying it.
pub fn compile_sources(sources: &[Source]) -> Result<PolicySet, PolicyErrors> {
    let mut problems = Vec::new();
    let mut parsed: Vec<Parsed> = Vec::new();
    for s in sources {
        match parse_policy(s) {
            Ok(p) => parsed.push(p),
            Err(pr) => problems.push(pr),
        }
    }
    if !parsed.iter().any(|p| p.file.id.value == DEFAULT_POLICY_ID) {
        let s = Source {
            name: EMBEDDED_DEFAULT_NAME.into(),
            text: EMBEDDED_DEFAULT.into(),
        };
        match parse_policy(&s) {
            Ok(p) => parsed.push(p),
            Err(pr) => problems.push(pr),
        }
    }

    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (i, p) in parsed.iter().enumerate() {
        let id = &p.file.id;
        if id.value.trim().is_empty() {
            problems.push(Problem::at(&p.name, &id.referenced, "policy id is empty"));
        } else if let Some(&j) = by_id.get(&id.value) {
            problems.push(Problem::at(
                &p.name,
                &id.referenced,
                format!(
                    "duplicate policy id `{}` (also defined in {})",
                    id.value, parsed[j].name
                ),
            ));
        } else {
            by_id.insert(id.value.clone(), i);
        }
        for (stage, rules) in [("input", &p.file.input), ("output", &p.file.output)] {
            let mut seen = HashSet::new();
            for r in rules.iter() {
                let rid = &r.value.id;
                if rid.value.trim().is_empty() {
                    problems.push(Problem::at(&p.name, &rid.referenced, "rule id is empty"));
                } else if !seen.insert(rid.value.as_str()) {
                    problems.push(Problem::at(
                        &p.name,
                        &rid.referenced,
                        format!("duplicate rule id `{}` in {stage}", rid.value),
                    ));
                }
            }
        }
    }

    let mut cache = prebuild_detectors(&parsed, &by_id);
    let mut compiled: BTreeMap<String, Arc<CompiledPolicy>> = BTreeMap::new();
    for (id, &idx) in &by_id {
        let Some(chain) = resolve_chain(idx, &parsed, &by_id, &mut problems) else {
            continue;
        };
        let top = &parsed[idx];
        let mut hasher = Sha256::new();
        let mut on_block = None;
        let mut message = None;
        let mut grounding = ContextSources::default();
        for &c in &chain {
            let text = parsed[c].text.as_bytes();
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text);
            on_block = parsed[c].file.on_block.or(on_block);
            if let Some(m) = parsed[c].file.message.as_ref().and_then(Messages::from_dto) {
                message = Some(m);
            }
            if let Some(g) = &parsed[c].file.grounding {
                grounding = context_sources(g, grounding);
            }
        }
        let mut stages = Vec::new();
        for stage in [Stage::Input, Stage::Output] {
            let rules = effective_rules(&chain, &parsed, stage);
            let mut out = Vec::new();
            for (order, eff) in rules.into_iter().enumerate() {
                if let Some(r) = compile_rule(&eff, stage, order, &mut cache, &mut problems) {
                    out.push(r);
                }
            }
            out.sort_by_key(|r| (r.kind.cost(), r.order));
            stages.push(out);
        }
        let output = stages.pop().unwrap_or_default();
        let input = stages.pop().unwrap_or_default();
        compiled.insert(
            id.clone(),
            Arc::new(CompiledPolicy {
                id: id.clone(),
                version: hex_prefix(&hasher.finalize()),
                description: top.file.description.clone(),
                extends: top.file.extends.as_ref().map(|e| e.value.clone()),
                bindings: top
                    .file
                    .bindings
                    .iter()
                    .map(|b| Binding {
                        tenants: b.tenants.clone(),
                        routes: b.routes.clone(),
                        models: b.models.clone(),
                    })
                    .collect(),
                on_block: on_block.unwrap_or(BlockStyle::Refusal),
                message,
                grounding,
                input,
                output,
            }),
        );
    }

    if !problems.is_empty() {
        return Err(PolicyErrors::sorted(problems));
    }
    let Some(default) = compiled.get(DEFAULT_POLICY_ID).cloned() else {
        return Err(PolicyErrors(vec![Problem::file(
            "<policies>",
            "no policy with id `default`",
        )]));
    };
    let mut bound: Vec<(Binding, Arc<CompiledPolicy>)> = compiled
        .values()
        .flat_map(|p| p.bindings.iter().map(move |b| (b.clone(), p.clone())))
        .collect();
    bound.sort_by(|a, b| {
        b.0.specificity()
            .cmp(&a.0.specificity())
            .then_with(|| a.1.id.cmp(&b.1.id))
    });
    let mut h = Sha256::new();
    for p in compiled.values() {
        h.update(p.id.as_bytes());
        h.update([0]);
        h.update(p.version.as_bytes());
        h.update([0]);
    }
    Ok(PolicySet {
        policies: compiled,
        default,
        bound,
        version: hex_prefix(&h.finalize()),
    })
}

/// The chain of files from the root base to `idx`, or `None` after recording a problem.
/// Compiled detectors shared by the policies, keyed by (file, stage, rule id).
type DetectorCache = HashMap<(String, &'static str, String), Arc<CompiledDetector>>;

/// Builds the detectors of every unpatched rule of every policy on all cores, before
/// the rules are checked one by one: detector builds are most of a policy compile (word
/// automata, pattern sets, models, the grounding table; ~40 ms for the shipped default,
/// the first thing `haechi scan` and `haechi serve` wait for). What fails to build here
/// is left out: the rule's own compile builds it again and reports the problem in
/// order, with everything else it checks.
fn prebuild_detectors(parsed: &[Parsed], by_id: &HashMap<String, usize>) -> DetectorCache {
    let mut jobs: Vec<((String, &'static str, String), DetectorKind, RuleDto)> = Vec::new();
    let mut seen = HashSet::new();
    for &idx in by_id.values() {
        let Some(chain) = resolve_chain(idx, parsed, by_id, &mut Vec::new()) else {
            continue;
        };
        for stage in [Stage::Input, Stage::Output] {
            for eff in effective_rules(&chain, parsed, stage) {
                let kind = eff
                    .dto
                    .detector
                    .as_ref()
                    .and_then(|d| DetectorKind::parse(&d.value));
                let key = (eff.file.clone(), stage.as_str(), eff.dto.id.value.clone());
                if let (Some(kind), false) = (kind, eff.patched) {
                    if seen.insert(key.clone()) {
                        jobs.push((key, kind, eff.dto));
                    }
                }
            }
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let built = std::sync::Mutex::new(DetectorCache::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some((key, kind, rule)) =
                    jobs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    if let Ok(d) = CompiledDetector::build(*kind, rule) {
                        if let Ok(mut built) = built.lock() {
                            built.insert(key.clone(), Arc::new(d));
                        }
                    }
                }
            });
        }
    });
    built.into_inner().unwrap_or_default()
}

fn resolve_chain(
    idx: usize,
    parsed: &[Parsed],
    by_id: &HashMap<String, usize>,
    problems: &mut Vec<Problem>,
) -> Option<Vec<usize>> {
    let mut chain = vec![idx];
    let mut cur = idx;
    while let Some(ext) = &parsed[cur].file.extends {
        let Some(&next) = by_id.get(&ext.value) else {
            problems.push(Problem::at(
                &parsed[cur].name,
                &ext.referenced,
                format!("unknown base policy `{}`", ext.value),
            ));
            return None;
        };
        if chain.contains(&next) {
            let mut names: Vec<&str> = chain
                .iter()
                .map(|&c| parsed[c].file.id.value.as_str())
                .collect();
            names.push(&parsed[next].file.id.value);
            problems.push(Problem::at(
                &parsed[cur].name,
                &ext.referenced,
                format!("extends cycle: {}", names.join(" -> ")),
            ));
            return None;
        }
        chain.push(next);
        cur = next;
    }
    chain.reverse();
    Some(chain)
}

/// Folds the rules of a chain: a child adds new ids, replaces an inherited rule when it
/// names a detector, patches it otherwise; disabled rules are dropped at the end.
fn effective_rules(chain: &[usize], parsed: &[Parsed], stage: Stage) -> Vec<Effective> {
    let mut rules: Vec<Effective> = Vec::new();
    for &c in chain {
        let p = &parsed[c];
        let own = match stage {
            Stage::Input => &p.file.input,
            Stage::Output => &p.file.output,
        };
        for r in own {
            let r = &r.value;
            match rules.iter_mut().find(|e| e.dto.id.value == r.id.value) {
                Some(e) if r.detector.is_none() => {
                    patch(&mut e.dto, r);
                    e.dto.id = r.id.clone();
                    e.file = p.name.clone();
                    e.patched = true;
                }
                Some(e) => {
                    *e = Effective {
                        dto: r.clone(),
                        file: p.name.clone(),
                        patched: false,
                    }
                }
                None => rules.push(Effective {
                    dto: r.clone(),
                    file: p.name.clone(),
                    patched: false,
                }),
            }
        }
    }
    rules.retain(|e| e.dto.enabled != Some(false));
    rules
}

/// Parameter keys and the detectors they apply to.
fn misplaced_keys(r: &RuleDto, kind: DetectorKind) -> Vec<&'static str> {
    use DetectorKind as K;
    let table: [(&str, bool, &[K]); 19] = [
        ("entities", r.entities.is_some(), &[K::Pii, K::Secret]),
        ("custom", r.custom.is_some(), &[K::Pii]),
        ("words", r.words.is_some(), &[K::Word]),
        ("profanity", r.profanity.is_some(), &[K::Word]),
        ("allow", r.allow.is_some(), &[K::Word]),
        ("label", r.label.is_some(), &[K::Word]),
        ("patterns", r.patterns.is_some(), &[K::Regex]),
        ("name", r.name.is_some(), &[K::Topic]),
        ("definition", r.definition.is_some(), &[K::Topic]),
        ("examples", r.examples.is_some(), &[K::Topic]),
        ("categories", r.categories.is_some(), &[K::Toxicity]),
        ("prompt", r.prompt.is_some(), &[K::LlmJudge]),
        ("model", r.model.is_some(), &[K::LlmJudge]),
        ("timeout_ms", r.timeout_ms.is_some(), &[K::LlmJudge]),
        ("fail", r.fail.is_some(), &[K::LlmJudge]),
        ("endpoint", r.endpoint.is_some(), &[K::LlmJudge]),
        ("api_key_env", r.api_key_env.is_some(), &[K::LlmJudge]),
        ("api", r.api.is_some(), &[K::LlmJudge]),
        ("verdict", r.verdict.is_some(), &[K::LlmJudge]),
    ];
    table
        .iter()
        .filter(|(_, set, kinds)| *set && !kinds.contains(&kind))
        .map(|(k, _, _)| *k)
        .collect()
}

fn compile_rule(
    eff: &Effective,
    stage: Stage,
    order: usize,
    cache: &mut DetectorCache,
    problems: &mut Vec<Problem>,
) -> Option<CompiledRule> {
    let r = &eff.dto;
    let file = eff.file.as_str();
    let loc = &r.id.referenced;
    let before = problems.len();
    let Some(det) = &r.detector else {
        problems.push(Problem::at(
            file,
            loc,
            format!(
                "rule `{}` has no `detector` and overrides no inherited rule",
                r.id.value
            ),
        ));
        return None;
    };
    let Some(kind) = DetectorKind::parse(&det.value) else {
        let names: Vec<&str> = DetectorKind::ALL.iter().map(|k| k.as_str()).collect();
        problems.push(Problem::at(
            file,
            &det.referenced,
            format!(
                "unknown detector `{}` (expected one of: {})",
                det.value,
                names.join(", ")
            ),
        ));
        return None;
    };
    for key in misplaced_keys(r, kind) {
        problems.push(Problem::at(
            file,
            loc,
            format!(
                "rule `{}`: key `{key}` does not apply to detector `{}`",
                r.id.value,
                kind.as_str()
            ),
        ));
    }
    let threshold = match (&r.threshold, r.strength) {
        (Some(_), Some(_)) => {
            problems.push(Problem::at(
                file,
                loc,
                format!(
                    "rule `{}`: give `threshold` or `strength`, not both",
                    r.id.value
                ),
            ));
            DEFAULT_THRESHOLD
        }
        (Some(t), None) => {
            if !(t.value.is_finite() && (0.0..=1.0).contains(&t.value)) {
                problems.push(Problem::at(
                    file,
                    &t.referenced,
                    format!(
                        "rule `{}`: threshold {} is not between 0 and 1",
                        r.id.value, t.value
                    ),
                ));
            }
            t.value as f32
        }
        (None, Some(s)) => s.threshold(),
        (None, None) => DEFAULT_THRESHOLD,
    };
    let action = r.action.unwrap_or(Action::Warn);
    if action.rewrites() && !kind.has_spans() {
        problems.push(Problem::at(
            file,
            loc,
            format!(
                "rule `{}`: action `{}` needs text spans but detector `{}` judges the whole text; use block, warn or none",
                r.id.value,
                action.as_str(),
                kind.as_str()
            ),
        ));
    }
    if action == Action::Annotate && stage == Stage::Input {
        problems.push(Problem::at(
            file,
            loc,
            format!(
                "rule `{}`: action `annotate` appends a notice to the answer; put it under `output`",
                r.id.value
            ),
        ));
    }
    if matches!(kind, DetectorKind::Grounding | DetectorKind::Relevance) && stage == Stage::Input {
        problems.push(Problem::at(
            file,
            loc,
            format!(
                "rule `{}`: detector `{}` checks answers; put it under `output`",
                r.id.value,
                kind.as_str()
            ),
        ));
    }
    let key = (file.to_string(), stage.as_str(), r.id.value.clone());
    let detector = match cache.get(&key).filter(|_| !eff.patched) {
        Some(d) => d.clone(),
        None => match CompiledDetector::build(kind, r) {
            Ok(d) => {
                let d = Arc::new(d);
                if !eff.patched {
                    cache.insert(key, d.clone());
                }
                d
            }
            Err(e) => {
                let at = e
                    .pattern_index()
                    .and_then(|i| r.patterns.as_ref().and_then(|ps| ps.get(i)))
                    .map_or(&det.referenced, |p| &p.referenced);
                problems.push(Problem::at(file, at, format!("rule `{}`: {e}", r.id.value)));
                return None;
            }
        },
    };
    if problems.len() > before {
        return None;
    }
    let threshold = if r.threshold.is_none() {
        detector.strength_threshold(r.strength).unwrap_or(threshold)
    } else {
        threshold
    };
    let threshold = detector
        .finding_threshold(r.threshold.as_ref().map(|t| t.value as f32))
        .unwrap_or(threshold);
    Some(CompiledRule {
        id: r.id.value.clone(),
        kind,
        detector,
        threshold,
        action,
        mode: r.mode.unwrap_or_default(),
        message: r.message.as_ref().and_then(Messages::from_dto),
        notice: r.notice.as_ref().and_then(Messages::from_dto),
        stream: r.stream.unwrap_or_else(|| StreamMode::default_for(action)),
        order,
    })
}

/// The context sources a policy's `grounding` block sets over the inherited ones.
fn context_sources(g: &GroundingDto, inherited: ContextSources) -> ContextSources {
    let Some(list) = &g.sources else {
        return inherited;
    };
    ContextSources {
        extension: list.contains(&ContextSource::Extension),
        tool: list.contains(&ContextSource::Tool),
        tags: list.contains(&ContextSource::Tags),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    fn errors(sources: &[Source]) -> Vec<String> {
        match compile_sources(sources) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn embedded_default_compiles() {
        let set = embedded_default();
        let d = set.default_policy();
        assert_eq!(d.id, "default");
        assert_eq!(d.version.len(), VERSION_HEX);
        assert!(!d.input.is_empty());
    }

    #[test]
    fn pii_custom_entities_from_the_policy_file() {
        let yaml = "id: default\ninput:\n  - id: staff\n    detector: pii\n    entities: [EMAIL]\n    custom:\n      - {label: EMPLOYEE_ID, pattern: 'EMP-[0-9]{6}', context: [employee, 사번], score: 0.6}\n    action: mask\n";
        let set = compile_sources(&[src("default.yaml", yaml)]).expect("compiles");
        let policy = set.default_policy();
        let mut map = crate::engine::PseudonymMap::new();
        let d = crate::engine::evaluate(
            &policy,
            Stage::Input,
            &["employee EMP-123456 mailed kim@example.com"],
            &crate::detect::DetectContext::default(),
            &crate::engine::EvalOptions::default(),
            &mut map,
        );
        assert_eq!(
            d.rewritten[0].as_deref(),
            Some("employee {EMPLOYEE_ID} mailed {EMAIL}")
        );
        let bad = "id: default\ninput:\n  - id: w\n    detector: word\n    words: [x]\n    custom: [{label: A, pattern: 'a'}]\n";
        let errs = errors(&[src("default.yaml", bad)]);
        assert!(errs.iter().any(|e| e.contains("custom")), "{errs:?}");
    }

    #[test]
    fn default_policy_runs_every_shipped_detector() {
        let set = compile_sources(&[src("default.yaml", EMBEDDED_DEFAULT)]).expect("compiles");
        let policy = set.default_policy();
        let mut kinds: Vec<&str> = [Stage::Input, Stage::Output]
            .into_iter()
            .flat_map(|s| policy.rules(s).iter().map(|r| r.kind.as_str()))
            .collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            kinds,
            vec![
                "grounding",
                "pii",
                "prompt_attack",
                "relevance",
                "secret",
                "toxicity",
                "word"
            ]
        );
    }

    #[test]
    fn design_example_keys_parse() {
        // The keys of DESIGN.md's example; detectors not in this build are the only errors.
        let yaml = r#"id: support-bot
extends: default
description: Customer-support assistant
input:
  - id: pii-in
    detector: pii
    entities: [EMAIL, PHONE, KR_RRN, CREDIT_DEBIT_CARD_NUMBER]
    action: pseudonymize
  - id: banned-words
    detector: word
    words: ["frobnicate"]
    action: block
    message: { en: "This request is not allowed.", ko: "허용되지 않는 요청입니다." }
  - id: no-investment-advice
    detector: topic
    name: investment-advice
    definition: Recommendations to buy, sell or hold specific securities or crypto assets.
    examples: ["Should I buy Samsung Electronics stock now?", "지금 비트코인 사도 될까요?"]
    strength: medium
    action: block
output:
  - id: pii-out
    detector: pii
    action: mask
  - id: grounded
    detector: grounding
    threshold: 0.6
    action: warn
    mode: shadow
"#;
        let errs = errors(&[src("support-bot.yaml", yaml)]);
        for e in &errs {
            assert!(
                e.contains("is not available in this build"),
                "unexpected problem: {e}"
            );
        }
        assert!(errs.len() <= 1, "{errs:?}");
    }

    #[test]
    fn reports_every_problem_with_positions() {
        let yaml = r#"id: p
extends: nope
input:
  - id: a
    detector: wordz
  - id: b
    detector: regex
    patterns:
      - { label: X, pattern: "ok" }
      - { label: Y, pattern: "(bad" }
  - id: c
    detector: word
    words: [x]
    threshold: 1.5
  - id: c
    detector: word
    words: [y]
  - id: d
    detector: regex
    patterns: [{ label: Z, pattern: "\\w{1000}{1000}" }]
"#;
        let errs = errors(&[src("p.yaml", yaml)]);
        let want = ["p.yaml:2:10: unknown base policy `nope`"];
        for w in want {
            assert!(
                errs.iter().any(|e| e.starts_with(w)),
                "missing {w:?} in {errs:#?}"
            );
        }
        assert!(
            errs.iter()
                .any(|e| e.starts_with("p.yaml:15:9: duplicate rule id `c` in input")),
            "{errs:#?}"
        );
    }

    #[test]
    fn rule_errors_are_all_reported() {
        let yaml = r#"id: p
input:
  - id: a
    detector: wordz
  - id: b
    detector: regex
    patterns:
      - { label: X, pattern: "ok" }
      - { label: Y, pattern: "(bad" }
  - id: c
    detector: word
    words: [x]
    threshold: 1.5
  - id: d
    detector: regex
    patterns: [{ label: Z, pattern: "\\w{1000}{1000}" }]
  - id: e
    detector: toxicity
    action: mask
  - id: f
    detector: word
    words: [x]
    entities: [EMAIL]
"#;
        let errs = errors(&[src("p.yaml", yaml)]);
        let want = [
            "p.yaml:4:15: unknown detector `wordz`",
            "p.yaml:9:9: rule `b`: pattern 1 is not a valid regex",
            "p.yaml:13:16: rule `c`: threshold 1.5 is not between 0 and 1",
            "p.yaml:16:16: rule `d`: pattern 0 compiles too big",
            "p.yaml:17:9: rule `e`: action `mask` needs text spans",
            "p.yaml:20:9: rule `f`: key `entities` does not apply to detector `word`",
        ];
        for w in want {
            assert!(
                errs.iter().any(|e| e.starts_with(w)),
                "missing {w:?} in {errs:#?}"
            );
        }
    }

    #[test]
    fn typos_are_rejected_with_position() {
        let errs = errors(&[src(
            "t.yaml",
            "id: t\ninput:\n  - id: a\n    detector: word\n    acton: block\n",
        )]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("t.yaml:5:"), "{}", errs[0]);
        assert!(errs[0].contains("acton"), "{}", errs[0]);
    }

    #[test]
    fn extends_cycles_and_duplicate_ids() {
        let errs = errors(&[
            src("a.yaml", "id: a\nextends: b\n"),
            src("b.yaml", "id: b\nextends: a\n"),
            src("c.yaml", "id: a\n"),
        ]);
        assert!(
            errs.iter()
                .any(|e| e.contains("extends cycle: a -> b -> a")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("c.yaml:1:5: duplicate policy id `a`")),
            "{errs:#?}"
        );
    }

    #[test]
    fn inheritance_add_override_patch_disable() {
        let base = "id: default\ninput:\n  - {id: w1, detector: word, words: [alpha], action: warn}\n  - {id: w2, detector: word, words: [beta], action: warn}\n  - {id: w3, detector: word, words: [gamma], action: warn}\n";
        let child = "id: child\nextends: default\ninput:\n  - {id: w1, action: block, mode: shadow}\n  - {id: w2, enabled: false}\n  - {id: w3, detector: regex, patterns: [{label: G, pattern: gamma}], action: mask}\n  - {id: w4, detector: word, words: [delta], action: block}\n";
        let set = compile_sources(&[src("default.yaml", base), src("child.yaml", child)]).unwrap();
        let c = set.get("child").unwrap();
        let got: Vec<(&str, &str, Action, Mode)> = c
            .input
            .iter()
            .map(|r| (r.id.as_str(), r.kind.as_str(), r.action, r.mode))
            .collect();
        assert_eq!(
            got,
            vec![
                ("w1", "word", Action::Block, Mode::Shadow),
                ("w3", "regex", Action::Mask, Mode::Enforce),
                ("w4", "word", Action::Block, Mode::Enforce),
            ]
        );
        // Child version covers the base: changing the base changes the child's version.
        let base2 = base.replace("alpha", "alpha2");
        let set2 =
            compile_sources(&[src("default.yaml", &base2), src("child.yaml", child)]).unwrap();
        assert_ne!(
            set.get("child").unwrap().version,
            set2.get("child").unwrap().version
        );
        assert_ne!(set.version(), set2.version());
    }

    #[test]
    fn embedded_default_is_the_base_when_missing() {
        let set = compile_sources(&[src("x.yaml", "id: x\nextends: default\n")]).unwrap();
        assert_eq!(
            set.get("x").unwrap().input.len(),
            set.default_policy().input.len()
        );
    }

    #[test]
    fn select_precedence() {
        let files = [
            src("default.yaml", "id: default\n"),
            src(
                "r.yaml",
                "id: r\nbindings: [{routes: [\"/v1/messages\"]}]\n",
            ),
            src("m.yaml", "id: m\nbindings: [{models: [\"gpt-4o*\"]}]\n"),
            src("t.yaml", "id: t\nbindings: [{tenants: [acme]}]\n"),
            src("named.yaml", "id: named\n"),
        ];
        let set = compile_sources(&files).unwrap();
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                Some("named"),
                Some("acme"),
                "/v1/messages",
                Some("gpt-4o"),
                "named",
            ),
            (
                Some("missing"),
                Some("acme"),
                "/v1/chat/completions",
                None,
                "t",
            ),
            (None, Some("acme"), "/v1/messages", Some("gpt-4o-mini"), "t"),
            (
                None,
                Some("other"),
                "/v1/messages",
                Some("gpt-4o-mini"),
                "m",
            ),
            (None, None, "/v1/messages", Some("claude"), "r"),
            (
                None,
                None,
                "/v1/chat/completions",
                Some("claude"),
                "default",
            ),
            (None, None, "/v1/chat/completions", None, "default"),
        ];
        for (tp, tenant, route, model, want) in cases {
            assert_eq!(
                set.select(*tp, *tenant, route, *model).id,
                *want,
                "{tp:?} {tenant:?} {route} {model:?}"
            );
        }
    }

    #[test]
    fn threshold_and_strength() {
        let y = "id: default\ninput:\n  - {id: a, detector: word, words: [x], strength: low}\n  - {id: b, detector: word, words: [x], threshold: 0.25}\n  - {id: c, detector: word, words: [x]}\n";
        let set = compile_sources(&[src("d.yaml", y)]).unwrap();
        let th: Vec<f32> = set
            .default_policy()
            .input
            .iter()
            .map(|r| r.threshold)
            .collect();
        assert_eq!(th, vec![0.9, 0.25, DEFAULT_THRESHOLD]);
        let both = "id: default\ninput:\n  - {id: a, detector: word, words: [x], strength: low, threshold: 0.3}\n";
        assert!(errors(&[src("d.yaml", both)])[0].contains("not both"));
    }
}
