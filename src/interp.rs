//! [`Subinterpreter`]: owns one CPython interpreter from creation to `Py_EndInterpreter`.
//!
//! Semantics follow pybind11's `subinterpreter` (see the design notes), including its
//! 3.12-versus-3.13+ handling of the creation thread state.

use std::ffi::CStr;
use std::ptr::{self, NonNull};
use std::thread::{self, ThreadId};

use pyo3_ffi::{PyInterpreterState, PyObject, PyThreadState};

use crate::config::Config;
use crate::error::Error;
use crate::ffi_ext;
use crate::scope::ScopedActivate;
use crate::tstate;

/// 3.12's subinterpreter support races when two interpreters initialise at once: creation is
/// serialised process-wide there (3.13+ needs no lock). Taken with no GIL held.
#[cfg(not(Py_3_13))]
static CREATE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An owning (or, for [`main`](Self::main), [`current`](Self::current) and disarmed handles,
/// non-owning) handle to a CPython interpreter.
///
/// Move-only; dropping an owning handle destroys the interpreter. If destruction would make
/// CPython abort (the interpreter runs elsewhere or has foreign threads), the drop leaks the
/// interpreter instead and says so on stderr; call [`try_close`](Self::try_close) to get the
/// error instead.
///
/// The handle is `Send` and `Sync`: it holds only the interpreter pointer, and every method
/// works from any OS thread, whatever GIL that thread holds or none, giving the caller back
/// the thread state it had. Code runs inside through a [`ScopedActivate`].
pub struct Subinterpreter {
    istate: *mut PyInterpreterState,
    owned: bool,
    /// 3.12 only: the thread state `Py_NewInterpreterFromConfig` made, kept (unused) until
    /// destruction, and the OS thread it belongs to.
    creation: Option<(NonNull<PyThreadState>, ThreadId)>,
    /// Whether [`disarm`](Self::disarm) gave up ownership (so [`rearm`](Self::rearm) may take
    /// it back).
    disarmed: bool,
}

// SAFETY: the handle holds plain pointers into CPython's runtime. Every use of them goes through
// a thread-state swap made on the using thread, and destruction on another OS thread than the
// creating one is handled (a fresh thread state is made there), so moving the owner between
// threads is sound. Shared references only read the id or activate, which any thread may do.
unsafe impl Send for Subinterpreter {}
// SAFETY: see `Send`; `&self` methods never mutate.
unsafe impl Sync for Subinterpreter {}

impl Default for Subinterpreter {
    /// An empty handle: `id() == -1`, cannot be activated.
    fn default() -> Self {
        Subinterpreter {
            istate: ptr::null_mut(),
            owned: false,
            creation: None,
            disarmed: false,
        }
    }
}

impl std::fmt::Debug for Subinterpreter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subinterpreter")
            .field("id", &self.id())
            .field("owned", &self.owned)
            .finish()
    }
}

impl Subinterpreter {
    /// Creates an interpreter from `config` and returns its owning handle.
    ///
    /// The calling thread may hold any GIL or none; it gets back exactly the thread state it
    /// had. Its GIL is released meanwhile: creation runs under a new thread state of the main
    /// interpreter, and on 3.12 under a process-wide lock (concurrent creation crashes 3.12).
    ///
    /// # Errors
    /// [`Error::Config`] if [`Config::validate`] refuses `config`; [`Error::Finalizing`] if
    /// the runtime is finalizing or not initialized; [`Error::CreateFailed`] with CPython's
    /// message if `Py_NewInterpreterFromConfig` fails.
    pub fn create(config: &Config) -> Result<Self, Error> {
        Self::create_with(config, || ()).map(|(si, ())| si)
    }

    /// [`create`](Self::create), and runs `init` in the new interpreter before returning it:
    /// under the thread state that created it, with the new interpreter's GIL held, before
    /// any other thread can know of it. Setting up the new interpreter there (its `sys.path`,
    /// a module, a hook) costs no second thread state and no second switch.
    ///
    /// `init` must leave no exception set and keep no object of the new interpreter beyond
    /// its return (its result is returned beside the handle: make it plain data).
    ///
    /// On 3.13+ a caller attached to the main interpreter creates under its own thread state,
    /// as the stdlib's `_interpreters.create()` does; any other caller's GIL is released and
    /// a new thread state of the main interpreter creates. On 3.12 creation always runs
    /// under a new main thread state and a process-wide lock, the caller's GIL released.
    ///
    /// # Errors
    /// As [`create`](Self::create); `init` does not run then.
    pub fn create_with<T>(config: &Config, init: impl FnOnce() -> T) -> Result<(Self, T), Error> {
        config.validate()?;
        if ffi_ext::is_finalizing() {
            return Err(Error::Finalizing);
        }
        let cfg = config.to_ffi();
        let main = NonNull::new(Self::main().istate).ok_or(Error::Finalizing)?;
        #[cfg(Py_3_13)]
        {
            // No lock to wait for on 3.13+. The guard reuses the caller's thread state when
            // it is the main interpreter's, and otherwise detaches it (releasing its GIL)
            // for a new one of main, which it restores when dropped.
            // SAFETY: the main interpreter lives until finalization, which we checked is not
            // under way; nothing borrowed from the caller's interpreter is used meanwhile.
            let main_scope = unsafe { ScopedActivate::enter(main) };
            // SAFETY: a thread state of the main interpreter is attached here (guard above).
            let created = unsafe { Self::new_from_config(&cfg, init) };
            drop(main_scope);
            created
        }
        #[cfg(not(Py_3_13))]
        {
            // Release whatever GIL the caller holds before waiting for the 3.12 creation
            // lock: creation releases and re-takes the main GIL while it imports, so a thread
            // holding a GIL while waiting for the lock would deadlock with it. The caller's
            // thread state comes back at the end, exactly.
            // SAFETY: nothing borrowed from the caller's interpreter is used until `reattach`.
            let caller = unsafe { tstate::detach() };
            let one_at_a_time = CREATE_LOCK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // SAFETY: the main interpreter lives until finalization, which we checked is not
            // under way; the guard holds the main GIL through a new thread state while we
            // create.
            let main_scope = unsafe { ScopedActivate::enter(main) };
            // SAFETY: the main interpreter's thread state is attached here (guard above).
            let created = unsafe { Self::new_from_config(&cfg, init) };
            drop(main_scope);
            drop(one_at_a_time);
            // SAFETY: no thread state is attached now; `caller` is the one detached above.
            unsafe { tstate::reattach(caller) };
            created
        }
    }

    /// `Py_NewInterpreterFromConfig`, `init` in the new interpreter, then back to the main
    /// thread state.
    ///
    /// # Safety
    /// A thread state of the main interpreter is attached to this thread.
    unsafe fn new_from_config<T>(
        cfg: &pyo3_ffi::PyInterpreterConfig,
        init: impl FnOnce() -> T,
    ) -> Result<(Self, T), Error> {
        // SAFETY: a thread state of the main interpreter is attached to this thread (caller's
        // contract), so the main GIL is held, as `Py_NewInterpreterFromConfig` needs.
        unsafe {
            let previous = pyo3_ffi::PyThreadState_Get();
            let mut new_tstate: *mut PyThreadState = ptr::null_mut();
            let status = pyo3_ffi::Py_NewInterpreterFromConfig(&raw mut new_tstate, cfg);
            if pyo3_ffi::PyStatus_Exception(status) != 0 || new_tstate.is_null() {
                // CPython restored `previous` itself before returning the failure.
                let msg = if status.err_msg.is_null() {
                    "unknown error".to_owned()
                } else {
                    CStr::from_ptr(status.err_msg)
                        .to_string_lossy()
                        .into_owned()
                };
                return Err(Error::CreateFailed(msg));
            }
            // The new interpreter is current on this thread, its GIL held: `init` runs there.
            let istate = pyo3_ffi::PyThreadState_GetInterpreter(new_tstate);
            let out = init();
            let creation = Self::settle_creation_tstate(new_tstate);
            pyo3_ffi::PyThreadState_Swap(previous);
            let si = Subinterpreter {
                istate,
                owned: true,
                creation,
                disarmed: false,
            };
            Ok((si, out))
        }
    }

    /// 3.13+: the creation thread state is cleared and deleted at once (its memory is reused
    /// for the interpreter's next thread state). 3.12 must keep it until destruction.
    ///
    /// # Safety
    /// `new_tstate` is attached to this thread.
    #[allow(clippy::unnecessary_wraps)]
    unsafe fn settle_creation_tstate(
        new_tstate: *mut PyThreadState,
    ) -> Option<(NonNull<PyThreadState>, ThreadId)> {
        #[cfg(Py_3_13)]
        {
            // SAFETY: `new_tstate` is attached to this thread (caller's contract), so its
            // interpreter's GIL is held while it is cleared and deleted.
            unsafe { tstate::delete_attached(new_tstate) };
            None
        }
        #[cfg(not(Py_3_13))]
        {
            NonNull::new(new_tstate).map(|t| (t, thread::current().id()))
        }
    }

    /// [`create`](Self::create) with [`Config::isolated`]: own GIL, own obmalloc, threads
    /// allowed, no fork, exec or daemon threads.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_default() -> Result<Self, Error> {
        Self::create(&Config::isolated())
    }

    /// A non-owning handle to the main interpreter (empty before `Py_Initialize`). Needs no
    /// GIL.
    #[must_use]
    pub fn main() -> Self {
        Subinterpreter {
            // SAFETY: reads a runtime field; valid with or without a GIL.
            istate: unsafe { pyo3_ffi::PyInterpreterState_Main() },
            owned: false,
            creation: None,
            disarmed: false,
        }
    }

    /// A non-owning handle to the interpreter of the thread state attached to this thread
    /// (empty if none). Needs no GIL.
    #[must_use]
    pub fn current() -> Self {
        Subinterpreter {
            istate: tstate::attached_interp(),
            owned: false,
            creation: None,
            disarmed: false,
        }
    }

    /// A non-owning handle to a raw interpreter. Needs no GIL.
    ///
    /// # Safety
    /// `istate` must be null or an interpreter that outlives every use of the handle.
    #[must_use]
    pub unsafe fn from_raw(istate: *mut PyInterpreterState) -> Self {
        Subinterpreter {
            istate,
            owned: false,
            creation: None,
            disarmed: false,
        }
    }

    /// The interpreter's id (`0` for main), `-1` for an empty handle. Needs no GIL.
    #[must_use]
    pub fn id(&self) -> i64 {
        if self.istate.is_null() {
            -1
        } else {
            // SAFETY: a non-empty handle's interpreter is alive; reads one field, which needs
            // no GIL.
            unsafe { pyo3_ffi::PyInterpreterState_GetID(self.istate) }
        }
    }

    /// The raw interpreter pointer (null when empty). Using it follows the C API's rules:
    /// most calls need a thread state of that interpreter attached.
    #[must_use]
    pub fn as_ptr(&self) -> *mut PyInterpreterState {
        self.istate
    }

    /// Whether the handle is empty (default-constructed, or closed by
    /// [`try_close`](Self::try_close)).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.istate.is_null()
    }

    /// Whether dropping this handle destroys its interpreter.
    #[must_use]
    pub fn is_owned(&self) -> bool {
        self.owned
    }

    /// Gives up ownership on purpose: the interpreter is leaked (needed, e.g., during
    /// finalization). The handle stays usable as a non-owning one. Needs no GIL.
    pub fn disarm(&mut self) {
        // A 3.12 creation thread state is leaked with the interpreter (kept only so that
        // `rearm` can undo this).
        self.disarmed |= self.owned;
        self.owned = false;
    }

    /// Undoes [`disarm`](Self::disarm) on a handle that owned its interpreter before: for
    /// process exit, where a leaked subinterpreter would make CPython 3.12 abort. A handle that
    /// never owned one (from [`main`](Self::main), [`current`](Self::current) or
    /// [`from_raw`](Self::from_raw)) stays non-owning: its interpreter is not its to end.
    /// Needs no GIL.
    pub fn rearm(&mut self) {
        if self.disarmed && !self.istate.is_null() {
            self.owned = true;
            self.disarmed = false;
        }
    }

    /// The interpreter's state dict (`PyInterpreterState_GetDict`), a borrowed reference.
    ///
    /// `scope` proves this interpreter's GIL is held on this thread, and the borrow cannot
    /// outlive it; `None` if it activates another interpreter or the handle is empty.
    #[must_use]
    pub fn state_dict<'s>(&self, scope: &'s ScopedActivate<'_>) -> Option<Borrowed<'s>> {
        if self.istate.is_null() || scope.interp_ptr() != self.istate {
            return None;
        }
        // SAFETY: the scope holds this interpreter's GIL on this thread.
        let dict = unsafe { pyo3_ffi::PyInterpreterState_GetDict(self.istate) };
        NonNull::new(dict).map(|ptr| Borrowed {
            ptr,
            _scope: std::marker::PhantomData,
        })
    }

    /// Destroys the interpreter now (`Py_EndInterpreter`), or says why it cannot without
    /// aborting the process. On success the handle becomes empty; on error it is unchanged.
    ///
    /// Works from any OS thread (not only the creating one), whatever GIL it holds except this
    /// interpreter's; the caller's thread state is detached while the interpreter ends (its
    /// `threading` threads are joined, its finalizers run) and attached again after. It may
    /// block that long, plus up to ~100 ms for exiting threads to finish unregistering.
    ///
    /// # Errors
    /// [`Error::Empty`] for an empty handle; [`Error::NotOwned`] for a main, current, raw or
    /// disarmed handle; [`Error::IsMain`]; [`Error::IsCurrent`] if this thread's attached
    /// thread state belongs to it; [`Error::Finalizing`]; [`Error::Running`] if some thread
    /// runs its `__main__`; [`Error::ThreadsAlive`] if daemon threads or thread states of
    /// other OS threads remain.
    pub fn try_close(&mut self) -> Result<(), Error> {
        self.try_close_with(|_| {})
    }

    /// [`try_close`](Self::try_close), running `before_end` under the interpreter's GIL (with
    /// the thread state that will end it attached) right before `Py_EndInterpreter`: the place
    /// to delete cached thread states or release resources the interpreter owns.
    ///
    /// # Errors
    /// As [`try_close`](Self::try_close); `before_end` is not called then.
    pub fn try_close_with(
        &mut self,
        before_end: impl FnOnce(*mut PyInterpreterState),
    ) -> Result<(), Error> {
        self.close_impl(before_end, true)
    }

    /// [`try_close`](Self::try_close) that refuses ([`Error::ThreadsAlive`]) instead of joining
    /// `threading` threads that still run: for process exit, which must not wait forever.
    ///
    /// # Errors
    /// As [`try_close`](Self::try_close); running non-daemon threads count as
    /// [`Error::ThreadsAlive`] too.
    pub fn try_close_without_joining(&mut self) -> Result<(), Error> {
        self.close_impl(|_| {}, false)
    }

    fn close_impl(
        &mut self,
        before_end: impl FnOnce(*mut PyInterpreterState),
        join_threads: bool,
    ) -> Result<(), Error> {
        let istate = self.istate;
        if istate.is_null() {
            return Err(Error::Empty);
        }
        if !self.owned {
            return Err(Error::NotOwned);
        }
        // SAFETY: reads a runtime field; needs no thread state.
        if istate == unsafe { pyo3_ffi::PyInterpreterState_Main() } {
            return Err(Error::IsMain);
        }
        if tstate::attached_interp() == istate {
            return Err(Error::IsCurrent);
        }
        if ffi_ext::is_finalizing() {
            return Err(Error::Finalizing);
        }
        // SAFETY: we own `istate`, so it is alive; the check reads one field and needs no GIL.
        if unsafe { ffi_ext::is_running_main(istate) } {
            return Err(Error::Running);
        }
        let creation = self.creation.map(|(t, _)| t.as_ptr());
        let on_creation_thread = self
            .creation
            .is_some_and(|(_, owner)| owner == thread::current().id());
        // SAFETY: `istate` is alive and not attached anywhere on this thread (checked above).
        // 3.12 on the creating thread reuses the creation thread state; otherwise a new one.
        unsafe {
            let destroy = match creation {
                Some(t) if on_creation_thread => t,
                _ => tstate::new(istate),
            };
            let previous = tstate::detach();
            tstate::reattach(destroy);
            if let Err(e) = census::check_can_end(istate, destroy, creation, join_threads) {
                if Some(destroy) == creation {
                    pyo3_ffi::PyEval_SaveThread();
                } else {
                    tstate::delete_attached(destroy);
                }
                tstate::reattach(previous);
                return Err(e);
            }
            before_end(istate);
            #[cfg(not(Py_3_13))]
            census::unbreak_threading_shutdown();
            if let Some(t) = creation.filter(|&t| t != destroy) {
                // 3.12 off the creating thread: the creation state goes, unused.
                tstate::delete_idle(&[t]);
            }
            pyo3_ffi::Py_EndInterpreter(destroy);
            // `previous` cannot belong to `istate` (IsCurrent above), so always switch back.
            tstate::reattach(previous);
        }
        self.istate = ptr::null_mut();
        self.owned = false;
        self.creation = None;
        self.disarmed = false;
        Ok(())
    }
}

impl Drop for Subinterpreter {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if let Err(e) = self.try_close() {
            // Ending it now would abort the process: leak it instead, loudly.
            eprintln!(
                "subinterp_rs: leaking interpreter {} instead of aborting: {e}",
                self.id()
            );
            self.disarm();
        }
    }
}

/// A borrowed reference valid while the activation `'s` lives (returned by
/// [`Subinterpreter::state_dict`]); not `Send`, like the activation.
#[derive(Clone, Copy, Debug)]
pub struct Borrowed<'s> {
    ptr: NonNull<PyObject>,
    _scope: std::marker::PhantomData<&'s ()>,
}

impl Borrowed<'_> {
    /// The raw pointer, borrowed: use it on this thread, under the activation's GIL, and
    /// `Py_INCREF` it to keep it past the activation.
    #[must_use]
    pub fn as_ptr(self) -> *mut PyObject {
        self.ptr.as_ptr()
    }
}

mod census {
    //! Which thread states an interpreter still has, so `Py_EndInterpreter` never aborts.

    use std::ffi::CStr;

    use pyo3_ffi::{PyInterpreterState, PyObject, PyThreadState};

    use crate::error::Error;
    use crate::owned::Owned;

    /// Thread teardown races with our count (a finished `threading` thread deletes its thread
    /// state a moment after leaving `threading._active`): recount for up to this long.
    const SETTLE_ROUNDS: u32 = 50;

    /// Checks that ending `istate` with `destroy` attached would not abort.
    ///
    /// # Safety
    /// `destroy` is attached to this thread and belongs to `istate`.
    pub(super) unsafe fn check_can_end(
        istate: *mut PyInterpreterState,
        destroy: *mut PyThreadState,
        creation: Option<*mut PyThreadState>,
        join_threads: bool,
    ) -> Result<(), Error> {
        let mut last = Ok(());
        for _ in 0..SETTLE_ROUNDS {
            // SAFETY: caller's contract: `istate`'s GIL is held through `destroy`.
            if unsafe { crate::ffi_ext::is_running_main(istate) } {
                return Err(Error::Running);
            }
            // SAFETY: as above: `istate`'s GIL is held through `destroy`.
            let others = unsafe { count_other_tstates(istate, destroy, creation) };
            // SAFETY: as above: `istate`'s GIL is held through `destroy`.
            let (daemon, joinable) = unsafe { threading_threads() };
            let mut foreign = others.saturating_sub(daemon + joinable);
            if !join_threads {
                foreign += joinable; // not to be waited for: counted as blocking the close
            }
            if daemon == 0 && foreign == 0 {
                return Ok(());
            }
            last = Err(Error::ThreadsAlive { daemon, foreign });
            // Let exiting threads finish: release the GIL briefly.
            // SAFETY: `destroy` is attached to this thread, as `PyEval_SaveThread` needs; we
            // re-attach it right after, with no Python object used in between.
            unsafe {
                let saved = pyo3_ffi::PyEval_SaveThread();
                std::thread::sleep(std::time::Duration::from_millis(2));
                pyo3_ffi::PyEval_RestoreThread(saved);
            }
        }
        last
    }

    /// 3.12's `threading._shutdown` (run by `Py_EndInterpreter`) asserts that the thread state
    /// which first imported `threading` is still alive when ending on the same OS thread. A
    /// temporary activation deleted it, so the assertion fails and non-daemon threads are never
    /// joined, then `Py_EndInterpreter` aborts. Detach `threading`'s idea of its main thread
    /// from this OS thread in that case, so `_shutdown` joins the threads normally.
    ///
    /// # Safety
    /// The interpreter's GIL is held on this thread.
    #[cfg(not(Py_3_13))]
    pub(super) unsafe fn unbreak_threading_shutdown() {
        const FIXUP: &CStr = c"import sys\n\
t = sys.modules.get('threading')\n\
m = getattr(t, '_main_thread', None)\n\
lock = getattr(m, '_tstate_lock', None)\n\
if lock is not None and not lock.locked():\n    m._ident = None\n";
        // SAFETY: the GIL is held; the globals dict is ours and dropped here.
        unsafe {
            if let Some(globals) = Owned::from_owned(pyo3_ffi::PyDict_New()) {
                let builtins = pyo3_ffi::PyEval_GetBuiltins();
                pyo3_ffi::PyDict_SetItemString(
                    globals.as_ptr(),
                    c"__builtins__".as_ptr(),
                    builtins,
                );
                let result = pyo3_ffi::PyRun_String(
                    FIXUP.as_ptr(),
                    pyo3_ffi::Py_file_input,
                    globals.as_ptr(),
                    globals.as_ptr(),
                );
                drop(Owned::from_owned(result));
            }
            pyo3_ffi::PyErr_Clear();
        }
    }

    /// # Safety
    /// `istate`'s GIL is held on this thread.
    unsafe fn count_other_tstates(
        istate: *mut PyInterpreterState,
        destroy: *mut PyThreadState,
        creation: Option<*mut PyThreadState>,
    ) -> usize {
        let mut n = 0;
        // SAFETY: walking the thread list while holding the interpreter's GIL.
        unsafe {
            let mut t = pyo3_ffi::PyInterpreterState_ThreadHead(istate);
            while !t.is_null() {
                if t != destroy && Some(t) != creation {
                    n += 1;
                }
                t = pyo3_ffi::PyThreadState_Next(t);
            }
        }
        n
    }

    /// Live non-main `threading` threads: (daemon, non-daemon). Non-daemon ones are joined by
    /// `Py_EndInterpreter`; daemon ones would make it abort. Dummy threads (foreign OS threads
    /// seen by `threading`) are not counted: they are foreign.
    ///
    /// # Safety
    /// The interpreter's GIL is held on this thread.
    unsafe fn threading_threads() -> (usize, usize) {
        // SAFETY: the GIL is held; every reference below is owned by `Owned` and dropped here.
        unsafe {
            let modules = pyo3_ffi::PyImport_GetModuleDict(); // borrowed
            let threading = pyo3_ffi::PyDict_GetItemString(modules, c"threading".as_ptr());
            if threading.is_null() {
                return (0, 0);
            }
            let result = call_method0(threading, c"enumerate")
                .and_then(|threads| {
                    let main = call_method0(threading, c"main_thread")?;
                    let dummy = Owned::from_owned(pyo3_ffi::PyObject_GetAttrString(
                        threading,
                        c"_DummyThread".as_ptr(),
                    ))?;
                    let mut counts = (0, 0);
                    let n = pyo3_ffi::PyList_Size(threads.as_ptr());
                    for i in 0..n {
                        let t = pyo3_ffi::PyList_GetItem(threads.as_ptr(), i);
                        if t == main.as_ptr()
                            || pyo3_ffi::PyObject_IsInstance(t, dummy.as_ptr()) == 1
                        {
                            continue;
                        }
                        let daemon = Owned::from_owned(pyo3_ffi::PyObject_GetAttrString(
                            t,
                            c"daemon".as_ptr(),
                        ))?;
                        if pyo3_ffi::PyObject_IsTrue(daemon.as_ptr()) == 1 {
                            counts.0 += 1;
                        } else {
                            counts.1 += 1;
                        }
                    }
                    Some(counts)
                })
                .unwrap_or((0, 0));
            pyo3_ffi::PyErr_Clear();
            result
        }
    }

    /// # Safety
    /// The GIL of `obj`'s interpreter is held.
    unsafe fn call_method0(obj: *mut PyObject, name: &CStr) -> Option<Owned> {
        // SAFETY: the GIL of `obj`'s interpreter is held on this thread (caller's contract).
        unsafe {
            let f = Owned::from_owned(pyo3_ffi::PyObject_GetAttrString(obj, name.as_ptr()))?;
            Owned::from_owned(pyo3_ffi::PyObject_CallNoArgs(f.as_ptr()))
        }
    }
}
