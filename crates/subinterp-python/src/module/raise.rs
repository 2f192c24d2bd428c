//! Raising the Python-defined exceptions of `subinterp_rs._errors` from native code.

use std::ffi::CStr;

use pyo3_ffi::PyObject;

use crate::runtime::excinfo::ExcInfo;
use crate::runtime::pyutil;

/// The exception classes of `subinterp_rs._errors`.
#[derive(Clone, Copy, Debug)]
pub enum Exc {
    /// `InterpreterError`
    Interpreter,
    /// `InterpreterNotFoundError`
    NotFound,
    /// `NotShareableError`
    NotShareable,
    /// `QueueNotFoundError`
    QueueNotFound,
    /// `QueueEmpty`
    QueueEmpty,
    /// `QueueFull`
    QueueFull,
    /// `ExecutionFailed`
    ExecutionFailed,
    /// `SharedDictClosedError`
    SharedDictClosed,
    /// `SharedDictFullError`
    SharedDictFull,
}

impl Exc {
    fn names(self) -> (&'static CStr, &'static CStr) {
        match self {
            Exc::Interpreter => (c"subinterp_rs.exc.InterpreterError", c"InterpreterError"),
            Exc::NotFound => (
                c"subinterp_rs.exc.InterpreterNotFoundError",
                c"InterpreterNotFoundError",
            ),
            Exc::NotShareable => (c"subinterp_rs.exc.NotShareableError", c"NotShareableError"),
            Exc::QueueNotFound => (
                c"subinterp_rs.exc.QueueNotFoundError",
                c"QueueNotFoundError",
            ),
            Exc::QueueEmpty => (c"subinterp_rs.exc.QueueEmpty", c"QueueEmpty"),
            Exc::QueueFull => (c"subinterp_rs.exc.QueueFull", c"QueueFull"),
            Exc::ExecutionFailed => (c"subinterp_rs.exc.ExecutionFailed", c"ExecutionFailed"),
            Exc::SharedDictClosed => (
                c"subinterp_rs.exc.SharedDictClosedError",
                c"SharedDictClosedError",
            ),
            Exc::SharedDictFull => (
                c"subinterp_rs.exc.SharedDictFullError",
                c"SharedDictFullError",
            ),
        }
    }

    /// The class, from this interpreter's `subinterp_rs._errors`.
    ///
    /// # Safety
    /// The GIL is held.
    unsafe fn class(self) -> Option<subinterp_rs::owned::Owned> {
        let (key, name) = self.names();
        // SAFETY: the GIL is held.
        unsafe { pyutil::cached_attr(key, c"subinterp_rs._errors", name) }
    }
}

/// Raises `kind(msg)`; returns null for the caller to return.
///
/// # Safety
/// The GIL is held.
pub unsafe fn raise(kind: Exc, msg: &str) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        if let Some(cls) = kind.class() {
            super::args::set_error(cls.as_ptr(), msg);
        }
    }
    std::ptr::null_mut()
}

/// Raises `kind(msg)` with the currently raised exception as its `__cause__`; returns null.
///
/// # Safety
/// The GIL is held.
pub unsafe fn raise_from_current(kind: Exc, msg: &str) -> *mut PyObject {
    // SAFETY: the GIL is held; references are owned and handed to CPython as documented.
    unsafe {
        let cause = pyo3_ffi::PyErr_GetRaisedException();
        raise(kind, msg);
        if !cause.is_null() {
            let exc = pyo3_ffi::PyErr_GetRaisedException();
            if exc.is_null() {
                pyo3_ffi::Py_DECREF(cause);
            } else {
                pyo3_ffi::PyException_SetCause(exc, cause); // steals `cause`
                pyo3_ffi::PyErr_SetRaisedException(exc);
            }
        }
    }
    std::ptr::null_mut()
}

/// Raises `ExecutionFailed(excinfo)`; returns null.
///
/// # Safety
/// The GIL is held.
pub unsafe fn execution_failed(info: &ExcInfo) -> *mut PyObject {
    // SAFETY: the GIL is held; references are owned and dropped here.
    unsafe {
        let Some(cls) = Exc::ExecutionFailed.class() else {
            return std::ptr::null_mut();
        };
        let Some(py_info) = info.to_python() else {
            return std::ptr::null_mut();
        };
        if let Some(exc) = pyutil::call(cls.as_ptr(), &[py_info.as_ptr()]) {
            pyo3_ffi::PyErr_SetObject(cls.as_ptr(), exc.as_ptr());
        }
    }
    std::ptr::null_mut()
}
