//! [`Owned`]: a strong reference to a Python object of the interpreter current on this thread.

use std::marker::PhantomData;
use std::ptr::NonNull;

use pyo3_ffi::PyObject;

/// A strong reference to a Python object, decref'd on drop: the crate's stand-in for PyO3's
/// `Bound`, without PyO3's thread-local bookkeeping (which assumes a single interpreter).
///
/// It must be created and dropped while the same interpreter's GIL is held on the same OS
/// thread: the type is neither `Send` nor `Sync`, and every function that switches interpreters
/// takes care to drop its `Owned` values before switching. Values leave an interpreter as plain
/// Rust data (a binding's own cross-interpreter values), never as `Owned`.
pub struct Owned {
    ptr: NonNull<PyObject>,
    _thread_bound: PhantomData<*mut ()>,
}

impl Owned {
    /// Takes ownership of a new reference; `None` for null (a Python error is then set).
    ///
    /// # Safety
    /// `ptr` is null or a new reference of the current interpreter, whose GIL is held.
    pub unsafe fn from_owned(ptr: *mut PyObject) -> Option<Self> {
        NonNull::new(ptr).map(|ptr| Owned {
            ptr,
            _thread_bound: PhantomData,
        })
    }

    /// Takes a new reference to a borrowed object.
    ///
    /// # Safety
    /// `ptr` is a live object of the current interpreter, whose GIL is held.
    pub unsafe fn from_borrowed(ptr: NonNull<PyObject>) -> Self {
        // SAFETY: `ptr` is a live object of the current interpreter, whose GIL is held on this
        // thread (caller's contract), as `Py_INCREF` needs.
        unsafe { pyo3_ffi::Py_INCREF(ptr.as_ptr()) };
        Owned {
            ptr,
            _thread_bound: PhantomData,
        }
    }

    /// The borrowed pointer, valid while `self` lives; use it only under the GIL of the
    /// interpreter it belongs to.
    #[must_use]
    pub fn as_ptr(&self) -> *mut PyObject {
        self.ptr.as_ptr()
    }

    /// Gives the reference to the caller (no decref), e.g. to return it to CPython or to a
    /// reference-stealing call such as `PyTuple_SetItem`. Needs no GIL.
    #[must_use]
    pub fn into_ptr(self) -> *mut PyObject {
        let ptr = self.ptr.as_ptr();
        std::mem::forget(self);
        ptr
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the type's contract: dropped under the GIL of the interpreter it came from.
        unsafe { pyo3_ffi::Py_DECREF(self.ptr.as_ptr()) }
    }
}
