//! The Python binding layer: converts arguments, releases the GIL, delegates to the engine.

mod arrow;
mod audit;
mod conform;
mod engine;
mod error;
mod generate;
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
    m.add_class::<audit::PyChainVerifier>()?;
    generate::register(m)?;
    Ok(())
}
