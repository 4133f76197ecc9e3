//! textscore-core: the hot path of the textscore reference workload in plain Rust.
//!
//! `table` loads the normalisation table shared with the Python build; `model` hashes n-gram
//! features and applies the linear model; `faults` holds the injectable faults the canary demos
//! use (decided here, carried out by the pyo3 binding). Nothing here touches Python.

pub mod faults;
pub mod model;
pub mod table;

pub use model::{Scored, Scorer};

/// Limits shared with the HTTP layer, so that the native entry point never gets work the service
/// would refuse (the Python side validates requests against the same numbers).
pub const MAX_TEXTS: usize = 64;
pub const MAX_TEXT_CHARS: usize = 10_000;
