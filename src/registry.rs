//! The process-wide registry of the interpreters this module owns.
//!
//! One table for the whole process (every interpreter's copy of the module shares it): each
//! owned [`Subinterpreter`], who created it (`whence`), PEP 734 handle references, whether it
//! is running, and the idle thread states cached per OS thread so that repeated `exec`/`call`
//! from one thread reuse one thread state instead of creating one per call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use pyo3_ffi::{PyInterpreterState, PyThreadState};

use crate::error::Error;
use crate::interp::Subinterpreter;

/// `_PyInterpreterState_WHENCE_*` values (the stdlib's `_interpreters.WHENCE_*`).
pub mod whence {
    /// Not known.
    pub const UNKNOWN: i64 = 0;
    /// The main interpreter.
    pub const RUNTIME: i64 = 1;
    /// `Py_NewInterpreter()`.
    pub const LEGACY_CAPI: i64 = 2;
    /// `Py_NewInterpreterFromConfig()`.
    pub const CAPI: i64 = 3;
    /// The cross-interpreter C-API.
    pub const XI: i64 = 4;
    /// The `_interpreters` module (and our PEP 734 facade).
    pub const STDLIB: i64 = 5;
}

/// A raw thread state that may sit in the process-wide table.
#[derive(Clone, Copy, PartialEq, Eq)]
struct TstatePtr(*mut PyThreadState);
// SAFETY: a cached thread state is idle (attached nowhere) while in the table; only the thread
// that takes it out attaches it, and deletion happens under its interpreter's GIL.
unsafe impl Send for TstatePtr {}

struct Record {
    /// `None` while a close is in progress (taken out so no lock is held while it runs).
    si: Option<Subinterpreter>,
    istate: usize,
    whence: i64,
    handles: usize,
    running: bool,
    /// `threading.get_ident()` of the OS thread running it.
    running_thread: u64,
    closing: bool,
    close_when_idle: bool,
    /// Idle thread states by thread token.
    cached: Vec<(u64, TstatePtr)>,
    /// Idle thread states whose OS thread exited: deleted at the next chance.
    orphans: Vec<TstatePtr>,
}

static REGISTRY: Mutex<Option<HashMap<i64, Record>>> = Mutex::new(None);

fn table() -> MutexGuard<'static, Option<HashMap<i64, Record>>> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

fn with_table<R>(f: impl FnOnce(&mut HashMap<i64, Record>) -> R) -> R {
    f(table().get_or_insert_with(HashMap::new))
}

/// Held for writing while an interpreter of ours is added to or removed from CPython's list
/// of interpreters, and for reading while that list is walked: walking it unlocked races with
/// `Py_EndInterpreter` freeing an entry (a segfault on 3.12). Nobody waits for it while
/// holding a GIL.
static LIFECYCLE: RwLock<()> = RwLock::new(());

thread_local! {
    /// How many closes this thread is inside (finalizing an interpreter runs `__del__`s that
    /// may drop handles of other interpreters).
    static CLOSING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Interpreters whose close was asked for while this process was inside another close.
static DEFERRED: Mutex<Vec<i64>> = Mutex::new(Vec::new());

/// Whether this thread is inside a close.
pub fn closing_here() -> bool {
    CLOSING.with(std::cell::Cell::get) > 0
}

/// Takes [`LIFECYCLE`] for writing. Call with no GIL held.
pub fn lifecycle_write() -> RwLockWriteGuard<'static, ()> {
    LIFECYCLE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Tries to take [`LIFECYCLE`] for reading for up to `patience`; `None` if a create or close
/// held it all along (the caller then lists what the registry knows).
pub fn lifecycle_read(patience: Duration) -> Option<RwLockReadGuard<'static, ()>> {
    let deadline = Instant::now() + patience;
    loop {
        match LIFECYCLE.try_read() {
            Ok(g) => return Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

/// A token per OS thread; when the thread exits, its cached thread states become orphans.
struct ThreadToken(u64);

impl Drop for ThreadToken {
    fn drop(&mut self) {
        let key = self.0;
        with_table(|t| {
            for rec in t.values_mut() {
                rec.cached.retain(|&(k, ts)| {
                    if k == key {
                        rec.orphans.push(ts);
                        false
                    } else {
                        true
                    }
                });
            }
        });
    }
}

thread_local! {
    static TOKEN: ThreadToken = ThreadToken(NEXT_TOKEN.fetch_add(1, Ordering::Relaxed));
}
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn thread_key() -> Option<u64> {
    TOKEN.try_with(|t| t.0).ok()
}

/// Adds an owned interpreter with `handles` handle references already taken.
pub fn register(si: Subinterpreter, whence: i64, handles: usize) -> i64 {
    let id = si.id();
    let istate = si.as_ptr() as usize;
    with_table(|t| {
        t.insert(
            id,
            Record {
                si: Some(si),
                istate,
                whence,
                handles,
                running: false,
                running_thread: 0,
                closing: false,
                close_when_idle: false,
                cached: Vec::new(),
                orphans: Vec::new(),
            },
        );
    });
    id
}

/// Whether `id` is ours (owned and registered, and not disarmed).
#[must_use]
pub fn is_owned(id: i64) -> bool {
    with_table(|t| {
        t.get(&id)
            .is_some_and(|r| r.si.as_ref().is_some_and(Subinterpreter::is_owned))
    })
}

/// The `whence` we recorded for `id`, if it is ours.
#[must_use]
pub fn whence_of(id: i64) -> Option<i64> {
    with_table(|t| t.get(&id).map(|r| r.whence))
}

/// Whether we know `id` runs (our own flag; CPython's is checked separately).
#[must_use]
pub fn is_running(id: i64) -> bool {
    with_table(|t| t.get(&id).is_some_and(|r| r.running))
}

/// Ids of all registered interpreters.
#[must_use]
pub fn ids() -> Vec<i64> {
    with_table(|t| t.keys().copied().collect())
}

/// A run in progress: what [`begin_run`] reserved for the calling thread.
pub struct Run {
    /// The interpreter's id.
    pub id: i64,
    /// Its state.
    pub istate: *mut PyInterpreterState,
    /// A cached idle thread state of this thread, if any.
    pub cached: Option<*mut PyThreadState>,
    /// Whether the interpreter is ours (then thread states may be cached).
    pub ours: bool,
}

/// Why a run could not begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginError {
    /// No such interpreter.
    NotFound,
    /// It runs already (in some thread, maybe this one further up the stack).
    Running,
    /// It is being closed.
    Closing,
}

/// Reserves interpreter `id` for a run on this thread.
///
/// # Safety
/// A thread state is attached to this thread (for the look-up of foreign interpreters).
pub unsafe fn begin_run(id: i64) -> Result<Run, BeginError> {
    let key = thread_key();
    let ours = with_table(|t| {
        let Some(rec) = t.get_mut(&id) else {
            return Ok(None);
        };
        if rec.closing || rec.si.is_none() {
            return Err(BeginError::Closing);
        }
        if rec.running {
            return Err(BeginError::Running);
        }
        rec.running = true;
        // SAFETY: reads this thread's identifier; no GIL needed.
        rec.running_thread = unsafe { pyo3_ffi::PyThread_get_thread_ident() } as u64;
        let cached = key.and_then(|k| {
            let pos = rec.cached.iter().position(|&(ck, _)| ck == k)?;
            Some(rec.cached.swap_remove(pos).1 .0)
        });
        Ok(Some(Run {
            id,
            istate: rec.istate as *mut PyInterpreterState,
            cached,
            ours: true,
        }))
    })?;
    if let Some(run) = ours {
        return Ok(run);
    }
    // SAFETY: a thread state is attached (contract).
    match unsafe { crate::ffi_ext::look_up_id(id) } {
        Some(istate) => Ok(Run {
            id,
            istate,
            cached: None,
            ours: false,
        }),
        None => Err(BeginError::NotFound),
    }
}

/// Ends a run: caches `idle` (a detached thread state of this thread) if given. Returns
/// whether the interpreter should now be closed (its last handle went while it ran).
pub fn end_run(run: &Run, idle: Option<*mut PyThreadState>) -> bool {
    let key = thread_key();
    with_table(|t| {
        let Some(rec) = t.get_mut(&run.id) else {
            return false;
        };
        rec.running = false;
        if let (Some(ts), Some(k)) = (idle, key) {
            rec.cached.push((k, TstatePtr(ts)));
        } else if let Some(ts) = idle {
            rec.orphans.push(TstatePtr(ts));
        }
        rec.close_when_idle && rec.handles == 0
    })
}

/// Takes the orphaned thread states of `id` (to delete under its GIL).
#[must_use]
pub fn take_orphans(id: i64) -> Vec<*mut PyThreadState> {
    with_table(|t| {
        t.get_mut(&id)
            .map(|r| r.orphans.drain(..).map(|p| p.0).collect())
            .unwrap_or_default()
    })
}

/// Deletes idle thread states of the interpreter whose GIL this thread holds.
///
/// # Safety
/// The GIL of their interpreter is held on this thread; none of them is attached anywhere.
pub unsafe fn delete_idle(tstates: &[*mut PyThreadState]) {
    for &ts in tstates {
        // SAFETY: idle (attached nowhere) and of the interpreter whose GIL we hold.
        unsafe {
            pyo3_ffi::PyThreadState_Clear(ts);
            pyo3_ffi::PyThreadState_Delete(ts);
        }
    }
}

/// Why an interpreter could not be destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestroyError {
    /// Not registered (maybe not ours, maybe gone).
    NotFound,
    /// Registered but disarmed.
    Disarmed,
    /// A close is already in progress.
    Closing,
    /// It runs in some thread.
    Running,
    /// Buffers it exported are still in use elsewhere.
    BuffersInUse(usize),
    /// The core refused.
    Core(Error),
}

/// Destroys our interpreter `id`, deleting its cached thread states first. Asked from inside
/// another close (a `__del__` run by finalization), it is done right after that close.
pub fn destroy(id: i64) -> Result<(), DestroyError> {
    if closing_here() {
        if with_table(|t| t.contains_key(&id)) {
            DEFERRED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(id);
            return Ok(());
        }
        return Err(DestroyError::NotFound);
    }
    let result = destroy_now(id);
    let deferred = std::mem::take(&mut *DEFERRED.lock().unwrap_or_else(PoisonError::into_inner));
    for other in deferred {
        let _ = destroy_now(other);
    }
    result
}

fn destroy_now(id: i64) -> Result<(), DestroyError> {
    let (mut si, tstates) = with_table(|t| {
        let rec = t.get_mut(&id).ok_or(DestroyError::NotFound)?;
        if rec.closing || rec.si.is_none() {
            return Err(DestroyError::Closing);
        }
        if !rec.si.as_ref().is_some_and(Subinterpreter::is_owned) {
            return Err(DestroyError::Disarmed);
        }
        if rec.running {
            return Err(DestroyError::Running);
        }
        rec.closing = true;
        let mut tstates: Vec<*mut PyThreadState> = rec.cached.drain(..).map(|(_, p)| p.0).collect();
        tstates.extend(rec.orphans.drain(..).map(|p| p.0));
        Ok((rec.si.take().expect("checked above"), tstates))
    })?;
    let result = close_taken(&mut si, id, &tstates);
    with_table(|t| match &result {
        Ok(()) => {
            t.remove(&id);
        }
        Err(_) => {
            if let Some(rec) = t.get_mut(&id) {
                rec.si = Some(si);
                rec.closing = false;
            }
        }
    });
    result
}

fn close_taken(
    si: &mut Subinterpreter,
    id: i64,
    tstates: &[*mut PyThreadState],
) -> Result<(), DestroyError> {
    // Items it put in queues become unbound, and buffers it exported that were dropped
    // elsewhere are released, both under its own GIL; cached thread states go too.
    {
        let scope = crate::scope::ScopedActivate::new(si).map_err(DestroyError::Core)?;
        // SAFETY: the scope holds this interpreter's GIL; the cached states are idle.
        unsafe {
            delete_idle(tstates);
            crate::queue::unbind_interpreter(id);
            crate::buffer::release_pending(id);
        }
        drop(scope);
    }
    let live = crate::buffer::live_exports(id);
    if live > 0 {
        return Err(DestroyError::BuffersInUse(live));
    }
    let _listing_waits = lifecycle_write();
    CLOSING.with(|c| c.set(c.get() + 1));
    let result = si.try_close();
    CLOSING.with(|c| c.set(c.get() - 1));
    result.map_err(|e| match e {
        Error::Running => DestroyError::Running,
        other => DestroyError::Core(other),
    })
}

/// Re-takes ownership of a disarmed interpreter (process exit only).
pub fn rearm(id: i64) {
    with_table(|t| {
        if let Some(si) = t.get_mut(&id).and_then(|r| r.si.as_mut()) {
            si.rearm();
        }
    });
}

/// Gives up ownership of `id` on purpose (leaked, never destroyed).
pub fn disarm(id: i64) -> Result<(), DestroyError> {
    with_table(|t| {
        let rec = t.get_mut(&id).ok_or(DestroyError::NotFound)?;
        match rec.si.as_mut() {
            Some(si) => {
                si.disarm();
                Ok(())
            }
            None => Err(DestroyError::Closing),
        }
    })
}

/// Takes a PEP 734 handle reference on `id` (no-op for interpreters we do not own).
pub fn incref(id: i64) {
    with_table(|t| {
        if let Some(rec) = t.get_mut(&id) {
            rec.handles += 1;
        }
    });
}

/// Drops a handle reference. Returns whether the interpreter should now be closed (its last
/// handle went and it was created with handle tracking); if it runs, the run's end closes it.
pub fn decref(id: i64) -> bool {
    with_table(|t| {
        let Some(rec) = t.get_mut(&id) else {
            return false;
        };
        rec.handles = rec.handles.saturating_sub(1);
        if rec.handles > 0 || rec.whence != whence::STDLIB {
            return false;
        }
        if rec.running {
            rec.close_when_idle = true;
            false
        } else {
            true
        }
    })
}

/// Marks `id` so the end of its current run closes it.
pub fn close_when_idle(id: i64) {
    with_table(|t| {
        if let Some(rec) = t.get_mut(&id) {
            rec.close_when_idle = true;
        }
    });
}

/// `(id, thread ident)` of our interpreters that run right now.
#[must_use]
pub fn running_threads() -> Vec<(i64, u64)> {
    with_table(|t| {
        t.iter()
            .filter(|(_, r)| r.running)
            .map(|(&id, r)| (id, r.running_thread))
            .collect()
    })
}
