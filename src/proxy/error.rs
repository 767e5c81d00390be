//! One place that turns gateway errors into responses in the caller's provider shape.
//!
//! Errors are classified by where they came from (the client, the upstream, the gateway
//! itself), which decides the status and whether a failover to another upstream may help.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::body::{full, Body};
use crate::dialect::{anthropic, openai, Provider};

/// Which limit an upstream exchange ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    Connect,
    FirstByte,
    Idle,
    Total,
}

impl TimeoutKind {
    pub fn name(self) -> &'static str {
        match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::FirstByte => "first-byte",
            TimeoutKind::Idle => "idle-between-chunks",
            TimeoutKind::Total => "total",
        }
    }
}

/// Everything that can go wrong on the request path.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The client sent something we cannot use (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request body exceeds the configured limit (413).
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The client took too long to send its body (408).
    #[error("request body not received within {0} ms")]
    BodyTimeout(u64),
    /// No such route (404).
    #[error("unsupported route `{method} {path}`; supported routes: {supported}")]
    NotFound {
        method: String,
        path: String,
        supported: String,
    },
    /// No configured upstream can serve this request (502).
    #[error("no upstream serves this request: {0}")]
    NoUpstream(String),
    /// The upstream could not be reached (502).
    #[error("upstream `{upstream}` unreachable: {message}")]
    UpstreamConnect { upstream: String, message: String },
    /// The upstream's answer could not be read for output rules that block or rewrite;
    /// it is withheld rather than passed on unchecked (502).
    #[error("the answer of upstream `{upstream}` could not be read for the output checks (not the provider's JSON shape); it was withheld")]
    UncheckedAnswer { upstream: String },
    /// The upstream exceeded a time limit (504).
    #[error("upstream `{upstream}` exceeded the {} timeout of {millis} ms", kind.name())]
    UpstreamTimeout {
        upstream: String,
        kind: TimeoutKind,
        millis: u64,
    },
    /// The gateway is shutting down or otherwise not ready (503).
    #[error("{0}")]
    Unavailable(String),
    /// No or unknown API key (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The tenant may not do this: model or region outside its allowance (403).
    #[error("{0}")]
    Forbidden(String),
    /// A quota refused the request (429), with `Retry-After` and rate-limit headers.
    #[error("{message}")]
    RateLimited {
        message: String,
        headers: Vec<(http::HeaderName, HeaderValue)>,
        /// Decided by the local fallback limiter: the shared store was unreachable and
        /// fails open (recorded as a fail event).
        local_fallback: bool,
    },
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::NotFound { .. } => StatusCode::NOT_FOUND,
            GatewayError::NoUpstream(_)
            | GatewayError::UpstreamConnect { .. }
            | GatewayError::UncheckedAnswer { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden(_) => StatusCode::FORBIDDEN,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// OpenAI `error.type` / Anthropic `error.type` for this error.
    fn kinds(&self) -> (&'static str, &'static str) {
        match self {
            GatewayError::BadRequest(_) | GatewayError::BodyTimeout(_) => {
                ("invalid_request_error", "invalid_request_error")
            }
            GatewayError::PayloadTooLarge { .. } => ("invalid_request_error", "request_too_large"),
            GatewayError::NotFound { .. } => ("invalid_request_error", "not_found_error"),
            GatewayError::NoUpstream(_)
            | GatewayError::UpstreamConnect { .. }
            | GatewayError::UncheckedAnswer { .. }
            | GatewayError::UpstreamTimeout { .. } => ("upstream_error", "api_error"),
            GatewayError::Unavailable(_) => ("service_unavailable", "overloaded_error"),
            GatewayError::Unauthorized(_) => ("invalid_request_error", "authentication_error"),
            GatewayError::Forbidden(_) => ("invalid_request_error", "permission_error"),
            GatewayError::RateLimited { .. } => ("requests", "rate_limit_error"),
        }
    }

    /// A short machine-readable code (OpenAI `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::PayloadTooLarge { .. } => "request_too_large",
            GatewayError::BodyTimeout(_) => "request_timeout",
            GatewayError::NotFound { .. } => "unsupported_route",
            GatewayError::NoUpstream(_) => "no_upstream",
            GatewayError::UpstreamConnect { .. } => "upstream_unreachable",
            GatewayError::UncheckedAnswer { .. } => "upstream_answer_unreadable",
            GatewayError::UpstreamTimeout { kind, .. } => match kind {
                TimeoutKind::Connect => "upstream_connect_timeout",
                TimeoutKind::FirstByte => "upstream_first_byte_timeout",
                TimeoutKind::Idle => "upstream_idle_timeout",
                TimeoutKind::Total => "upstream_total_timeout",
            },
            GatewayError::Unavailable(_) => "unavailable",
            GatewayError::Unauthorized(_) => "invalid_api_key",
            GatewayError::Forbidden(_) => "forbidden",
            GatewayError::RateLimited { .. } => "rate_limit_exceeded",
        }
    }

    /// The error body in the caller's provider shape.
    pub fn body(&self, provider: Provider) -> Vec<u8> {
        let (openai_kind, anthropic_kind) = self.kinds();
        let message = format!("haechi: {self}");
        match provider {
            Provider::Anthropic => anthropic::error_body(&message, anthropic_kind),
            Provider::Bedrock => crate::dialect::bedrock::error_body(&message),
            Provider::OpenAi => openai::error_body(&message, openai_kind, Some(self.code())),
        }
    }

    /// The whole error response in the caller's provider shape.
    pub fn into_response(self, provider: Provider) -> Response<Body> {
        let mut response = Response::new(full(Bytes::from(self.body(provider))));
        *response.status_mut() = self.status();
        if let GatewayError::RateLimited { headers, .. } = &self {
            for (name, value) in headers {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if provider == Provider::Bedrock {
            // The AWS SDKs name the exception from this header.
            let kind = crate::dialect::bedrock::error_type(response.status().as_u16());
            response
                .headers_mut()
                .insert("x-amzn-errortype", HeaderValue::from_static(kind));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_per_provider() {
        let err = GatewayError::UpstreamTimeout {
            upstream: "seoul".into(),
            kind: TimeoutKind::FirstByte,
            millis: 50,
        };
        assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
        let v: serde_json::Value =
            serde_json::from_slice(&err.body(Provider::OpenAi)).expect("json");
        assert_eq!(v["error"]["code"], "upstream_first_byte_timeout");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("first-byte timeout of 50 ms")));
        let v: serde_json::Value =
            serde_json::from_slice(&err.body(Provider::Anthropic)).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "api_error");
    }
}
