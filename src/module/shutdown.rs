//! Closing every owned interpreter before the runtime finalizes (registered with `atexit`).
//!
//! Idle interpreters are closed at once. One still running (in a daemon thread, since
//! `threading` joined the others already) gets `SystemExit` raised in its running thread, is
//! given a moment to unwind, then closed. What still runs after that is reported back: the
//! package then ends the process with `os._exit` rather than let finalization abort it.

use std::time::{Duration, Instant};

use crate::registry;
use crate::scope::ScopedActivate;

/// How long a running interpreter gets to unwind after `SystemExit` is injected.
const GRACE: Duration = Duration::from_secs(2);

/// Closes every interpreter we created, disarmed ones included (a subinterpreter left at
/// exit makes CPython 3.12 abort). Returns the ids still alive (running in a thread that did
/// not stop). Called with no GIL held.
pub fn close_all() -> Vec<i64> {
    for id in registry::ids() {
        registry::rearm(id);
    }
    for (id, thread) in registry::running_threads() {
        interrupt(id, thread);
    }
    let deadline = Instant::now() + GRACE;
    loop {
        let mut pending = false;
        for id in registry::ids() {
            match registry::destroy(id) {
                Ok(())
                | Err(registry::DestroyError::NotFound | registry::DestroyError::Disarmed) => {}
                Err(_) => pending = true,
            }
        }
        if !pending || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    registry::ids()
}

/// Raises `SystemExit` in the thread running interpreter `id`.
fn interrupt(id: i64, thread: u64) {
    // SAFETY: no GIL is held (contract of close_all). We look the interpreter up by id; it
    // stays alive while it runs (ours are only destroyed when idle).
    unsafe {
        let main = crate::Subinterpreter::main();
        let Ok(scope) = ScopedActivate::new(&main) else {
            return;
        };
        let Some(istate) = crate::ffi_ext::look_up_id(id) else {
            return;
        };
        drop(scope);
        let view = crate::Subinterpreter::from_raw(istate);
        let Ok(scope) = ScopedActivate::new(&view) else {
            return;
        };
        pyo3_ffi::PyThreadState_SetAsyncExc(thread as _, pyo3_ffi::PyExc_SystemExit);
        drop(scope);
    }
}
