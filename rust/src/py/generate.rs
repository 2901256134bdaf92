//! The standard-mix generator: NDJSON bytes and their ground truth, with the GIL released.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::generate::{GenStats, Generator};
use crate::schema::LEVELS;

/// A streaming generator: successive `fill` calls continue one seeded stream.
#[pyclass(name = "Generator", module = "qlingest._core")]
pub struct PyGenerator {
    generator: Generator,
}

#[pymethods]
impl PyGenerator {
    #[new]
    #[pyo3(signature = (seed = 42, *, record_secrets = false))]
    fn new(seed: u64, record_secrets: bool) -> PyGenerator {
        let generator = Generator::new(seed);
        let generator = if record_secrets {
            generator.with_recorded_secrets()
        } else {
            generator
        };
        PyGenerator { generator }
    }

    /// The next `n` events, one JSON object per line.
    fn fill<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let generator = &mut self.generator;
        let out = py.detach(|| {
            let mut out = Vec::new();
            generator.fill(n, &mut out);
            out
        });
        PyBytes::new(py, &out)
    }

    /// The ground truth of everything generated so far.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, self.generator.stats())
    }
}

/// `count` events of the standard mix for `seed`, as NDJSON bytes.
#[pyfunction]
#[pyo3(signature = (count, seed = 42))]
pub fn generate(py: Python<'_>, count: u64, seed: u64) -> Bound<'_, PyBytes> {
    let out = py.detach(|| {
        let mut out = Vec::new();
        Generator::new(seed).fill(count as usize, &mut out);
        out
    });
    PyBytes::new(py, &out)
}

/// `count` events for `seed` and their ground truth, planted secrets included.
#[pyfunction]
#[pyo3(signature = (count, seed = 42))]
pub fn generate_with_stats(
    py: Python<'_>,
    count: u64,
    seed: u64,
) -> PyResult<(Bound<'_, PyBytes>, Bound<'_, PyDict>)> {
    let (out, stats) = py.detach(|| {
        let mut out = Vec::new();
        let stats = crate::generate::generate(count, seed, &mut out);
        (out, stats)
    });
    Ok((PyBytes::new(py, &out), stats_dict(py, &stats)?))
}

fn stats_dict<'py>(py: Python<'py>, stats: &GenStats) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("events", stats.events)?;
    dict.set_item("bytes", stats.bytes)?;
    let levels = PyDict::new(py);
    for (name, n) in LEVELS.iter().zip(stats.levels) {
        levels.set_item(name, n)?;
    }
    dict.set_item("levels", levels)?;
    let services = PyDict::new(py);
    for (name, n) in stats.service_counts() {
        services.set_item(name, n)?;
    }
    dict.set_item("services", services)?;
    dict.set_item("audit", stats.audit)?;
    dict.set_item("security", stats.security)?;
    dict.set_item("with_secrets", stats.with_secrets)?;
    dict.set_item("traces", stats.traces)?;
    let planted = stats.planted.iter().map(|s| (s.kind, s.value.as_str()));
    dict.set_item("planted", PyList::new(py, planted)?)?;
    Ok(dict)
}

/// Adds the generator class and functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGenerator>()?;
    m.add_function(wrap_pyfunction!(generate, m)?)?;
    m.add_function(wrap_pyfunction!(generate_with_stats, m)?)?;
    Ok(())
}
