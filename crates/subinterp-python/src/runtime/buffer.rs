//! [`SharedBuffer`]: a buffer exported by an object of one interpreter, read from another
//! without copying.
//!
//! The exporting interpreter's `Py_buffer` keeps its exporter alive; the receiving side gets a
//! `memoryview` over a small exporter object of its own (one heap type per interpreter). When
//! the last user drops the [`SharedBuffer`], the `Py_buffer` is released in its own
//! interpreter: at once if that interpreter is current, else queued and released the next time
//! any of our code runs there (and always before it is closed).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use pyo3_ffi::{PyObject, PyTypeObject, Py_buffer, Py_ssize_t};

use subinterp_rs::owned::Owned;
use subinterp_rs::tstate;

/// A `Py_buffer` exported by an object of interpreter `owner`, with owned copies of its
/// format, shape and strides.
///
/// `Send` and `Sync`, shared through `Arc` by every memoryview made from it. Dropping the last
/// `Arc` needs no GIL: the buffer is released at once if `owner` is the current interpreter
/// of this thread, else queued for [`release_pending`].
pub struct SharedBuffer {
    view: Py_buffer,
    owner: i64,
    // Owned copies: the exporter's own arrays are only valid under its interpreter's rules.
    format: std::ffi::CString,
    shape: Vec<Py_ssize_t>,
    strides: Vec<Py_ssize_t>,
}

// SAFETY: the struct only holds the memory description; the exporter reference inside `view` is
// released under its own interpreter's GIL (see Drop), never touched elsewhere. Concurrent
// access to the memory itself is the user's to order, as with the stdlib's shared memoryviews.
unsafe impl Send for SharedBuffer {}
// SAFETY: as above; shared references only read the description.
unsafe impl Sync for SharedBuffer {}

/// A released-elsewhere buffer waiting for its interpreter.
struct PendingRelease(Py_buffer);
// SAFETY: moved to the owner interpreter's thread before `PyBuffer_Release`; untouched before.
unsafe impl Send for PendingRelease {}

static PENDING: Mutex<Vec<(i64, PendingRelease)>> = Mutex::new(Vec::new());
static PENDING_COUNT: AtomicUsize = AtomicUsize::new(0);
static LIVE: Mutex<Option<HashMap<i64, usize>>> = Mutex::new(None);

/// Interpreters closed at process exit while buffers they exported were still in use.
static ABANDONED: Mutex<Vec<i64>> = Mutex::new(Vec::new());
static ANY_ABANDONED: AtomicBool = AtomicBool::new(false);
/// The exports of those interpreters, dropped after [`abandon`]: never released, and held here
/// so that they stay reachable to the end (a leak on purpose, not a lost pointer: valgrind's
/// memcheck, scripts/valgrind.sh, reports them as reachable instead of definitely lost).
static KEPT: Mutex<Vec<PendingRelease>> = Mutex::new(Vec::new());

/// Process exit only: leaves the buffers that interpreter `id` exported, and that are still in
/// use elsewhere, unreleased for good, so that `id` can be closed without waiting for them.
/// Their memory stays valid: the exporting objects keep the references the `Py_buffer`s hold,
/// so `id`'s finalization does not free them, and CPython does not give back memory that still
/// holds objects of a destroyed interpreter. Needs no GIL.
pub fn abandon(id: i64) {
    ABANDONED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(id);
    ANY_ABANDONED.store(true, Ordering::Release);
    if let Some(map) = LIVE.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
        map.remove(&id);
    }
}

fn is_abandoned(owner: i64) -> bool {
    ANY_ABANDONED.load(Ordering::Acquire)
        && ABANDONED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&owner)
}

fn live_delta(owner: i64, delta: isize) {
    let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    let map = live.get_or_insert_with(HashMap::new);
    let n = map.entry(owner).or_insert(0);
    *n = n.saturating_add_signed(delta);
    if *n == 0 {
        map.remove(&owner);
    }
}

/// How many buffers exported by interpreter `id` are still in use (or awaiting release). Needs
/// no GIL. The registry refuses to close an interpreter while this is not zero.
pub fn live_exports(id: i64) -> usize {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|m| m.get(&id).copied())
        .unwrap_or(0)
}

/// How many buffers exported by interpreter `id` are still in use (not dropped yet; those
/// dropped and awaiting release in `id` do not count). Needs no GIL.
pub fn in_use(id: i64) -> usize {
    let queued = PENDING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(owner, _)| *owner == id)
        .count();
    live_exports(id).saturating_sub(queued)
}

/// Releases the buffers of the current interpreter that were dropped elsewhere. Our code
/// calls it whenever it enters an interpreter, and before closing one.
///
/// # Safety
/// The GIL of the interpreter with id `current` is held on this thread.
pub unsafe fn release_pending(current: i64) {
    if PENDING_COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    let mine: Vec<PendingRelease> = {
        let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
        let (mine, rest): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(id, _)| *id == current);
        *pending = rest;
        PENDING_COUNT.store(pending.len(), Ordering::Release);
        mine.into_iter().map(|(_, p)| p).collect()
    };
    for PendingRelease(mut view) in mine {
        // SAFETY: the view was obtained in this interpreter, whose GIL is held (contract).
        unsafe { pyo3_ffi::PyBuffer_Release(&raw mut view) };
        live_delta(current, -1);
    }
}

impl SharedBuffer {
    /// Exports the buffer of `obj` (a memoryview) from the current interpreter (read-only or
    /// writable as the exporter allows; indirect PIL-style buffers are refused with
    /// `BufferError`).
    ///
    /// # Safety
    /// The current interpreter's GIL is held; `obj` is alive. On `None` an error is set.
    pub unsafe fn export(obj: *mut PyObject) -> Option<Arc<SharedBuffer>> {
        // SAFETY: caller holds the GIL; the view is released in Drop under this interpreter.
        unsafe {
            let mut view = std::mem::MaybeUninit::<Py_buffer>::zeroed();
            if pyo3_ffi::PyObject_GetBuffer(obj, view.as_mut_ptr(), pyo3_ffi::PyBUF_FULL_RO) < 0 {
                return None;
            }
            let view = view.assume_init();
            if !view.suboffsets.is_null() {
                let mut view = view;
                pyo3_ffi::PyBuffer_Release(&raw mut view);
                pyo3_ffi::PyErr_SetString(
                    pyo3_ffi::PyExc_BufferError,
                    c"indirect (PIL-style) buffers cannot be shared".as_ptr(),
                );
                return None;
            }
            let ndim = view.ndim as usize;
            let copy = |p: *mut Py_ssize_t| {
                if p.is_null() {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(p, ndim).to_vec()
                }
            };
            let format = if view.format.is_null() {
                c"B".to_owned()
            } else {
                CStr::from_ptr(view.format).to_owned()
            };
            let owner = pyo3_ffi::PyInterpreterState_GetID(pyo3_ffi::PyInterpreterState_Get());
            live_delta(owner, 1);
            Some(Arc::new(SharedBuffer {
                shape: copy(view.shape),
                strides: copy(view.strides),
                format,
                view,
                owner,
            }))
        }
    }

    /// The exported memory as bytes, for a C-contiguous export (what `bytes` give); empty
    /// otherwise. Valid as long as this `SharedBuffer` lives.
    pub fn as_bytes(&self) -> &[u8] {
        let contiguous = self.strides.is_empty() || self.view.ndim <= 1 && self.view.itemsize == 1;
        if self.view.buf.is_null() || !contiguous {
            return &[];
        }
        // SAFETY: the export keeps `len` bytes at `buf` alive and unmoved until it is released,
        // which happens only when this `SharedBuffer` drops; exporters of read-only buffers
        // (bytes) never write them. Plain memory is read: no Python call, so no GIL needed.
        unsafe { std::slice::from_raw_parts(self.view.buf.cast::<u8>(), self.view.len as usize) }
    }

    /// A new `memoryview` in the current interpreter over the shared memory (no copy); it
    /// keeps one `Arc` of `shared` until it is deallocated.
    ///
    /// # Safety
    /// The current interpreter's GIL is held. On `None` an error is set.
    pub unsafe fn to_memoryview(shared: &Arc<SharedBuffer>) -> Option<Owned> {
        // SAFETY: caller holds the GIL; the exporter owns one Arc, dropped in its dealloc.
        unsafe {
            let tp = exporter_type()?;
            let obj = Owned::from_owned(pyo3_ffi::PyType_GenericAlloc(
                tp.as_ptr().cast::<PyTypeObject>(),
                0,
            ))?;
            (*obj.as_ptr().cast::<ExporterObject>()).shared = Arc::into_raw(Arc::clone(shared));
            Owned::from_owned(pyo3_ffi::PyMemoryView_FromObject(obj.as_ptr()))
        }
    }
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        if is_abandoned(self.owner) {
            // Its interpreter is gone: the export stays unreleased (see `abandon`).
            KEPT.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(PendingRelease(self.view));
            return;
        }
        let here = tstate::attached_interp();
        // SAFETY: `here` is attached to this thread, hence alive.
        if !here.is_null() && unsafe { pyo3_ffi::PyInterpreterState_GetID(here) } == self.owner {
            // SAFETY: the owner's GIL is held on this thread.
            unsafe { pyo3_ffi::PyBuffer_Release(&raw mut self.view) };
            live_delta(self.owner, -1);
        } else {
            let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
            pending.push((self.owner, PendingRelease(self.view)));
            PENDING_COUNT.store(pending.len(), Ordering::Release);
            drop(pending);
            if self.owner == MAIN_ID {
                schedule_main_release();
            } else {
                // Its interpreter may wait for this to close (a deferred close).
                super::lifecycle::export_dropped(self.owner);
            }
        }
    }
}

/// The main interpreter's id.
const MAIN_ID: i64 = 0;
static MAIN_RELEASE_SCHEDULED: AtomicBool = AtomicBool::new(false);

/// Asks the main interpreter to release its pending buffers soon (a pending call, run by its
/// main thread between bytecodes), so that a main object exported elsewhere (a `bytearray`
/// sent through a queue, say) can be resized again without waiting for our next call. Needs no
/// GIL. If the call cannot be queued, the next call into our module releases them.
fn schedule_main_release() {
    extern "C" fn release_main(_: *mut c_void) -> c_int {
        MAIN_RELEASE_SCHEDULED.store(false, Ordering::Release);
        // SAFETY: pending calls run in the main interpreter's main thread, its GIL held.
        unsafe { release_pending(MAIN_ID) };
        0
    }
    if MAIN_RELEASE_SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: `Py_AddPendingCall` needs no thread state or GIL; `release_main` is a plain
    // function that lives as long as the process (the module is never unloaded).
    if unsafe { pyo3_ffi::Py_AddPendingCall(Some(release_main), std::ptr::null_mut()) } != 0 {
        MAIN_RELEASE_SCHEDULED.store(false, Ordering::Release);
    }
}

/// [`release_pending`] for the interpreter whose GIL this thread holds: one atomic load when
/// nothing is pending. Every function of our module calls it on entry.
///
/// # Safety
/// The GIL of the attached thread state's interpreter is held.
pub unsafe fn release_pending_here() {
    if PENDING_COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    // SAFETY: the GIL is held (contract).
    unsafe {
        release_pending(pyo3_ffi::PyInterpreterState_GetID(
            pyo3_ffi::PyInterpreterState_Get(),
        ));
    }
}

/// The receiving side's exporter object.
#[repr(C)]
struct ExporterObject {
    ob_base: PyObject,
    shared: *const SharedBuffer,
}

/// This interpreter's exporter type (created once per interpreter, kept in its state dict).
///
/// # Safety
/// The current interpreter's GIL is held.
unsafe fn exporter_type() -> Option<Owned> {
    const KEY: &CStr = c"subinterp_rs.SharedBufferExporter";
    // SAFETY: caller holds the GIL of the current interpreter.
    unsafe {
        let dict = pyo3_ffi::PyInterpreterState_GetDict(pyo3_ffi::PyInterpreterState_Get());
        if !dict.is_null() {
            if let Some(hit) =
                std::ptr::NonNull::new(pyo3_ffi::PyDict_GetItemString(dict, KEY.as_ptr()))
            {
                return Some(Owned::from_borrowed(hit));
            }
        }
        let mut slots = [
            pyo3_ffi::PyType_Slot {
                slot: pyo3_ffi::Py_bf_getbuffer,
                pfunc: exporter_getbuffer as *mut c_void,
            },
            pyo3_ffi::PyType_Slot {
                slot: pyo3_ffi::Py_bf_releasebuffer,
                pfunc: exporter_releasebuffer as *mut c_void,
            },
            pyo3_ffi::PyType_Slot {
                slot: pyo3_ffi::Py_tp_dealloc,
                pfunc: exporter_dealloc as *mut c_void,
            },
            pyo3_ffi::PyType_Slot {
                slot: 0,
                pfunc: std::ptr::null_mut(),
            },
        ];
        let mut spec = pyo3_ffi::PyType_Spec {
            name: c"subinterp_rs.SharedBufferExporter".as_ptr(),
            basicsize: std::mem::size_of::<ExporterObject>() as c_int,
            itemsize: 0,
            flags: pyo3_ffi::Py_TPFLAGS_DEFAULT as _,
            slots: slots.as_mut_ptr(),
        };
        let tp = Owned::from_owned(pyo3_ffi::PyType_FromSpec(&raw mut spec))?;
        if !dict.is_null() && pyo3_ffi::PyDict_SetItemString(dict, KEY.as_ptr(), tp.as_ptr()) < 0 {
            pyo3_ffi::PyErr_Clear();
        }
        Some(tp)
    }
}

unsafe extern "C" fn exporter_getbuffer(
    exporter: *mut PyObject,
    view: *mut Py_buffer,
    flags: c_int,
) -> c_int {
    // SAFETY: CPython calls this with the GIL held, `exporter` of our type and `view` writable.
    unsafe {
        let shared = &*(*exporter.cast::<ExporterObject>()).shared;
        let src = &shared.view;
        if flags & pyo3_ffi::PyBUF_WRITABLE != 0 && src.readonly != 0 {
            pyo3_ffi::PyErr_SetString(
                pyo3_ffi::PyExc_BufferError,
                c"the shared buffer is read-only".as_ptr(),
            );
            return -1;
        }
        let c_contiguous = pyo3_ffi::PyBuffer_IsContiguous(src, b'C' as c_char) != 0;
        if flags & pyo3_ffi::PyBUF_STRIDES != pyo3_ffi::PyBUF_STRIDES && !c_contiguous {
            pyo3_ffi::PyErr_SetString(
                pyo3_ffi::PyExc_BufferError,
                c"the shared buffer is not C-contiguous".as_ptr(),
            );
            return -1;
        }
        (*view).buf = src.buf;
        (*view).obj = exporter;
        pyo3_ffi::Py_INCREF(exporter);
        (*view).len = src.len;
        (*view).itemsize = src.itemsize;
        (*view).readonly = src.readonly;
        (*view).ndim = src.ndim;
        (*view).format = if flags & pyo3_ffi::PyBUF_FORMAT != 0 {
            shared.format.as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        (*view).shape =
            if flags & pyo3_ffi::PyBUF_ND == pyo3_ffi::PyBUF_ND && !shared.shape.is_empty() {
                shared.shape.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
        (*view).strides = if flags & pyo3_ffi::PyBUF_STRIDES == pyo3_ffi::PyBUF_STRIDES
            && !shared.strides.is_empty()
        {
            shared.strides.as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = std::ptr::null_mut();
        0
    }
}

unsafe extern "C" fn exporter_releasebuffer(_exporter: *mut PyObject, _view: *mut Py_buffer) {}

unsafe extern "C" fn exporter_dealloc(obj: *mut PyObject) {
    // SAFETY: CPython calls this with the GIL held when the last reference goes; we drop our
    // Arc (which may queue the release for the owner interpreter) and free the object.
    unsafe {
        let shared = (*obj.cast::<ExporterObject>()).shared;
        if !shared.is_null() {
            drop(Arc::from_raw(shared));
        }
        let tp = pyo3_ffi::Py_TYPE(obj);
        if let Some(free) = (*tp).tp_free {
            free(obj.cast::<c_void>());
        }
        pyo3_ffi::Py_DECREF(tp.cast::<PyObject>());
    }
}
