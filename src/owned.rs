//! [`Owned`]: a strong reference to a Python object of the interpreter current on this thread.

use std::marker::PhantomData;
use std::ptr::NonNull;

use pyo3_ffi::PyObject;

/// A strong reference, decref'd on drop.
///
/// It must be created and dropped while the same interpreter's GIL is held on the same OS
/// thread: the type is neither `Send` nor `Sync`, and every function that switches interpreters
/// takes care to drop its `Owned` values before switching.
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
        // SAFETY: caller's contract.
        unsafe { pyo3_ffi::Py_INCREF(ptr.as_ptr()) };
        Owned {
            ptr,
            _thread_bound: PhantomData,
        }
    }

    /// The borrowed pointer.
    #[must_use]
    pub fn as_ptr(&self) -> *mut PyObject {
        self.ptr.as_ptr()
    }

    /// Gives the reference to the caller.
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
