//! `PendingBatch`: the batch `Emitter.emit` fills. `emit` is its native method, so no Python
//! frame runs per event: a dict is encoded here (msgspec takes what `json` does not cover), and
//! a full batch is handed to a Python callable, in the order the batches filled.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView};
use pyo3::{PyTraverseError, PyVisit};

use super::error::{emitter_closed, emitter_forked};
use super::json;

/// Full batches waiting for the thread that hands them over; past this many, a thread that
/// fills one more waits for it (a flush blocked on a full queue), rather than let them pile up.
const MAX_WAITING: usize = 4;
/// Room reserved past `batch_bytes` for the event that fills a batch.
const HEADROOM: usize = 4096;
/// A new buffer reserves at most this much up front; a larger batch grows as it fills.
const MAX_RESERVE: usize = 16 << 20;
/// Emptied batch buffers kept for reuse.
const SPARE_BUFFERS: usize = 2;
/// A thread's scratch buffer larger than this (after a very large event) is let go.
const SCRATCH_KEPT: usize = 64 << 10;

thread_local! {
    /// Each thread encodes its events here, then takes the lock only to copy the line in.
    /// Encoding can fail (a lone surrogate), and the exception may run the garbage collector,
    /// whose finalizers may log, which re-enters `emit` on this thread: with the lock held,
    /// that would deadlock.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The events not yet handed over, and the batches waiting to be.
#[pyclass(name = "PendingBatch", module = "qlingest._core", frozen)]
pub struct PyPendingBatch {
    state: Mutex<State>,
    /// Events refused: not encodable, not one event, or emitted once closed or in a child.
    /// Outside the lock, which a forked child may find held by a thread left in the parent.
    rejected: AtomicU64,
    /// Set in a forked child, on the batch built before the fork and on the child's own: it
    /// refuses everything without taking its lock (a parent thread may have held it at the
    /// fork), and holds nothing the child could store.
    forked: AtomicBool,
    /// A batch is handed over once it holds this many bytes; outside the lock, so that a
    /// forked child reads it too.
    batch_bytes: AtomicUsize,
    /// Signalled when the thread handing batches over stops.
    courier_free: Condvar,
    /// msgspec's `Encoder.encode`, for the events `json` does not cover.
    encode: Py<PyAny>,
    /// Called with `(bytes, events)` for each full batch, without the lock held.
    hand_over: Py<PyAny>,
}

struct State {
    /// The events of the batch being filled, as NDJSON.
    buf: Vec<u8>,
    events: usize,
    /// Set by `close`: events are refused from then on.
    closed: bool,
    /// Batches taken out full, oldest first, not yet given to a Python callable.
    full: VecDeque<Batch>,
    /// Emptied buffers of batches handed over, for the next batches to fill.
    spare: Vec<Vec<u8>>,
    /// The one thread handing `full` over; the others leave their batches to it. A single
    /// courier keeps the batches in order without holding the lock while Python runs.
    courier: Option<ThreadId>,
    /// The thread that takes batches from the queue `hand_over` fills: its events never wait
    /// for the courier, who may be waiting for it to make room.
    drainer: Option<ThreadId>,
}

struct Batch {
    data: Vec<u8>,
    events: usize,
    /// The bytes object a hand-over that raised was given. The call may have raised after
    /// queuing it (an interrupt at its last line): it is given again, the same object, so
    /// that the side that ingests it can tell the two apart.
    handed: Option<Py<PyBytes>>,
}

/// What the thread that filled a batch does next.
#[derive(PartialEq, Eq)]
enum Filled {
    /// Nothing: the batch is not full, or the courier takes it.
    Return,
    /// Hand the waiting batches over: this thread is the courier now.
    Deliver,
    /// Wait for the courier to finish, then hand over what is left.
    Wait,
}

#[pymethods]
impl PyPendingBatch {
    #[new]
    #[pyo3(signature = (batch_bytes, *, encode, hand_over))]
    fn new(batch_bytes: i64, encode: Py<PyAny>, hand_over: Py<PyAny>) -> Self {
        let batch_bytes = batch_bytes.max(0) as usize;
        let state = State::new(reserve(batch_bytes));
        Self::with_state(state, batch_bytes, 0, encode, hand_over)
    }

    /// Appends one event: `bytes` (or a bytearray or memoryview) as one line, a `dict` encoded
    /// as compact JSON, anything else encoded by msgspec. Raises (and counts the event
    /// rejected) when the event cannot be encoded, its bytes are blank, or the batch is closed.
    fn emit(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.forked.load(Ordering::Relaxed) {
            return Err(self.refuse(emitter_forked(py)));
        }
        let filled = if let Ok(bytes) = event.cast::<PyBytes>() {
            self.append_raw(py, bytes.as_bytes())?
        } else if event.is_instance_of::<PyByteArray>() || event.is_instance_of::<PyMemoryView>() {
            // Copied first: while this thread waits for the lock another may resize the array.
            let copy = PyBuffer::<u8>::get(event).and_then(|b| b.to_vec(py));
            let copy = copy.inspect_err(|_| self.count_rejected())?;
            self.append_raw(py, &copy)?
        } else {
            match encoded(event, |line| self.append(py, line)) {
                Some(filled) => filled?,
                None => self.append_encoded(py, event)?,
            }
        };
        match filled {
            Filled::Return => Ok(()),
            Filled::Deliver => self.deliver(py, None, 0),
            Filled::Wait => {
                self.claim_waiting(py);
                self.deliver(py, None, 0)
            }
        }
    }

    /// Hands every waiting batch and the partial one to `put`, in order, then goes on with
    /// `hand_over` for batches that fill meanwhile. Waits while another thread hands over.
    /// A `put` that raises leaves its batch (and those after it) waiting: `take` or the next
    /// flush picks them up.
    fn flush(&self, py: Python<'_>, put: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.forked.load(Ordering::Relaxed) {
            return Ok(()); // what it holds is the parent's to store
        }
        let me = thread::current().id();
        let claimed = {
            let mut state = self.lock(py);
            match state.courier {
                // Called from this thread's own hand-over (a finalizer that flushes): the
                // loop further up the stack delivers everything.
                Some(id) if id == me => return Ok(()),
                Some(_) => false,
                None => {
                    state.courier = Some(me);
                    true
                }
            }
        };
        if !claimed {
            self.claim_waiting(py);
        }
        let waiting = {
            let mut state = self.lock(py);
            state.seal(self.reserve());
            state.full.len()
        };
        self.deliver(py, Some(put), waiting)
    }

    /// Everything not yet handed over, as one NDJSON batch with its event count; `None` when
    /// there is nothing, or while another thread is handing batches over.
    fn take<'py>(&self, py: Python<'py>) -> PyResult<Option<(Bound<'py, PyBytes>, usize)>> {
        if self.forked.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let batches = {
            let mut state = self.lock(py);
            if state.courier.is_some() {
                return Ok(None);
            }
            if let Some(handed) = state.full.front_mut().and_then(|b| b.handed.take()) {
                // A batch whose hand-over raised goes as the object it was given then.
                let batch = state.full.pop_front().expect("the front batch");
                return Ok(Some((handed.into_bound(py), batch.events)));
            }
            state.seal(self.reserve());
            std::mem::take(&mut state.full)
        };
        if batches.is_empty() {
            return Ok(None);
        }
        let size = batches.iter().map(|b| b.data.len()).sum();
        let events = batches.iter().map(|b| b.events).sum();
        let data = PyBytes::new_with(py, size, |out| {
            let mut at = 0;
            for batch in &batches {
                out[at..at + batch.data.len()].copy_from_slice(&batch.data);
                at += batch.data.len();
            }
            Ok(())
        })?;
        let mut state = self.lock(py);
        for batch in batches {
            state.keep(batch.data, self.reserve());
        }
        Ok(Some((data, events)))
    }

    /// Refuses every event from now on with `EmitterClosedError`; what is buffered stays.
    fn close(&self, py: Python<'_>) {
        self.lock(py).closed = true;
    }

    /// The batch of a child forked from this process: it refuses every event with
    /// `ForkedError` and holds nothing, since what was buffered is the parent's to store.
    /// This batch, in the child, refuses from now on too: a method bound to it before the
    /// fork may still be called. Nothing here takes the lock, which a thread of the parent
    /// may have held at the fork.
    fn forked(&self, py: Python<'_>) -> Self {
        self.forked.store(true, Ordering::Relaxed);
        let child = Self::with_state(
            State::new(0),
            self.batch_bytes.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
            self.encode.clone_ref(py),
            self.hand_over.clone_ref(py),
        );
        child.forked.store(true, Ordering::Relaxed);
        child
    }

    /// Marks the calling thread as the one that takes batches from the queue `hand_over`
    /// fills: a batch it fills (a finalizer that logs, run there) waits in line rather than
    /// for the courier, who may be waiting for this thread to make room.
    fn drains_here(&self, py: Python<'_>) {
        self.lock(py).drainer = Some(thread::current().id());
    }

    /// A batch is handed over once it holds this many bytes, newlines included.
    #[getter]
    fn get_batch_bytes(&self) -> usize {
        self.batch_bytes.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_batch_bytes(&self, batch_bytes: i64) {
        self.batch_bytes
            .store(batch_bytes.max(0) as usize, Ordering::Relaxed);
    }

    /// Events refused: not encodable, or emitted once closed or in a forked child.
    #[getter]
    fn rejected_events(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Events appended and not yet handed over.
    #[getter]
    fn events(&self, py: Python<'_>) -> usize {
        let state = self.lock(py);
        state.events + state.full.iter().map(|b| b.events).sum::<usize>()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.encode)?;
        visit.call(&self.hand_over)
    }
}

/// Encodes a dict with `json` into this thread's scratch buffer and gives the line to
/// `append`; `None` when `event` is not a dict or holds what `json` does not cover.
fn encoded<T>(event: &Bound<'_, PyAny>, append: impl FnOnce(&[u8]) -> T) -> Option<T> {
    let dict = event.cast_exact::<PyDict>().ok()?;
    let encode = |scratch: &mut Vec<u8>| {
        scratch.clear();
        let line = json::write_dict(scratch, dict)
            .ok()
            .map(|()| append(scratch));
        if scratch.capacity() > SCRATCH_KEPT {
            *scratch = Vec::new();
        }
        line
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => encode(&mut scratch),
        // Taken by an emit further up this thread's stack: a finalizer that logs ran while
        // that one was encoding.
        Err(_) => encode(&mut Vec::new()),
    })
}

impl PyPendingBatch {
    fn with_state(
        state: State,
        batch_bytes: usize,
        rejected: u64,
        encode: Py<PyAny>,
        hand_over: Py<PyAny>,
    ) -> Self {
        Self {
            state: Mutex::new(state),
            batch_bytes: AtomicUsize::new(batch_bytes),
            rejected: AtomicU64::new(rejected),
            forked: AtomicBool::new(false),
            courier_free: Condvar::new(),
            encode,
            hand_over,
        }
    }

    /// The state, taken without blocking the interpreter while another thread holds it.
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, State> {
        self.state
            .lock_py_attached(py)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends the bytes of one event, on one line: line breaks between its tokens become
    /// spaces (a pretty-printed object stays one event); blank bytes are refused.
    fn append_raw(&self, py: Python<'_>, event: &[u8]) -> PyResult<Filled> {
        if event.iter().all(u8::is_ascii_whitespace) {
            self.count_rejected();
            return Err(PyValueError::new_err(
                "an event's bytes must hold one JSON object; these are empty or blank",
            ));
        }
        // Inside a JSON string a raw line break is invalid anyway: the line is dead-lettered
        // either way, as one event rather than as several broken ones.
        let line = match memchr::memchr2(b'\n', b'\r', event) {
            None => Cow::Borrowed(event),
            Some(_) => Cow::Owned(
                event
                    .iter()
                    .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
                    .collect(),
            ),
        };
        self.append(py, &line)
    }

    fn count_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an event refused by a closed or forked batch, and returns `error`.
    fn refuse(&self, error: PyErr) -> PyErr {
        self.count_rejected();
        error
    }

    /// The bytes a new batch buffer reserves.
    fn reserve(&self) -> usize {
        reserve(self.batch_bytes.load(Ordering::Relaxed))
    }

    /// Appends one encoded event and its newline, unless the batch refuses it.
    fn append(&self, py: Python<'_>, line: &[u8]) -> PyResult<Filled> {
        let mut state = self.lock(py);
        if state.closed {
            drop(state);
            return Err(self.refuse(emitter_closed(py)));
        }
        state.buf.extend_from_slice(line);
        state.buf.push(b'\n');
        state.events += 1;
        if state.buf.len() < self.batch_bytes.load(Ordering::Relaxed) {
            return Ok(Filled::Return);
        }
        state.seal(self.reserve());
        Ok(state.filled())
    }

    /// An event `json` does not cover, encoded by msgspec: its errors are raised as they are,
    /// and count the event rejected (refused as closed, if the batch is).
    fn append_encoded(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<Filled> {
        let line = match self.encode.bind(py).call1((event,)) {
            Ok(line) => line,
            Err(e) => return Err(self.reject_unencodable(py, e)),
        };
        let line = line.cast_into::<PyBytes>()?;
        self.append(py, line.as_bytes())
    }

    fn reject_unencodable(&self, py: Python<'_>, error: PyErr) -> PyErr {
        if !error.is_instance_of::<PyException>(py) {
            return error; // KeyboardInterrupt and the like: not the event's fault
        }
        self.count_rejected();
        if !self.lock(py).closed {
            return error;
        }
        let refused = emitter_closed(py);
        refused.set_cause(py, None);
        refused
    }

    /// Waits, detached from the interpreter, until no thread hands batches over, and becomes
    /// the one that does.
    fn claim_waiting(&self, py: Python<'_>) {
        let me = thread::current().id();
        py.detach(|| {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            while state.courier.is_some() {
                state = self
                    .courier_free
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.courier = Some(me);
        });
    }

    /// Hands the waiting batches over, oldest first: the first `blocking` to `put`, the rest
    /// to `hand_over`. The caller is the courier and stops being it on return; a call that
    /// raises leaves its batch first in line.
    fn deliver(
        &self,
        py: Python<'_>,
        put: Option<&Bound<'_, PyAny>>,
        mut blocking: usize,
    ) -> PyResult<()> {
        let hand_over = self.hand_over.bind(py);
        let mut spent = None;
        while let Some(mut batch) = self.next_batch(py, spent.take()) {
            let call = match put {
                Some(put) if blocking > 0 => {
                    blocking -= 1;
                    put
                }
                _ => hand_over,
            };
            let data = match batch.handed.take() {
                Some(data) => data.into_bound(py),
                None => PyBytes::new(py, &batch.data),
            };
            if let Err(e) = call.call1((&data, batch.events)) {
                batch.handed = Some(data.unbind());
                let mut state = self.lock(py);
                state.full.push_front(batch);
                self.release_courier(&mut state);
                return Err(e);
            }
            spent = Some(batch.data);
        }
        Ok(())
    }

    /// The next batch in line, after keeping the buffer of the one handed over; when there is
    /// none, the courier stops.
    fn next_batch(&self, py: Python<'_>, spent: Option<Vec<u8>>) -> Option<Batch> {
        let mut state = self.lock(py);
        if let Some(buffer) = spent {
            state.keep(buffer, self.reserve());
        }
        let batch = state.full.pop_front();
        if batch.is_none() {
            self.release_courier(&mut state);
        }
        batch
    }

    fn release_courier(&self, state: &mut State) {
        state.courier = None;
        self.courier_free.notify_all();
    }
}

impl State {
    /// An open batch whose buffer reserves `capacity` bytes.
    fn new(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
            events: 0,
            closed: false,
            full: VecDeque::new(),
            spare: Vec::new(),
            courier: None,
            drainer: None,
        }
    }

    /// Keeps the emptied buffer of a batch handed over for a later batch: a new buffer of a
    /// megabyte costs a page fault for every 4 KiB written (a tenth of `emit`'s cost), a reused
    /// one none. A buffer grown far past the batch size is let go.
    fn keep(&mut self, mut buffer: Vec<u8>, reserve: usize) {
        if self.spare.len() < SPARE_BUFFERS && buffer.capacity() <= 2 * reserve {
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    /// Moves the batch being filled, if it holds any event, to the end of the line; a new
    /// buffer reserves `reserve` bytes.
    fn seal(&mut self, reserve: usize) {
        if self.events == 0 {
            return;
        }
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(reserve));
        let data = std::mem::replace(&mut self.buf, fresh);
        let events = std::mem::take(&mut self.events);
        self.full.push_back(Batch {
            data,
            events,
            handed: None,
        });
    }

    /// What the thread that just sealed a full batch does: hand the line over if no thread
    /// does, wait if the line is long, otherwise leave it to the courier.
    fn filled(&mut self) -> Filled {
        let me = thread::current().id();
        match self.courier {
            None => {
                self.courier = Some(me);
                Filled::Deliver
            }
            // This thread's own hand-over, further up its stack, delivers it.
            Some(id) if id == me => Filled::Return,
            Some(_) if self.full.len() > MAX_WAITING && self.drainer != Some(me) => Filled::Wait,
            Some(_) => Filled::Return,
        }
    }
}

/// The bytes a new buffer reserves: enough for the batch and the event that fills it.
fn reserve(batch_bytes: usize) -> usize {
    batch_bytes.saturating_add(HEADROOM).min(MAX_RESERVE)
}
