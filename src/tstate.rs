//! The calling OS thread's CPython thread state: which one is attached, and detaching,
//! re-attaching or deleting it. Used by the guards, and by bindings that switch interpreters
//! themselves.

use pyo3_ffi::{PyInterpreterState, PyThreadState};

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
    // SAFETY: `tstate` is attached (caller's contract); Clear runs its finalizers under its GIL,
    // DeleteCurrent then unlinks it and releases the GIL.
    unsafe {
        pyo3_ffi::PyThreadState_Clear(tstate);
        pyo3_ffi::PyThreadState_DeleteCurrent();
    }
}
