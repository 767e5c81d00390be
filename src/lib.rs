//! Haechi: a guardrails and governance gateway for LLM APIs.
//!
//! See `ARCHITECTURE.md` for the map of modules onto the request path.

pub mod audit;
pub mod cli;
pub mod config;
pub mod detect;
pub mod dialect;
pub mod engine;
pub mod policy;
pub mod proxy;
pub mod tenancy;
pub mod text;
pub mod train;
