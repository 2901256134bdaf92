//! `AuditChain` and chain verification for the store's commit path and `audit verify`.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;

use super::arrow::{import_batches, PyArrowBatches};
use super::error::IntoPyResult;
use crate::audit::{AuditChain, AuditConfig, Checkpoint, Verifier};

#[pyclass(name = "AuditChain", module = "qlingest._core", frozen)]
pub struct PyAuditChain {
    chain: Mutex<AuditChain>,
    select: AuditConfig,
}

#[pymethods]
impl PyAuditChain {
    /// A chain that continues from `head` (last seq, last hash), or from genesis.
    #[new]
    #[pyo3(signature = (chain_id, head = None, *, config_json = "{}"))]
    fn new(chain_id: &str, head: Option<(u64, String)>, config_json: &str) -> PyResult<Self> {
        let select = AuditConfig::from_json(config_json).py_err()?;
        let chain = AuditChain::new(chain_id, head);
        chain.check().py_err()?;
        Ok(PyAuditChain {
            chain: Mutex::new(chain),
            select,
        })
    }

    /// Chains the audit rows of `frame` in row order; returns the frame with its audit columns.
    fn append(&self, py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<PyArrowBatches> {
        let (schema, batches) = import_batches(frame)?;
        let chained = py.detach(|| {
            let mut chain = self.lock();
            let mut out = Vec::with_capacity(batches.len());
            for batch in &batches {
                let mask = self.select.select(batch)?;
                out.push(chain.append(batch, &mask)?);
            }
            Ok::<_, crate::error::Error>(out)
        });
        let chained = chained.py_err()?;
        let schema = chained.first().map_or(schema, |b| b.schema());
        Ok(PyArrowBatches::new(schema, chained))
    }

    /// The last (seq, hash); seq 0 and the genesis hash before any record.
    #[getter]
    fn head(&self) -> (u64, String) {
        self.lock().head()
    }

    /// Ends the chain; appending afterwards raises AuditError.
    fn finish(&self) -> PyResult<(u64, String)> {
        self.lock().finish().py_err()
    }
}

impl PyAuditChain {
    fn lock(&self) -> std::sync::MutexGuard<'_, AuditChain> {
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Verifies one chain: `frame` holds its rows in ascending `audit_seq` (with `source_file` and
/// `source_row`), `checkpoints` its checkpoint log lines. Returns the report as JSON text.
#[pyfunction]
#[pyo3(signature = (chain_id, frame, checkpoints, *, key = None, require_seals = false))]
pub fn verify_chain(
    py: Python<'_>,
    chain_id: &str,
    frame: &Bound<'_, PyAny>,
    checkpoints: Vec<String>,
    key: Option<PyBackedBytes>,
    require_seals: bool,
) -> PyResult<String> {
    let (_, batches) = import_batches(frame)?;
    let report = py.detach(|| {
        let entries = checkpoints
            .iter()
            .map(|l| Checkpoint::from_json(l))
            .collect::<crate::error::Result<Vec<_>>>()?;
        let mut verifier = Verifier::new(chain_id, entries, key.as_deref(), require_seals)?;
        // A chain with checkpoints but no stored rows arrives as an empty frame.
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            verifier.push(batch)?;
        }
        Ok::<_, crate::error::Error>(verifier.finish())
    });
    let report = report.py_err()?;
    sonic_rs::to_string(&report)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
}

/// One chain's verifier, fed file by file: rows of the chain in ascending `audit_seq`, with
/// `source_file` and `source_row`. Memory stays that of one file, whatever the store's size.
#[pyclass(name = "ChainVerifier", module = "qlingest._core", frozen)]
pub struct PyChainVerifier {
    verifier: Mutex<Option<Verifier>>,
}

#[pymethods]
impl PyChainVerifier {
    /// `live`: the chain's writer still holds its lock, so records past its last checkpoint are
    /// pending rather than unsealed.
    #[new]
    #[pyo3(signature = (chain_id, checkpoints, *, key = None, require_seals = false, live = false))]
    fn new(
        chain_id: &str,
        checkpoints: Vec<String>,
        key: Option<PyBackedBytes>,
        require_seals: bool,
        live: bool,
    ) -> PyResult<Self> {
        let entries = checkpoints
            .iter()
            .map(|l| Checkpoint::from_json(l))
            .collect::<crate::error::Result<Vec<_>>>()
            .py_err()?;
        let mut verifier =
            Verifier::new(chain_id, entries, key.as_deref(), require_seals).py_err()?;
        verifier.set_live(live);
        Ok(PyChainVerifier {
            verifier: Mutex::new(Some(verifier)),
        })
    }

    /// Checks the next rows of the chain.
    fn push(&self, py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<()> {
        let (_, batches) = import_batches(frame)?;
        let mut guard = self.verifier.lock().unwrap_or_else(|e| e.into_inner());
        let verifier = guard.as_mut().ok_or_else(finished)?;
        py.detach(|| {
            batches
                .iter()
                .filter(|b| b.num_rows() > 0)
                .try_for_each(|b| verifier.push(b))
        })
        .py_err()
    }

    /// The chain's report as JSON text; the verifier cannot be fed afterwards.
    fn finish(&self) -> PyResult<String> {
        let verifier = self
            .verifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let report = verifier.ok_or_else(finished)?.finish();
        sonic_rs::to_string(&report)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
    }
}

fn finished() -> PyErr {
    crate::py::error::to_py(crate::error::Error::Audit(
        "this chain verifier has already finished".into(),
    ))
}
