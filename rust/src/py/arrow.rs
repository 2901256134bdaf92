//! Arrow batches across the boundary through the Arrow PyCapsule interface, without copies.

use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::{RecordBatch, RecordBatchIterator};
use arrow_schema::SchemaRef;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

/// Record batches that Polars (or any Arrow consumer) takes over with `pl.DataFrame(obj)`.
#[pyclass(name = "ArrowBatches", module = "qlingest._core", frozen)]
pub struct PyArrowBatches {
    schema: SchemaRef,
    batches: std::sync::Mutex<Option<Vec<RecordBatch>>>,
    rows: usize,
}

impl PyArrowBatches {
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> PyArrowBatches {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        PyArrowBatches {
            schema,
            batches: std::sync::Mutex::new(Some(batches)),
            rows,
        }
    }
}

#[pymethods]
impl PyArrowBatches {
    /// Exports the batches once, as an `arrow_array_stream` capsule.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The schema is fixed by the core; a requested one is not negotiated.
        let _ = requested_schema;
        let batches = self
            .batches
            .lock()
            .expect("batch lock")
            .take()
            .ok_or_else(|| {
                PyTypeError::new_err("these Arrow batches were already exported; export them once")
            })?;
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), self.schema.clone());
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    fn __len__(&self) -> usize {
        self.rows
    }
}

/// Reads every batch of an object that implements `__arrow_c_stream__` (a Polars frame).
pub fn import_batches(obj: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    let capsule = obj.call_method0("__arrow_c_stream__").map_err(|_| {
        PyTypeError::new_err("expected a Polars DataFrame or another Arrow stream object")
    })?;
    let capsule = capsule.cast_into::<PyCapsule>()?;
    let ptr = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
    // SAFETY: the capsule holds an ArrowArrayStream by the PyCapsule interface contract; we move
    // it out and leave a released stream behind, so the producer's destructor does nothing.
    let stream = unsafe {
        std::ptr::replace(
            ptr.as_ptr() as *mut FFI_ArrowArrayStream,
            FFI_ArrowArrayStream::empty(),
        )
    };
    let reader = RecordBatchStreamReader::try_new(stream)
        .map_err(|e| PyTypeError::new_err(format!("Arrow stream: {e}")))?;
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyTypeError::new_err(format!("Arrow stream: {e}")))?;
    Ok((schema, batches))
}
