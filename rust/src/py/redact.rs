//! `Redactor`: the redaction stage on its own, for strings and frames.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StringViewArray};
use arrow_schema::{DataType, Field, Schema};
use pyo3::prelude::*;

use super::arrow::{import_batches, PyArrowBatches};
use super::error::IntoPyResult;
use crate::redact::Redactor;

#[pyclass(name = "Redactor", module = "qlingest._core", frozen)]
pub struct PyRedactor {
    redactor: Redactor,
}

#[pymethods]
impl PyRedactor {
    #[new]
    fn new(config_json: &str) -> PyResult<PyRedactor> {
        Ok(PyRedactor {
            redactor: Redactor::from_json(config_json).py_err()?,
        })
    }

    #[getter]
    fn rule_names(&self) -> Vec<String> {
        self.redactor.rule_names().to_vec()
    }

    /// Redacted copies of `texts` and the redactions made per rule.
    fn redact_texts(&self, py: Python<'_>, texts: Vec<String>) -> (Vec<String>, Vec<u64>) {
        py.detach(|| {
            let mut counts = vec![0; self.redactor.rule_names().len()];
            let out = texts
                .iter()
                .map(|t| self.redactor.redact_text(t, &mut counts).into_owned())
                .collect();
            (out, counts)
        })
    }

    /// Every string column of `frame` redacted (JSON text is walked, so key rules apply), and
    /// the redactions made per rule.
    fn redact_frame(
        &self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
    ) -> PyResult<(PyArrowBatches, Vec<u64>)> {
        let (schema, batches) = import_batches(frame)?;
        let mut counts = vec![0; self.redactor.rule_names().len()];
        let out = py.detach(|| {
            batches
                .iter()
                .map(|b| self.redact_batch(b, &mut counts))
                .collect::<Result<Vec<_>, _>>()
        });
        let out = out
            .map_err(|e: arrow_schema::ArrowError| crate::error::Error::from(e))
            .py_err()?;
        let schema = out.first().map_or(schema, |b| b.schema());
        Ok((PyArrowBatches::new(schema, out), counts))
    }
}

impl PyRedactor {
    fn redact_batch(
        &self,
        batch: &RecordBatch,
        counts: &mut [u64],
    ) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let strings: Option<Vec<Option<&str>>> = match column.data_type() {
                DataType::Utf8 => Some(column.as_string::<i32>().iter().collect()),
                DataType::LargeUtf8 => Some(column.as_string::<i64>().iter().collect()),
                DataType::Utf8View => Some(column.as_string_view().iter().collect()),
                _ => None,
            };
            let Some(strings) = strings else {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
                continue;
            };
            let redacted: StringViewArray = strings
                .iter()
                .map(|v| v.map(|s| self.redact_value(s, counts)))
                .collect();
            fields.push(Field::new(
                field.name(),
                DataType::Utf8View,
                field.is_nullable(),
            ));
            columns.push(Arc::new(redacted) as ArrayRef);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
    }

    fn redact_value(&self, value: &str, counts: &mut [u64]) -> String {
        let bytes = self.redactor.redact_bytes(value.as_bytes(), counts);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
