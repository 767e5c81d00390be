//! Policies: the file model, loading, validation, compiling and hot reload.
//!
//! `model` is the YAML as data; `load` reads and parses files with positions; `compile`
//! resolves inheritance and builds detectors into a [`PolicySet`] (returning every problem
//! at once); `reload` keeps the current set in an `ArcSwap` and watches the directory.

pub mod compile;
pub mod load;
pub mod model;
pub mod reload;
pub mod schema;

pub use compile::{
    compile_sources, embedded_default, load_path, Binding, CompiledPolicy, CompiledRule, Messages,
    PolicySet,
};
pub use load::{PolicyErrors, Problem, Source};
pub use reload::{PolicyStore, ReloadStatus};
