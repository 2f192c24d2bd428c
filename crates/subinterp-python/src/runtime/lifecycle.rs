//! The process-wide registry of the interpreters this module owns.
//!
//! One table for the whole process (every interpreter's copy of the module shares it): each
//! owned [`Subinterpreter`], who created it (`whence`), PEP 734 handle references, whether it
//! is running, and the idle thread states cached per OS thread so that repeated `exec`/`call`
//! from one thread reuse one thread state instead of creating one per call.
//!
//! The table is behind a Rust mutex, never held while waiting for a GIL: its functions need
//! no GIL unless they say otherwise. [`destroy`] and [`lifecycle_write`] must be called with
//! no GIL held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use pyo3_ffi::{PyInterpreterState, PyThreadState};

use subinterp_rs::Error;
use subinterp_rs::Subinterpreter;

/// `_PyInterpreterState_WHENCE_*` values (the stdlib's `_interpreters.WHENCE_*`), exported
/// by `_native` under the same names.
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
/// of interpreters (and by [`shut_down`]), and for reading while that list is walked: walking
/// it unlocked races with `Py_EndInterpreter` freeing an entry (a segfault on 3.12). Nobody
/// waits for it while holding a GIL.
static LIFECYCLE: RwLock<()> = RwLock::new(());

thread_local! {
    /// How many closes this thread is inside (finalizing an interpreter runs `__del__`s that
    /// may drop handles of other interpreters).
    static CLOSING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Set once by [`shut_down`] (the package's atexit hook): from then on no interpreter of
/// ours is created and none of ours starts a run, so what the hook closed stays closed while
/// daemon threads go on until the runtime finalizes.
static SHUT_DOWN: AtomicBool = AtomicBool::new(false);

/// Refuses every later create and run of our interpreters (process exit). Waits for creates
/// and closes in progress; runs already begun are the caller's to stop. Call with no GIL held.
pub fn shut_down() {
    // SAFETY: reads this thread's identifier; no GIL needed.
    let me = unsafe { pyo3_ffi::PyThread_get_thread_ident() } as u64;
    EXIT_THREAD.store(me, Ordering::SeqCst);
    // Under the table lock, like `begin_run`'s check: a run either began before (and is in
    // `running_threads()`) or is refused. Set before waiting for the lifecycle lock, so that
    // daemon threads creating and closing interpreters in a loop are refused from now on and
    // stop taking it: else this wait could lose to them again and again (the lock is not
    // fair), which hung the exit under valgrind. A create that saw the flag unset still holds
    // the lock, and is waited for here.
    with_table(|_| SHUT_DOWN.store(true, Ordering::SeqCst));
    let _no_create_in_progress = lifecycle_write();
}

/// `PyThread_get_thread_ident()` of the thread that ran [`shut_down`].
static EXIT_THREAD: AtomicU64 = AtomicU64::new(0);

/// Whether this is the thread that ran [`shut_down`] (the one exiting the process).
pub fn is_exit_thread() -> bool {
    // SAFETY: reads this thread's identifier; no GIL needed.
    let me = unsafe { pyo3_ffi::PyThread_get_thread_ident() } as u64;
    is_shut_down() && EXIT_THREAD.load(Ordering::SeqCst) == me
}

/// Whether [`shut_down`] ran (check it with the lifecycle lock held, see [`lifecycle_write`],
/// to exclude a racing create). Needs no GIL.
pub fn is_shut_down() -> bool {
    SHUT_DOWN.load(Ordering::SeqCst)
}

/// Interpreters whose close was asked for while this process was inside another close.
static DEFERRED: Mutex<Vec<i64>> = Mutex::new(Vec::new());

/// Whether this thread is inside a close (a finalizer run by `Py_EndInterpreter`). Needs no
/// GIL.
pub fn closing_here() -> bool {
    CLOSING.with(std::cell::Cell::get) > 0
}

/// Takes the lifecycle lock for writing, held while an interpreter of ours is added to or
/// removed from CPython's list of interpreters (walking that list meanwhile can crash).
///
/// Call with no GIL held: a thread listing interpreters waits for this lock after releasing
/// its GIL, and a create or close needs GILs while it holds the lock.
pub fn lifecycle_write() -> RwLockWriteGuard<'static, ()> {
    LIFECYCLE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Tries to take the lifecycle lock (see [`lifecycle_write`]) for reading, for walking
/// CPython's list of interpreters, for up to `patience`; `None` if a create or close held it
/// all along (the caller then lists what the registry knows). Call with no GIL held.
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

/// Adds an owned interpreter, created by `whence`, with `handles` handle references already
/// taken; returns its id. Needs no GIL.
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

/// Whether `id` is ours (owned and registered, and not disarmed). Needs no GIL.
#[must_use]
pub fn is_owned(id: i64) -> bool {
    with_table(|t| {
        t.get(&id)
            .is_some_and(|r| r.si.as_ref().is_some_and(Subinterpreter::is_owned))
    })
}

/// The `whence` we recorded for `id`, if it is ours. Needs no GIL.
#[must_use]
pub fn whence_of(id: i64) -> Option<i64> {
    with_table(|t| t.get(&id).map(|r| r.whence))
}

/// Whether we know `id` runs (our own flag; CPython's is checked separately). Needs no GIL.
#[must_use]
pub fn is_running(id: i64) -> bool {
    with_table(|t| t.get(&id).is_some_and(|r| r.running))
}

/// Ids of all registered interpreters, in no particular order. Needs no GIL.
#[must_use]
pub fn ids() -> Vec<i64> {
    with_table(|t| t.keys().copied().collect())
}

/// A run in progress: what [`begin_run`] reserved for the calling thread, to hand back to
/// [`end_run`] on the same thread. Not `Send` (it holds raw CPython pointers).
pub struct Run {
    /// The interpreter's id.
    pub id: i64,
    /// Its state (alive while the run is reserved, for ours).
    pub istate: *mut PyInterpreterState,
    /// A cached idle (detached) thread state of this thread for it, if any.
    pub cached: Option<*mut PyThreadState>,
    /// Whether the interpreter is ours (then thread states may be cached).
    pub ours: bool,
}

/// Why a run could not begin (raised in Python as `InterpreterNotFoundError` for `NotFound`,
/// else `InterpreterError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginError {
    /// No such interpreter.
    NotFound,
    /// It runs already (in some thread, maybe this one further up the stack).
    Running,
    /// It is being closed.
    Closing,
    /// The process is exiting ([`shut_down`] ran).
    ShutDown,
}

/// Reserves interpreter `id` for a run on this thread, taking a cached idle thread state of
/// this thread if there is one. An interpreter we do not own (main, or the stdlib's) is looked
/// up in CPython's list and not reserved.
///
/// # Errors
/// [`BeginError::NotFound`] if no interpreter has that id; [`BeginError::Running`] if ours
/// runs already; [`BeginError::Closing`] if ours is being closed; [`BeginError::ShutDown`]
/// if ours and the process is exiting.
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
        if is_shut_down() {
            return Err(BeginError::ShutDown);
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
    match unsafe { subinterp_rs::ffi_ext::look_up_id(id) } {
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
/// whether the interpreter should now be closed (its last handle went while it ran). Needs no
/// GIL.
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

/// Takes the orphaned thread states of `id` (cached by OS threads that have exited since), to
/// delete with [`delete_idle`] under its GIL. Needs no GIL itself.
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

/// Why an interpreter could not be destroyed (raised in Python as `InterpreterNotFoundError`
/// for `NotFound`, else `InterpreterError`).
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
    /// The process is exiting: the exit hook closes what is left ([`destroy_at_exit`]).
    ShutDown,
}

/// Destroys our interpreter `id`, deleting its cached thread states first. Asked from inside
/// another close (a `__del__` run by finalization), it is done right after that close.
///
/// Before ending it, under its own GIL: its queue items become unbound and the buffers it
/// exported that were dropped elsewhere are released. Call with no GIL held (it takes the
/// lifecycle lock and activates the interpreter).
///
/// # Errors
/// [`DestroyError::NotFound`] if `id` is not ours; [`DestroyError::Disarmed`];
/// [`DestroyError::Closing`] if a close is in progress; [`DestroyError::Running`];
/// [`DestroyError::BuffersInUse`] if memoryviews over its buffers live in other interpreters;
/// [`DestroyError::Core`] for the other refusals of
/// [`Subinterpreter::try_close`](subinterp_rs::Subinterpreter::try_close);
/// [`DestroyError::ShutDown`] once the process is exiting (the exit hook closes it). On error
/// the interpreter stays registered.
pub fn destroy(id: i64) -> Result<(), DestroyError> {
    if is_shut_down() {
        return Err(if with_table(|t| t.contains_key(&id)) {
            DestroyError::ShutDown
        } else {
            DestroyError::NotFound
        });
    }
    destroy_joining(id, true)
}

/// [`destroy`], also after [`shut_down`]: for the exit hook only (it alone closes then, so an
/// interpreter it works on cannot be destroyed under it by a daemon thread). `threading`
/// threads still running in it are not waited for: they make it refuse.
///
/// # Errors
/// As [`destroy`], without [`DestroyError::ShutDown`].
pub fn destroy_at_exit(id: i64) -> Result<(), DestroyError> {
    destroy_joining(id, false)
}

/// Destroys `id`; `join_threads`: wait for its running `threading` threads to end (else
/// refuse while any runs).
fn destroy_joining(id: i64, join_threads: bool) -> Result<(), DestroyError> {
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
    let result = destroy_now(id, join_threads);
    let deferred = std::mem::take(&mut *DEFERRED.lock().unwrap_or_else(PoisonError::into_inner));
    for other in deferred {
        let _ = destroy_now(other, join_threads);
    }
    result
}

fn destroy_now(id: i64, join_threads: bool) -> Result<(), DestroyError> {
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
    let result = close_taken(&mut si, id, &tstates, join_threads);
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
    join_threads: bool,
) -> Result<(), DestroyError> {
    // Items it put in queues become unbound, and buffers it exported that were dropped
    // elsewhere are released, both under its own GIL; cached thread states go too.
    {
        let scope = subinterp_rs::ScopedActivate::new(si).map_err(DestroyError::Core)?;
        // SAFETY: the scope holds this interpreter's GIL; the cached states are idle.
        unsafe {
            delete_idle(tstates);
            crate::runtime::queue::unbind_interpreter(id);
            crate::runtime::buffer::release_pending(id);
        }
        drop(scope);
    }
    let live = crate::runtime::buffer::live_exports(id);
    if live > 0 {
        return Err(DestroyError::BuffersInUse(live));
    }
    let _listing_waits = lifecycle_write();
    CLOSING.with(|c| c.set(c.get() + 1));
    let result = if join_threads {
        si.try_close()
    } else {
        si.try_close_without_joining()
    };
    CLOSING.with(|c| c.set(c.get() - 1));
    result.map_err(|e| match e {
        Error::Running => DestroyError::Running,
        other => DestroyError::Core(other),
    })
}

/// Re-takes ownership of a disarmed interpreter (process exit only: a subinterpreter left at
/// exit makes 3.12 abort). Needs no GIL.
pub fn rearm(id: i64) {
    with_table(|t| {
        if let Some(si) = t.get_mut(&id).and_then(|r| r.si.as_mut()) {
            si.rearm();
        }
    });
}

/// Gives up ownership of `id` on purpose (leaked, never destroyed, except at exit). Needs no
/// GIL.
///
/// # Errors
/// [`DestroyError::NotFound`] if `id` is not ours; [`DestroyError::Closing`] if a close is
/// in progress.
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

/// Takes a PEP 734 handle reference on `id` (no-op for interpreters we do not own). Needs no
/// GIL.
pub fn incref(id: i64) {
    with_table(|t| {
        if let Some(rec) = t.get_mut(&id) {
            rec.handles += 1;
        }
    });
}

/// Drops a handle reference. Returns whether the interpreter should now be closed (its last
/// handle went and it was created with handle tracking, `whence::STDLIB`); if it runs, the
/// run's end closes it. Needs no GIL.
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

/// Marks `id` so the end of its current run closes it. Needs no GIL.
pub fn close_when_idle(id: i64) {
    with_table(|t| {
        if let Some(rec) = t.get_mut(&id) {
            rec.close_when_idle = true;
        }
    });
}

/// Our interpreters that no close is working on (after [`shut_down`], only the exit hook
/// starts closes, so these stay alive until it closes them).
#[must_use]
pub fn not_closing() -> Vec<i64> {
    with_table(|t| {
        t.iter()
            .filter(|(_, r)| !r.closing && r.si.is_some())
            .map(|(&id, _)| id)
            .collect()
    })
}

/// `(id, thread ident)` of our interpreters that run right now (the ident is
/// `threading.get_ident()` of the running OS thread). Needs no GIL.
#[must_use]
pub fn running_threads() -> Vec<(i64, u64)> {
    with_table(|t| {
        t.iter()
            .filter(|(_, r)| r.running)
            .map(|(&id, r)| (id, r.running_thread))
            .collect()
    })
}
