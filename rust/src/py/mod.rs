//! The Python binding layer: converts arguments, releases the GIL, delegates to the engine.

mod arrow;
mod decode;
mod error;
mod generate;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    error::register(m)?;
    m.add_class::<arrow::PyArrowBatches>()?;
    m.add_class::<decode::PyDecoder>()?;
    m.add_class::<decode::PyDecodeResult>()?;
    generate::register(m)?;
    Ok(())
}
