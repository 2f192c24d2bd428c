//! The one owner of every interpreter's lifecycle.
//!
//! Every interpreter this package creates has one [`Entry`] in one process-wide table (every
//! interpreter's copy of `_native` shares it), keyed by id; its [`State`] changes only here,
//! under the table's one mutex, which is never held while waiting for a GIL or another lock.
//! Module functions call the operations below and never take a lock themselves.
//!
//! ## States
//!
//! | state | meaning |
//! |---|---|
//! | *creating* | counted in the table ([`Table::creating`]), no entry yet: between the shut-down check and registration |
//! | `Idle` | registered, nobody runs in it |
//! | `Running` | one thread runs in it ([`run`](super::run)); `thread` is that OS thread |
//! | `Closing` | a close is under way; its handle is out of the table (no lock is held while CPython ends it) |
//! | *closed* | no entry: the id is unknown (`InterpreterNotFoundError`) |
//! | *foreign* | no entry, but CPython knows the id: main, or another API's interpreter |
//! | *deferred* (`Idle` or `Running` with `close_when_idle` and no handles) | its owner went (last PEP 734 handle, or the `Subinterpreter` owner collected) while it could not be closed: it runs, it exported buffers still in use, its threads or other thread states are alive; closed as soon as it can be |
//!
//! Beside the state an entry keeps: `disarmed` (the core handle's ownership, given up on
//! purpose: a disarmed interpreter still runs, but nothing closes it before the exit hook),
//! `handles` (PEP 734 handle references), `close_when_idle` (*deferred*), and thread states
//! cached per OS thread for runs.
//!
//! A *deferred* interpreter is closed by whichever comes first: the end of its run
//! ([`end_run`]), the drop of the last buffer it exported that was still in use elsewhere
//! ([`export_dropped`] schedules the close as a pending call, run by the main interpreter's
//! main thread between bytecodes), or the exit hook. It is not owned any more
//! ([`is_owned`] is false): listing it (`interpreters.list_all()`) takes no handle reference
//! and so cannot close it; nothing but the above does.
//!
//! ## Transitions (state x operation -> new state, or the error raised)
//!
//! | operation | *creating* | `Idle` | `Running` | `Closing` | *closed* | *foreign* |
//! |---|---|---|---|---|---|---|
//! | `create` | -> `Idle` (registered); after shut-down began: `InterpreterError` "at interpreter shutdown" | | | | | |
//! | `begin_run` (exec, call, set_main_attrs) | | -> `Running` (in place when it is this thread's interpreter: a thread it started) | `InterpreterError` "already running" | `InterpreterError` "is being closed" | `InterpreterNotFoundError` | runs, no entry |
//! | `end_run` | | | -> `Idle`; -> close if `close_when_idle` and no handles | | | |
//! | `destroy` | | -> `Closing` -> *closed*; back to `Idle` with the refusal (running elsewhere, threads alive, buffers in use) | `InterpreterError` "running in another thread" | `InterpreterError` "already being closed" | `InterpreterNotFoundError` | `InterpreterError` (main, current, "not created by subinterp_rs"); one the stdlib's `_interpreters.create()` made (whence "stdlib", 3.13+): closed by `_interpreters.destroy()`, refused while it runs |
//! | `destroy` of a disarmed one | | `InterpreterError` "was disarmed" | same | | | |
//! | `disarm` | | `disarmed` set | `disarmed` set | `InterpreterError` "already being closed" | `InterpreterNotFoundError` | |
//! | `incref` | | handles +1 | handles +1 | handles +1 | `InterpreterNotFoundError` | no-op |
//! | `decref` | | handles -1; at 0 (facade-made): -> close (refused: -> *deferred*) | handles -1; at 0: -> *deferred* | handles -1 | no-op | no-op |
//! | `release_owner` (`Subinterpreter` collected unclosed) | | -> close (refused: -> *deferred*); disarmed: nothing | -> *deferred* | nothing | no-op | no-op |
//! | `export_dropped` (a buffer it exported dropped elsewhere) | | *deferred* and none in use: close scheduled (pending call) | | | no-op | |
//! | `end_run` of a *deferred* one | | | -> `Idle` -> close (refused: stays *deferred*) | | | |
//! | `shut_down` (exit hook) | waited for | refused to all but the hook | stopped by the hook | waited for | | |
//!
//! After [`shut_down`] every create, run and close (but the exit hook's own) is refused:
//! "cannot create a subinterpreter at interpreter shutdown", "cannot run in interpreter N at
//! interpreter shutdown", "cannot close interpreter N at interpreter shutdown: the exit hook
//! closes it". The hook re-arms disarmed interpreters (3.12 aborts on one left at exit).
//!
//! ## Locks
//!
//! - The table mutex: every state change and read of an entry. Held briefly, never while
//!   waiting for a GIL, so any thread may take it whatever GIL it holds.
//! - The interpreter-list lock ([`INTERPRETER_LIST`]): held for writing while one of ours is
//!   removed from CPython's list of interpreters (`Py_EndInterpreter`) and, on 3.12, while one
//!   is added; for reading while [`list_all`] walks that list (walking it while an entry is
//!   freed crashes). On 3.13+ creation does not take it: inserting into the list is safe for
//!   a walker, so `Py_NewInterpreterFromConfig` runs in parallel in several threads, and only
//!   the bookkeeping (the *creating* count, registration) is under the table mutex. 3.12 keeps
//!   the core's process-wide creation lock too (concurrent creation crashes 3.12). Nobody waits
//!   for it while holding a GIL. (A create that CPython fails after linking its interpreter
//!   frees it again inside `Py_NewInterpreterFromConfig`, out of memory and the like: the one
//!   free a walk is not guarded against on 3.13+, as with the stdlib's own creates.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use pyo3_ffi::{PyInterpreterState, PyThreadState};

use subinterp_rs::owned::Owned;
use subinterp_rs::{ffi_ext, tstate, Config, Error, ScopedActivate, Subinterpreter};

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

/// Where one of our interpreters is in its lifecycle (see the module's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Registered, nobody runs in it.
    Idle,
    /// One thread runs in it: `threading.get_ident()` of that OS thread.
    Running { thread: u64 },
    /// A close is under way (the handle is out of the entry).
    Closing,
}

/// One interpreter we own.
struct Entry {
    state: State,
    /// The owning handle; `None` exactly while `Closing`.
    si: Option<Subinterpreter>,
    istate: usize,
    whence: i64,
    /// PEP 734 handle references.
    handles: usize,
    /// Close it when its current run ends (its last handle went while it ran, or a close on
    /// a handle's release was refused).
    close_when_idle: bool,
    /// Idle thread states by thread token.
    cached: Vec<(u64, TstatePtr)>,
    /// Idle thread states whose OS thread exited: deleted at the next chance.
    orphans: Vec<TstatePtr>,
}

impl Entry {
    fn disarmed(&self) -> bool {
        self.si.as_ref().is_some_and(|si| !si.is_owned())
    }
}

/// The table: our interpreters, the creates in progress, whether the process is exiting.
struct Table {
    entries: BTreeMap<i64, Entry>,
    /// Creates past their shut-down check and not yet registered (or failed).
    creating: usize,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    entries: BTreeMap::new(),
    creating: 0,
});

/// Signalled when a create in progress ends (for [`shut_down`], which waits for them).
static CREATE_ENDED: Condvar = Condvar::new();

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn with_entries<R>(f: impl FnOnce(&mut BTreeMap<i64, Entry>) -> R) -> R {
    f(&mut table().entries)
}

/// The interpreter-list lock (see the module's doc).
static INTERPRETER_LIST: RwLock<()> = RwLock::new(());

fn list_write() -> std::sync::RwLockWriteGuard<'static, ()> {
    INTERPRETER_LIST
        .write()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The list lock for reading within `patience`, `None` if a close held it all along.
fn list_read(patience: Duration) -> Option<RwLockReadGuard<'static, ()>> {
    let deadline = Instant::now() + patience;
    loop {
        match INTERPRETER_LIST.try_read() {
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

thread_local! {
    /// How many closes this thread is inside (finalizing an interpreter runs `__del__`s that
    /// may drop handles of other interpreters).
    static CLOSING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Set (under the table mutex) by [`shut_down`]; read without it where a stale `false` is
/// harmless (it is checked again under the mutex where it matters).
static SHUT_DOWN: AtomicBool = AtomicBool::new(false);

/// `PyThread_get_thread_ident()` of the thread that ran [`shut_down`].
static EXIT_THREAD: AtomicU64 = AtomicU64::new(0);

/// Interpreters whose close was asked for while this thread was inside another close.
static DEFERRED: Mutex<Vec<i64>> = Mutex::new(Vec::new());

/// `PyThread_get_thread_ident()` of this OS thread, widened (a C `unsigned long`: 64 bits on
/// Linux and macOS, 32 on Windows). Needs no GIL.
#[allow(clippy::cast_lossless)] // lossless everywhere; `u64::from` would be useless on Unix
fn this_thread_ident() -> u64 {
    // SAFETY: reads this thread's identifier; no GIL needed.
    unsafe { pyo3_ffi::PyThread_get_thread_ident() as u64 }
}

// ------------------------------------------------------------------------------- exit

/// Refuses every later create, run and close of our interpreters but the exit hook's
/// (process exit), then waits for the creates and closes in progress. Runs already begun are
/// the caller's to stop. Call with no GIL held.
pub fn shut_down() {
    EXIT_THREAD.store(this_thread_ident(), Ordering::SeqCst);
    // Refused first, waited for after: daemon threads creating and closing in a loop stop
    // taking the locks from now on, so the waits below end (the locks are not fair).
    let mut t = table();
    SHUT_DOWN.store(true, Ordering::SeqCst);
    while t.creating > 0 {
        t = CREATE_ENDED.wait(t).unwrap_or_else(PoisonError::into_inner);
    }
    drop(t);
    drop(list_write()); // closes in progress have ended
}

/// Whether [`shut_down`] ran. Needs no GIL.
pub fn is_shut_down() -> bool {
    SHUT_DOWN.load(Ordering::SeqCst)
}

/// Whether this is the thread that ran [`shut_down`] (the one exiting the process).
pub fn is_exit_thread() -> bool {
    is_shut_down() && EXIT_THREAD.load(Ordering::SeqCst) == this_thread_ident()
}

/// Whether this thread is inside a close (a finalizer run by `Py_EndInterpreter`). Needs no
/// GIL.
pub fn closing_here() -> bool {
    CLOSING.with(std::cell::Cell::get) > 0
}

// ----------------------------------------------------------------------------- create

/// Why a create was refused.
#[derive(Debug)]
pub enum CreateError {
    /// The process is exiting ([`shut_down`] ran).
    ShutDown,
    /// The core refused or CPython failed.
    Core(Error),
    /// The caller's set-up code raised in the new interpreter (`Type: message`); the
    /// interpreter was closed again.
    Setup(String),
}

/// Creates an interpreter from `cfg`, registers it as created by `whence` (the facade's,
/// `whence::STDLIB`, start with one handle reference, the stdlib's `reqrefs`, so nothing can
/// close them before their first handle), and sets it up while the thread state that
/// created it is still attached (no second visit): its `sys.path` starts as a copy of the
/// caller's, one that allows fork gets the fork guard, and `setup` (a code object the
/// caller marshalled) runs in a namespace of its own.
///
/// On 3.13+ creates run in parallel: no lock but the table mutex (briefly) is taken, and
/// `Py_NewInterpreterFromConfig` runs under the caller's own thread state when it is the main
/// interpreter's (as the stdlib's), outside any lock. On 3.12 the caller's GIL is released
/// while it waits for the list lock and the core's creation lock.
///
/// # Errors
/// [`CreateError::ShutDown`] once the process is exiting; [`CreateError::Core`] if the core
/// refuses the config or CPython fails; [`CreateError::Setup`] if `setup` raised (the new
/// interpreter is closed again).
///
/// # Safety
/// A thread state is attached to this thread (the caller's), and no borrowed object of its
/// interpreter is used by the caller across this call.
pub unsafe fn create(cfg: &Config, whence: i64, setup: Option<&[u8]>) -> Result<i64, CreateError> {
    // SAFETY: the caller's GIL is held (contract).
    let paths = unsafe { super::run::sys_path() };
    {
        let mut t = table();
        if is_shut_down() {
            return Err(CreateError::ShutDown);
        }
        t.creating += 1;
    }
    let init = || {
        // SAFETY: `create_with` runs this under the new interpreter's creation thread state,
        // its GIL held; nothing else knows of the interpreter yet.
        unsafe {
            if let Some(paths) = &paths {
                super::run::set_sys_path(paths);
            }
            if cfg.allow_fork {
                super::run::run_private(super::guards::FORK_GUARD);
            }
            setup.and_then(|code| super::run::run_marshalled(code).err())
        }
    };
    // 3.12: the list changes under the create (see the module's doc on locks); the caller's
    // GIL is released before waiting for that lock, and comes back at the end.
    #[cfg(not(Py_3_13))]
    // SAFETY: nothing of the caller's interpreter is used until `reattach` (contract).
    let caller = unsafe { tstate::detach() };
    let created = {
        #[cfg(not(Py_3_13))]
        let _list_changes = list_write();
        Subinterpreter::create_with(cfg, init)
    };
    let result = {
        let mut t = table();
        t.creating -= 1;
        let result = created.map(|(si, setup_failed)| {
            let id = si.id();
            let istate = si.as_ptr() as usize;
            t.entries.insert(
                id,
                Entry {
                    state: State::Idle,
                    si: Some(si),
                    istate,
                    whence,
                    handles: usize::from(whence == whence::STDLIB),
                    close_when_idle: false,
                    cached: Vec::new(),
                    orphans: Vec::new(),
                },
            );
            (id, setup_failed)
        });
        CREATE_ENDED.notify_all();
        result.map_err(CreateError::Core)
    };
    #[cfg(not(Py_3_13))]
    // SAFETY: no thread state is attached; `caller` is the one detached above.
    unsafe {
        tstate::reattach(caller);
    }
    let (id, setup_failed) = result?;
    if let Some(why) = setup_failed {
        // SAFETY: the caller's thread state is attached (contract); nothing runs in `id`.
        let _ = unsafe { destroy(id) };
        return Err(CreateError::Setup(why));
    }
    // Free-threaded CPython (3.14t): an interpreter with a GIL of its own starts with it
    // disabled; importing `_native` there enables it (the module says it needs it).
    #[cfg(Py_GIL_DISABLED)]
    // SAFETY: the caller's thread state is attached again (in_interpreter's contract).
    let _ = unsafe {
        super::run::in_interpreter(id, || {
            super::run::run_private(super::guards::ENABLE_GIL);
        })
    };
    Ok(id)
}

// ------------------------------------------------------------------------------ query

/// CPython's (3.13+) or our record of who created interpreter `istate` (alive).
///
/// # Safety
/// `istate` is alive.
unsafe fn whence_of(id: i64, istate: *mut PyInterpreterState) -> i64 {
    if let Some(w) = with_entries(|e| e.get(&id).map(|e| e.whence)) {
        return w;
    }
    // SAFETY: `istate` is alive (contract); both calls read runtime fields.
    unsafe {
        if istate == pyo3_ffi::PyInterpreterState_Main() {
            return whence::RUNTIME;
        }
        ffi_ext::whence(istate).map_or(whence::UNKNOWN, i64::from)
    }
}

/// No interpreter has that id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotFound;

/// Looks `id` up in CPython's list (under its own lock).
///
/// # Safety
/// A thread state is attached.
unsafe fn look_up(id: i64) -> Result<*mut PyInterpreterState, NotFound> {
    // SAFETY: a thread state is attached (contract).
    unsafe { ffi_ext::look_up_id(id) }.ok_or(NotFound)
}

/// `(id, whence)` of the interpreter attached to this thread.
///
/// # Safety
/// A thread state is attached.
pub unsafe fn current() -> (i64, i64) {
    // SAFETY: a thread state is attached (contract), so it has an interpreter, alive.
    unsafe {
        let istate = pyo3_ffi::PyInterpreterState_Get();
        let id = pyo3_ffi::PyInterpreterState_GetID(istate);
        (id, whence_of(id, istate))
    }
}

/// The id of the main interpreter. Needs no GIL.
pub fn main_id() -> i64 {
    // SAFETY: reads runtime fields; the main interpreter lives until finalization.
    unsafe { pyo3_ffi::PyInterpreterState_GetID(pyo3_ffi::PyInterpreterState_Main()) }
}

/// Who created `id` (`whence::*`).
///
/// # Errors
/// [`NotFound`] if no interpreter has that id.
///
/// # Safety
/// A thread state is attached.
pub unsafe fn whence(id: i64) -> Result<i64, NotFound> {
    // SAFETY: a thread state is attached (contract); the looked-up interpreter is alive.
    unsafe { look_up(id).map(|istate| whence_of(id, istate)) }
}

/// Whether `id` runs code in some thread (our run, or the stdlib's `exec`).
///
/// # Errors
/// [`NotFound`] if no interpreter has that id.
///
/// # Safety
/// A thread state is attached.
pub unsafe fn is_running(id: i64) -> Result<bool, NotFound> {
    // SAFETY: a thread state is attached (contract); the looked-up interpreter is alive.
    let istate = unsafe { look_up(id) }?;
    let ours = with_entries(|e| {
        e.get(&id)
            .is_some_and(|e| matches!(e.state, State::Running { .. }))
    });
    // SAFETY: `istate` is alive; the check reads one field.
    Ok(ours || unsafe { ffi_ext::is_running_main(istate) })
}

/// Whether `id` is ours and owned (registered, not disarmed, not closing, not deferred: its
/// owner is still there). Needs no GIL.
pub fn is_owned(id: i64) -> bool {
    with_entries(|e| {
        e.get(&id).is_some_and(|e| {
            e.si.as_ref().is_some_and(Subinterpreter::is_owned)
                && !(e.close_when_idle && e.handles == 0)
        })
    })
}

/// `(id, whence)` of every interpreter, by id. Walks CPython's list under the list lock; if a
/// close holds it for long (one joining threads, say), lists main and ours instead.
///
/// # Safety
/// A thread state is attached (its GIL is released while waiting for the list lock).
pub unsafe fn list_all() -> Vec<(i64, i64)> {
    // Inside a close on this thread (a finalizer listing), the lock is ours: don't wait.
    let patience = if closing_here() {
        Duration::ZERO
    } else {
        Duration::from_secs(1)
    };
    // SAFETY: nothing of the caller's interpreter is used until `reattach`.
    let saved = unsafe { tstate::detach() };
    let guard = list_read(patience);
    // SAFETY: `saved` was detached above; no thread state is attached now.
    unsafe { tstate::reattach(saved) };
    let mut all = Vec::new();
    if guard.is_some() {
        // SAFETY: none of ours is freed while the list lock is held; entries being added
        // concurrently (3.13+ creates) are linked complete. Head/Next/GetID read fields.
        unsafe {
            let mut i = pyo3_ffi::PyInterpreterState_Head();
            while !i.is_null() {
                let id = pyo3_ffi::PyInterpreterState_GetID(i);
                all.push((id, whence_of(id, i)));
                i = pyo3_ffi::PyInterpreterState_Next(i);
            }
        }
    } else {
        all.push((main_id(), whence::RUNTIME));
        all.extend(with_entries(|e| {
            e.iter().map(|(&id, e)| (id, e.whence)).collect::<Vec<_>>()
        }));
    }
    drop(guard);
    all.sort_unstable();
    all
}

// -------------------------------------------------------------------------------- run

/// A thread token per OS thread; when the thread exits, its cached thread states become
/// orphans.
struct ThreadToken(u64);

impl Drop for ThreadToken {
    fn drop(&mut self) {
        let key = self.0;
        with_entries(|entries| {
            for e in entries.values_mut() {
                e.cached.retain(|&(k, ts)| {
                    if k == key {
                        e.orphans.push(ts);
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

/// Why a run could not begin.
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

/// `Idle -> Running`: reserves interpreter `id` for a run on this thread, taking a cached
/// idle thread state of this thread if there is one. A foreign interpreter (main, or the
/// stdlib's) is looked up in CPython's list and not reserved.
///
/// # Errors
/// [`BeginError::NotFound`] if no interpreter has that id; [`BeginError::Running`] if ours
/// runs already; [`BeginError::Closing`] if ours is being closed; [`BeginError::ShutDown`]
/// if ours and the process is exiting.
///
/// # Safety
/// A thread state is attached to this thread (for the look-up of foreign interpreters).
pub unsafe fn begin_run(id: i64) -> Result<Run, BeginError> {
    if let Some(run) = begin_own_run(id)? {
        return Ok(run);
    }
    // SAFETY: a thread state is attached (contract).
    match unsafe { look_up(id) } {
        Ok(istate) => Ok(Run {
            id,
            istate,
            cached: None,
            ours: false,
        }),
        Err(NotFound) => Err(BeginError::NotFound),
    }
}

/// [`begin_run`] for one of our interpreters only: `None` when `id` is not ours (foreign, or
/// no interpreter), nothing reserved then. Needs no GIL and no thread state.
///
/// # Errors
/// As [`begin_run`], but for `NotFound`.
pub fn begin_own_run(id: i64) -> Result<Option<Run>, BeginError> {
    let key = thread_key();
    with_entries(|entries| {
        let Some(e) = entries.get_mut(&id) else {
            return Ok(None);
        };
        match e.state {
            State::Closing => return Err(BeginError::Closing),
            _ if is_shut_down() => return Err(BeginError::ShutDown),
            State::Running { .. } => return Err(BeginError::Running),
            State::Idle => {}
        }
        e.state = State::Running {
            thread: this_thread_ident(),
        };
        let cached = key.and_then(|k| {
            let pos = e.cached.iter().position(|&(ck, _)| ck == k)?;
            Some(e.cached.swap_remove(pos).1 .0)
        });
        Ok(Some(Run {
            id,
            istate: e.istate as *mut PyInterpreterState,
            cached,
            ours: true,
        }))
    })
}

/// `Running -> Idle`: ends a run, caching `idle` (a detached thread state of this thread) if
/// given. Returns whether the interpreter should now be closed (`close_when_idle` and no
/// handle left). Needs no GIL.
pub fn end_run(run: &Run, idle: Option<*mut PyThreadState>) -> bool {
    let key = thread_key();
    with_entries(|entries| {
        let Some(e) = entries.get_mut(&run.id) else {
            return false;
        };
        e.state = State::Idle;
        match (idle, key) {
            (Some(ts), Some(k)) => e.cached.push((k, TstatePtr(ts))),
            (Some(ts), None) => e.orphans.push(TstatePtr(ts)),
            (None, _) => {}
        }
        e.close_when_idle && e.handles == 0
    })
}

/// Takes the orphaned thread states of `id` (cached by OS threads that have exited since), to
/// delete with [`tstate::delete_idle`] under its GIL. Needs no GIL itself.
#[must_use]
pub fn take_orphans(id: i64) -> Vec<*mut PyThreadState> {
    with_entries(|entries| {
        entries
            .get_mut(&id)
            .map(|e| e.orphans.drain(..).map(|p| p.0).collect())
            .unwrap_or_default()
    })
}

// ------------------------------------------------------------------------------ close

/// Why an interpreter could not be destroyed or disarmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestroyError {
    /// No interpreter has that id.
    NotFound,
    /// It is the main interpreter.
    IsMain,
    /// It is the calling thread's interpreter.
    IsCurrent,
    /// It exists but is not ours (the stdlib's, or another API's).
    Foreign,
    /// Ours, but disarmed.
    Disarmed,
    /// A close is already in progress.
    Closing,
    /// It runs in some thread.
    Running,
    /// Buffers it exported are still in use elsewhere.
    BuffersInUse(usize),
    /// The core refused.
    Core(Error),
    /// The process is exiting: the exit hook closes it.
    ShutDown,
    /// The stdlib refused to close one it made (its message).
    Refused(String),
}

/// `Idle -> Closing -> closed`, for a caller in Python: checks what only the caller's
/// thread can tell (the current interpreter, main, foreign ones), then closes `id` with the
/// caller's GIL released.
///
/// # Errors
/// [`DestroyError::IsCurrent`], [`DestroyError::IsMain`], [`DestroyError::NotFound`],
/// [`DestroyError::Foreign`], and those of [`close`].
///
/// # Safety
/// A thread state is attached to this thread (the caller's), and no borrowed object of its
/// interpreter is used by the caller across this call.
pub unsafe fn destroy(id: i64) -> Result<(), DestroyError> {
    // SAFETY: a thread state is attached (contract).
    if id == unsafe { current() }.0 {
        return Err(DestroyError::IsCurrent);
    }
    if !with_entries(|e| e.contains_key(&id)) {
        if id == main_id() {
            return Err(DestroyError::IsMain);
        }
        // SAFETY: a thread state is attached (contract).
        return match unsafe { look_up(id) } {
            // SAFETY: `istate` was just looked up, alive; a thread state is attached.
            Ok(istate) if unsafe { whence_of(id, istate) } == whence::STDLIB => {
                // SAFETY: as above (contract).
                unsafe { destroy_stdlib(id, istate) }
            }
            Ok(_) => Err(DestroyError::Foreign),
            Err(NotFound) => Err(DestroyError::NotFound),
        };
    }
    // SAFETY: nothing of the caller's interpreter is used until `reattach` (contract).
    let saved = unsafe { tstate::detach() };
    let result = close(id);
    // SAFETY: `saved` was detached above.
    unsafe { tstate::reattach(saved) };
    result
}

/// Closes interpreter `id` that the stdlib's `_interpreters.create()` made (3.13+; not ours:
/// no entry), with the stdlib's `_interpreters.destroy()`, as the stdlib's `close()` does. It
/// is refused while it runs; the stdlib's other refusals come back with its message. The list
/// lock is held meanwhile (our walkers must not see it freed).
///
/// # Errors
/// [`DestroyError::Running`] while it runs its `__main__`; [`DestroyError::Refused`] with the
/// stdlib's message.
///
/// # Safety
/// A thread state is attached to this thread (the caller's, not of `id`); `istate` is `id`'s.
unsafe fn destroy_stdlib(id: i64, istate: *mut PyInterpreterState) -> Result<(), DestroyError> {
    // SAFETY: `istate` is alive (contract); the check reads one field.
    if unsafe { ffi_ext::is_running_main(istate) } {
        return Err(DestroyError::Running);
    }
    // Nobody waits for the list lock holding a GIL: detached while taking it.
    // SAFETY: nothing of the caller's interpreter is used until `reattach`.
    let saved = unsafe { tstate::detach() };
    let list_changes = list_write();
    // SAFETY: `saved` was detached above.
    unsafe { tstate::reattach(saved) };
    CLOSING.with(|c| c.set(c.get() + 1));
    // SAFETY: the caller's thread state is attached again; every reference is owned here.
    let result = unsafe {
        let done = super::pyutil::import(c"_interpreters")
            .and_then(|m| super::pyutil::getattr(m.as_ptr(), c"destroy"))
            .and_then(|destroy| {
                let n = Owned::from_owned(pyo3_ffi::PyLong_FromLongLong(id))?;
                super::pyutil::call(destroy.as_ptr(), &[n.as_ptr()])
            });
        match done {
            Some(_) => Ok(()),
            None => Err(
                match Owned::from_owned(pyo3_ffi::PyErr_GetRaisedException()) {
                    Some(exc) => DestroyError::Refused(super::pyutil::display(exc.as_ptr())),
                    None => DestroyError::Refused("unknown error".into()),
                },
            ),
        }
    };
    CLOSING.with(|c| c.set(c.get() - 1));
    drop(list_changes);
    result
}

/// Closes our interpreter `id`, deleting its cached thread states first. Asked from inside
/// another close (a `__del__` run by finalization), it is done right after that close.
///
/// Before ending it, under its own GIL: its queue items become unbound and the buffers it
/// exported that were dropped elsewhere are released. Call with no GIL held (it takes the
/// list lock and activates the interpreter).
///
/// # Errors
/// [`DestroyError::NotFound`] if `id` is not ours; [`DestroyError::Disarmed`];
/// [`DestroyError::Closing`] if a close is in progress; [`DestroyError::Running`];
/// [`DestroyError::BuffersInUse`] if memoryviews over its buffers live in other interpreters;
/// [`DestroyError::Core`] for the other refusals of [`Subinterpreter::try_close`];
/// [`DestroyError::ShutDown`] once the process is exiting (the exit hook closes it). On error
/// the interpreter stays registered, `Idle`.
pub fn close(id: i64) -> Result<(), DestroyError> {
    if is_shut_down() {
        return Err(if with_entries(|e| e.contains_key(&id)) {
            DestroyError::ShutDown
        } else {
            DestroyError::NotFound
        });
    }
    close_joining(id, true)
}

/// [`close`], also after [`shut_down`]: for the exit hook only (it alone closes then, so an
/// interpreter it works on cannot be closed under it by a daemon thread). `threading`
/// threads still running in it are not waited for: they make it refuse.
///
/// # Errors
/// As [`close`], without [`DestroyError::ShutDown`].
pub fn close_at_exit(id: i64) -> Result<(), DestroyError> {
    close_joining(id, false)
}

fn close_joining(id: i64, join_threads: bool) -> Result<(), DestroyError> {
    if closing_here() {
        if with_entries(|e| e.contains_key(&id)) {
            DEFERRED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(id);
            return Ok(());
        }
        return Err(DestroyError::NotFound);
    }
    let result = close_now(id, join_threads);
    let deferred = std::mem::take(&mut *DEFERRED.lock().unwrap_or_else(PoisonError::into_inner));
    for other in deferred {
        let _ = close_now(other, join_threads);
    }
    result
}

fn close_now(id: i64, join_threads: bool) -> Result<(), DestroyError> {
    let (mut si, tstates) = with_entries(|entries| {
        let e = entries.get_mut(&id).ok_or(DestroyError::NotFound)?;
        match e.state {
            State::Closing => return Err(DestroyError::Closing),
            _ if e.disarmed() => return Err(DestroyError::Disarmed),
            State::Running { .. } => return Err(DestroyError::Running),
            State::Idle => {}
        }
        e.state = State::Closing;
        let mut tstates: Vec<*mut PyThreadState> = e.cached.drain(..).map(|(_, p)| p.0).collect();
        tstates.extend(e.orphans.drain(..).map(|p| p.0));
        Ok((
            e.si.take().expect("an Idle entry holds its handle"),
            tstates,
        ))
    })?;
    let result = end_interpreter(&mut si, id, &tstates, join_threads);
    with_entries(|entries| match &result {
        Ok(()) => {
            entries.remove(&id);
        }
        Err(_) => {
            if let Some(e) = entries.get_mut(&id) {
                e.si = Some(si);
                e.state = State::Idle;
            }
        }
    });
    result
}

/// Ends `si` (`Closing`): its own clean-up under its GIL, then `Py_EndInterpreter` under the
/// list lock. No GIL held on entry.
fn end_interpreter(
    si: &mut Subinterpreter,
    id: i64,
    tstates: &[*mut PyThreadState],
    join_threads: bool,
) -> Result<(), DestroyError> {
    // Items it put in queues become unbound, and buffers it exported that were dropped
    // elsewhere are released, both under its own GIL; cached thread states go too.
    {
        let scope = ScopedActivate::new(si).map_err(DestroyError::Core)?;
        // SAFETY: the scope holds this interpreter's GIL; the cached states are idle.
        unsafe {
            tstate::delete_idle(tstates);
            super::queue::unbind_interpreter(id);
            super::buffer::release_pending(id);
        }
        drop(scope);
    }
    let live = super::buffer::live_exports(id);
    if live > 0 {
        return Err(DestroyError::BuffersInUse(live));
    }
    let _list_changes = list_write();
    CLOSING.with(|c| c.set(c.get() + 1));
    let result = if join_threads {
        si.try_close()
    } else {
        si.try_close_without_joining()
    };
    CLOSING.with(|c| c.set(c.get() - 1));
    result.map_err(|e| match e {
        Error::Running => DestroyError::Running,
        Error::IsCurrent => DestroyError::IsCurrent,
        other => DestroyError::Core(other),
    })
}

/// Gives up ownership of `id` on purpose (leaked, never closed, except at exit). Needs no
/// GIL.
///
/// # Errors
/// [`DestroyError::NotFound`] if `id` is not ours; [`DestroyError::Closing`] if a close is
/// in progress.
pub fn disarm(id: i64) -> Result<(), DestroyError> {
    with_entries(|entries| {
        let e = entries.get_mut(&id).ok_or(DestroyError::NotFound)?;
        match e.si.as_mut() {
            Some(si) => {
                si.disarm();
                Ok(())
            }
            None => Err(DestroyError::Closing),
        }
    })
}

/// Takes a PEP 734 handle reference on `id` (counted only for ours).
///
/// # Errors
/// [`NotFound`] if no interpreter has that id.
///
/// # Safety
/// A thread state is attached.
pub unsafe fn incref(id: i64) -> Result<(), NotFound> {
    // SAFETY: a thread state is attached (contract).
    unsafe { look_up(id) }?;
    with_entries(|entries| {
        if let Some(e) = entries.get_mut(&id) {
            e.handles += 1;
        }
    });
    Ok(())
}

/// Drops a handle reference. At zero, one the facade made (`whence::STDLIB`) has no owner
/// left: closed now, or when it can be ([`close_or_defer`]).
///
/// # Safety
/// A thread state is attached to this thread (the caller's), and no borrowed object of its
/// interpreter is used by the caller across this call.
pub unsafe fn decref(id: i64) {
    let last = with_entries(|entries| {
        entries.get_mut(&id).is_some_and(|e| {
            e.handles = e.handles.saturating_sub(1);
            e.handles == 0 && e.whence == whence::STDLIB
        })
    });
    if last {
        // SAFETY: the caller's contract.
        unsafe { close_or_defer(id) };
    }
}

/// The owning `Subinterpreter` handle of `id` went without `close()` (collected): closed now,
/// or when it can be ([`close_or_defer`]). A disarmed one stays leaked, as asked.
///
/// # Safety
/// As [`decref`].
pub unsafe fn release_owner(id: i64) {
    let owned = with_entries(|entries| {
        entries
            .get(&id)
            .is_some_and(|e| e.si.as_ref().is_some_and(Subinterpreter::is_owned))
    });
    if owned {
        // SAFETY: the caller's contract.
        unsafe { close_or_defer(id) };
    }
}

/// Interpreters whose deferred close waits for the buffers they exported to be dropped (its
/// own mutex: taken by buffer drops on any thread, never with the table mutex held).
static AWAITING_BUFFERS: Mutex<Vec<i64>> = Mutex::new(Vec::new());

/// `id` has no owner left (its last PEP 734 handle, or its `Subinterpreter` owner, went):
/// closes it now if it is idle and not the caller's, else marks it *deferred*
/// (`close_when_idle`): closed when its run ends ([`end_run`]), when the last buffer it
/// exported that is still in use elsewhere is dropped ([`export_dropped`]), or at exit.
///
/// # Safety
/// As [`decref`].
unsafe fn close_or_defer(id: i64) {
    // Marked first: a run that ends meanwhile in another thread closes it.
    let running = with_entries(|entries| {
        entries.get_mut(&id).is_none_or(|e| {
            e.close_when_idle = true;
            matches!(e.state, State::Running { .. })
        })
    });
    // SAFETY: a thread state is attached (contract).
    if running || id == unsafe { current() }.0 {
        return;
    }
    // SAFETY: nothing of the caller's interpreter is used until `reattach` (contract).
    let saved = unsafe { tstate::detach() };
    let result = close(id);
    // SAFETY: `saved` was detached above.
    unsafe { tstate::reattach(saved) };
    if let Err(DestroyError::BuffersInUse(_)) = result {
        await_buffers(id);
    }
}

/// Deferred `id` waits for its exported buffers (maybe all dropped already, meanwhile).
fn await_buffers(id: i64) {
    AWAITING_BUFFERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(id);
    export_dropped(id);
}

/// A buffer exported by interpreter `owner` was dropped elsewhere (called by
/// [`SharedBuffer`](super::buffer::SharedBuffer)'s drop, any thread, any GIL or none). If
/// `owner` is deferred and none of its buffers is in use any more, its close is scheduled: a
/// pending call, run by the main interpreter's main thread between bytecodes
/// ([`close_deferred`]).
pub fn export_dropped(owner: i64) {
    extern "C" fn run(arg: *mut std::ffi::c_void) -> std::ffi::c_int {
        // SAFETY: pending calls run in the main interpreter's main thread, its GIL held.
        unsafe { close_deferred(arg as i64) };
        0
    }
    let mut awaiting = AWAITING_BUFFERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let Some(pos) = awaiting.iter().position(|&a| a == owner) else {
        return;
    };
    if super::buffer::in_use(owner) > 0 {
        return;
    }
    awaiting.swap_remove(pos);
    drop(awaiting);
    // SAFETY: `Py_AddPendingCall` needs no thread state or GIL; `run` is a plain function
    // that lives as long as the process (the module is never unloaded). The id travels as
    // the pointer's value.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let queued = unsafe { pyo3_ffi::Py_AddPendingCall(Some(run), owner as usize as *mut _) };
    if queued != 0 {
        // The queue is full: the next drop tries again (else the exit hook closes it).
        AWAITING_BUFFERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(owner);
    }
}

/// Closes deferred `id` whose exported buffers were all dropped, if it is still deferred and
/// idle (else its run's end closes it, or a new handle keeps it).
///
/// # Safety
/// A thread state is attached to this thread (main's, in a pending call).
unsafe fn close_deferred(id: i64) {
    let due = with_entries(|entries| {
        entries
            .get(&id)
            .is_some_and(|e| e.close_when_idle && e.handles == 0 && e.state == State::Idle)
    });
    if due {
        // SAFETY: the caller's contract (a pending call uses no borrowed object across this).
        unsafe { close_or_defer(id) };
    }
}

// ------------------------------------------------------------------- for the exit hook

/// Ids of our interpreters, by id. Needs no GIL.
#[must_use]
pub fn ids() -> Vec<i64> {
    with_entries(|e| e.keys().copied().collect())
}

/// Re-arms every disarmed interpreter (exit only: 3.12 aborts on a subinterpreter left
/// alive). Needs no GIL.
pub fn rearm_all() {
    with_entries(|entries| {
        for si in entries.values_mut().filter_map(|e| e.si.as_mut()) {
            si.rearm();
        }
    });
}

/// Our interpreters that no close is working on (after [`shut_down`], only the exit hook
/// starts closes, so these stay alive until it closes them). Needs no GIL.
#[must_use]
pub fn not_closing() -> Vec<i64> {
    with_entries(|entries| {
        entries
            .iter()
            .filter(|(_, e)| e.state != State::Closing)
            .map(|(&id, _)| id)
            .collect()
    })
}

/// `(id, thread ident)` of our interpreters that run right now (the ident is
/// `threading.get_ident()` of the running OS thread). Needs no GIL.
#[must_use]
pub fn running_threads() -> Vec<(i64, u64)> {
    with_entries(|entries| {
        entries
            .iter()
            .filter_map(|(&id, e)| match e.state {
                State::Running { thread } => Some((id, thread)),
                _ => None,
            })
            .collect()
    })
}
