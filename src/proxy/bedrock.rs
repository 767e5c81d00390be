//! Amazon Bedrock on both sides of the gateway.
//!
//! In front: AWS SDK clients call `/model/{id}/converse` (and `converse-stream`,
//! `invoke`, `invoke-with-response-stream`); their tenant is found from a gateway key or
//! from the access key id of their SigV4 `Authorization`. Behind: requests to a
//! `dialect: bedrock` upstream are re-signed with SigV4 (`aws-sigv4`) using the
//! gateway's own AWS credentials and the upstream's region; OpenAI chat-completion
//! requests are translated to Converse and their answers (JSON or event stream) back.
//! The handler calls into this module at a few named hooks; everything Bedrock-specific
//! lives here and in `dialect::bedrock`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;

use super::admission::{Identity, Tenancy};
use super::body::{full, Body, BoxError};
use super::error::GatewayError;
use super::upstream::{Upstream, UpstreamError};
use crate::config::{GatewayConfig, UpstreamDialect};
use crate::dialect::bedrock::converse::{self, StreamTranslator};
use crate::dialect::bedrock::eventstream::{self, FrameDecoder};
use crate::dialect::bedrock::{self as dialect_bedrock, model_from_path, path_for};
use crate::dialect::{Exchange, Operation, Provider};
use crate::policy::model::BlockStyle;

/// The SigV4 service name of the Bedrock runtime.
pub const SERVICE: &str = "bedrock";

/// The gateway's own AWS credentials, read once at start when some upstream speaks
/// Bedrock: from the standard environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), else from the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`) for the profile
/// `AWS_PROFILE` (default `default`).
#[derive(Debug, Default)]
pub struct Signer {
    credentials: Option<Credentials>,
}

impl Signer {
    pub fn from_env(config: &GatewayConfig) -> Result<Self, UpstreamError> {
        let Some(first) = config
            .upstreams
            .iter()
            .find(|u| u.dialect == UpstreamDialect::Bedrock)
        else {
            return Ok(Self::default());
        };
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let from_env = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some((id, secret, var("AWS_SESSION_TOKEN"), "env")),
            _ => None,
        };
        let from_file = || {
            let path = var("AWS_SHARED_CREDENTIALS_FILE")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    var("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials"))
                })?;
            let text = std::fs::read_to_string(path).ok()?;
            let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
            let (id, secret, token) = profile_credentials(&text, &profile)?;
            Some((id, secret, token, "profile"))
        };
        let Some((id, secret, token, source)) = from_env.or_else(from_file) else {
            return Err(UpstreamError::Setup {
                name: first.name.clone(),
                message: "a bedrock upstream needs AWS credentials: AWS_ACCESS_KEY_ID and \
                          AWS_SECRET_ACCESS_KEY in the environment, or a profile in the \
                          shared credentials file (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE)"
                    .into(),
            });
        };
        let credentials = Credentials::new(id, secret, token, None, source);
        Ok(Self {
            credentials: Some(credentials),
        })
    }

    /// Signs `request` (whose body is `body`) for `region`, replacing any signature.
    fn sign(
        &self,
        request: &mut Request<Full<Bytes>>,
        body: &[u8],
        region: &str,
    ) -> Result<(), String> {
        let credentials = self
            .credentials
            .clone()
            .ok_or("no AWS credentials configured")?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        // Only headers that reach the upstream unchanged are signed; `host` is taken
        // from the URI, as hyper sends it.
        let signed: Vec<(&str, &str)> = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| ("content-type", v))
            .into_iter()
            .collect();
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            signed.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

/// The access key id, secret and session token of `profile` in an AWS shared
/// credentials file (INI: `[profile]` sections of `key = value` lines).
fn profile_credentials(text: &str, profile: &str) -> Option<(String, String, Option<String>)> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
            match key.trim() {
                "aws_access_key_id" => id = value,
                "aws_secret_access_key" => secret = value,
                "aws_session_token" => token = value,
                _ => {}
            }
        }
    }
    Some((id?, secret?, token))
}

/// Whether a SigV4 `Authorization` header is present, and its access key id.
pub fn sigv4_access_key(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("Credential="))?;
    credential.split('/').next().filter(|id| !id.is_empty())
}

/// Identify hook: a gateway key (`x-haechi-key`, `x-api-key`, `Authorization: Bearer`)
/// wins; otherwise the access key id of a SigV4 signature names the tenant that lists it
/// in `aws_access_key_ids`.
pub fn identify(
    tenancy: &Tenancy,
    config: &GatewayConfig,
    headers: &HeaderMap,
) -> Result<Identity, GatewayError> {
    let Some(key_id) = sigv4_access_key(headers) else {
        return tenancy.identify(headers);
    };
    if headers.contains_key("x-api-key") || headers.contains_key("x-haechi-key") {
        let mut without = headers.clone();
        without.remove(header::AUTHORIZATION);
        return tenancy.identify(&without);
    }
    let tenant = config
        .tenants
        .iter()
        .find(|t| t.aws_access_key_ids.iter().any(|k| k == key_id))
        .ok_or_else(|| {
            GatewayError::Unauthorized(
                "unknown AWS access key id (list it in a tenant's aws_access_key_ids, or send a gateway key in x-api-key)".into(),
            )
        })?;
    Ok(Identity {
        tenant: tenant.id.as_str().into(),
        key_id: format!("aws:{key_id}").into(),
    })
}

/// Decode hook: Bedrock puts the model id in the path.
pub fn set_model(exchange: &mut Exchange, path: &str) {
    if exchange.provider == Provider::Bedrock {
        if let Some((_, model)) = model_from_path(path) {
            exchange.model = Some(model);
        }
    }
}

/// Geography prefixes of Bedrock cross-region inference profiles (`us.anthropic...`):
/// such a model id lets Bedrock process the request in any region of that geography.
const CROSS_REGION_PREFIXES: &[&str] = &[
    "us.", "us-gov.", "eu.", "apac.", "jp.", "au.", "ca.", "global.",
];

/// Region-pin hook: a Bedrock model id must not carry a request out of the allowed
/// regions. The upstream's region is pinned by configuration, but the model id can name
/// another place: an ARN names its region (`arn:aws:bedrock:us-east-1:...`), and a
/// cross-region inference profile (`us.`, `eu.`, `apac.`, `global.` ...) lets Bedrock
/// route to other regions. With pinned regions, both are refused (403).
pub fn check_model_region(model: &str, regions: &[String]) -> Result<(), GatewayError> {
    let refuse = |why: String| {
        GatewayError::Forbidden(format!(
            "{why}; this request is pinned to {}",
            regions.join(", ")
        ))
    };
    let resource = match model.strip_prefix("arn:") {
        Some(arn) => {
            // arn:PARTITION:bedrock:REGION:ACCOUNT:RESOURCE
            let mut fields = arn.splitn(5, ':');
            let region = fields.nth(2).unwrap_or("");
            if !regions.iter().any(|r| r == region) {
                return Err(refuse(format!(
                    "the model ARN names region `{region}`, outside the allowed regions"
                )));
            }
            let resource = fields.nth(1).unwrap_or("");
            resource.rsplit('/').next().unwrap_or(resource)
        }
        None => model,
    };
    let lower = resource.to_ascii_lowercase();
    if let Some(prefix) = CROSS_REGION_PREFIXES.iter().find(|p| lower.starts_with(*p)) {
        return Err(refuse(format!(
            "model `{resource}` is a cross-region inference profile (`{prefix}`), which may run outside the allowed regions"
        )));
    }
    Ok(())
}

/// Candidates hook: a Bedrock upstream also serves OpenAI chat clients, for the models
/// it lists by name (an upstream without a model list is not guessed into serving them).
pub fn serves_openai(upstream: &Upstream, provider: Provider, model: Option<&str>) -> bool {
    provider == Provider::OpenAi
        && upstream.provider() == Provider::Bedrock
        && model.is_some_and(|m| {
            upstream
                .config
                .models
                .as_ref()
                .is_some_and(|list| list.iter().any(|x| x == m))
        })
}

/// How the answer of a translated request is turned back into the client's shape.
#[derive(Debug, Clone)]
pub struct ChatTranslation {
    model: String,
    stream: bool,
    include_usage: bool,
}

/// Send hook, for a Bedrock upstream: translate an OpenAI chat request to Converse,
/// drop the client's credentials and sign the request for the upstream's region.
/// Returns what the answer needs (see [`tag`]).
pub fn prepare(
    signer: &Signer,
    upstream: &Upstream,
    request: &mut Request<Full<Bytes>>,
    body: &Bytes,
) -> Result<Option<ChatTranslation>, GatewayError> {
    let bad = |m: String| GatewayError::BadRequest(m);
    let path = request.uri().path().to_string();
    let (path, body, translation) = if let Some((operation, model)) = model_from_path(&path) {
        (path_for(operation, &model), body.clone(), None)
    } else if path.ends_with("/chat/completions") {
        let call = converse::chat_to_converse(body).map_err(|e| bad(e.message))?;
        let operation = if call.stream {
            Operation::ConverseStream
        } else {
            Operation::Converse
        };
        let translation = ChatTranslation {
            model: call.model.clone(),
            stream: call.stream,
            include_usage: call.include_usage,
        };
        (
            path_for(operation, &call.model),
            Bytes::from(call.body),
            Some(translation),
        )
    } else {
        return Err(bad(format!(
            "upstream `{}` speaks Bedrock: it serves Bedrock routes and OpenAI chat completions only",
            upstream.config.name
        )));
    };
    let uri = upstream
        .url_for(&path)
        .map_err(|e| bad(format!("bad Bedrock path: {e}")))?;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    let drop: Vec<_> = headers
        .keys()
        .filter(|n| {
            let n = n.as_str();
            n == "authorization"
                || n == "x-api-key"
                || n.starts_with("x-amz-")
                || n.starts_with("amz-sdk-")
        })
        .cloned()
        .collect();
    for name in drop {
        headers.remove(name);
    }
    if translation.is_some() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    }
    let region = upstream.config.region.as_deref().unwrap_or("us-east-1");
    signer
        .sign(request, &body, region)
        .map_err(|e| GatewayError::UpstreamConnect {
            upstream: upstream.config.name.clone(),
            message: format!("SigV4 signing failed: {e}"),
        })?;
    *request.body_mut() = Full::new(body);
    Ok(translation)
}

/// Send hook: remembers on the response how to translate it (see [`adapt_response`]).
pub fn tag<B>(mut response: Response<B>, translation: Option<ChatTranslation>) -> Response<B> {
    if let Some(t) = translation {
        response.extensions_mut().insert(t);
    }
    response
}

/// Response hook: an answer for an OpenAI client from a Bedrock upstream becomes an
/// OpenAI answer (JSON, SSE or error); a Bedrock event stream relayed to a Bedrock client
/// has its frames checked, so that corruption ends it with an exception frame. Every
/// other answer passes unchanged.
pub async fn adapt_response<B>(
    upstream: &Upstream,
    response: Response<B>,
    deadline: Instant,
    limit: usize,
    request_id: &str,
) -> Result<Response<Body>, GatewayError>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    let body = body.map_err(Into::into).boxed_unsync();
    if upstream.provider() != Provider::Bedrock {
        return Ok(Response::from_parts(parts, body));
    }
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(eventstream::CONTENT_TYPE));
    let Some(translation) = parts.extensions.remove::<ChatTranslation>() else {
        if is_stream && parts.status.is_success() {
            let body = Relay::new(body, CheckFrames(FrameDecoder::new(), false));
            return Ok(Response::from_parts(parts, body.boxed_unsync()));
        }
        return Ok(Response::from_parts(parts, body));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let id = format!("chatcmpl-{}", request_id.trim_start_matches("req_"));
    if parts.status.is_success() && is_stream {
        let translator = StreamTranslator::new(&id, &translation.model, translation.include_usage);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        let body = Relay::new(body, translator);
        return Ok(Response::from_parts(parts, body.boxed_unsync()));
    }
    let read_error = |message: String| GatewayError::UpstreamConnect {
        upstream: upstream.config.name.clone(),
        message: format!("reading the answer: {message}"),
    };
    let bytes = tokio::time::timeout_at(deadline, read_all(body, limit))
        .await
        .map_err(|_| read_error("timed out".into()))?
        .map_err(read_error)?;
    let out = if !parts.status.is_success() {
        let kind = parts
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok());
        converse::error_to_openai(&bytes, kind)
    } else if translation.stream {
        // A stream was asked for but a JSON document came: say so in the stream.
        let mut t = StreamTranslator::new(&id, &translation.model, false);
        let mut out = t.push(&bytes);
        out.extend(t.finish());
        out
    } else {
        converse::converse_to_chat(&bytes, &translation.model, &id)
            .map_err(|e| read_error(e.message))?
    };
    let content_type = if translation.stream && parts.status.is_success() {
        "text/event-stream"
    } else {
        "application/json"
    };
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(Response::from_parts(parts, full(out)))
}

async fn read_all(mut body: Body, limit: usize) -> Result<Bytes, String> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() {
            if buf.len() + data.len() > limit {
                return Err(format!("answer exceeds the limit of {limit} bytes"));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Block hook: a blocked Bedrock request gets what Bedrock answers when a guardrail
/// intervenes (or, with the error style, a Bedrock `ValidationException`).
pub fn block_response(
    exchange: &Exchange,
    message: &str,
    style: BlockStyle,
    request_id: &str,
) -> Response<Body> {
    let op = exchange.operation;
    let (status, content_type, body) = if style == BlockStyle::Refusal {
        if exchange.stream {
            (
                StatusCode::OK,
                eventstream::CONTENT_TYPE,
                dialect_bedrock::refusal_stream(op, message, request_id),
            )
        } else {
            (
                StatusCode::OK,
                "application/json",
                dialect_bedrock::refusal_json(op, message, request_id)
                    .to_string()
                    .into_bytes(),
            )
        }
    } else {
        (
            StatusCode::BAD_REQUEST,
            "application/json",
            dialect_bedrock::error_body(message),
        )
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if !status.is_success() {
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_static("ValidationException"),
        );
    }
    response
}

/// A byte-stream rewrite applied frame by frame.
trait Transform: Send + 'static {
    fn push(&mut self, data: &[u8]) -> Vec<u8>;
    /// The upstream ended.
    fn finish(&mut self) -> Vec<u8>;
    /// The upstream failed (e.g. a timeout); `None` passes the error on.
    fn abort(&mut self, message: &str) -> Option<Vec<u8>>;
    fn finished(&self) -> bool;
}

impl Transform for StreamTranslator {
    fn push(&mut self, data: &[u8]) -> Vec<u8> {
        StreamTranslator::push(self, data)
    }
    fn finish(&mut self) -> Vec<u8> {
        StreamTranslator::finish(self)
    }
    fn abort(&mut self, message: &str) -> Option<Vec<u8>> {
        Some(StreamTranslator::abort(self, message))
    }
    fn finished(&self) -> bool {
        self.is_finished()
    }
}

/// Passes valid event-stream frames through whole; a corrupt or truncated stream ends
/// with an `internalServerException` frame, which the AWS SDKs raise.
struct CheckFrames(FrameDecoder, bool);

impl CheckFrames {
    fn fail(&mut self, message: &str) -> Vec<u8> {
        self.1 = true;
        eventstream::encode_exception(
            "internalServerException",
            &format!("haechi: the Bedrock upstream sent a malformed event stream: {message}"),
        )
        .to_vec()
    }
}

impl Transform for CheckFrames {
    fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if self.1 {
            return Vec::new();
        }
        self.0.push(data);
        let mut out = Vec::new();
        loop {
            match self.0.next_frame() {
                Ok(Some((raw, _))) => out.extend_from_slice(&raw),
                Ok(None) => break,
                Err(e) => {
                    out.extend(self.fail(&e.to_string()));
                    break;
                }
            }
        }
        out
    }
    fn finish(&mut self) -> Vec<u8> {
        if self.1 {
            return Vec::new();
        }
        match self.0.finish() {
            Ok(()) => Vec::new(),
            Err(e) => self.fail(&e.to_string()),
        }
    }
    fn abort(&mut self, _message: &str) -> Option<Vec<u8>> {
        None
    }
    fn finished(&self) -> bool {
        self.1
    }
}

pin_project_lite::pin_project! {
    /// A body rewritten on the fly by a [`Transform`].
    struct Relay<T> {
        #[pin]
        inner: Body,
        transform: T,
        done: bool,
    }
}

impl<T> Relay<T> {
    fn new(inner: Body, transform: T) -> Self {
        Self {
            inner,
            transform,
            done: false,
        }
    }
}

impl<T: Transform> HttpBody for Relay<T> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let out = this.transform.push(&data);
                    if this.transform.finished() {
                        *this.done = true;
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    *this.done = true;
                    return match this.transform.abort(&e.to_string()) {
                        Some(out) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        None => Poll::Ready(Some(Err(e))),
                    };
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    let out = this.transform.finish();
                    if out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_a_shared_credentials_file_profile() {
        let file = "# comment\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n[prod]\naws_access_key_id=AKIAPROD\naws_secret_access_key = s2\naws_session_token = tok\n";
        assert_eq!(
            profile_credentials(file, "default"),
            Some(("AKIADEFAULT".into(), "s1".into(), None))
        );
        assert_eq!(
            profile_credentials(file, "prod"),
            Some(("AKIAPROD".into(), "s2".into(), Some("tok".into())))
        );
        assert_eq!(profile_credentials(file, "missing"), None);
        assert_eq!(
            profile_credentials("[x]\naws_access_key_id = A\n", "x"),
            None
        );
    }

    #[test]
    fn pinned_regions_refuse_models_that_leave_them() {
        let pinned = vec!["ap-northeast-2".to_string()];
        for ok in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.nova-lite-v1:0",
            "arn:aws:bedrock:ap-northeast-2:123456789012:provisioned-model/abc",
            "arn:aws:bedrock:ap-northeast-2::foundation-model/amazon.nova-lite-v1:0",
        ] {
            assert!(check_model_region(ok, &pinned).is_ok(), "{ok}");
        }
        for bad in [
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "APAC.anthropic.claude-3-haiku-20240307-v1:0",
            "global.anthropic.claude-sonnet-4",
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
            "arn:aws:bedrock:ap-northeast-2:123456789012:inference-profile/apac.amazon.nova-lite-v1:0",
            "arn:aws:bedrock",
        ] {
            let err = check_model_region(bad, &pinned).expect_err(bad);
            assert_eq!(err.status(), StatusCode::FORBIDDEN, "{bad}");
        }
    }

    #[test]
    fn access_key_id_from_sigv4() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIATENANT0001/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
            ),
        );
        assert_eq!(sigv4_access_key(&h), Some("AKIATENANT0001"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer hk"));
        assert_eq!(sigv4_access_key(&h), None);
    }
}
