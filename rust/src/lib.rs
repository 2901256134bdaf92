//! qlingest's engine: decode, normalize, redact, sample and chain observability events into
//! Arrow record batches. The engine is plain Rust; `py` holds the Python binding layer.

pub mod error;
pub mod redact;
pub mod schema;

#[cfg(feature = "python")]
mod py;
