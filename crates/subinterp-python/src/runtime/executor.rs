//! The executor core: the work queue of `subinterp_rs.futures.InterpreterPoolExecutor` and
//! the running of its tasks inside the workers' interpreters, without Python-level locks.
//!
//! A pool is a queue of [`Task`]s (plain data: the callable and arguments as [`Value`]s) behind
//! one mutex, with a condition variable. [`submit`] pushes a task (the values were read under
//! the submitter's GIL). A worker thread (a Python thread of the pool's interpreter, one
//! interpreter of its own) calls [`work`], which waits with its GIL released, takes several
//! tasks at once (its share of the queue) and runs them all inside its interpreter in one
//! visit ([`work`]), handing the results back together. A task is cancelled ([`cancel`]) by
//! an atomic state the worker also sets when it starts it: one of the two wins. [`close`] ends the pool: workers take what is left, then stop; with
//! `cancel`, what is left is dropped and its ids returned, for their futures to be cancelled.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::runtime::excinfo::ExcInfo;
use crate::runtime::lifecycle::{self, BeginError};
use crate::runtime::run::{self, Failed, Outcome};
use crate::runtime::xi::{self, Fallback, Value};
use subinterp_rs::owned::Owned;

/// What a task runs.
pub enum Work {
    /// `callable(*args, **kwargs)`.
    Call {
        /// The callable.
        callable: Value,
        /// Positional arguments.
        args: Vec<Value>,
        /// Keyword arguments.
        kwargs: Vec<(String, Value)>,
    },
    /// `callable(*args)` for each `args` of `items`, in order (`map(chunksize=n)`), stopping at
    /// the first that raises.
    Chunk {
        /// The callable.
        callable: Value,
        /// The argument tuples of the calls.
        items: Vec<Vec<Value>>,
    },
}

/// A task not started yet (it may be cancelled).
const PENDING: u8 = 0;
/// A task started (it can no longer be cancelled).
const STARTED: u8 = 1;
/// A task cancelled before it started (it will not run).
const CANCELLED: u8 = 2;

/// One submitted task, and its state, which [`cancel`] and the worker that runs it race for.
pub struct Task {
    id: i64,
    work: Work,
    state: Arc<AtomicU8>,
}

/// What running a task gave: plain data, rebuilt in the pool's interpreter.
pub enum Finished {
    /// A call's result.
    Value(Value),
    /// A chunk's results.
    Values(Vec<Value>),
    /// The call raised: the exception described, and the exception itself (pickled, its
    /// traceback and context dropped) when it could cross; for a chunk, the results before.
    Raised {
        /// The exception as text.
        info: ExcInfo,
        /// The exception object, when it pickled.
        exc: Option<Value>,
        /// A chunk's results before the failing call (`None` for a single call).
        partial: Option<Vec<Value>>,
    },
    /// The result could not cross, or the callable or an argument could not be rebuilt inside.
    Failed(Outcome<()>),
    /// It was cancelled before it started: it did not run.
    Cancelled,
}

struct State {
    queue: VecDeque<Task>,
    /// The state of every task submitted and not finished, by id (for [`cancel`]).
    states: HashMap<i64, Arc<AtomicU8>>,
    closed: bool,
    /// Workers waiting in [`work`].
    idle: usize,
}

/// One pool: its queue behind a mutex, and a condition variable workers wait on.
struct Pool {
    state: Mutex<State>,
    ready: Condvar,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

static POOLS: Mutex<Option<HashMap<i64, Arc<Pool>>>> = Mutex::new(None);
static NEXT_POOL: AtomicI64 = AtomicI64::new(1);

fn pools() -> MutexGuard<'static, Option<HashMap<i64, Arc<Pool>>>> {
    POOLS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn find(id: i64) -> Option<Arc<Pool>> {
    pools().as_ref().and_then(|m| m.get(&id).cloned())
}

/// A new, empty, open pool; its id. Needs no GIL.
#[must_use]
pub fn create() -> i64 {
    let id = NEXT_POOL.fetch_add(1, Ordering::Relaxed);
    let pool = Arc::new(Pool {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            states: HashMap::new(),
            closed: false,
            idle: 0,
        }),
        ready: Condvar::new(),
    });
    pools().get_or_insert_with(HashMap::new).insert(id, pool);
    id
}

/// Why a pool operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolError {
    /// No pool with that id (it was dropped).
    NotFound,
    /// The pool is closed: no new tasks.
    Closed,
    /// A signal handler raised while waiting (the Python error is set).
    Interrupted,
}

/// Queues `work` as task `id` (the caller's, unique in the pool); returns it and how many
/// workers were waiting for work (none: the caller may start another). Needs no GIL.
///
/// # Errors
/// [`PoolError::NotFound`], [`PoolError::Closed`].
pub fn submit(pool: i64, id: i64, work: Work) -> Result<(i64, usize), PoolError> {
    let p = find(pool).ok_or(PoolError::NotFound)?;
    let mut st = p.lock();
    if st.closed {
        return Err(PoolError::Closed);
    }
    let state = Arc::new(AtomicU8::new(PENDING));
    st.states.insert(id, Arc::clone(&state));
    st.queue.push_back(Task { id, work, state });
    let idle = st.idle;
    drop(st);
    if idle > 0 {
        // (A notify is a system call even with nobody waiting.)
        p.ready.notify_one();
    }
    Ok((id, idle))
}

/// Closes the pool: no more submissions; workers take what is queued, then [`work`] returns
/// `None`. With `cancel`, the queued tasks are dropped, those taken but not started
/// cancelled, and the ids of both returned. Also forgets
/// the pool when `forget` (its last worker is gone). Needs no GIL.
pub fn close(pool: i64, cancel: bool, forget: bool) -> Vec<i64> {
    let Some(p) = find(pool) else {
        return Vec::new();
    };
    let mut st = p.lock();
    st.closed = true;
    let dropped: Vec<Task> = if cancel {
        st.queue.drain(..).collect()
    } else {
        Vec::new()
    };
    for t in &dropped {
        st.states.remove(&t.id);
    }
    let mut ids: Vec<i64> = dropped.iter().map(|t| t.id).collect();
    if cancel {
        // Taken by a worker but not started: they will not run either.
        for (&id, state) in &st.states {
            if state
                .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                ids.push(id);
            }
        }
    }
    drop(st);
    p.ready.notify_all();
    if forget {
        if let Some(m) = pools().as_mut() {
            m.remove(&pool);
        }
    }
    ids
}

/// Whether task `id` has started (in its worker; `false` once it finished). Needs no GIL.
pub fn started(pool: i64, id: i64) -> bool {
    find(pool).is_some_and(|p| {
        p.lock()
            .states
            .get(&id)
            .is_some_and(|s| s.load(Ordering::Acquire) == STARTED)
    })
}

/// Closes every pool (process exit): their workers stop once the queues are empty. Needs no
/// GIL.
pub fn close_all() {
    let all: Vec<i64> = pools()
        .as_ref()
        .map(|m| m.keys().copied().collect())
        .unwrap_or_default();
    for id in all {
        close(id, false, false);
    }
}

/// Cancels task `id` if it has not started: it will not run. Returns whether it was
/// cancelled (`false`: it started, finished, or is unknown). Needs no GIL.
pub fn cancel(pool: i64, id: i64) -> bool {
    let Some(p) = find(pool) else {
        return false;
    };
    let st = p.lock();
    st.states.get(&id).is_some_and(|s| {
        s.compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    })
}

/// Waits, with the caller's GIL released, until the pool has tasks or is closed, then takes
/// this worker's share (`ceil(queued / workers)`, at most `max`, at least one) and runs them
/// inside interpreter `interp` in one visit ([`run::in_interpreter`]); a task cancelled
/// before it starts is skipped. Returns their results, or `None` when the pool is closed and
/// empty, or the process is exiting.
///
/// # Errors
/// [`WorkError::Pool`] (`NotFound`, or `Interrupted`: a signal handler raised, the error is
/// set); [`WorkError::Begin`] as [`run::in_interpreter`] (the tasks taken did not run: their
/// ids come with it).
///
/// # Safety
/// As [`run::in_interpreter`].
pub unsafe fn work(
    pool: i64,
    interp: i64,
    max: usize,
    workers: usize,
) -> Result<Option<Vec<(i64, Finished)>>, WorkError> {
    const SIGNAL_CHECK: Duration = Duration::from_millis(100);
    let p = find(pool).ok_or(WorkError::Pool(PoolError::NotFound))?;
    // The caller's thread state while it is detached: from the first wait until the tasks
    // taken run (entering the interpreter from there does not take the caller's GIL first),
    // re-attached only to check for signals after a wait that found nothing.
    let mut detached: Option<*mut pyo3_ffi::PyThreadState> = None;
    let mut st = p.lock();
    let tasks = loop {
        if !st.queue.is_empty() {
            let share = st.queue.len().div_ceil(workers.max(1)).clamp(1, max.max(1));
            let tasks: Vec<Task> = st.queue.drain(..share).collect();
            let more = !st.queue.is_empty() && st.idle > 0;
            drop(st);
            if more {
                p.ready.notify_one();
            }
            break tasks;
        }
        if st.closed || lifecycle::is_shut_down() {
            drop(st);
            if let Some(saved) = detached {
                // SAFETY: re-attaching the thread state detached below (no lock held).
                unsafe { pyo3_ffi::PyEval_RestoreThread(saved) };
            }
            return Ok(None);
        }
        if detached.is_none() {
            // SAFETY: the caller's thread state is attached (contract): detached while waiting
            // (releasing a GIL never blocks, so holding the pool's lock here is fine).
            detached = Some(unsafe { pyo3_ffi::PyEval_SaveThread() });
        }
        st.idle += 1;
        let (guard, waited) = p
            .ready
            .wait_timeout(st, SIGNAL_CHECK)
            .unwrap_or_else(PoisonError::into_inner);
        st = guard;
        st.idle -= 1;
        if waited.timed_out() && st.queue.is_empty() {
            drop(st);
            if let Some(saved) = detached.take() {
                // SAFETY: re-attaching the thread state detached above, no lock held.
                unsafe { pyo3_ffi::PyEval_RestoreThread(saved) };
            }
            // SAFETY: the GIL is held again.
            if unsafe { pyo3_ffi::PyErr_CheckSignals() } < 0 {
                return Err(WorkError::Pool(PoolError::Interrupted));
            }
            st = p.lock();
        }
    };
    // SAFETY: the caller's contract is `in_interpreter`'s (its thread state detached by this
    // thread above, for `in_interpreter_detached`); `run_task` runs under the target's GIL, and
    // the cached callable is dropped there too.
    let done = unsafe {
        let batch = || {
            let mut cache = Callables::default();
            tasks
                .iter()
                .map(|t| {
                    let started = t
                        .state
                        .compare_exchange(PENDING, STARTED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok();
                    let fin = if started {
                        run_task(&t.work, &mut cache)
                    } else {
                        Finished::Cancelled
                    };
                    (t.id, fin)
                })
                .collect::<Vec<_>>()
        };
        match detached {
            Some(saved) => run::in_interpreter_detached(interp, saved, batch),
            None => run::in_interpreter(interp, batch),
        }
    };
    let mut st = p.lock();
    for t in &tasks {
        st.states.remove(&t.id);
    }
    drop(st);
    match done {
        Ok(done) => Ok(Some(done)),
        Err(e) => Err(WorkError::Begin(e, tasks.iter().map(|t| t.id).collect())),
    }
}

/// Why [`work`] failed.
pub enum WorkError {
    /// The pool is gone, or the wait was interrupted.
    Pool(PoolError),
    /// The interpreter could not be entered: the tasks taken (ids) did not run.
    Begin(BeginError, Vec<i64>),
}

/// The callable of the previous task of a batch, when it crossed by name: the next task with
/// the same one does not import and look it up again (it is the same object anyway).
#[derive(Default)]
struct Callables {
    last: Option<(String, String, Owned)>,
}

impl Callables {
    /// The object `callable` describes, rebuilt here (or the one of the previous task).
    ///
    /// # Safety
    /// The target interpreter's GIL is held.
    unsafe fn get(&mut self, callable: &Value) -> Result<Owned, Failed> {
        // SAFETY: the GIL is held (contract).
        unsafe {
            if let Value::Ref { module, qualname } = callable {
                if let Some((m, q, obj)) = &self.last {
                    if m == module && q == qualname {
                        return Ok(dup(obj));
                    }
                }
                let obj = xi::from_value(callable)
                    .ok_or_else(|| Failed::Rebuild("the task's callable".into()))?;
                self.last = Some((module.clone(), qualname.clone(), dup(&obj)));
                return Ok(obj);
            }
            xi::from_value(callable).ok_or_else(|| Failed::Rebuild("the task's callable".into()))
        }
    }
}

/// A new reference to `obj`.
///
/// # Safety
/// The GIL of `obj`'s interpreter is held.
unsafe fn dup(obj: &Owned) -> Owned {
    // SAFETY: `obj` is alive (owned); the GIL is held (contract).
    unsafe { Owned::from_borrowed(std::ptr::NonNull::new_unchecked(obj.as_ptr())) }
}

/// Runs one task in the current interpreter. A callable other than a Python function is
/// called from a `__main__` frame, as `call()` and the stdlib's executor do (`eval`,
/// `globals()`, `dir()` need a frame: the worker thread has none of its own).
///
/// # Safety
/// The target interpreter's GIL is held.
unsafe fn run_task(work: &Work, cache: &mut Callables) -> Finished {
    // SAFETY: the GIL is held (contract).
    unsafe {
        match work {
            Work::Call {
                callable,
                args,
                kwargs,
            } => match cache
                .get(callable)
                .and_then(|f| run::call_with(&f, args, kwargs, true))
            {
                Ok(obj) => match run::result_value(&obj, Fallback::PickleClosures) {
                    Outcome::Done(v) => Finished::Value(v),
                    other => Finished::Failed(without_value(other)),
                },
                Err(e) => failed(e, None),
            },
            Work::Chunk { callable, items } => {
                let f = match cache.get(callable) {
                    Ok(f) => f,
                    Err(e) => return failed(e, Some(Vec::new())),
                };
                let mut results = Vec::with_capacity(items.len());
                for args in items {
                    match run::call_with(&f, args, &[], true) {
                        Ok(obj) => match run::result_value(&obj, Fallback::PickleClosures) {
                            Outcome::Done(v) => results.push(v),
                            other => return Finished::Failed(without_value(other)),
                        },
                        Err(e) => return failed(e, Some(results)),
                    }
                }
                Finished::Values(results)
            }
        }
    }
}

/// An outcome that is not `Done`, as an `Outcome<()>`.
fn without_value(out: Outcome<Value>) -> Outcome<()> {
    match out {
        Outcome::Done(_) => Outcome::Done(()),
        Outcome::Raised(i) => Outcome::Raised(i),
        Outcome::NotShareable(m) => Outcome::NotShareable(m),
        Outcome::NoMemory(m) => Outcome::NoMemory(m),
        Outcome::NotRebuilt { what, info, why } => Outcome::NotRebuilt { what, info, why },
    }
}

/// The failure of a call (its error set): the exception described and, if it pickles,
/// itself (without traceback and context, as `ThreadPoolExecutor`'s future would hold it
/// before its traceback is added here).
///
/// # Safety
/// The target interpreter's GIL is held; an error is set.
unsafe fn failed(e: Failed, partial: Option<Vec<Value>>) -> Finished {
    // SAFETY: the GIL is held (contract); references are owned and dropped here.
    unsafe {
        match e {
            Failed::Rebuild(what) => {
                let (info, why) = ExcInfo::take_not_rebuilt();
                Finished::Failed(Outcome::NotRebuilt { what, info, why })
            }
            Failed::Raised => {
                let Some(exc) = Owned::from_owned(pyo3_ffi::PyErr_GetRaisedException()) else {
                    return Finished::Raised {
                        info: ExcInfo::take_current(),
                        exc: None,
                        partial,
                    };
                };
                let info = ExcInfo::describe(exc.as_ptr());
                pyo3_ffi::PyException_SetTraceback(exc.as_ptr(), pyo3_ffi::Py_None());
                pyo3_ffi::PyException_SetContext(exc.as_ptr(), std::ptr::null_mut());
                let value = xi::to_value(exc.as_ptr(), Fallback::Pickle).ok();
                pyo3_ffi::PyErr_Clear();
                Finished::Raised {
                    info,
                    exc: value,
                    partial,
                }
            }
        }
    }
}
