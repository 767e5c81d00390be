//! The I/O shell: listener, request pipeline, upstream client, streaming bodies.
//!
//! Everything here does I/O; the decisions it applies come from the pure parts
//! (`dialect`, `engine`).

pub mod admission;
pub mod apply;
pub mod bedrock;
pub mod body;
pub mod error;
pub mod guard;
pub mod handler;
pub mod judge;
pub mod record;
pub mod routes;
pub mod server;
pub mod settle;
pub mod stream_guard;
pub mod upstream;

pub use handler::{Gateway, REQUEST_ID};
pub use server::{serve, serve_admin, tls_acceptor};
