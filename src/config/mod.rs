//! Gateway configuration: the data model of `haechi.yaml`, loading and validation.
//!
//! The keys shown under "Files" in DESIGN.md are a contract: they may be extended,
//! never renamed. Every struct denies unknown keys so that a typo is an error at start,
//! not a silently ignored setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where the embedded default forwards OpenAI-shaped requests.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Where the embedded default forwards Anthropic-shaped requests.
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// The embedded default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A configuration problem, with the file and position when known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// TLS for the listener; absent means plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// A second, plain-HTTP listener for operators, e.g. `127.0.0.1:9464`, serving only
    /// `GET /metrics`, `/healthz` and `/readyz`; absent means none (they are served on
    /// `listen` only). Bind it to loopback or an internal interface.
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// Whether `listen` (the client listener) also serves `GET /metrics` (default
    /// `true`). Set `false` to keep tenant ids, rule ids and upstream names off the
    /// client port; scrape `admin_listen` instead. `/healthz` and `/readyz` stay on both.
    #[serde(default = "default_true")]
    pub metrics_on_client_listener: bool,
    /// Policy directory, watched for hot reload; absent means the embedded default policy.
    #[serde(default)]
    pub policies: Option<PathBuf>,
    /// Upstream model endpoints; absent means the embedded OpenAI and Anthropic defaults.
    #[serde(default = "default_upstreams")]
    pub upstreams: Vec<UpstreamConfig>,
    /// Tenants with virtual keys; absent means pass-through mode.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Shared state (quotas, pseudonym vault); absent means in-memory.
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// Prices per model for monthly budgets (USD per million tokens).
    #[serde(default)]
    pub prices: crate::tenancy::quota::PriceTable,
    /// Answer tokens reserved at admission when the request sets no `max_tokens`.
    #[serde(default = "default_answer_tokens")]
    pub default_answer_tokens: u64,
    /// Audit log settings.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Environment variable holding the key of the `hash` action and of keyed hashes in
    /// audit records (any string; per-tenant keys are derived from it). Absent: a random
    /// key per process, so hashes are stable only until restart.
    #[serde(default)]
    pub hash_key_env: Option<String>,
    /// How long in-flight requests and streams may run after SIGTERM, in seconds.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    /// OpenTelemetry export and logs (`endpoint`, `protocol`, `service_name`,
    /// `traces_sampler`, ...; the `OTEL_*` environment variables win over these keys).
    #[serde(default)]
    pub telemetry: Option<crate::audit::telemetry::TelemetryConfig>,
}

/// A tenant: who may call with which keys, where its data may go, what it may spend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    /// SHA-256 of each API key, `sha256:<hex>` (`haechi key new --tenant ID` prints one).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Regions its requests may be routed to; absent means any.
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    /// Policy id applied to its requests; absent means bindings, then `default`.
    #[serde(default)]
    pub policy: Option<String>,
    /// Models it may call; absent means any.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Request, token and budget limits.
    #[serde(default)]
    pub quotas: Option<crate::tenancy::quota::QuotaSpec>,
    /// Provider credentials of this tenant, per upstream name: the environment variable
    /// holding the key (overrides the upstream's `api_key_env` for this tenant).
    #[serde(default)]
    pub credentials: std::collections::BTreeMap<String, String>,
    /// AWS access key ids (`AKIA...`) whose SigV4-signed Bedrock requests belong to this
    /// tenant: boto3 and the other AWS SDKs identify themselves this way. The id names the
    /// tenant; see `docs/bedrock.md` for what that does and does not prove.
    #[serde(default)]
    pub aws_access_key_ids: Vec<String>,
}

/// Where shared state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `redis://host:port`; absent means in-memory (one replica).
    #[serde(default)]
    pub redis_url: Option<String>,
    /// What happens when Redis is unreachable: `fail_closed` (503) or `fail_open`
    /// (local per-replica limits).
    #[serde(default)]
    pub fail_mode: crate::tenancy::redis::FailMode,
    /// Deadline of one Redis round trip, in milliseconds.
    #[serde(default = "default_store_timeout_ms")]
    pub timeout_ms: u64,
    /// Replicas sharing the limits, to divide them for the local fallback limiter.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Environment variable holding the pseudonym vault key (base64 or 64 hex digits,
    /// AES-256-GCM). With `redis_url` and this key, conversations' pseudonyms are shared
    /// by all replicas; without the key they stay in each replica's memory.
    #[serde(default)]
    pub vault_key_env: Option<String>,
    /// How long a conversation's pseudonyms are kept, in seconds.
    #[serde(default = "default_vault_ttl")]
    pub vault_ttl_secs: u64,
}

/// Listener TLS: PEM certificate chain and private key files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The API shape an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamDialect {
    Openai,
    Anthropic,
    Bedrock,
}

/// One upstream model endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    /// Base URL as the provider's SDK takes it, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    #[serde(default = "default_dialect")]
    pub dialect: UpstreamDialect,
    /// Region the upstream runs in, e.g. `ap-northeast-2`.
    #[serde(default)]
    pub region: Option<String>,
    /// Models served; absent means any model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Environment variable holding the upstream credential; absent forwards the client's key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Lower is tried first among upstreams that can serve a request.
    #[serde(default)]
    pub priority: i32,
    /// Extra PEM CA bundle trusted for this upstream, besides the webpki roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
}

/// Upstream timeouts, in milliseconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// TCP + TLS connect.
    #[serde(default = "default_connect_ms")]
    pub connect_ms: u64,
    /// From sending the request to receiving the response headers.
    #[serde(default = "default_first_byte_ms")]
    pub first_byte_ms: u64,
    /// Longest silence between two body chunks (streams and large bodies).
    #[serde(default = "default_idle_ms")]
    pub idle_ms: u64,
    /// Whole exchange, from sending the request to the last body byte.
    #[serde(default = "default_total_ms")]
    pub total_ms: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            connect_ms: default_connect_ms(),
            first_byte_ms: default_first_byte_ms(),
            idle_ms: default_idle_ms(),
            total_ms: default_total_ms(),
        }
    }
}

impl TimeoutsConfig {
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn first_byte(&self) -> Duration {
        Duration::from_millis(self.first_byte_ms)
    }
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }
    pub fn total(&self) -> Duration {
        Duration::from_millis(self.total_ms)
    }
}

/// Audit log settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Audit log file; absent means stdout.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `always` (fsync every record), `never` (the OS decides), or `interval_ms:N`
    /// (default `interval_ms:1000`). See docs/audit.md for the durability trade-off.
    #[serde(default)]
    pub fsync: Option<String>,
    /// Rotate the file before it would grow past this many bytes.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Rotate when the UTC day changes.
    #[serde(default)]
    pub rotate_daily: bool,
    /// Also copy every record to stdout when `path` is set.
    #[serde(default)]
    pub stdout: bool,
    /// When a record cannot be written (disk full, ...): `fail_open` (log, count, serve)
    /// or `fail_closed` (503).
    #[serde(default)]
    pub fail_mode: crate::tenancy::redis::FailMode,
}

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes (413 above).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest request head (request line + headers) accepted, in bytes (431 above).
    #[serde(default = "default_max_header")]
    pub max_header_bytes: usize,
    /// How long a client may take to send its request head, in milliseconds.
    #[serde(default = "default_header_read_ms")]
    pub header_read_timeout_ms: u64,
    /// How long a client may take to send its whole body, in milliseconds.
    #[serde(default = "default_body_read_ms")]
    pub body_read_timeout_ms: u64,
    /// Largest non-streaming upstream answer the output stage will hold to check, in bytes.
    #[serde(default = "default_max_response")]
    pub max_response_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body(),
            max_header_bytes: default_max_header(),
            header_read_timeout_ms: default_header_read_ms(),
            body_read_timeout_ms: default_body_read_ms(),
            max_response_bytes: default_max_response(),
        }
    }
}

fn default_answer_tokens() -> u64 {
    1024
}
fn default_store_timeout_ms() -> u64 {
    250
}
fn default_replicas() -> u32 {
    1
}
fn default_vault_ttl() -> u64 {
    86_400
}
fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}
fn default_true() -> bool {
    true
}
fn default_dialect() -> UpstreamDialect {
    UpstreamDialect::Openai
}
fn default_shutdown_grace() -> u64 {
    30
}
fn default_connect_ms() -> u64 {
    5_000
}
fn default_first_byte_ms() -> u64 {
    120_000
}
fn default_idle_ms() -> u64 {
    60_000
}
fn default_total_ms() -> u64 {
    600_000
}
fn default_max_body() -> usize {
    16 * 1024 * 1024
}
fn default_max_header() -> usize {
    64 * 1024
}
fn default_max_response() -> usize {
    32 * 1024 * 1024
}
fn default_header_read_ms() -> u64 {
    10_000
}
fn default_body_read_ms() -> u64 {
    60_000
}

/// The embedded default upstreams: OpenAI and Anthropic, with the client's own key.
pub fn default_upstreams() -> Vec<UpstreamConfig> {
    vec![
        UpstreamConfig::new("openai", DEFAULT_OPENAI_BASE_URL, UpstreamDialect::Openai),
        UpstreamConfig::new(
            "anthropic",
            DEFAULT_ANTHROPIC_BASE_URL,
            UpstreamDialect::Anthropic,
        ),
    ]
}

impl UpstreamConfig {
    /// An upstream with default settings.
    pub fn new(name: &str, base_url: &str, dialect: UpstreamDialect) -> Self {
        Self {
            name: name.to_string(),
            base_url: base_url.to_string(),
            dialect,
            region: None,
            models: None,
            api_key_env: None,
            priority: 0,
            ca_file: None,
            timeouts: TimeoutsConfig::default(),
        }
    }

    /// Parses a `--upstream` flag value: `URL` (OpenAI dialect) or `DIALECT=URL`.
    pub fn from_flag(value: &str, index: usize) -> Result<Self, String> {
        let (dialect, url) = match value.split_once('=') {
            Some((d, url)) if !d.contains('/') && !d.contains(':') => {
                let dialect = match d {
                    "openai" => UpstreamDialect::Openai,
                    "anthropic" => UpstreamDialect::Anthropic,
                    "bedrock" => UpstreamDialect::Bedrock,
                    other => {
                        return Err(format!(
                            "unknown dialect `{other}` in --upstream (openai | anthropic | bedrock)"
                        ))
                    }
                };
                (dialect, url)
            }
            _ => (UpstreamDialect::Openai, value),
        };
        let upstream = Self::new(&format!("flag-{index}"), url, dialect);
        upstream.validate()?;
        Ok(upstream)
    }

    /// Checks what serde cannot: the URL shape.
    fn validate(&self) -> Result<(), String> {
        let uri: http::Uri = self
            .base_url
            .parse()
            .map_err(|e| format!("upstream `{}`: bad base_url: {e}", self.name))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(format!(
                    "upstream `{}`: base_url must start with http:// or https://",
                    self.name
                ))
            }
        }
        if uri.host().is_none() {
            return Err(format!("upstream `{}`: base_url has no host", self.name));
        }
        if self.dialect == UpstreamDialect::Bedrock && self.region.is_none() {
            // SigV4 signs for one region: the upstream's.
            return Err(format!(
                "upstream `{}`: a bedrock upstream needs `region` (it is signed for it)",
                self.name
            ));
        }
        Ok(())
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls: None,
            admin_listen: None,
            metrics_on_client_listener: true,
            policies: None,
            upstreams: default_upstreams(),
            tenants: Vec::new(),
            store: None,
            prices: Default::default(),
            default_answer_tokens: default_answer_tokens(),
            audit: AuditConfig::default(),
            limits: LimitsConfig::default(),
            hash_key_env: None,
            shutdown_grace_secs: default_shutdown_grace(),
            telemetry: None,
        }
    }
}

impl GatewayConfig {
    /// Reads and validates a YAML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates YAML text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: GatewayConfig = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: first_line(&e.to_string()),
            }
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Semantic checks the types cannot express.
    pub fn validate(&self) -> Result<(), String> {
        let listen = self.listen_addr()?;
        if let Some(admin) = self.admin_listen_addr()? {
            if admin == listen {
                return Err(format!(
                    "admin_listen `{admin}` is the same address as listen; give the admin listener its own port"
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for upstream in &self.upstreams {
            upstream.validate()?;
            if !names.insert(upstream.name.as_str()) {
                return Err(format!("duplicate upstream name `{}`", upstream.name));
            }
        }
        let mut ids = std::collections::HashSet::new();
        let mut aws_ids = std::collections::HashSet::new();
        for tenant in &self.tenants {
            if !ids.insert(tenant.id.as_str()) {
                return Err(format!("duplicate tenant id `{}`", tenant.id));
            }
            // The id prefixes the tenant's pseudonym scope (`<tenant>:<conversation>`):
            // with a `:` in it, tenant `a:b` + conversation `c` would share `a` + `b:c`.
            if tenant.id.is_empty() || tenant.id.contains(':') {
                return Err(format!(
                    "tenant id `{}` must be non-empty and must not contain `:`",
                    tenant.id
                ));
            }
            if tenant.keys.is_empty() && tenant.aws_access_key_ids.is_empty() {
                return Err(format!("tenant `{}` has no keys", tenant.id));
            }
            for id in &tenant.aws_access_key_ids {
                if !aws_ids.insert(id.as_str()) {
                    return Err(format!(
                        "tenant `{}`: AWS access key id `{id}` is listed by another tenant",
                        tenant.id
                    ));
                }
            }
            for key in &tenant.keys {
                key.parse::<crate::tenancy::keys::KeyHash>()
                    .map_err(|e| format!("tenant `{}`: bad key hash `{key}`: {e}", tenant.id))?;
            }
            for (upstream, var) in &tenant.credentials {
                if !self.upstreams.iter().any(|u| &u.name == upstream) {
                    return Err(format!(
                        "tenant `{}`: credentials for unknown upstream `{upstream}`",
                        tenant.id
                    ));
                }
                if std::env::var(var).is_err() {
                    return Err(format!(
                        "tenant `{}`: environment variable `{var}` is not set",
                        tenant.id
                    ));
                }
            }
            if let Some(regions) = &tenant.regions {
                let known: std::collections::HashSet<&str> = self
                    .upstreams
                    .iter()
                    .filter_map(|u| u.region.as_deref())
                    .collect();
                if let Some(r) = regions.iter().find(|r| !known.contains(r.as_str())) {
                    return Err(format!(
                        "tenant `{}`: region `{r}` has no upstream (regions with upstreams: {})",
                        tenant.id,
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// The listen address as a socket address.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen
            .parse()
            .map_err(|e| format!("listen `{}`: {e}", self.listen))
    }

    /// The admin listener's address, when one is configured.
    pub fn admin_listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        self.admin_listen
            .as_deref()
            .map(|a| a.parse().map_err(|e| format!("admin_listen `{a}`: {e}")))
            .transpose()
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::parse(yaml, Path::new("haechi.yaml"))
    }

    #[test]
    fn design_example_keys_parse() {
        let yaml = r#"
listen: 127.0.0.1:8080
policies: policies/
upstreams:
  - name: seoul
    base_url: https://llm.example.internal/v1
    dialect: openai
    region: ap-northeast-2
    models: ["gpt-4o-mini"]
    api_key_env: SEOUL_LLM_KEY
  - name: virginia
    base_url: https://api.openai.com/v1
    dialect: openai
    region: us-east-1
tenants:
  - id: acme
    keys: ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
    regions: [ap-northeast-2]
    policy: support-bot
    quotas:
      requests_per_minute: 600
      tokens_per_minute: 200000
store:
  redis_url: redis://127.0.0.1:6379
audit:
  path: /var/log/haechi/audit.jsonl
"#;
        let config = parse(yaml).expect("design example parses");
        assert_eq!(config.upstreams.len(), 2);
        assert_eq!(
            config.upstreams[0].region.as_deref(),
            Some("ap-northeast-2")
        );
        assert_eq!(
            config.upstreams[0].api_key_env.as_deref(),
            Some("SEOUL_LLM_KEY")
        );
        assert_eq!(config.policies, Some(PathBuf::from("policies/")));
        assert_eq!(
            config.audit.path,
            Some(PathBuf::from("/var/log/haechi/audit.jsonl"))
        );
    }

    #[test]
    fn absent_file_keys_give_embedded_default() {
        let config = parse("{}").expect("empty config parses");
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.upstreams.len(), 2);
        assert_eq!(config.upstreams[0].base_url, DEFAULT_OPENAI_BASE_URL);
        // No admin listener, and metrics stay on the client listener.
        assert_eq!(config.admin_listen, None);
        assert!(config.metrics_on_client_listener);
    }

    #[test]
    fn admin_listener_keys_parse_and_are_checked() {
        let config = parse(
            "listen: 0.0.0.0:8080\nadmin_listen: 127.0.0.1:9464\nmetrics_on_client_listener: false\n",
        )
        .expect("parses");
        assert_eq!(
            config.admin_listen_addr(),
            Ok(Some("127.0.0.1:9464".parse().expect("addr")))
        );
        assert!(!config.metrics_on_client_listener);
        for (yaml, needle) in [
            ("admin_listen: nowhere\n", "admin_listen `nowhere`"),
            (
                "listen: 127.0.0.1:8080\nadmin_listen: 127.0.0.1:8080\n",
                "same address as listen",
            ),
            ("metrics_on_client_listener: maybe\n", "1:29"),
            ("admin_listener: 127.0.0.1:9464\n", "admin_listener"),
        ] {
            let err = parse(yaml).expect_err(yaml).to_string();
            assert!(err.contains(needle), "{yaml:?} gave {err:?}");
        }
    }

    #[test]
    fn typo_is_refused_with_line() {
        let err = parse("listen: 127.0.0.1:1\nupstream:\n  - name: x\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("haechi.yaml:"), "{text}");
        assert!(text.contains("upstream"), "{text}");
        match err {
            ConfigError::Parse { line, .. } => assert!(line >= 1, "line {line}"),
            other => panic!("expected a parse error, got {other}"),
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let cases = [
            ("listen: nowhere", "listen"),
            (
                "upstreams:\n  - name: a\n    base_url: ftp://x/\n",
                "http://",
            ),
            (
                "upstreams:\n  - {name: a, base_url: 'http://x/'}\n  - {name: a, base_url: 'http://y/'}\n",
                "duplicate",
            ),
            (
                "upstreams:\n  - {name: a, base_url: 'http://x/', dialect: grpc}\n",
                "grpc",
            ),            (
                "upstreams:\n  - {name: b, base_url: 'https://x', dialect: bedrock}\n",
                "needs `region`",
            ),
            (
                "tenants:\n  - {id: a, aws_access_key_ids: [AKIA1]}\n  - {id: b, aws_access_key_ids: [AKIA1]}\n",
                "listed by another tenant",
            ),
            ("tenants:\n  - {id: a}\n", "has no keys"),
            (
                "tenants:\n  - {id: 'a:b', aws_access_key_ids: [AKIA1]}\n",
                "must not contain `:`",
            ),
        ];
        for (yaml, needle) in cases {
            let err = parse(yaml).expect_err(yaml).to_string();
            assert!(err.contains(needle), "{yaml:?} gave {err:?}");
        }
    }

    #[test]
    fn bedrock_keys_parse() {
        let config = parse(
            "upstreams:\n  - {name: b, base_url: 'https://bedrock-runtime.us-west-2.amazonaws.com', dialect: bedrock, region: us-west-2}\ntenants:\n  - {id: a, aws_access_key_ids: [AKIAEXAMPLE]}\n",
        )
        .expect("parses");
        assert_eq!(config.upstreams[0].dialect, UpstreamDialect::Bedrock);
        assert_eq!(config.tenants[0].aws_access_key_ids, vec!["AKIAEXAMPLE"]);
        assert!(config.tenants[0].keys.is_empty());
    }

    #[test]
    fn upstream_flag_forms() {
        let u = UpstreamConfig::from_flag("http://127.0.0.1:9/v1", 0).expect("plain url");
        assert_eq!(u.dialect, UpstreamDialect::Openai);
        let u = UpstreamConfig::from_flag("anthropic=http://127.0.0.1:9", 1).expect("dialect");
        assert_eq!(u.dialect, UpstreamDialect::Anthropic);
        assert!(UpstreamConfig::from_flag("grpc=http://x", 2).is_err());
        assert!(UpstreamConfig::from_flag("not a url", 3).is_err());
    }
}
