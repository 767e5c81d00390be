//! OTLP receivers for tests: a minimal OTLP/HTTP one that answers 200 to every request
//! and reports each one (path, content type, body) on a channel, and a real OTLP/gRPC one
//! (tonic server with the generated `TraceService`) that reports decoded requests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;

/// One received HTTP request: path, content type, body.
pub type Received = (String, String, Vec<u8>);

/// A minimal HTTP/1.1 server answering 200 to every request and reporting each one.
pub fn receiver() -> (String, mpsc::Receiver<Received>) {
    receiver_on("127.0.0.1:0")
}

/// [`receiver`] on a given address (e.g. the port of a collector that was down).
pub fn receiver_on(addr: &str) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind(addr).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, tx));
        }
    });
    (format!("http://{addr}"), rx)
}

fn serve(stream: TcpStream, tx: mpsc::Sender<Received>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let (mut len, mut ctype) = (0usize, String::new());
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "content-type" => ctype = v.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let _ = tx.send((path, ctype, body));
        let _ = out.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        );
    }
}

// ---------------------------------------------------------------------------------------
// OTLP/gRPC

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;

struct Collector(mpsc::Sender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A real OTLP/gRPC collector endpoint (tonic server with the generated `TraceService`)
/// on its own thread and runtime: returns `http://127.0.0.1:<port>` and every decoded
/// export request.
pub fn grpc_receiver() -> (String, mpsc::Receiver<ExportTraceServiceRequest>) {
    let (tx, rx) = mpsc::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let incoming =
                tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
                    .unwrap();
            addr_tx.send(incoming.local_addr().unwrap()).unwrap();
            let _ = tonic::transport::Server::builder()
                .serve_with_incoming(TraceServiceServer::new(Collector(tx)), incoming)
                .await;
        });
    });
    let addr = addr_rx.recv().unwrap();
    (format!("http://{addr}"), rx)
}

/// One received span with the `service.name` of its resource.
#[derive(Debug, Clone)]
pub struct GrpcSpan {
    pub service: String,
    pub span: Span,
}

/// Flattens export requests into spans.
pub fn spans_of(request: &ExportTraceServiceRequest) -> Vec<GrpcSpan> {
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| string_attr(&r.attributes, "service.name"))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.push(GrpcSpan {
                    service: service.clone(),
                    span: span.clone(),
                });
            }
        }
    }
    out
}

/// A string attribute by key.
pub fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// An integer attribute by key.
pub fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        AnyValue::IntValue(i) => Some(*i),
        _ => None,
    }
}

/// A string-array attribute by key.
pub fn strings_attr(attrs: &[KeyValue], key: &str) -> Option<Vec<String>> {
    match attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        AnyValue::ArrayValue(a) => Some(
            a.values
                .iter()
                .filter_map(|v| match v.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}
