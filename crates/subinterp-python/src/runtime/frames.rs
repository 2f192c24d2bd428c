//! `sys._current_frames()` and `sys._current_exceptions()` for the calling interpreter only.
//!
//! CPython's own (3.12 to 3.15) walk the threads of *every* interpreter of the process and
//! make frame objects for another interpreter's running frames, without that interpreter's
//! GIL and from the caller's allocator: memory corruption that aborts the process
//! (`free(): invalid pointer`) when a subinterpreter runs code meanwhile. Debuggers,
//! watchdogs (pytest-timeout's thread dump) and profilers (dask's) call them while other
//! threads work. The process guards replace both with these, which walk only the threads of
//! the interpreter the caller runs in. A thread of main that is inside a subinterpreter right
//! now is listed with the frame it entered from (the main-interpreter frame of its `call`
//! or `exec`); frames inside other interpreters are not listed.

use std::ffi::c_ulong;

use pyo3_ffi::{PyObject, PyThreadState};

use subinterp_rs::owned::Owned;

extern "C" {
    /// `t->thread_id` (csrc/tstate_fields.c, compiled against this Python's headers).
    fn subinterp_tstate_thread_id(t: *const PyThreadState) -> c_ulong;
    /// `t`'s handled exception, borrowed, or null (csrc/tstate_fields.c).
    fn subinterp_tstate_handled_exception(t: *const PyThreadState) -> *mut PyObject;
}

/// What to collect per thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collect {
    /// Its topmost complete frame (`sys._current_frames()`).
    Frames,
    /// The exception it is handling (`sys._current_exceptions()`).
    Exceptions,
}

/// A new dict `{thread ident: frame or exception}` over the threads of the calling
/// interpreter, as `sys._current_frames()` / `sys._current_exceptions()` make it for those
/// threads; threads without one are left out. `None` with an exception set on failure.
///
/// # Safety
/// The calling interpreter's GIL is held by this thread (default build: no other thread of
/// this interpreter runs Python meanwhile, so none of its thread states changes under us).
pub unsafe fn current(what: Collect) -> Option<Owned> {
    // SAFETY: the GIL is held (contract).
    let result = unsafe { Owned::from_owned(pyo3_ffi::PyDict_New()) }?;
    // SAFETY: the GIL is held, so this thread's state is attached and its interpreter alive.
    let mut t = unsafe {
        pyo3_ffi::PyInterpreterState_ThreadHead(pyo3_ffi::PyThreadState_GetInterpreter(
            pyo3_ffi::PyThreadState_Get(),
        ))
    };
    while !t.is_null() {
        // SAFETY: `t` belongs to the caller's interpreter, whose GIL this thread holds: the
        // thread owning `t` is not running Python, so its frame stack and handled-exception
        // chain are stable; the list is CPython's own (PyThreadState_Next is its documented
        // walk). A frame object made here is made by this interpreter for its own frame.
        unsafe {
            let value = match what {
                Collect::Frames => {
                    Owned::from_owned(pyo3_ffi::PyThreadState_GetFrame(t).cast::<PyObject>())
                }
                Collect::Exceptions => {
                    std::ptr::NonNull::new(subinterp_tstate_handled_exception(t))
                        .map(|exc| Owned::from_borrowed(exc))
                }
            };
            if let Some(value) = value {
                let key = Owned::from_owned(pyo3_ffi::PyLong_FromUnsignedLong(
                    subinterp_tstate_thread_id(t),
                ))?;
                if pyo3_ffi::PyDict_SetItem(result.as_ptr(), key.as_ptr(), value.as_ptr()) < 0 {
                    return None;
                }
            } else if !pyo3_ffi::PyErr_Occurred().is_null() {
                return None;
            }
            t = pyo3_ffi::PyThreadState_Next(t);
        }
    }
    Some(result)
}
