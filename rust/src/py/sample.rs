//! `Sampler`: the sampling stage on its own, for library callers with frames.

use std::sync::Mutex;

use pyo3::prelude::*;

use super::arrow::{import_batches, PyArrowBatches};
use super::conform::conform;
use super::error::IntoPyResult;
use crate::sample::{SamplePolicy, Sampler};

#[pyclass(name = "Sampler", module = "qlingest._core", frozen)]
pub struct PySampler {
    sampler: Mutex<Sampler>,
}

#[pymethods]
impl PySampler {
    #[new]
    fn new(policy_json: &str) -> PyResult<PySampler> {
        let sampler = SamplePolicy::from_json(policy_json)
            .and_then(Sampler::new)
            .py_err()?;
        Ok(PySampler {
            sampler: Mutex::new(sampler),
        })
    }

    #[getter]
    fn rule_names(&self) -> Vec<String> {
        self.lock().rule_names()
    }

    /// Decisions for every row of `frame`: an Arrow table of `keep`, `sample_rate` and `rule`.
    #[pyo3(signature = (frame, *, now_ns))]
    fn decide(
        &self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
        now_ns: i64,
    ) -> PyResult<PyArrowBatches> {
        let (_, batches) = import_batches(frame)?;
        let batches = batches.iter().map(conform).collect::<PyResult<Vec<_>>>()?;
        let tables = py.detach(|| {
            let mut sampler = self.lock();
            batches
                .iter()
                .map(|b| decisions_table(&mut sampler, b, now_ns))
                .collect::<crate::error::Result<Vec<_>>>()
        });
        let tables = tables.py_err()?;
        let schema = tables.first().map_or_else(decisions_schema, |t| t.schema());
        Ok(PyArrowBatches::new(schema, tables))
    }
}

impl PySampler {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sampler> {
        self.sampler.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn decisions_schema() -> arrow_schema::SchemaRef {
    use arrow_schema::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("keep", DataType::Boolean, false),
        Field::new("sample_rate", DataType::Float64, false),
        Field::new("rule", DataType::UInt16, false),
    ]))
}

fn decisions_table(
    sampler: &mut Sampler,
    batch: &arrow_array::RecordBatch,
    now_ns: i64,
) -> crate::error::Result<arrow_array::RecordBatch> {
    let d = sampler.decide(batch, now_ns)?;
    let rule = arrow_array::UInt16Array::from(d.rule);
    let columns: Vec<arrow_array::ArrayRef> = vec![
        std::sync::Arc::new(d.keep),
        std::sync::Arc::new(d.sample_rate),
        std::sync::Arc::new(rule),
    ];
    Ok(arrow_array::RecordBatch::try_new(
        decisions_schema(),
        columns,
    )?)
}
