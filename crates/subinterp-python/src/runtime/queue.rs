//! Cross-interpreter queues: they live in Rust, in no interpreter.
//!
//! Items are [`Value`]s tagged with the interpreter that put them. When that interpreter is
//! closed, its items follow their `unboundop` exactly like the stdlib's: removed, replaced by
//! `UNBOUND`, or turned into an `ItemInterpreterDestroyed` error for `get()`.
//! Blocking `put`/`get` wait on condition variables with the caller's GIL released.
//!
//! Queues are found by id in one process-wide table. The functions that only manage the table
//! or read counts need no GIL; [`put`] and [`get`] need a thread state attached (they release
//! its GIL while blocked and check for signals under it).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3_ffi::PyObject;

use crate::runtime::pyutil;
use crate::runtime::xi::Value;
use subinterp_rs::owned::Owned;

/// `UNBOUND_REMOVE`: the item disappears with its interpreter.
pub const UNBOUND_REMOVE: i32 = 1;
/// `UNBOUND_ERROR`: `get()` raises `ItemInterpreterDestroyed` for it.
pub const UNBOUND_ERROR: i32 = 2;
/// `UNBOUND`: `get()` returns the `UNBOUND` marker for it.
pub const UNBOUND_REPLACE: i32 = 3;

/// Whether `op` is one of the three operations ([`UNBOUND_REMOVE`], [`UNBOUND_ERROR`],
/// [`UNBOUND_REPLACE`]).
#[must_use]
pub fn valid_unboundop(op: i32) -> bool {
    matches!(op, UNBOUND_REMOVE | UNBOUND_ERROR | UNBOUND_REPLACE)
}

struct Item {
    value: Value,
    interp: i64,
    unboundop: i32,
    /// Set once `interp` was closed (the value is then dropped).
    unbound: bool,
}

struct State {
    items: VecDeque<Item>,
    handles: usize,
}

/// One queue: its bound, its default `unboundop`, and its items behind a mutex, shared through
/// `Arc` by the table and any thread waiting on it. Handles are counted; the last
/// [`release`] frees it. Reached by id through the functions of this module.
pub struct Queue {
    id: i64,
    /// `<= 0`: unbounded (kept as given, like the stdlib).
    maxsize: i64,
    default_unboundop: i32,
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
}

/// Why a queue operation failed (raised in Python as `QueueNotFoundError`, `QueueEmpty` and
/// `QueueFull`; `Interrupted` leaves the exception that stopped the wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// No queue with that id (all handles released).
    NotFound,
    /// Nothing to get within the timeout.
    Empty,
    /// No room within the timeout.
    Full,
    /// A signal handler raised while waiting, or, inside a subinterpreter, the process is
    /// exiting (`SystemExit`); the Python error is set.
    Interrupted,
}

static QUEUES: Mutex<Option<HashMap<i64, Arc<Queue>>>> = Mutex::new(None);
static NEXT_ID: AtomicI64 = AtomicI64::new(1);

fn queues() -> MutexGuard<'static, Option<HashMap<i64, Arc<Queue>>>> {
    QUEUES.lock().unwrap_or_else(PoisonError::into_inner)
}

fn find(id: i64) -> Result<Arc<Queue>, QueueError> {
    queues()
        .as_ref()
        .and_then(|m| m.get(&id).cloned())
        .ok_or(QueueError::NotFound)
}

/// A new queue with one handle reference; returns its id. `maxsize <= 0` is unbounded;
/// `default_unboundop` applies to items put without one. Needs no GIL.
#[must_use]
pub fn create(maxsize: i64, default_unboundop: i32) -> i64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let q = Arc::new(Queue {
        id,
        maxsize,
        default_unboundop,
        state: Mutex::new(State {
            items: VecDeque::new(),
            handles: 1,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    queues().get_or_insert_with(HashMap::new).insert(id, q);
    id
}

/// Takes a handle reference on queue `id`. Needs no GIL.
///
/// # Errors
/// [`QueueError::NotFound`] if no queue has that id (its last handle was released).
pub fn bind(id: i64) -> Result<(), QueueError> {
    let q = find(id)?;
    q.lock().handles += 1;
    Ok(())
}

/// Drops a handle reference; the last one frees the queue and its items. Needs no GIL: a
/// buffer among the items is released at once if its interpreter is current here, else
/// queued for it (see [`SharedBuffer`](crate::runtime::buffer::SharedBuffer)).
///
/// # Errors
/// [`QueueError::NotFound`] if no queue has that id.
pub fn release(id: i64) -> Result<(), QueueError> {
    let mut map = queues();
    let q = map
        .as_ref()
        .and_then(|m| m.get(&id).cloned())
        .ok_or(QueueError::NotFound)?;
    let drained = {
        let mut st = q.lock();
        st.handles = st.handles.saturating_sub(1);
        if st.handles > 0 {
            return Ok(());
        }
        std::mem::take(&mut st.items)
    };
    if let Some(m) = map.as_mut() {
        m.remove(&id);
    }
    drop(map);
    drop(drained);
    Ok(())
}

/// `(id, default unboundop, maxsize)` of every live queue, by id. Needs no GIL.
#[must_use]
pub fn list_all() -> Vec<(i64, i32, i64)> {
    let mut all: Vec<_> = queues()
        .as_ref()
        .map(|m| {
            m.values()
                .map(|q| (q.id, q.default_unboundop, q.maxsize))
                .collect()
        })
        .unwrap_or_default();
    all.sort_unstable();
    all
}

/// The queue's `(maxsize, default unboundop)`. Needs no GIL.
///
/// # Errors
/// [`QueueError::NotFound`] if no queue has that id.
pub fn info(id: i64) -> Result<(i64, i32), QueueError> {
    find(id).map(|q| (q.maxsize, q.default_unboundop))
}

/// Items in the queue (unbound ones included). Needs no GIL.
///
/// # Errors
/// [`QueueError::NotFound`] if no queue has that id.
pub fn count(id: i64) -> Result<usize, QueueError> {
    find(id).map(|q| q.lock().items.len())
}

/// Whether a bounded queue is full (never for an unbounded one). Needs no GIL.
///
/// # Errors
/// [`QueueError::NotFound`] if no queue has that id.
pub fn is_full(id: i64) -> Result<bool, QueueError> {
    find(id).map(|q| q.maxsize > 0 && q.lock().items.len() as i64 >= q.maxsize)
}

/// Called when interpreter `interp` is being closed: its items become unbound, following each
/// item's `unboundop` (removed, or kept as a marker for `get`). Call it with `interp`'s GIL
/// held (the registry does, before `Py_EndInterpreter`), so that buffers it exported among
/// the items are released there at once.
pub fn unbind_interpreter(interp: i64) {
    let all: Vec<Arc<Queue>> = queues()
        .as_ref()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    for q in all {
        let dropped: Vec<Item> = {
            let mut st = q.lock();
            let mut dropped = Vec::new();
            let before = st.items.len();
            let mut kept = VecDeque::with_capacity(before);
            for mut item in st.items.drain(..) {
                if item.interp != interp || item.unbound {
                    kept.push_back(item);
                } else if item.unboundop == UNBOUND_REMOVE {
                    dropped.push(item);
                } else {
                    item.unbound = true;
                    dropped.push(Item {
                        value: std::mem::replace(&mut item.value, Value::None),
                        interp,
                        unboundop: item.unboundop,
                        unbound: true,
                    });
                    kept.push_back(item);
                }
            }
            let removed = kept.len() < before;
            st.items = kept;
            if removed {
                q.not_full.notify_all();
            }
            dropped
        };
        // Values (and any buffers of `interp`) are dropped here, under `interp`'s GIL.
        drop(dropped);
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A bound reference to a queue (one handle reference), carried inside a [`Value`] while it
/// crosses; dropping it releases the reference, which needs no GIL.
pub struct QueueRef {
    id: i64,
}

impl QueueRef {
    /// Binds queue `id` (takes a handle reference). Needs no GIL.
    ///
    /// # Errors
    /// [`QueueError::NotFound`] if no queue has that id.
    pub fn bind(id: i64) -> Result<Self, QueueError> {
        bind(id).map(|()| QueueRef { id })
    }

    /// The queue's id.
    #[must_use]
    pub fn id(&self) -> i64 {
        self.id
    }
}

impl Drop for QueueRef {
    fn drop(&mut self) {
        let _ = release(self.id);
    }
}

/// Waits on `cv` until `ready` or the deadline, with the caller's GIL released; checks signals
/// (under the GIL) every 100 ms so that Ctrl-C interrupts a blocked main thread.
///
/// # Safety
/// A thread state is attached to this thread (its GIL held on entry and on return).
unsafe fn wait_until<'a>(
    q: &'a Queue,
    cv: &Condvar,
    mut st: MutexGuard<'a, State>,
    deadline: Option<Instant>,
    ready: impl Fn(&State) -> bool,
) -> Result<MutexGuard<'a, State>, QueueError> {
    const SIGNAL_CHECK: Duration = Duration::from_millis(100);
    loop {
        if ready(&st) {
            return Ok(st);
        }
        // SAFETY: the GIL is held (on entry, and again at the end of every round).
        if unsafe { stopped_at_exit() } {
            return Err(QueueError::Interrupted);
        }
        let now = Instant::now();
        let slice = match deadline {
            Some(d) if d <= now => return Err(QueueError::Empty),
            Some(d) => (d - now).min(SIGNAL_CHECK),
            None => SIGNAL_CHECK,
        };
        // SAFETY: the caller's thread state is attached; we detach it while blocked and
        // re-attach before touching Python again.
        let saved = unsafe { pyo3_ffi::PyEval_SaveThread() };
        st = cv
            .wait_timeout(st, slice)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        drop(st);
        // SAFETY: re-attaching the thread state detached above.
        unsafe { pyo3_ffi::PyEval_RestoreThread(saved) };
        // SAFETY: the GIL is held again.
        if unsafe { pyo3_ffi::PyErr_CheckSignals() } < 0 {
            return Err(QueueError::Interrupted);
        }
        st = q.lock();
    }
}

/// At process exit ([`crate::runtime::lifecycle::shut_down`]), a blocked queue operation inside a
/// subinterpreter raises `SystemExit` so that the interpreter can unwind and be closed. Returns
/// whether it did (the error is then set). Main's own waits are left alone.
///
/// # Safety
/// The GIL of the attached thread state is held.
unsafe fn stopped_at_exit() -> bool {
    if !crate::runtime::lifecycle::is_shut_down() {
        return false;
    }
    // SAFETY: the GIL is held (contract).
    unsafe {
        if subinterp_rs::tstate::attached_interp() == pyo3_ffi::PyInterpreterState_Main() {
            return false;
        }
        pyo3_ffi::PyErr_SetNone(pyo3_ffi::PyExc_SystemExit);
    }
    true
}

/// Wakes every blocked `put` and `get` (process exit: inside a subinterpreter they then
/// raise `SystemExit` instead of waiting on). Needs no GIL.
pub fn wake_all() {
    let all: Vec<Arc<Queue>> = queues()
        .as_ref()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    for q in all {
        // Under the state lock, so no waiter is between its check and its wait.
        let _st = q.lock();
        q.not_empty.notify_all();
        q.not_full.notify_all();
    }
}

fn deadline_of(block: bool, timeout: Option<f64>) -> Option<Instant> {
    if !block {
        return Some(Instant::now());
    }
    // Saturate huge timeouts instead of overflowing.
    timeout.map(|t| Instant::now() + Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX / 4))
}

/// Appends `value`, put by interpreter `interp`, with `unboundop` (`< 0`: the queue's
/// default). A full bounded queue makes it wait, with the caller's GIL released, until there
/// is room, the deadline passes (`block = false`: at once; `timeout = None`: never) or a signal
/// handler raises.
///
/// # Errors
/// [`QueueError::NotFound`] if no queue has that id; [`QueueError::Full`] if there was no
/// room in time; [`QueueError::Interrupted`] if a signal handler raised or the process exits
/// (see the variant; the exception is set).
///
/// # Safety
/// A thread state is attached to this thread.
pub unsafe fn put(
    id: i64,
    value: Value,
    interp: i64,
    unboundop: i32,
    block: bool,
    timeout: Option<f64>,
) -> Result<(), QueueError> {
    let q = find(id)?;
    let unboundop = if unboundop < 0 {
        q.default_unboundop
    } else {
        unboundop
    };
    let st = q.lock();
    let deadline = deadline_of(block, timeout);
    let maxsize = q.maxsize;
    // SAFETY: a thread state is attached to this thread (caller's contract), as `wait_until`
    // needs.
    let mut st = unsafe {
        wait_until(&q, &q.not_full, st, deadline, |s| {
            maxsize <= 0 || (s.items.len() as i64) < maxsize
        })
    }
    .map_err(|e| {
        if e == QueueError::Empty {
            QueueError::Full
        } else {
            e
        }
    })?;
    st.items.push_back(Item {
        value,
        interp,
        unboundop,
        unbound: false,
    });
    drop(st);
    q.not_empty.notify_one();
    Ok(())
}

/// What [`get`] returns: a value, or the unbound op of an item whose interpreter is gone.
pub enum Got {
    /// A live item, with what [`unget`] needs to put it back.
    Value(Value, Putback),
    /// An unbound item (`UNBOUND_ERROR` or `UNBOUND_REPLACE`).
    Unbound(i32),
}

/// Pops the next item. An empty queue makes it wait, with the caller's GIL released, until an
/// item comes, the deadline passes (`block = false`: at once; `timeout = None`: never) or a
/// signal handler raises.
///
/// # Errors
/// [`QueueError::NotFound`] if no queue has that id; [`QueueError::Empty`] if no item came in
/// time; [`QueueError::Interrupted`] if a signal handler raised or the process exits (see the
/// variant; the exception is set).
///
/// # Safety
/// A thread state is attached to this thread.
pub unsafe fn get(id: i64, block: bool, timeout: Option<f64>) -> Result<Got, QueueError> {
    let q = find(id)?;
    let st = q.lock();
    let deadline = deadline_of(block, timeout);
    // SAFETY: a thread state is attached to this thread (caller's contract), as `wait_until`
    // needs.
    let mut st = unsafe { wait_until(&q, &q.not_empty, st, deadline, |s| !s.items.is_empty()) }?;
    let item = st.items.pop_front().ok_or(QueueError::Empty)?;
    drop(st);
    q.not_full.notify_one();
    Ok(if item.unbound {
        Got::Unbound(item.unboundop)
    } else {
        Got::Value(
            item.value,
            Putback {
                interp: item.interp,
                unboundop: item.unboundop,
            },
        )
    })
}

/// Where an item [`get`] took came from, to put it back with [`unget`].
#[derive(Clone, Copy)]
pub struct Putback {
    interp: i64,
    unboundop: i32,
}

/// Puts an item [`get`] took back at the front of its queue (it could not be rebuilt for lack
/// of memory: nothing is lost). Ignores a queue gone meanwhile; may pass `maxsize`. Needs no
/// GIL.
pub fn unget(id: i64, value: Value, from: Putback) {
    if let Ok(q) = find(id) {
        q.lock().items.push_front(Item {
            value,
            interp: from.interp,
            unboundop: from.unboundop,
            unbound: false,
        });
        q.not_empty.notify_one();
    }
}

/// The queue id of `obj` if it is an instance of the queue class registered in this
/// interpreter, bound for crossing; `None` otherwise (a Python error may be left set, as
/// callers trying one kind after another clear it).
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
pub unsafe fn queue_ref_of(obj: *mut PyObject) -> Option<QueueRef> {
    // SAFETY: caller holds the GIL.
    unsafe {
        let dict = pyo3_ffi::PyInterpreterState_GetDict(pyo3_ffi::PyInterpreterState_Get());
        if dict.is_null() {
            return None;
        }
        let cls = pyo3_ffi::PyDict_GetItemString(dict, QUEUE_TYPE_KEY.as_ptr());
        if cls.is_null() || pyo3_ffi::Py_TYPE(obj).cast::<PyObject>() != cls {
            return None;
        }
        let id = pyutil::getattr(obj, c"_id")?;
        let id = pyo3_ffi::PyLong_AsLongLong(id.as_ptr());
        if id == -1 && !pyo3_ffi::PyErr_Occurred().is_null() {
            return None;
        }
        QueueRef::bind(id).ok()
    }
}

/// The key under which the facade's queue class is registered in each interpreter's state
/// dict (`_native._register_queue_type`).
const QUEUE_TYPE_KEY: &std::ffi::CStr = c"subinterp_rs.queue_type";

/// Records `cls` as the class that wraps queue ids in the current interpreter (the facade's
/// `Queue`); `false` with a Python error set on failure.
///
/// # Safety
/// The current interpreter's GIL is held; `cls` is alive.
pub unsafe fn register_queue_type(cls: *mut PyObject) -> bool {
    // SAFETY: the GIL is held (contract); the state dict is borrowed and keeps `cls` alive.
    unsafe {
        let dict = pyo3_ffi::PyInterpreterState_GetDict(pyo3_ffi::PyInterpreterState_Get());
        !dict.is_null() && pyo3_ffi::PyDict_SetItemString(dict, QUEUE_TYPE_KEY.as_ptr(), cls) >= 0
    }
}

/// A queue object of this interpreter for `q` (importing the facade if no class is registered).
///
/// # Safety
/// The current interpreter's GIL is held. On `None` an error is set.
pub unsafe fn queue_object(q: &QueueRef) -> Option<Owned> {
    // SAFETY: caller holds the GIL.
    unsafe {
        let dict = pyo3_ffi::PyInterpreterState_GetDict(pyo3_ffi::PyInterpreterState_Get());
        let mut cls = pyo3_ffi::PyDict_GetItemString(dict, QUEUE_TYPE_KEY.as_ptr());
        if cls.is_null() {
            pyutil::import(c"subinterp_rs.interpreters")?;
            cls = pyo3_ffi::PyDict_GetItemString(dict, QUEUE_TYPE_KEY.as_ptr());
            if cls.is_null() {
                pyo3_ffi::PyErr_SetString(
                    pyo3_ffi::PyExc_RuntimeError,
                    c"subinterp_rs.interpreters did not register its Queue class".as_ptr(),
                );
                return None;
            }
        }
        let id = Owned::from_owned(pyo3_ffi::PyLong_FromLongLong(q.id()))?;
        pyutil::call(cls, &[id.as_ptr()])
    }
}
