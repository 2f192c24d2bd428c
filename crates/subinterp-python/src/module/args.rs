//! Argument conversion for the module's `METH_FASTCALL` functions.

use std::ffi::CStr;

use pyo3_ffi::{PyObject, Py_ssize_t};

/// The positional arguments as a slice.
///
/// # Safety
/// `args` points to `n` live references (CPython's fastcall contract).
pub unsafe fn slice<'a>(args: *mut *mut PyObject, n: Py_ssize_t) -> &'a [*mut PyObject] {
    if n <= 0 || args.is_null() {
        &[]
    } else {
        // SAFETY: `args` points to `n` live references (caller's contract); only the pointer
        // array is read, no Python call is made (the caller's GIL keeps the objects alive).
        unsafe { std::slice::from_raw_parts(args, n as usize) }
    }
}

/// Checks the argument count (`TypeError` like CPython's own message otherwise).
///
/// # Safety
/// The GIL is held.
pub unsafe fn count(name: &CStr, args: &[*mut PyObject], min: usize, max: usize) -> Option<()> {
    if (min..=max).contains(&args.len()) {
        return Some(());
    }
    let name = name.to_string_lossy();
    let expected = if min == max {
        format!("{min}")
    } else {
        format!("{min} to {max}")
    };
    let msg = format!(
        "{name}() takes {expected} positional argument(s) but {} were given",
        args.len()
    );
    // SAFETY: the GIL is held.
    unsafe { set_error(pyo3_ffi::PyExc_TypeError, &msg) };
    None
}

/// Sets `exc` with a Rust message.
///
/// # Safety
/// The GIL is held; `exc` is an exception type.
pub unsafe fn set_error(exc: *mut PyObject, msg: &str) {
    // SAFETY: the GIL is held; the message is copied by CPython.
    unsafe {
        // On failure MemoryError is already set.
        if let Some(m) = crate::runtime::pyutil::new_str(msg) {
            pyo3_ffi::PyErr_SetObject(exc, m.as_ptr());
        }
    }
}

/// An `int` argument that fits 64 bits.
///
/// # Safety
/// The GIL is held; `obj` is alive.
pub unsafe fn int(obj: *mut PyObject, what: &str) -> Option<i64> {
    // SAFETY: the GIL is held.
    unsafe {
        if pyo3_ffi::PyLong_Check(obj) == 0 {
            set_error(
                pyo3_ffi::PyExc_TypeError,
                &format!(
                    "{what} must be an int, not {}",
                    crate::runtime::pyutil::type_name(obj)
                ),
            );
            return None;
        }
        let v = pyo3_ffi::PyLong_AsLongLong(obj);
        if v == -1 && !pyo3_ffi::PyErr_Occurred().is_null() {
            return None;
        }
        Some(v)
    }
}

/// An id argument (an `int`; `InterpreterNotFoundError` style checks are the caller's).
///
/// # Safety
/// The GIL is held; `obj` is alive.
pub unsafe fn id(obj: *mut PyObject) -> Option<i64> {
    // SAFETY: the GIL is held.
    unsafe { int(obj, "id") }
}

/// A truth value.
///
/// # Safety
/// The GIL is held; `obj` is alive.
pub unsafe fn truth(obj: *mut PyObject) -> Option<bool> {
    // SAFETY: the GIL is held.
    match unsafe { pyo3_ffi::PyObject_IsTrue(obj) } {
        -1 => None,
        v => Some(v == 1),
    }
}

/// `None` or a non-negative number of seconds, kept exactly (no truncation).
///
/// # Safety
/// The GIL is held; `obj` is alive.
pub unsafe fn timeout(obj: *mut PyObject) -> Option<Option<f64>> {
    // SAFETY: the GIL is held.
    unsafe {
        if obj == pyo3_ffi::Py_None() {
            return Some(None);
        }
        let t = pyo3_ffi::PyFloat_AsDouble(obj);
        if t == -1.0 && !pyo3_ffi::PyErr_Occurred().is_null() {
            return None;
        }
        if t.is_nan() || t < 0.0 {
            set_error(
                pyo3_ffi::PyExc_ValueError,
                "timeout value must be non-negative",
            );
            return None;
        }
        Some(Some(t))
    }
}

/// A new reference to `None`.
///
/// # Safety
/// The GIL is held.
pub unsafe fn none() -> *mut PyObject {
    // SAFETY: the GIL is held; None is immortal but we follow the refcount rules anyway.
    unsafe {
        let n = pyo3_ffi::Py_None();
        pyo3_ffi::Py_INCREF(n);
        n
    }
}

/// A new `bool`.
///
/// # Safety
/// The GIL is held.
pub unsafe fn boolean(b: bool) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe { pyo3_ffi::PyBool_FromLong(std::ffi::c_long::from(b)) }
}

/// A new `int`.
///
/// # Safety
/// The GIL is held.
pub unsafe fn integer(v: i64) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe { pyo3_ffi::PyLong_FromLongLong(v) }
}
