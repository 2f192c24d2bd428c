//! The calling OS thread's CPython thread state: which one is attached, and creating,
//! detaching, re-attaching or deleting it. Used by the guards, and by bindings that switch
//! interpreters themselves.
//!
//! Thread states are created with [`new`] and deleted with [`delete_attached`] or
//! [`delete_idle`], never with the C calls directly: those three take one process-wide lock
//! around CPython's create and delete. CPython before the fix of gh-126914 (3.12.x and
//! 3.13.0 among them) unlinks an interpreter's last thread state and only then, without its
//! lock, resets the interpreter's preallocated thread state; a thread state created for that
//! interpreter at the same moment takes the preallocated one half-reset and the process dies
//! ("init_threadstate: thread state already initialized"). The lock makes our creations and
//! deletions one at a time; each is a few microseconds and never waits for a GIL.

use std::sync::{Mutex, PoisonError};

use pyo3_ffi::{PyInterpreterState, PyThreadState};

/// Held around `PyThreadState_New` and `PyThreadState_Delete{,Current}` (see the module
/// docs). Nothing done under it takes a GIL or runs Python code, so it cannot deadlock with
/// one.
static CREATE_DELETE: Mutex<()> = Mutex::new(());

fn one_at_a_time<T>(f: impl FnOnce() -> T) -> T {
    // A panic cannot happen under the lock (it only wraps C calls), but if one did, the
    // guarded data is `()`: nothing is left half-updated, so the poison is ignored.
    let _guard = CREATE_DELETE.lock().unwrap_or_else(PoisonError::into_inner);
    f()
}

/// A new thread state of `interp` for this OS thread, not attached.
///
/// # Panics
/// If CPython cannot allocate it (`PyThreadState_New` only fails when out of memory).
///
/// # Safety
/// `interp` is alive and not being finalized. Needs no GIL.
pub unsafe fn new(interp: *mut PyInterpreterState) -> *mut PyThreadState {
    // SAFETY: `interp` is alive (caller's contract); PyThreadState_New needs no GIL and only
    // takes CPython's runtime lock, which no holder of ours waits on.
    let tstate = one_at_a_time(|| unsafe { pyo3_ffi::PyThreadState_New(interp) });
    assert!(
        !tstate.is_null(),
        "PyThreadState_New failed (out of memory)"
    );
    tstate
}

/// Clears and deletes thread states that are attached nowhere.
///
/// # Safety
/// The GIL of their interpreter is held on this thread (Clear runs their finalizers); none of
/// them is attached anywhere.
pub unsafe fn delete_idle(tstates: &[*mut PyThreadState]) {
    for &tstate in tstates {
        // SAFETY: idle and of the interpreter whose GIL this thread holds (caller's
        // contract). Clear may run Python code, so it runs outside the lock; Delete only
        // unlinks and frees.
        unsafe {
            pyo3_ffi::PyThreadState_Clear(tstate);
            one_at_a_time(|| pyo3_ffi::PyThreadState_Delete(tstate));
        }
    }
}

/// The thread state attached to this OS thread (its GIL held), or null.
pub fn attached() -> *mut PyThreadState {
    // SAFETY: reads a thread-local; valid with or without an attached thread state.
    unsafe { pyo3_ffi::compat::PyThreadState_GetUnchecked() }
}

/// The interpreter of the thread state attached to this OS thread, or null.
pub fn attached_interp() -> *mut PyInterpreterState {
    let tstate = attached();
    if tstate.is_null() {
        std::ptr::null_mut()
    } else {
        // SAFETY: `tstate` is attached to this thread, hence alive.
        unsafe { pyo3_ffi::PyThreadState_GetInterpreter(tstate) }
    }
}

/// Detaches the attached thread state, if any, releasing its GIL. Returns it (or null) so that
/// [`reattach`] can put it back.
///
/// # Safety
/// No borrowed object of the detached interpreter may be used until [`reattach`].
pub unsafe fn detach() -> *mut PyThreadState {
    if attached().is_null() {
        std::ptr::null_mut()
    } else {
        // SAFETY: a thread state is attached to this thread, as `PyEval_SaveThread` needs.
        unsafe { pyo3_ffi::PyEval_SaveThread() }
    }
}

/// Attaches `tstate` (taking its interpreter's GIL) if it is not null.
///
/// # Safety
/// No thread state may be attached to this thread; `tstate` must be alive and belong to it.
pub unsafe fn reattach(tstate: *mut PyThreadState) {
    if !tstate.is_null() {
        // SAFETY: caller's contract. pyo3-ffi's wrapper hangs this thread instead of unwinding
        // through Rust if the runtime is finalizing (Python < 3.14 would `pthread_exit`).
        unsafe { pyo3_ffi::PyEval_RestoreThread(tstate) }
    }
}

/// Clears and deletes the attached thread state, which releases its GIL.
///
/// # Safety
/// `tstate` must be attached to this thread.
pub unsafe fn delete_attached(tstate: *mut PyThreadState) {
    debug_assert_eq!(
        attached(),
        tstate,
        "only the attached thread state can be deleted"
    );
    // SAFETY: `tstate` is attached (caller's contract); Clear runs its finalizers under its GIL
    // (outside the lock: they are Python code), DeleteCurrent then unlinks it, releases the
    // GIL without waiting for any and frees it.
    unsafe {
        pyo3_ffi::PyThreadState_Clear(tstate);
        one_at_a_time(|| pyo3_ffi::PyThreadState_DeleteCurrent());
    }
}
