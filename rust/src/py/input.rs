//! Input bytes from Python: a `bytes` object, or a memoryview slice of one, read in place.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyMemoryView};

/// Borrowed input: readers hand the core a view of the block they read, so a chunk of a file
/// is never copied to cut it at its last newline.
pub enum InputBytes {
    Bytes(PyBackedBytes),
    View(PyBuffer<u8>),
}

impl InputBytes {
    /// `bytes`, or a contiguous memoryview over `bytes` (whose memory never changes, so the
    /// core may read it with the GIL released); anything else is a `TypeError`.
    pub fn extract(data: &Bound<'_, PyAny>) -> PyResult<InputBytes> {
        if data.is_instance_of::<PyMemoryView>() {
            let over_bytes = data.getattr("obj")?.is_instance_of::<PyBytes>();
            let buffer = PyBuffer::<u8>::get(data)?;
            if over_bytes && buffer.is_c_contiguous() && buffer.dimensions() == 1 {
                return Ok(InputBytes::View(buffer));
            }
            return Err(PyTypeError::new_err(
                "data must be bytes or a contiguous memoryview of bytes",
            ));
        }
        match data.extract::<PyBackedBytes>() {
            Ok(bytes) => Ok(InputBytes::Bytes(bytes)),
            Err(_) => Err(PyTypeError::new_err(format!(
                "data must be bytes or a contiguous memoryview of bytes, not {}",
                data.get_type().name()?
            ))),
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            InputBytes::Bytes(bytes) => bytes,
            // SAFETY: the buffer is a contiguous one-dimensional view of a `bytes` object (checked
            // in `extract`), held alive by `PyBuffer` and never written while it exists.
            InputBytes::View(buffer) => unsafe {
                std::slice::from_raw_parts(buffer.buf_ptr() as *const u8, buffer.len_bytes())
            },
        }
    }
}
