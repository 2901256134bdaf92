//! The exception family: one base, each class also a subclass of the built-in that fits.

use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::error::Error;

static BASE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DECODE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static AUDIT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FORKED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EMITTER_CLOSED: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn make<'py>(
    py: Python<'py>,
    name: &str,
    bases: Vec<Bound<'py, PyType>>,
    doc: &str,
) -> PyResult<Bound<'py, PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__module__", "qlingest.exceptions")?;
    namespace.set_item("__doc__", doc)?;
    let bases = PyTuple::new(py, bases)?;
    let class = py.get_type::<PyType>().call1((name, bases, namespace))?;
    Ok(class.cast_into::<PyType>()?)
}

/// Creates the classes once and adds them to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = make(
        py,
        "QlingestError",
        vec![py.get_type::<PyException>()],
        "Base of every qlingest error.",
    )?;
    let value_error = py.get_type::<PyValueError>();
    let config = make(
        py,
        "ConfigError",
        vec![base.clone(), value_error.clone()],
        "A configuration value is wrong; the message names the key.",
    )?;
    let decode = make(
        py,
        "DecodeError",
        vec![base.clone(), value_error],
        "Input that cannot be decoded at all (bad records become dead letters instead).",
    )?;
    let runtime_error = py.get_type::<PyRuntimeError>();
    let audit = make(
        py,
        "AuditError",
        vec![base.clone(), runtime_error.clone()],
        "An audit chain was misused, for example appended to after it was finished.",
    )?;
    let forked = make(
        py,
        "ForkedError",
        vec![base.clone(), runtime_error.clone()],
        "A store (or the pipeline, emitter or handler built on it) used in a process forked \
         from the one that opened it.",
    )?;
    let emitter_closed = make(
        py,
        "EmitterClosedError",
        vec![base.clone(), runtime_error],
        "An event emitted after the emitter was closed: it is not stored.",
    )?;
    for (cell, class) in [
        (&BASE, &base),
        (&CONFIG, &config),
        (&DECODE, &decode),
        (&AUDIT, &audit),
        (&FORKED, &forked),
        (&EMITTER_CLOSED, &emitter_closed),
    ] {
        m.add(class.name()?, class)?;
        let _ = cell.set(py, class.clone().unbind());
    }
    Ok(())
}

fn class(py: Python<'_>, cell: &PyOnceLock<Py<PyType>>) -> Py<PyType> {
    cell.get(py)
        .expect("exceptions registered at import")
        .clone_ref(py)
}

/// The one conversion from engine errors to Python exceptions.
pub fn to_py(err: Error) -> PyErr {
    Python::attach(|py| {
        let cell = match err {
            Error::Config(_) => &CONFIG,
            Error::Decode(_) | Error::Arrow(_) => &DECODE,
            Error::Audit(_) => &AUDIT,
        };
        PyErr::from_type(class(py, cell).into_bound(py), err.to_string())
    })
}

/// An event refused because the emitter was closed.
pub fn emitter_closed(py: Python<'_>) -> PyErr {
    let message = "this Emitter is closed: the event was not stored";
    PyErr::from_type(class(py, &EMITTER_CLOSED).into_bound(py), message)
}

/// An event refused in a process forked from the one that built the emitter.
pub fn emitter_forked(py: Python<'_>) -> PyErr {
    let message = "this Emitter was built before a fork: a child cannot emit through it. Build \
                   the Emitter or Handler in the child process (see README, Embedded use).";
    PyErr::from_type(class(py, &FORKED).into_bound(py), message)
}

/// `Result` conversion for binding functions.
pub trait IntoPyResult<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for crate::error::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
