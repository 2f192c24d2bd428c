//! Process guards, the Rust side (the Python side is `subinterp_rs._process_guards`): the exit
//! hook, which closes every owned interpreter before the runtime finalizes, and the fork
//! guard installed in subinterpreters whose config allows fork.
//!
//! From the start of the hook no interpreter of ours can be created, entered or closed by
//! anyone else ([`lifecycle::shut_down`]). Idle interpreters are closed at once. Every thread
//! inside one of ours (the daemon thread running it, since `threading` joined the others
//! already, and the threads it started) gets `SystemExit`, blocked queue operations inside
//! subinterpreters are woken to raise it, and the interpreters get a moment to unwind before
//! they are closed; a thread leaving a subinterpreter then stops for good (as daemon threads
//! do when the runtime finalizes). What still runs after that is reported back: the package
//! then ends the process with `os._exit` rather than let finalization abort it.

use std::time::{Duration, Instant};

use crate::runtime::lifecycle;
use crate::runtime::pyutil;
use subinterp_rs::owned::Owned;
use subinterp_rs::ScopedActivate;

/// Installed in interpreters whose config allows fork: CPython only forks from the main
/// interpreter (a child forked from a subinterpreter dies with a fatal error).
pub const FORK_GUARD: &std::ffi::CStr = c"import os
def _refuse(*args, **kwargs):
    raise RuntimeError('os.fork() in a subinterpreter kills the child: CPython can only '
                       'fork from the main interpreter; fork there, or use subprocess '
                       'without preexec_fn')
for _name in ('fork', 'forkpty'):
    if hasattr(os, _name):
        setattr(os, _name, _refuse)
";

/// Run in each new interpreter on free-threaded CPython: importing `_native` enables the
/// interpreter's GIL (`Py_mod_gil = Py_MOD_GIL_USED`), as it did the creator's; CPython's
/// warning that it did so was already shown once, by the creator's import. With
/// `PYTHON_GIL=0` the GIL stays disabled, as the user asked.
#[cfg(Py_GIL_DISABLED)]
pub const ENABLE_GIL: &std::ffi::CStr = c"import warnings
with warnings.catch_warnings():
    warnings.simplefilter('ignore', RuntimeWarning)
    import subinterp_rs._native
";

/// The exit hook (`_native._shutdown`, run by the package's `atexit` hook in main): closes
/// every interpreter we created (see [`close_all`]) with the caller's GIL released, then
/// releases the buffers of the caller's interpreter dropped elsewhere. Returns the ids still
/// alive.
///
/// # Safety
/// A thread state is attached to this thread (main's), and no borrowed object of its
/// interpreter is used by the caller across this call.
pub unsafe fn exit_hook() -> Vec<i64> {
    // SAFETY: nothing of the caller's interpreter is used until `reattach` (contract).
    let saved = unsafe { subinterp_rs::tstate::detach() };
    let alive = close_all();
    // SAFETY: `saved` was detached above; its GIL is held again for the release.
    unsafe {
        subinterp_rs::tstate::reattach(saved);
        crate::runtime::buffer::release_pending(crate::runtime::lifecycle::current().0);
    }
    alive
}

/// How long a running interpreter gets to unwind after `SystemExit` is injected.
const GRACE: Duration = Duration::from_secs(2);

/// Closes every interpreter we created, disarmed ones included (a subinterpreter left at
/// exit makes CPython 3.12 abort). Returns the ids still alive (running in a thread that did
/// not stop). Called with no GIL held.
fn close_all() -> Vec<i64> {
    // Daemon threads go on after this hook: they must not make or enter interpreters again.
    lifecycle::shut_down();
    crate::runtime::queue::wake_all();
    crate::runtime::executor::close_all();
    lifecycle::rearm_all();
    let running = lifecycle::running_threads();
    // Not those a close (begun before the hook) is finalizing: the loop below waits for them.
    for id in lifecycle::not_closing() {
        let runner = running.iter().find(|&&(r, _)| r == id).map(|&(_, t)| t);
        stop_threads(id, runner);
    }
    let deadline = Instant::now() + GRACE;
    loop {
        let mut pending = false;
        for id in lifecycle::ids() {
            match lifecycle::close_at_exit(id) {
                Ok(())
                | Err(lifecycle::DestroyError::NotFound | lifecycle::DestroyError::Disarmed) => {}
                Err(lifecycle::DestroyError::BuffersInUse(_)) => {
                    // Memoryviews of its memory live on in other interpreters until they
                    // finalize: leave those exports unreleased and close it now.
                    crate::runtime::buffer::abandon(id);
                    pending |= lifecycle::close_at_exit(id).is_err();
                }
                Err(_) => pending = true,
            }
        }
        if !pending || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    lifecycle::ids()
}

/// Raises `SystemExit` in every thread inside interpreter `id`: `runner`, the thread running
/// it (if any), and the threads it started with `threading`.
fn stop_threads(id: i64, runner: Option<u64>) {
    // SAFETY: no GIL is held (contract of close_all). After `shut_down` only this thread
    // destroys our interpreters, so the one looked up stays alive while we use it.
    unsafe {
        let main = subinterp_rs::Subinterpreter::main();
        let Ok(scope) = ScopedActivate::new(&main) else {
            return;
        };
        let Some(istate) = subinterp_rs::ffi_ext::look_up_id(id) else {
            return;
        };
        drop(scope);
        let view = subinterp_rs::Subinterpreter::from_raw(istate);
        let Ok(scope) = ScopedActivate::new(&view) else {
            return;
        };
        let me = pyo3_ffi::PyThread_get_thread_ident();
        let mut threads: Vec<std::ffi::c_ulong> = started_threads();
        threads.extend(runner.map(|t| t as std::ffi::c_ulong));
        threads.sort_unstable();
        threads.dedup();
        for thread in threads.into_iter().filter(|&t| t != me) {
            // Only thread states of the current interpreter (`id`) are matched.
            pyo3_ffi::PyThreadState_SetAsyncExc(thread as _, pyo3_ffi::PyExc_SystemExit);
        }
        drop(scope);
    }
}

/// Identifiers of the threads `threading` knows in the current interpreter (`_active`).
///
/// # Safety
/// The current interpreter's GIL is held.
unsafe fn started_threads() -> Vec<std::ffi::c_ulong> {
    // SAFETY: the GIL is held (contract); every reference is owned and dropped here, and any
    // error is cleared (no module `threading` imported: no threads to stop).
    unsafe {
        let keys = (|| {
            let name = pyutil::new_str("threading")?;
            // Only if imported: importing it here would start nothing worth stopping.
            let module = Owned::from_owned(pyo3_ffi::PyImport_GetModule(name.as_ptr()))?;
            let active = pyutil::getattr(module.as_ptr(), c"_active")?;
            if pyo3_ffi::PyDict_Check(active.as_ptr()) == 0 {
                return None;
            }
            Owned::from_owned(pyo3_ffi::PyDict_Keys(active.as_ptr()))
        })();
        let mut out = Vec::new();
        if let Some(keys) = keys {
            for i in 0..pyo3_ffi::PyList_Size(keys.as_ptr()) {
                let key = pyo3_ffi::PyList_GetItem(keys.as_ptr(), i);
                let ident = pyo3_ffi::PyLong_AsUnsignedLong(key);
                if pyo3_ffi::PyErr_Occurred().is_null() {
                    out.push(ident);
                }
                pyo3_ffi::PyErr_Clear();
            }
        }
        pyo3_ffi::PyErr_Clear();
        out
    }
}
