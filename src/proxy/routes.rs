//! The route table: which paths the gateway serves and what each one is.

use http::Method;

use super::error::GatewayError;
use crate::dialect::{Operation, Provider};

/// What a request asks the gateway for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A model call that is decoded, guarded and forwarded.
    Model(Operation),
    /// `GET /v1/models`, forwarded as is.
    ListModels,
    /// `POST /v1/guardrail/apply`: evaluate text without calling a model.
    GuardrailApply,
    Health,
    Ready,
    Metrics,
}

/// Every supported route, as listed in a 404.
pub const SUPPORTED: &[&str] = &[
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /v1/responses",
    "POST /v1/embeddings",
    "GET /v1/models",
    "POST /v1/messages",
    "POST /v1/messages/count_tokens",
    "POST /v1/guardrail/apply",
    "POST /model/{modelId}/converse",
    "POST /model/{modelId}/converse-stream",
    "POST /model/{modelId}/invoke",
    "POST /model/{modelId}/invoke-with-response-stream",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
];

/// Resolves a method and path to a route.
pub fn resolve(method: &Method, path: &str) -> Result<Route, GatewayError> {
    let route = match (method, path) {
        (&Method::POST, "/v1/chat/completions") => Some(Route::Model(Operation::ChatCompletions)),
        (&Method::POST, "/v1/completions") => Some(Route::Model(Operation::Completions)),
        (&Method::POST, "/v1/responses") => Some(Route::Model(Operation::Responses)),
        (&Method::POST, "/v1/embeddings") => Some(Route::Model(Operation::Embeddings)),
        (&Method::POST, "/v1/messages") => Some(Route::Model(Operation::Messages)),
        (&Method::POST, "/v1/messages/count_tokens") => Some(Route::Model(Operation::CountTokens)),
        (&Method::GET, "/v1/models") => Some(Route::ListModels),
        (&Method::POST, "/v1/guardrail/apply") => Some(Route::GuardrailApply),
        (&Method::GET, "/healthz") => Some(Route::Health),
        (&Method::GET, "/readyz") => Some(Route::Ready),
        (&Method::GET, "/metrics") => Some(Route::Metrics),
        (&Method::POST, p) if p.starts_with("/model/") => {
            crate::dialect::bedrock::model_from_path(p).map(|(op, _)| Route::Model(op))
        }
        _ => None,
    };
    route.ok_or_else(|| GatewayError::NotFound {
        method: method.to_string(),
        path: path.to_string(),
        supported: SUPPORTED.join(", "),
    })
}

/// The provider whose shape errors for this path should take, even when the route is
/// unknown: Anthropic paths get Anthropic errors, everything else OpenAI's.
pub fn provider_for_path(path: &str) -> Provider {
    if path.starts_with("/v1/messages") {
        Provider::Anthropic
    } else if path.starts_with("/model/") {
        Provider::Bedrock
    } else {
        Provider::OpenAi
    }
}

/// The provider an operation belongs to.
pub fn provider_of(operation: Operation) -> Provider {
    match operation {
        Operation::Messages | Operation::CountTokens => Provider::Anthropic,
        Operation::Converse
        | Operation::ConverseStream
        | Operation::Invoke
        | Operation::InvokeStream => Provider::Bedrock,
        _ => Provider::OpenAi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            (
                Method::POST,
                "/v1/chat/completions",
                Some(Route::Model(Operation::ChatCompletions)),
            ),
            (
                Method::POST,
                "/v1/messages",
                Some(Route::Model(Operation::Messages)),
            ),
            (Method::GET, "/v1/models", Some(Route::ListModels)),
            (Method::GET, "/v1/chat/completions", None),
            (Method::POST, "/v2/anything", None),
            (
                Method::POST,
                "/model/amazon.nova-lite-v1%3A0/converse-stream",
                Some(Route::Model(Operation::ConverseStream)),
            ),
            (Method::POST, "/model/m/unknown", None),
        ];
        for (method, path, want) in cases {
            assert_eq!(resolve(&method, path).ok(), want, "{method} {path}");
        }
        let err = resolve(&Method::POST, "/nope").expect_err("404");
        assert!(err.to_string().contains("POST /v1/messages"));
    }
}
