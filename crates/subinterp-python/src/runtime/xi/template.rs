//! Dict templates: a dict whose keys cross again in the same order (the records of a table,
//! the same config or JSON shape sent again) is made by copying the keys table of a template,
//! a dict of those keys kept by the receiving interpreter with `None` values, then storing
//! its values: CPython's `PyDict_Copy` of a compact table is one allocation and a copy, with
//! no hashing and no probing, where inserting item by item probes for each key. Templates
//! are interned with the scalars (see [`super::intern`]) and found by the identity of the
//! keys, which are interned `str`s: a template matches only dicts of these very keys.
//!
//! The keys table is CPython's internal layout: `csrc/dict_template.c` reads it, compiled
//! against the target Python's own headers, and refuses any dict not of the shape it reads.
//! Where those headers do not compile, or on free-threaded builds, it always refuses, and
//! every dict is made item by item.

use pyo3_ffi::{PyObject, Py_ssize_t};

use subinterp_rs::ffi_ext;
use subinterp_rs::owned::Owned;

/// Template slots (in sets of [`super::intern::WAYS`]).
pub const SLOTS: usize = 32;
/// Dicts of more keys than this have no template. A template of `n` keys holds CPython's
/// table for them: about 35 bytes a key, so at most about 2.3 MiB in all.
pub const MAX_KEYS: usize = 2048;

extern "C" {
    // csrc/dict_template.c, compiled against this Python's headers.
    fn subinterp_dict_template_matches(
        tmpl: *mut PyObject,
        items: *const *mut PyObject,
        n: Py_ssize_t,
    ) -> i32;
    fn subinterp_dict_from_template(
        tmpl: *mut PyObject,
        items: *const *mut PyObject,
        n: Py_ssize_t,
    ) -> *mut PyObject;
    fn subinterp_dict_template(d: *mut PyObject, n: Py_ssize_t) -> *mut PyObject;
}

/// Whether `obj` (a slot's object) is the template of the keys of `items` (`key, value,
/// ...`), in their order.
///
/// # Safety
/// The GIL is held; `obj` and `items` are alive.
#[inline]
pub unsafe fn matches(obj: *mut PyObject, items: &[*mut PyObject]) -> bool {
    // SAFETY: the GIL is held; the C side reads `items.len() / 2` keys at even indexes and
    // checks `obj`'s type and shape before reading its table.
    unsafe {
        pyo3_ffi::Py_TYPE(obj) == &raw mut pyo3_ffi::PyDict_Type
            && subinterp_dict_template_matches(obj, items.as_ptr(), (items.len() / 2) as Py_ssize_t)
                != 0
    }
}

/// A copy of the template `tmpl` (which [`matches`] `items`) with the values of `items`.
/// On `None` a Python error is set.
///
/// # Safety
/// The GIL is held; `items` are alive.
pub unsafe fn copy(tmpl: &Owned, items: &[*mut PyObject]) -> Option<Owned> {
    // SAFETY: the GIL is held; the C side checks the copy's shape before writing its values
    // (borrowed: it takes its own references).
    unsafe {
        let d = subinterp_dict_from_template(
            tmpl.as_ptr(),
            items.as_ptr(),
            (items.len() / 2) as Py_ssize_t,
        );
        if d.is_null() && pyo3_ffi::PyErr_Occurred().is_null() {
            // The copy was not of the shape expected (never seen): item by item.
            return item_by_item(items);
        }
        Owned::from_owned(d)
    }
}

/// A template of the dict `d` of `n` items (a copy with `None` values). On `None` a Python
/// error is set; if `d` cannot be a template, `None` (the Python object: an empty slot).
///
/// # Safety
/// The GIL is held; `d` is an exact dict of `n` items.
pub unsafe fn of(d: &Owned, n: usize) -> Option<Owned> {
    // SAFETY: the GIL is held; the C side checks `d`'s shape before reading it.
    unsafe {
        let t = subinterp_dict_template(d.as_ptr(), n as Py_ssize_t);
        if t.is_null() {
            if !pyo3_ffi::PyErr_Occurred().is_null() {
                return None;
            }
            return Owned::from_owned(pyo3_ffi::Py_NewRef(pyo3_ffi::Py_None()));
        }
        Owned::from_owned(t)
    }
}

/// A dict of `items` (`key, value, ...`), inserted one by one. On `None` a Python error is
/// set.
///
/// # Safety
/// The GIL is held; `items` are alive, the keys hashable.
pub unsafe fn item_by_item(items: &[*mut PyObject]) -> Option<Owned> {
    // SAFETY: as this function's contract.
    unsafe { Owned::from_owned(ffi_ext::dict_from_items(items)) }
}
