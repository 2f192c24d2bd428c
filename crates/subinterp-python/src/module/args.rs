//! Argument binding and conversion for the module's `METH_FASTCALL | METH_KEYWORDS` functions.

use std::ffi::CStr;

use pyo3_ffi::{PyObject, Py_ssize_t};

/// Binds a `METH_FASTCALL | METH_KEYWORDS` call to the parameters `names`, the first
/// `required` of them required: each slot holds the argument given for that parameter,
/// positionally or by keyword, or null for an optional one not given. Raises `TypeError`, with
/// CPython's wording, for too many arguments, an unknown or repeated keyword, or a missing
/// required argument.
///
/// # Safety
/// The GIL is held; `args` holds `nargs` positional arguments followed by one value per name
/// in `kwnames` (a tuple of `str`, or null): CPython's vectorcall contract.
pub unsafe fn bind<const N: usize>(
    name: &str,
    names: &[&CStr; N],
    required: usize,
    args: *const *mut PyObject,
    nargs: Py_ssize_t,
    kwnames: *mut PyObject,
) -> Option<[*mut PyObject; N]> {
    let mut slots = [std::ptr::null_mut(); N];
    let nargs = usize::try_from(nargs).unwrap_or(0);
    // SAFETY: the GIL is held and the argument array is CPython's (contract); only pointers
    // are read, and every Python call made is on the borrowed key strings.
    unsafe {
        let nkw = if kwnames.is_null() {
            0
        } else {
            usize::try_from(pyo3_ffi::PyTuple_Size(kwnames)).unwrap_or(0)
        };
        if nargs > N {
            let takes = if required == N {
                format!("{N} positional argument{}", if N == 1 { "" } else { "s" })
            } else {
                format!("from {required} to {N} positional arguments")
            };
            let given = if nargs == 1 { "was" } else { "were" };
            set_error(
                pyo3_ffi::PyExc_TypeError,
                &format!("{name}() takes {takes} but {nargs} {given} given"),
            );
            return None;
        }
        for (slot, i) in slots.iter_mut().zip(0..nargs) {
            *slot = *args.add(i);
        }
        for k in 0..nkw {
            let key = pyo3_ffi::PyTuple_GetItem(kwnames, k as Py_ssize_t);
            // Compares without allocating (keyword names are `str`, CPython checked).
            let Some(pos) = names
                .iter()
                .position(|n| pyo3_ffi::PyUnicode_CompareWithASCIIString(key, n.as_ptr()) == 0)
            else {
                let key = crate::runtime::pyutil::display(key);
                set_error(
                    pyo3_ffi::PyExc_TypeError,
                    &format!("{name}() got an unexpected keyword argument '{key}'"),
                );
                return None;
            };
            if !slots[pos].is_null() {
                let key = names[pos].to_string_lossy();
                set_error(
                    pyo3_ffi::PyExc_TypeError,
                    &format!("{name}() got multiple values for argument '{key}'"),
                );
                return None;
            }
            slots[pos] = *args.add(nargs + k);
        }
        if let Some(missing) = (0..required).find(|&i| slots[i].is_null()) {
            set_error(
                pyo3_ffi::PyExc_TypeError,
                &format!(
                    "{name}() missing required argument '{}' (pos {})",
                    names[missing].to_string_lossy(),
                    missing + 1
                ),
            );
            return None;
        }
    }
    Some(slots)
}

/// An optional truth value: `default` for a parameter not given (null).
///
/// # Safety
/// The GIL is held; `obj` is null or alive.
pub unsafe fn truth_or(obj: *mut PyObject, default: bool) -> Option<bool> {
    if obj.is_null() {
        Some(default)
    } else {
        // SAFETY: the GIL is held, `obj` is alive (contract).
        unsafe { truth(obj) }
    }
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

/// An optional `bytes` argument (not given, or `None`: `Some(None)`), copied out.
///
/// # Safety
/// The GIL is held; `obj` is null or alive.
pub unsafe fn bytes_or_none(obj: *mut PyObject, what: &str) -> Option<Option<Vec<u8>>> {
    // SAFETY: the GIL is held; a bytes object's buffer is immutable and alive while `obj` is.
    unsafe {
        if obj.is_null() || obj == pyo3_ffi::Py_None() {
            return Some(None);
        }
        if pyo3_ffi::PyBytes_Check(obj) == 0 {
            set_error(
                pyo3_ffi::PyExc_TypeError,
                &format!(
                    "{what} must be bytes or None, not {}",
                    crate::runtime::pyutil::type_name(obj)
                ),
            );
            return None;
        }
        let data = pyo3_ffi::PyBytes_AsString(obj).cast::<u8>();
        let len = usize::try_from(pyo3_ffi::PyBytes_Size(obj)).unwrap_or(0);
        Some(Some(std::slice::from_raw_parts(data, len).to_vec()))
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
