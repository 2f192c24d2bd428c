//! Dict templates: a dict whose keys cross again in the same order (the records of a table,
//! the same config or JSON shape sent again) is made by copying the keys table of a template,
//! a dict of those keys kept by the receiving interpreter with `None` values, then storing
//! its values: CPython's `PyDict_Copy` of a compact table is one allocation and a copy, with
//! no hashing and no probing, where inserting item by item probes for each key. Templates
//! are interned with the scalars (see [`super::intern`]), found by the number of keys and
//! the first key, then followed key by key as the dict is read ([`Guide`]): a template is
//! used only for a dict of exactly its keys, in its order.
//!
//! The keys table is CPython's internal layout: `csrc/dict_template.c` reads it, compiled
//! against the target Python's own headers, and refuses any dict not of the shape it reads.
//! Where those headers do not compile, or on free-threaded builds, it always refuses, and
//! every dict is made item by item.

use pyo3_ffi::{PyObject, Py_hash_t, Py_ssize_t};

use crate::runtime::xi::intern::{same_bytes, str_parts, Kind};

use subinterp_rs::ffi_ext;
use subinterp_rs::owned::Owned;

/// Template slots (in sets of [`super::intern::WAYS`]).
pub const SLOTS: usize = 16;
/// Dicts of more keys than this have no template. A template of `n` keys holds CPython's
/// table for them (about 35 bytes a key) and the keys (`str`s of at most 64 bytes of text,
/// usually interned anyway): at most about 5 MiB in all, only for dicts that crossed.
pub const MAX_KEYS: usize = 2048;

extern "C" {
    // csrc/dict_template.c, compiled against this Python's headers.
    static subinterp_dict_entry_size: usize;
    static subinterp_dict_entry_key: usize;
    fn subinterp_dict_entries(d: *mut PyObject, n: Py_ssize_t) -> *const u8;
    fn subinterp_dict_from_template(
        tmpl: *mut PyObject,
        items: *const *mut PyObject,
        n: Py_ssize_t,
    ) -> *mut PyObject;
    fn subinterp_dict_template(d: *mut PyObject, n: Py_ssize_t) -> *mut PyObject;
}

/// A template followed while the keys of a dict are read, one by one: each is compared with
/// the template's key at its place (its hash, then its text), which is sequential memory
/// and needs no lookup; the first that differs ends it.
pub struct Guide {
    /// The template (a strong reference: it stays alive, and unchanged, while followed).
    tmpl: Owned,
    /// Its first entry.
    entries: *const u8,
    /// Its number of keys.
    n: usize,
}

impl Guide {
    /// Follows `obj` (a template slot's object) if it is a template of `n` keys.
    ///
    /// # Safety
    /// The GIL is held; `obj` is alive.
    #[inline]
    pub unsafe fn new(obj: *mut PyObject, n: usize) -> Option<Self> {
        // SAFETY: the GIL is held; the C side checks the type and shape before reading.
        unsafe {
            if pyo3_ffi::Py_TYPE(obj) != &raw mut pyo3_ffi::PyDict_Type {
                return None;
            }
            let entries = subinterp_dict_entries(obj, n as Py_ssize_t);
            (!entries.is_null()).then(|| Self {
                tmpl: Owned::from_borrowed(std::ptr::NonNull::new_unchecked(obj)),
                entries,
                n,
            })
        }
    }

    /// The template's key `i` (borrowed: the template holds it) if it is the `str` of kind
    /// `kind`, code units `b` and hash `hash`.
    ///
    /// # Safety
    /// The GIL is held.
    #[inline]
    pub unsafe fn key(
        &self,
        i: usize,
        kind: Kind,
        b: &[u8],
        hash: Py_hash_t,
    ) -> Option<*mut PyObject> {
        if i >= self.n {
            return None;
        }
        // SAFETY: the GIL is held; the template has `n` entries (checked when made) and has
        // not changed (templates are never changed): entry `i`'s key is an exact `str`.
        unsafe {
            // An entry's key is a pointer, aligned as CPython laid it out (the C side gave
            // its offset); read unaligned all the same, which costs nothing on x86 and ARM.
            let key = self
                .entries
                .add(i * subinterp_dict_entry_size + subinterp_dict_entry_key)
                .cast::<*mut PyObject>()
                .read_unaligned();
            if (*key.cast::<pyo3_ffi::PyASCIIObject>()).hash != hash {
                return None;
            }
            let (k, _, data) = str_parts(key);
            (k == kind && same_bytes(data, b)).then_some(key)
        }
    }

    /// A copy of the template with the values of `items` (`key, value, ...`: the keys are
    /// its own, all of them). On `None` a Python error is set.
    ///
    /// # Safety
    /// The GIL is held; `items` are alive.
    pub unsafe fn copy(&self, items: &[*mut PyObject]) -> Option<Owned> {
        // SAFETY: as this function's contract.
        unsafe { copy(&self.tmpl, items) }
    }
}

/// A copy of the template `tmpl` (whose keys are those of `items`, in order) with the values
/// of `items`.
/// On `None` a Python error is set.
///
/// # Safety
/// The GIL is held; `items` are alive.
unsafe fn copy(tmpl: &Owned, items: &[*mut PyObject]) -> Option<Owned> {
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
