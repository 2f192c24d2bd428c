//! Small raw-C-API helpers used under the GIL of the current interpreter.
//!
//! Every function here needs the GIL of the interpreter attached to this thread, and returns
//! `None` (with a Python error set) on failure, like the C API it wraps.

use std::ffi::{c_char, CStr};
use std::ptr::NonNull;

use pyo3_ffi::{PyObject, Py_ssize_t};

use subinterp_rs::owned::Owned;

/// A new `str` from Rust text.
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn new_str(s: &str) -> Option<Owned> {
    // SAFETY: caller holds the GIL; the pointer and length describe valid UTF-8.
    unsafe {
        Owned::from_owned(pyo3_ffi::PyUnicode_FromStringAndSize(
            s.as_ptr().cast::<c_char>(),
            s.len() as Py_ssize_t,
        ))
    }
}

/// A new `bytes` copied from `data`.
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn new_bytes(data: &[u8]) -> Option<Owned> {
    // SAFETY: caller holds the GIL; the pointer and length describe `data`.
    unsafe {
        Owned::from_owned(pyo3_ffi::PyBytes_FromStringAndSize(
            data.as_ptr().cast::<c_char>(),
            data.len() as Py_ssize_t,
        ))
    }
}

/// The UTF-8 text of a `str` (`None` and an error set if it is not one or has surrogates).
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
pub unsafe fn str_to_string(obj: *mut PyObject) -> Option<String> {
    let mut len: Py_ssize_t = 0;
    // SAFETY: caller holds the GIL; on success the buffer lives as long as `obj`, and we copy
    // it out at once.
    unsafe {
        let data = pyo3_ffi::PyUnicode_AsUTF8AndSize(obj, &raw mut len);
        if data.is_null() {
            return None;
        }
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
        Some(String::from_utf8_unchecked(bytes.to_vec()))
    }
}

/// `str(obj)` as Rust text, never failing: falls back to `<unprintable T>`.
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
pub unsafe fn display(obj: *mut PyObject) -> String {
    // SAFETY: caller holds the GIL.
    unsafe {
        if let Some(s) = Owned::from_owned(pyo3_ffi::PyObject_Str(obj)) {
            if let Some(text) = str_to_string(s.as_ptr()) {
                return text;
            }
        }
        pyo3_ffi::PyErr_Clear();
        format!("<unprintable {}>", type_name(obj))
    }
}

/// The `__name__` of `obj`'s type.
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
pub unsafe fn type_name(obj: *mut PyObject) -> String {
    // SAFETY: caller holds the GIL; `tp_name` is a NUL-terminated string owned by the type.
    unsafe {
        let tp = pyo3_ffi::Py_TYPE(obj);
        let full = CStr::from_ptr((*tp).tp_name).to_string_lossy();
        full.rsplit('.').next().unwrap_or_default().to_owned()
    }
}

/// `getattr(obj, name)`.
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
pub unsafe fn getattr(obj: *mut PyObject, name: &CStr) -> Option<Owned> {
    // SAFETY: caller holds the GIL.
    unsafe { Owned::from_owned(pyo3_ffi::PyObject_GetAttrString(obj, name.as_ptr())) }
}

/// `getattr(obj, name)` as Rust text, `None` (error cleared) when missing or not a `str`.
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
pub unsafe fn getattr_string(obj: *mut PyObject, name: &CStr) -> Option<String> {
    // SAFETY: caller holds the GIL.
    unsafe {
        let text = getattr(obj, name).and_then(|v| {
            if pyo3_ffi::PyUnicode_Check(v.as_ptr()) != 0 {
                str_to_string(v.as_ptr())
            } else {
                None
            }
        });
        if text.is_none() {
            pyo3_ffi::PyErr_Clear();
        }
        text
    }
}

/// `importlib.import_module(name)` (a `sys.modules` hit is a dict look-up).
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn import(name: &CStr) -> Option<Owned> {
    // SAFETY: caller holds the GIL.
    unsafe { Owned::from_owned(pyo3_ffi::PyImport_ImportModule(name.as_ptr())) }
}

/// Imports `module` (given as Rust text).
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn import_str(module: &str) -> Option<Owned> {
    // SAFETY: caller holds the GIL.
    unsafe {
        let name = new_str(module)?;
        // A module already imported is a `sys.modules` look-up, much cheaper than `__import__`.
        if let Some(m) = Owned::from_owned(pyo3_ffi::PyImport_GetModule(name.as_ptr())) {
            return Some(m);
        }
        if !pyo3_ffi::PyErr_Occurred().is_null() {
            return None;
        }
        Owned::from_owned(pyo3_ffi::PyImport_Import(name.as_ptr()))
    }
}

/// An attribute of a module, cached per interpreter in the interpreter's state dict under
/// `key` (so every interpreter has its own, and the module needs no per-module state).
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn cached_attr(key: &CStr, module: &CStr, attr: &CStr) -> Option<Owned> {
    // SAFETY: caller holds the GIL of the current interpreter, whose state dict we use.
    unsafe {
        let interp = pyo3_ffi::PyInterpreterState_Get();
        let dict = pyo3_ffi::PyInterpreterState_GetDict(interp);
        if dict.is_null() {
            let m = import(module)?;
            return getattr(m.as_ptr(), attr);
        }
        let hit = pyo3_ffi::PyDict_GetItemString(dict, key.as_ptr()); // borrowed
        if let Some(hit) = NonNull::new(hit) {
            return Some(Owned::from_borrowed(hit));
        }
        let m = import(module)?;
        let value = getattr(m.as_ptr(), attr)?;
        if pyo3_ffi::PyDict_SetItemString(dict, key.as_ptr(), value.as_ptr()) < 0 {
            pyo3_ffi::PyErr_Clear();
        }
        Some(value)
    }
}

/// Calls `f(*args)`.
///
/// # Safety
/// The current interpreter's GIL is held; every pointer is alive.
pub unsafe fn call(f: *mut PyObject, args: &[*mut PyObject]) -> Option<Owned> {
    // SAFETY: caller holds the GIL; `args` is a plain array of borrowed references.
    unsafe {
        Owned::from_owned(pyo3_ffi::PyObject_Vectorcall(
            f,
            args.as_ptr(),
            args.len(),
            std::ptr::null_mut(),
        ))
    }
}

/// The `__main__` module's dict of the current interpreter (borrowed from `sys.modules`).
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn main_dict() -> Option<*mut PyObject> {
    // SAFETY: caller holds the GIL; `PyImport_AddModule` returns a borrowed reference kept
    // alive by `sys.modules`.
    unsafe {
        let main = pyo3_ffi::PyImport_AddModule(c"__main__".as_ptr());
        if main.is_null() {
            return None;
        }
        let dict = pyo3_ffi::PyModule_GetDict(main);
        (!dict.is_null()).then_some(dict)
    }
}

/// The last interpreter (by id: ids are never reused) a thread used a per-interpreter object
/// of [`state_object`] in, and that object.
pub type LastState = std::thread::LocalKey<std::cell::Cell<(i64, *mut PyObject)>>;

/// An object of the current interpreter kept in its state dict under `key` (so it is freed with
/// the interpreter), made by `make` the first time; `last` remembers it for this thread, so
/// the next look-up in the same interpreter costs no dict look-up. Borrowed (the state dict
/// holds it). `None`, no error set, when there is no state dict or `make` failed.
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn state_object(
    key: &CStr,
    last: &'static LastState,
    make: impl FnOnce() -> Option<Owned>,
) -> Option<*mut PyObject> {
    // SAFETY: the GIL is held; the object is kept alive by the state dict of its interpreter,
    // which is the current one when the ids match (and alive: we run in it).
    unsafe {
        let interp = pyo3_ffi::PyInterpreterState_Get();
        let id = pyo3_ffi::PyInterpreterState_GetID(interp);
        let (last_id, last_obj) = last.get();
        if last_id == id && id >= 0 {
            return Some(last_obj);
        }
        let state = pyo3_ffi::PyInterpreterState_GetDict(interp);
        if state.is_null() {
            return None;
        }
        let mut found = pyo3_ffi::PyDict_GetItemString(state, key.as_ptr());
        if found.is_null() {
            let Some(fresh) = make() else {
                pyo3_ffi::PyErr_Clear();
                return None;
            };
            if pyo3_ffi::PyDict_SetItemString(state, key.as_ptr(), fresh.as_ptr()) < 0 {
                pyo3_ffi::PyErr_Clear();
                return None;
            }
            found = fresh.as_ptr(); // kept alive by the state dict
        }
        last.set((id, found));
        Some(found)
    }
}
