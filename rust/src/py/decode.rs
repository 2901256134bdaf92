//! `Decoder`: bytes in, event and dead-letter batches out, with the GIL released.

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;

use super::arrow::PyArrowBatches;
use super::error::IntoPyResult;
use crate::decode::{dead_letter_schema, DecodeOutput, Decoder, NoScrub};
use crate::schema::event_schema;

#[pyclass(name = "Decoder", module = "qlingest._core", frozen)]
pub struct PyDecoder {
    decoder: Decoder,
}

/// What one `Decoder.decode` call produced.
#[pyclass(name = "DecodeResult", module = "qlingest._core", frozen, get_all)]
pub struct PyDecodeResult {
    events: Py<PyArrowBatches>,
    dead_letters: Py<PyArrowBatches>,
    lines: u64,
    blank_lines: u64,
    unparsed: u64,
    redactions: Vec<u64>,
}

#[pymethods]
impl PyDecoder {
    #[new]
    fn new(config_json: &str) -> PyResult<PyDecoder> {
        Ok(PyDecoder {
            decoder: Decoder::from_json(config_json).py_err()?,
        })
    }

    /// Decodes whole lines of `data`; the caller frames input at newlines.
    #[pyo3(signature = (data, *, source = "-", first_line = 1, observed_ns))]
    fn decode(
        &self,
        py: Python<'_>,
        data: PyBackedBytes,
        source: &str,
        first_line: u64,
        observed_ns: i64,
    ) -> PyResult<PyDecodeResult> {
        let out = py
            .detach(|| {
                self.decoder
                    .decode(&data, &NoScrub, source, first_line, observed_ns)
            })
            .py_err()?;
        into_result(py, out)
    }
}

fn into_result(py: Python<'_>, out: DecodeOutput) -> PyResult<PyDecodeResult> {
    let events = PyArrowBatches::new(event_schema(), vec![out.events]);
    let dead = PyArrowBatches::new(dead_letter_schema(), vec![out.dead_letters]);
    Ok(PyDecodeResult {
        events: Py::new(py, events)?,
        dead_letters: Py::new(py, dead)?,
        lines: out.lines,
        blank_lines: out.blank_lines,
        unparsed: out.unparsed,
        redactions: out.redactions,
    })
}
