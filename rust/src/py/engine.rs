//! `Engine`: bytes in; decoded, redacted and sampled event batches out, GIL released.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_schema::{Field, Schema, SchemaRef};
use pyo3::prelude::*;

use super::arrow::PyArrowBatches;
use super::error::IntoPyResult;
use super::input::InputBytes;
use crate::decode::{dead_letter_schema, Decoder, Scrub};
use crate::engine::{Engine, Output};
use crate::redact::Redactor;
use crate::sample::{SamplePolicy, Sampler};
use crate::schema::{event_schema, LEVEL, LEVELS};

#[pyclass(name = "Engine", module = "qlingest._core", frozen)]
pub struct PyEngine {
    engine: Engine,
    redaction_rules: Vec<String>,
    hash_fallback: bool,
}

/// What one `Engine.process` call produced.
#[pyclass(name = "ProcessResult", module = "qlingest._core", frozen, get_all)]
pub struct PyProcessResult {
    events: Py<PyArrowBatches>,
    dead_letters: Py<PyArrowBatches>,
    lines: u64,
    blank_lines: u64,
    unparsed: u64,
    redactions: Vec<u64>,
    kept: Vec<u64>,
    sampled_out: Vec<u64>,
    fallback_hashes: u64,
    /// Per run of rows of `events`, in order: its category, UTC hour since the epoch and rows.
    partitions: Vec<(Option<String>, i64, usize)>,
}

#[pymethods]
impl PyEngine {
    /// Builds the stages from their JSON configurations; `None` turns a stage off.
    #[new]
    #[pyo3(signature = (decode_json, *, redaction_json = None, sampling_json = None))]
    fn new(
        decode_json: &str,
        redaction_json: Option<&str>,
        sampling_json: Option<&str>,
    ) -> PyResult<PyEngine> {
        let decoder = Decoder::from_json(decode_json).py_err()?;
        let redactor = redaction_json
            .map(Redactor::from_json)
            .transpose()
            .py_err()?;
        let redaction_rules = redactor
            .as_ref()
            .map_or_else(Vec::new, |r| r.rule_names().to_vec());
        let hash_fallback = redactor.as_ref().is_some_and(Redactor::hash_fallback);
        let scrub = redactor.map(|r| Box::new(r) as Box<dyn Scrub + Send>);
        let sampler = sampling_json
            .map(|text| SamplePolicy::from_json(text).and_then(Sampler::new))
            .transpose()
            .py_err()?;
        let engine = Engine::new(decoder, scrub, sampler);
        Ok(PyEngine {
            engine,
            redaction_rules,
            hash_fallback,
        })
    }

    /// Names of the redaction rules, in the order of `ProcessResult.redactions`.
    #[getter]
    fn redaction_rules(&self) -> Vec<String> {
        self.redaction_rules.clone()
    }

    /// True when a rule asks for a keyed hash but no key is set, so it masks instead.
    #[getter]
    fn hash_fallback(&self) -> bool {
        self.hash_fallback
    }

    /// Names of the sampling rules, in the order of `ProcessResult.kept` and `sampled_out`.
    #[getter]
    fn sampling_rules(&self) -> Vec<String> {
        self.engine.sampling_rules()
    }

    /// Processes whole lines of `data` (bytes, or a memoryview of bytes); the caller frames
    /// input at newlines.
    #[pyo3(signature = (data, *, source = "-", first_line = 1, observed_ns))]
    fn process(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        source: &str,
        first_line: u64,
        observed_ns: i64,
    ) -> PyResult<PyProcessResult> {
        let data = InputBytes::extract(data)?;
        let bytes = data.as_slice();
        let out = py
            .detach(|| self.engine.process(bytes, source, first_line, observed_ns))
            .py_err()?;
        into_result(py, out)
    }
}

fn into_result(py: Python<'_>, out: Output) -> PyResult<PyProcessResult> {
    let decoded = out.decoded;
    let partitions = decoded
        .events
        .keys
        .into_iter()
        .map(|(key, rows)| (key.category, key.hour, rows))
        .collect();
    let events = PyArrowBatches::new(polars_event_schema(), decoded.events.batches);
    let dead = PyArrowBatches::new(dead_letter_schema(), vec![decoded.dead_letters]);
    Ok(PyProcessResult {
        events: Py::new(py, events)?,
        dead_letters: Py::new(py, dead)?,
        lines: decoded.lines,
        blank_lines: decoded.blank_lines,
        unparsed: decoded.unparsed,
        redactions: decoded.redactions,
        kept: out.kept,
        sampled_out: out.sampled_out,
        fallback_hashes: out.fallback_hashes,
        partitions,
    })
}

/// The event schema with `level` marked as Polars' `Enum` of the level names, so the column
/// imports as that `Enum` rather than as a `Categorical` to cast.
// Limitation: the mark is Polars' own field metadata (`_PL_ENUM_VALUES2`, its length-prefixed
// category list); a Polars that reads it differently imports a `Categorical`, which the
// pipeline then casts.
fn polars_event_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let base = event_schema();
            let categories: String = LEVELS.iter().map(|l| format!("{};{l}", l.len())).collect();
            let meta = HashMap::from([("_PL_ENUM_VALUES2".to_string(), categories)]);
            let marked = |f: &Arc<Field>| {
                if f.name() == LEVEL {
                    Arc::new(f.as_ref().clone().with_metadata(meta.clone()))
                } else {
                    f.clone()
                }
            };
            let fields: Vec<Arc<Field>> = base.fields().iter().map(marked).collect();
            Arc::new(Schema::new_with_metadata(fields, base.metadata().clone()))
        })
        .clone()
}
