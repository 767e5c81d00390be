//! Identity, quotas and the pseudonym vault: the shared state of the gateway.
//!
//! - [`keys`]: tenant API keys (`hk_...`), stored as `sha256:<hex>`, looked up in constant time.
//! - [`quota`]: the [`quota::QuotaStore`] trait (admit a request, settle its real usage),
//!   with an in-memory backend ([`memory`]) and a Redis backend ([`redis`]) for several
//!   replicas. The algorithm and its error bounds are in `docs/quotas.md`.
//! - [`tokens`]: prompt token estimates for admission.
//! - [`vault`]: the pseudonym vault (placeholder → original value), in memory or in Redis
//!   encrypted with AES-256-GCM.
//! - [`clock`]: the injectable clock that makes windows and TTLs testable.

pub mod clock;
pub mod keys;
pub mod memory;
pub mod quota;
pub mod redis;
pub mod tokens;
pub mod vault;
