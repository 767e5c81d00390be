//! Audit: the hash-chained audit log, its verifier, Prometheus metrics and OpenTelemetry
//! setup. Nothing here ever sees prompt or answer text except [`keyed`] hashing.
//! See `docs/audit.md`.

pub mod keyed;
pub mod log;
pub mod metrics;
pub mod record;
pub mod telemetry;
pub mod verify;

#[cfg(test)]
mod chain_tests;
#[cfg(test)]
mod telemetry_tests;

pub use keyed::KeyedHasher;
pub use log::{AuditError, AuditLog, AuditLogOptions, FsyncPolicy};
pub use metrics::Metrics;
pub use record::{AuditRecord, FailEvent, Latency, Outcome, StageRecord, Usage};
pub use verify::{verify, VerifyReport};
