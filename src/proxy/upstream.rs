//! Upstream endpoints: the pooled HTTP client for each, URL joining, header rewriting,
//! and the choice of which upstreams may serve a request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Uri;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::config::{UpstreamConfig, UpstreamDialect};
use crate::dialect::Provider;

/// The pooled client type used for every upstream hop.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An upstream that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream `{name}`: {message}")]
    Setup { name: String, message: String },
}

/// One configured upstream, ready to receive requests.
pub struct Upstream {
    pub config: UpstreamConfig,
    /// Scheme and authority of `base_url`.
    base: Uri,
    /// Path prefix of `base_url`, without a trailing slash.
    base_path: String,
    /// The gateway-held credential, read from `api_key_env` at start.
    credential: Option<HeaderValue>,
    pub client: HttpClient,
    /// Until when (ms since the epoch) the upstream counts as unhealthy; 0: healthy.
    unhealthy_until_ms: AtomicU64,
}

impl Upstream {
    /// Builds the upstream and its connection pool.
    pub fn new(config: UpstreamConfig) -> Result<Arc<Self>, UpstreamError> {
        let setup = |message: String| UpstreamError::Setup {
            name: config.name.clone(),
            message,
        };
        let base: Uri = config
            .base_url
            .parse()
            .map_err(|e| setup(format!("bad base_url: {e}")))?;
        let base_path = base.path().trim_end_matches('/').to_string();
        let credential = match &config.api_key_env {
            None => None,
            Some(var) => {
                let key = std::env::var(var)
                    .map_err(|_| setup(format!("environment variable `{var}` is not set")))?;
                let value = match config.dialect {
                    UpstreamDialect::Anthropic => key,
                    _ => format!("Bearer {key}"),
                };
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    setup(format!("`{var}` holds characters not allowed in a header"))
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let client = build_client(&config).map_err(setup)?;
        Ok(Arc::new(Self {
            config,
            base,
            base_path,
            credential,
            client,
            unhealthy_until_ms: AtomicU64::new(0),
        }))
    }

    /// The provider shape this upstream speaks.
    pub fn provider(&self) -> Provider {
        match self.config.dialect {
            UpstreamDialect::Openai => Provider::OpenAi,
            UpstreamDialect::Anthropic => Provider::Anthropic,
            UpstreamDialect::Bedrock => Provider::Bedrock,
        }
    }

    /// Whether this upstream serves `model` (any model when it lists none).
    pub fn serves(&self, model: Option<&str>) -> bool {
        match (&self.config.models, model) {
            (None, _) => true,
            (Some(_), None) => true,
            (Some(models), Some(m)) => models.iter().any(|x| x == m),
        }
    }

    /// The upstream URL for a gateway request path and query.
    ///
    /// A base URL ending in `/v1` (the OpenAI SDK convention) takes the request path
    /// without its `/v1`; any other base URL (the Anthropic SDK convention) takes it whole.
    pub fn url_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let suffix = if self.base_path.ends_with("/v1") {
            path_and_query.strip_prefix("/v1").unwrap_or(path_and_query)
        } else {
            path_and_query
        };
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(format!("{}{}", self.base_path, suffix).parse()?);
        Ok(Uri::from_parts(parts)?)
    }

    /// Headers for the upstream request: the client's headers minus hop-by-hop and
    /// gateway-private ones, with the gateway credential when one is configured.
    pub fn request_headers(&self, client_headers: &HeaderMap) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(client_headers.len());
        for (name, value) in client_headers {
            if is_hop_by_hop(name)
                || name == header::HOST
                || name == header::CONTENT_LENGTH
                || name == header::ACCEPT_ENCODING
                || name.as_str().starts_with("x-haechi-")
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        // The output stage reads response bodies, so they must not be compressed.
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if let Some(credential) = &self.credential {
            self.set_credential(&mut headers, credential.clone());
        }
        headers
    }

    /// Puts a credential in this dialect's auth header, replacing any other.
    pub fn set_credential(&self, headers: &mut HeaderMap, credential: HeaderValue) {
        headers.remove(header::AUTHORIZATION);
        headers.remove("x-api-key");
        match self.config.dialect {
            UpstreamDialect::Anthropic => {
                headers.insert(HeaderName::from_static("x-api-key"), credential);
            }
            _ => {
                headers.insert(header::AUTHORIZATION, credential);
            }
        }
    }

    /// The credential header value for a raw key, in this dialect's form.
    pub fn credential_value(&self, key: &str) -> Option<HeaderValue> {
        let value = match self.config.dialect {
            UpstreamDialect::Anthropic => key.to_string(),
            _ => format!("Bearer {key}"),
        };
        let mut value = HeaderValue::from_str(&value).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// Whether the upstream failed recently (connect error, 429 or 5xx): such upstreams
    /// are tried after the healthy ones for a short while (passive health).
    pub fn is_unhealthy(&self) -> bool {
        let until = self.unhealthy_until_ms.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    /// Marks the upstream unhealthy for [`UNHEALTHY_FOR_MS`].
    pub fn mark_unhealthy(&self) {
        self.unhealthy_until_ms
            .store(now_ms() + UNHEALTHY_FOR_MS, Ordering::Relaxed);
    }

    /// Clears the mark after a good answer.
    pub fn mark_healthy(&self) {
        self.unhealthy_until_ms.store(0, Ordering::Relaxed);
    }
}

/// How long a failed upstream is tried last.
pub const UNHEALTHY_FOR_MS: u64 = 10_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn build_client(config: &UpstreamConfig) -> Result<HttpClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &config.ca_file {
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
        }
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.timeouts.connect()));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .timer(TokioTimer::new())
        .build(https))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(base: &str, dialect: UpstreamDialect) -> Arc<Upstream> {
        Upstream::new(UpstreamConfig::new("t", base, dialect)).expect("builds")
    }

    #[test]
    fn url_joining_follows_sdk_conventions() {
        let u = upstream("https://api.openai.com/v1", UpstreamDialect::Openai);
        assert_eq!(
            u.url_for("/v1/chat/completions?x=1")
                .expect("url")
                .to_string(),
            "https://api.openai.com/v1/chat/completions?x=1"
        );
        let u = upstream("http://127.0.0.1:8000/openai/v1/", UpstreamDialect::Openai);
        assert_eq!(
            u.url_for("/v1/models").expect("url").to_string(),
            "http://127.0.0.1:8000/openai/v1/models"
        );
        let u = upstream("https://api.anthropic.com", UpstreamDialect::Anthropic);
        assert_eq!(
            u.url_for("/v1/messages").expect("url").to_string(),
            "https://api.anthropic.com/v1/messages"
        );
    }

    #[test]
    fn headers_are_cleaned_and_credential_swapped() {
        std::env::var("PATH").expect("PATH is set in tests");
        let mut config = UpstreamConfig::new("t", "http://x/v1", UpstreamDialect::Openai);
        config.api_key_env = Some("PATH".into());
        let u = Upstream::new(config).expect("builds");
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer client"),
        );
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("x-haechi-action", HeaderValue::from_static("allow"));
        h.insert("x-custom", HeaderValue::from_static("kept"));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let out = u.request_headers(&h);
        assert!(out.get(header::CONNECTION).is_none());
        assert!(out.get("x-haechi-action").is_none());
        assert_eq!(
            out.get("x-custom").map(|v| v.as_bytes()),
            Some(&b"kept"[..])
        );
        assert_eq!(
            out.get(header::ACCEPT_ENCODING).map(|v| v.as_bytes()),
            Some(&b"identity"[..])
        );
        let auth = out.get(header::AUTHORIZATION).expect("auth");
        assert_ne!(auth.as_bytes(), b"Bearer client");
        assert!(auth.as_bytes().starts_with(b"Bearer "));
    }
}
