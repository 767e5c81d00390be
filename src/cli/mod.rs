//! Library side of the command-line tools: `scan`, `policy check`, `policy test`.
//!
//! Each takes readers, writers and paths and returns a result or an exit code, so `main`
//! only parses flags and the functions are tested without a process.

pub mod policy;
pub mod scan;

pub use policy::{load_policy_arg, policy_check, policy_test};
pub use scan::{scan, ScanOptions, ScanStats};
