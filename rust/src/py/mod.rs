//! The Python binding layer: converts arguments, releases the GIL, delegates to the engine.

mod arrow;
mod audit;
mod conform;
mod emit;
mod engine;
mod error;
mod generate;
mod input;
mod json;
mod redact;
mod sample;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    error::register(m)?;
    m.add_class::<arrow::PyArrowBatches>()?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::PyProcessResult>()?;
    m.add_class::<sample::PySampler>()?;
    m.add_class::<redact::PyRedactor>()?;
    m.add_class::<audit::PyAuditChain>()?;
    m.add_function(wrap_pyfunction!(audit::verify_chain, m)?)?;
    m.add_function(wrap_pyfunction!(key_columns, m)?)?;
    m.add_class::<audit::PyChainVerifier>()?;
    m.add_class::<emit::PyPendingBatch>()?;
    generate::register(m)?;
    Ok(())
}

/// The top-level input keys the decoder reads into columns, each with what it fills:
/// `timestamp`, `level`, `message`, `service` or `other` (any other column).
#[pyfunction]
fn key_columns() -> Vec<(&'static str, &'static str)> {
    use crate::decode::builder::col;
    use crate::decode::keys::{Target, KEYS};
    let kind = |target: Target| match target {
        Target::Timestamp => "timestamp",
        Target::Level | Target::SeverityNumber => "level",
        Target::Str(col::MESSAGE) => "message",
        Target::Str(col::SERVICE) => "service",
        _ => "other",
    };
    KEYS.iter()
        .map(|&(name, target)| (name, kind(target)))
        .collect()
}
