//! qlingest's engine: decode, normalize, redact, sample and chain observability events into
//! Arrow record batches. The engine is plain Rust; `py` holds the Python binding layer.

pub mod audit;
#[cfg(test)]
mod bench_clock;
pub mod decode;
pub mod engine;
pub mod error;
pub mod generate;
pub mod redact;
pub mod sample;
pub mod schema;

#[cfg(feature = "python")]
mod py;
