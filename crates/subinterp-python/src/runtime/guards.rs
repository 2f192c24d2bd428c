//! Closing every owned interpreter before the runtime finalizes (registered with `atexit`).
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

/// How long a running interpreter gets to unwind after `SystemExit` is injected.
const GRACE: Duration = Duration::from_secs(2);

/// Closes every interpreter we created, disarmed ones included (a subinterpreter left at
/// exit makes CPython 3.12 abort). Returns the ids still alive (running in a thread that did
/// not stop). Called with no GIL held.
pub fn close_all() -> Vec<i64> {
    // Daemon threads go on after this hook: they must not make or enter interpreters again.
    lifecycle::shut_down();
    crate::runtime::queue::wake_all();
    for id in lifecycle::ids() {
        lifecycle::rearm(id);
    }
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
            match lifecycle::destroy_at_exit(id) {
                Ok(())
                | Err(lifecycle::DestroyError::NotFound | lifecycle::DestroyError::Disarmed) => {}
                Err(lifecycle::DestroyError::BuffersInUse(_)) => {
                    // Memoryviews of its memory live on in other interpreters until they
                    // finalize: leave those exports unreleased and close it now.
                    crate::runtime::buffer::abandon(id);
                    pending |= lifecycle::destroy_at_exit(id).is_err();
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
