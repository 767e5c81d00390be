//! What a request did, filled in by the phases and turned into one audit record and the
//! request metrics when the response completes.
//!
//! Non-streaming responses are recorded before they are returned. Streamed bodies are
//! wrapped in [`AuditBody`], which appends the record (with the usage read from the
//! stream) before it lets the body end, so a record is durable before the response
//! completes; a client that goes away yields a `cancelled` record.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::body::BoxError;
use super::settle::Usage;
use crate::audit::metrics::Metrics;
use crate::audit::record::{
    AuditRecord, FailEvent, Latency, Outcome, StageRecord, Usage as AuditUsage,
};
use crate::audit::{AuditError, AuditLog};
use crate::engine::Decision;

/// Shared slot the settlement reader fills with the usage it saw.
pub type UsageSlot = Arc<Mutex<Option<Usage>>>;

/// Set when the upstream body ended on a fault after the head was sent (timeout, reset):
/// the class of the fault, for the record's outcome and error.
pub type FaultSlot = Arc<Mutex<Option<&'static str>>>;

/// Facts about one request, collected along the request path. Never holds text.
#[derive(Debug, Default)]
pub struct RequestInfo {
    pub route: String,
    pub provider: Option<&'static str>,
    pub model: Option<String>,
    pub tenant: Option<String>,
    pub key_id: Option<String>,
    pub upstream: Option<String>,
    pub region: Option<String>,
    pub stream: bool,
    pub input: Option<StageRecord>,
    pub output: Option<StageRecord>,
    pub blocked: bool,
    pub quota: Option<String>,
    pub error: Option<String>,
    pub upstream_first_byte_ms: Option<f64>,
    pub usage: UsageSlot,
    /// Whether this request gets an audit record (model calls and guardrail checks).
    pub audited: bool,
    /// Whether the response body streams from the upstream (recorded at its end).
    pub deferred: bool,
    /// The request's server span (a `tracing` span continuing the client's trace).
    pub span: Option<tracing::Span>,
    /// The open GenAI client span of the upstream call, finished with the usage.
    pub genai: Mutex<Option<crate::audit::telemetry::GenAiSpan>>,
    /// The output stage's decision on a streamed answer, filled when the stream ends.
    pub stream_output: super::stream_guard::DecisionSlot,
    /// A fault of the upstream body after the head (see [`FaultSlot`]).
    pub fault: FaultSlot,
    /// Stores that failed during the request (quota store, ...) and the fail mode applied.
    pub fail_events: Vec<FailEvent>,
    /// Refused before the upstream because the audit log is failing (fail closed): the
    /// refusal is already counted, so its own record's fate is not counted again.
    pub audit_refused: bool,
}

impl RequestInfo {
    /// Records a stage decision (its rules, labels and scores; never text).
    pub fn stage(&mut self, decision: &Decision, latency_ms: f64) {
        let record = StageRecord::from_decision(decision).with_latency_ms(latency_ms);
        if decision.action == crate::engine::Verdict::Block {
            self.blocked = true;
        }
        match decision.stage {
            crate::engine::Stage::Input => self.input = Some(record),
            crate::engine::Stage::Output => self.output = Some(record),
        }
    }

    /// The output stage's record and whether anything blocked, including the decision
    /// a streamed answer's stage left in its slot.
    fn output_stage(&self) -> (Option<StageRecord>, bool) {
        if self.output.is_some() {
            return (self.output.clone(), self.blocked);
        }
        let Ok(slot) = self.stream_output.lock() else {
            return (None, self.blocked);
        };
        match slot.as_ref() {
            Some((decision, spent)) => (
                Some(
                    StageRecord::from_decision(decision)
                        .with_latency_ms(spent.as_secs_f64() * 1000.0),
                ),
                self.blocked || decision.action == crate::engine::Verdict::Block,
            ),
            None => (None, self.blocked),
        }
    }

    /// Builds the audit record for a response with `status`.
    pub fn to_record(
        &self,
        request_id: &str,
        status: u16,
        started: Instant,
        cancelled: bool,
    ) -> AuditRecord {
        let (output, blocked) = self.output_stage();
        let fault = self.fault.lock().ok().and_then(|f| *f);
        let outcome = if fault.is_some() && !blocked {
            Outcome::UpstreamError
        } else if cancelled {
            Outcome::Cancelled
        } else if blocked {
            Outcome::Blocked
        } else {
            match status {
                200..=399 => Outcome::Ok,
                401 => Outcome::Unauthorized,
                403 => Outcome::RegionRefused,
                429 => Outcome::QuotaRefused,
                400..=499 => Outcome::BadRequest,
                502 | 504 => Outcome::UpstreamError,
                _ => Outcome::Error,
            }
        };
        let mut record = AuditRecord::new(request_id, self.route.clone(), status, outcome);
        record.tenant = self.tenant.clone();
        record.key_id = self.key_id.clone();
        record.provider = self.provider.map(str::to_string);
        record.model = self.model.clone();
        record.upstream = self.upstream.clone();
        record.region = self.region.clone();
        record.stream = self.stream;
        record.input = self.input.clone();
        record.output = output;
        record.fail_events.extend(self.fail_events.iter().cloned());
        // Failed remote judges: the fail mode their rule chose, as a request-level event.
        for stage in [&record.input, &record.output].into_iter().flatten() {
            let events: Vec<_> = stage.judges.iter().filter_map(|j| j.fail_event()).collect();
            record.fail_events.extend(events);
        }
        record.quota = self.quota.clone();
        record.error = self.error.clone().or(fault.map(str::to_string));
        if let Ok(slot) = self.usage.lock() {
            if let Some(u) = *slot {
                record.usage = Some(AuditUsage {
                    input_tokens: Some(u.input),
                    output_tokens: Some(u.output),
                    estimated: false,
                });
            }
        }
        record.latency = Some(Latency {
            total_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
            upstream_first_byte_ms: self.upstream_first_byte_ms,
            upstream_total_ms: None,
        });
        if let Some(span) = &self.span {
            record.trace_id = crate::audit::telemetry::trace_id(span);
            crate::audit::telemetry::record_request(span, &record);
        }
        self.finish_genai(&record);
        record
    }

    /// Ends the GenAI client span with what the upstream reported.
    fn finish_genai(&self, record: &AuditRecord) {
        let Some(call) = self.genai.lock().ok().and_then(|mut g| g.take()) else {
            return;
        };
        let usage = record.usage.as_ref();
        let error = record.error.as_deref();
        call.finish(&crate::audit::telemetry::GenAiResult {
            response_model: record.model.as_deref(),
            input_tokens: usage.and_then(|u| u.input_tokens),
            output_tokens: usage.and_then(|u| u.output_tokens),
            finish_reasons: &[],
            error_type: error,
        });
    }

    /// Feeds the request metrics.
    pub fn observe(&self, metrics: &Metrics, status: u16) {
        let tenant = self.tenant.as_deref();
        metrics.record_request(tenant, &self.route, status);
        let (output, _) = self.output_stage();
        for (stage, record) in [("input", &self.input), ("output", &output)] {
            if let Some(r) = record {
                metrics.record_stage(tenant, stage, r);
                for event in r.judges.iter().filter_map(|j| j.fail_event()) {
                    let mode = event.mode.trim_start_matches("fail_");
                    metrics.record_fail_event("llm_judge", mode);
                }
            }
        }
        if let (Some(model), Ok(slot)) = (&self.model, self.usage.lock()) {
            if let Some(u) = *slot {
                metrics.record_tokens(tenant, model, u.input, u.output);
            }
        }
    }
}

/// Where records go, and what a failed write means.
#[derive(Clone)]
pub struct Recorder {
    pub log: Arc<AuditLog>,
    pub metrics: Arc<Metrics>,
    /// Fail closed: a record that cannot be written turns a non-streaming response into
    /// a 503 (streams end with an error). Fail open: log, count and serve.
    pub fail_closed: bool,
}

impl Recorder {
    /// Appends a record, reporting a failure loudly (log + metric).
    pub async fn append(&self, record: AuditRecord) -> Result<(), AuditError> {
        let result = self.log.append(record).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, disk_full = e.is_disk_full(), fail_closed = self.fail_closed, "audit record not written");
            self.metrics
                .record_fail_event("audit", if self.fail_closed { "closed" } else { "open" });
        }
        result
    }

    /// Audit pre-flight: `false` when the log fails closed and is known to be failing
    /// (its last record was not written and none has been since; see
    /// [`AuditLog::accepting`]). Counted as an `audit` fail event in closed mode.
    pub fn preflight(&self) -> bool {
        if !self.fail_closed || self.log.accepting() {
            return true;
        }
        tracing::error!(
            fail_closed = true,
            "audit log failing: request refused before the upstream"
        );
        self.metrics.record_fail_event("audit", "closed");
        false
    }

    /// Appends the record of a request the pre-flight refused: a failure is logged and
    /// counted as a lost record by the log, but not as a second fail event.
    pub async fn append_refused(&self, record: AuditRecord) -> Result<(), AuditError> {
        let result = self.log.append(record).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, disk_full = e.is_disk_full(), "audit record of a refused request not written");
        }
        result
    }
}

type AppendFuture = Pin<Box<dyn Future<Output = Result<(), AuditError>> + Send>>;

pin_project_lite::pin_project! {
    /// A streamed response body that writes the request's audit record at its end.
    pub struct AuditBody<B> {
        #[pin]
        inner: B,
        pending: Option<(Recorder, Arc<RequestInfo>, String, u16, Instant)>,
        append: Option<AppendFuture>,
        fail_closed: bool,
        done: bool,
    }

    impl<B> PinnedDrop for AuditBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some((recorder, info, request_id, status, started)) = this.pending.take() {
                // The client went away before the end: record the cancellation.
                let record = info.to_record(&request_id, status, started, true);
                info.observe(&recorder.metrics, status);
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        let _ = recorder.append(record).await;
                    });
                }
            }
        }
    }
}

impl<B> AuditBody<B> {
    pub fn new(
        inner: B,
        recorder: Recorder,
        info: Arc<RequestInfo>,
        request_id: String,
        status: u16,
        started: Instant,
    ) -> Self {
        Self {
            inner,
            fail_closed: recorder.fail_closed,
            pending: Some((recorder, info, request_id, status, started)),
            append: None,
            done: false,
        }
    }
}

impl<B> HttpBody for AuditBody<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if this.append.is_none() {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(None) => {
                    if let Some((recorder, info, request_id, status, started)) = this.pending.take()
                    {
                        let record = info.to_record(&request_id, status, started, false);
                        info.observe(&recorder.metrics, status);
                        *this.append = Some(Box::pin(async move { recorder.append(record).await }));
                    } else {
                        *this.done = true;
                        return Poll::Ready(None);
                    }
                }
                other => return other,
            }
        }
        let Some(append) = this.append.as_mut() else {
            return Poll::Ready(None);
        };
        match append.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                *this.done = true;
                *this.append = None;
                match result {
                    Ok(()) => Poll::Ready(None),
                    // Fail closed: the body ends with an error, so the client sees an
                    // incomplete response (the connection is cut before its end).
                    Err(e) if *this.fail_closed => Poll::Ready(Some(Err(Box::new(e)))),
                    // Fail open already logged and counted; the stream ends normally.
                    Err(_) => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
