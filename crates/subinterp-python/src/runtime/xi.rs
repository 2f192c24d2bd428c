//! Crossing: [`Value`], the interpreter-neutral form of what passes between interpreters.
//!
//! A value is read out of an object under the source interpreter's GIL ([`to_value`]) as plain
//! Rust data, and a new object is built from it under the destination's GIL ([`from_value`]).
//! Objects never cross. Shareable types (the stdlib's list) cross as data, and so do the
//! built-in containers and any nesting of them with those types ([`data`]: one flat encoding,
//! with pickle's semantics); importable functions and classes by name; everything else by
//! pickle (`subinterp_rs._pickling`).

pub mod data;
pub mod intern;
pub mod template;

use std::ffi::CString;
use std::sync::Arc;

use pyo3_ffi::PyObject;

use crate::runtime::buffer::SharedBuffer;
use crate::runtime::pyutil;
use crate::runtime::queue::QueueRef;
use subinterp_rs::owned::Owned;

/// An interpreter-neutral value: plain Rust data, no Python object.
///
/// Made under the source interpreter's GIL ([`to_value`]), rebuilt under the destination's
/// ([`from_value`]); in between it may move to any thread (`Send`) and be dropped anywhere
/// with no GIL: a `Buffer` is then released in its own interpreter later, a `Queue` drops its
/// handle reference.
pub enum Value {
    /// `None`
    None,
    /// `bool`
    Bool(bool),
    /// `int` that fits 64 bits.
    Int(i64),
    /// Any other `int`, as `hex(n)`.
    BigInt(String),
    /// `float`
    Float(f64),
    /// `str`
    Str(String),
    /// `bytes` (small: copied out).
    Bytes(Vec<u8>),
    /// Large `bytes`, read in place from the sender's object (kept alive by the export) and
    /// copied once, into the receiver's new `bytes`.
    BigBytes(Arc<SharedBuffer>),
    /// `tuple` of values.
    Tuple(Vec<Value>),
    /// A memoryview over memory owned by an object of another interpreter (no copy).
    Buffer(Arc<SharedBuffer>),
    /// A cross-interpreter queue.
    Queue(QueueRef),
    /// A module-level function, class or builtin, found again by name.
    Ref {
        /// `__module__`
        module: String,
        /// `__qualname__`
        qualname: String,
    },
    /// Built-in containers (and what they hold) as one flat encoding ([`data`]).
    Data(Vec<u8>),
    /// Anything else, pickled.
    Pickled(Vec<u8>),
}

/// From this size on, `bytes` cross with one copy (read in place) instead of two.
const BIG_BYTES: usize = 64 * 1024;

/// How far [`to_value`] may go for an object that is not shareable (`None`, `bool`, `int`,
/// `float`, `str`, `bytes`, tuples of these, memoryviews and queues are; importable functions
/// and classes cross by name under the two pickle fallbacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// Shareable types only (`prepare_main`, like the stdlib).
    SharedOnly,
    /// Pickle, as the 3.14 stdlib does (stateless nested functions by value).
    Pickle,
    /// Pickle, and closures and nested functions by value too (the low-level API).
    PickleClosures,
}

/// Why a value could not cross: text for `NotShareableError`, or `None` when a
/// `BaseException` that is not an `Exception` (`KeyboardInterrupt`, `SystemExit`) interrupted
/// pickling: it is left raised, to propagate as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotShareable(
    /// The reason, or `None` when a `BaseException` was left raised.
    pub Option<String>,
);

/// Whether `obj` crosses without pickle (as data: see [`Fallback`]). Leaves no error set.
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
pub unsafe fn is_shareable(obj: *mut PyObject) -> bool {
    // SAFETY: the GIL is held and `obj` alive (caller's contract), as `shareable` needs.
    unsafe {
        let ok = shareable(obj, 0).is_some();
        pyo3_ffi::PyErr_Clear();
        ok
    }
}

/// Deeper tuples than this are refused (pickled, or not shareable), never a stack overflow.
const MAX_DEPTH: usize = 200;

/// The shareable reading of `obj`, `None` if its type is not shareable.
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
unsafe fn shareable(obj: *mut PyObject, depth: usize) -> Option<Value> {
    // SAFETY: caller holds the GIL; every check reads `obj`'s type or value.
    unsafe {
        if obj == pyo3_ffi::Py_None() {
            return Some(Value::None);
        }
        if obj == pyo3_ffi::Py_True() {
            return Some(Value::Bool(true));
        }
        if obj == pyo3_ffi::Py_False() {
            return Some(Value::Bool(false));
        }
        if pyo3_ffi::PyLong_CheckExact(obj) != 0 {
            let mut overflow = 0;
            let n = pyo3_ffi::PyLong_AsLongLongAndOverflow(obj, &raw mut overflow);
            if overflow == 0 {
                if n == -1 && !pyo3_ffi::PyErr_Occurred().is_null() {
                    return None;
                }
                return Some(Value::Int(n));
            }
            let hex = Owned::from_owned(pyo3_ffi::PyNumber_ToBase(obj, 16))?;
            return pyutil::str_to_string(hex.as_ptr()).map(Value::BigInt);
        }
        if pyo3_ffi::PyFloat_CheckExact(obj) != 0 {
            return Some(Value::Float(pyo3_ffi::PyFloat_AS_DOUBLE(obj)));
        }
        if pyo3_ffi::PyUnicode_CheckExact(obj) != 0 {
            // Lone surrogates are not UTF-8: such a str is pickled instead.
            return pyutil::str_to_string(obj).map(Value::Str);
        }
        if pyo3_ffi::PyBytes_CheckExact(obj) != 0 {
            let data = pyo3_ffi::PyBytes_AsString(obj).cast::<u8>();
            let len = pyo3_ffi::PyBytes_Size(obj) as usize;
            if len >= BIG_BYTES {
                if let Some(shared) = SharedBuffer::export(obj) {
                    return Some(Value::BigBytes(shared));
                }
                pyo3_ffi::PyErr_Clear();
            }
            return Some(Value::Bytes(std::slice::from_raw_parts(data, len).to_vec()));
        }
        if pyo3_ffi::PyTuple_CheckExact(obj) != 0 {
            if depth >= MAX_DEPTH {
                return None;
            }
            let n = pyo3_ffi::PyTuple_Size(obj);
            let mut items = Vec::with_capacity(n as usize);
            for i in 0..n {
                items.push(shareable(pyo3_ffi::PyTuple_GetItem(obj, i), depth + 1)?);
            }
            return Some(Value::Tuple(items));
        }
        if pyo3_ffi::PyMemoryView_Check(obj) != 0 {
            return SharedBuffer::export(obj).map(Value::Buffer);
        }
        crate::runtime::queue::queue_ref_of(obj).map(Value::Queue)
    }
}

/// Reads `obj` into a [`Value`], falling back as `fallback` allows.
///
/// # Errors
/// [`NotShareable`] with the reason if the type is not shareable (with
/// [`Fallback::SharedOnly`]) or pickling failed; with `None` if a `BaseException` that is
/// not an `Exception` interrupted pickling, left raised to propagate.
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive. On error no Python error is left set.
pub unsafe fn to_value(obj: *mut PyObject, fallback: Fallback) -> Result<Value, NotShareable> {
    // SAFETY: the GIL is held and `obj` alive (caller's contract), as every callee needs.
    unsafe {
        if fallback != Fallback::SharedOnly && is_container(obj) {
            match data::encode(obj) {
                Ok(encoded) => return Ok(Value::Data(encoded)),
                Err(data::EncodeError::TooBig) => {
                    pyo3_ffi::PyErr_SetString(
                        pyo3_ffi::PyExc_MemoryError,
                        c"the value is too big to cross to another interpreter".as_ptr(),
                    );
                    return Err(NotShareable(None));
                }
                Err(data::EncodeError::Unsupported | data::EncodeError::Failed) => {
                    pyo3_ffi::PyErr_Clear();
                }
            }
        }
        // Functions, builtins and classes are never shareable: straight to their name.
        let named = pyo3_ffi::PyFunction_Check(obj) != 0
            || pyo3_ffi::PyCFunction_Check(obj) != 0
            || pyo3_ffi::PyType_Check(obj) != 0;
        if !named {
            if let Some(v) = shareable(obj, 0) {
                return Ok(v);
            }
            pyo3_ffi::PyErr_Clear();
        }
        if fallback == Fallback::SharedOnly {
            return Err(NotShareable(Some(format!(
                "{} object is not shareable between interpreters",
                pyutil::type_name(obj)
            ))));
        }
        if let Some((module, qualname)) = importable_name(obj) {
            return Ok(Value::Ref { module, qualname });
        }
        pickle(obj, fallback == Fallback::PickleClosures).map(Value::Pickled)
    }
}

/// Whether `obj`'s type is one of the containers [`data`] encodes (exact types).
///
/// # Safety
/// `obj` is alive.
unsafe fn is_container(obj: *mut PyObject) -> bool {
    // SAFETY: `obj` is alive (contract): its type pointer is read, compared by address.
    let tp = unsafe { pyo3_ffi::Py_TYPE(obj) };
    [
        &raw mut pyo3_ffi::PyTuple_Type,
        &raw mut pyo3_ffi::PyList_Type,
        &raw mut pyo3_ffi::PyDict_Type,
        &raw mut pyo3_ffi::PySet_Type,
        &raw mut pyo3_ffi::PyFrozenSet_Type,
        &raw mut pyo3_ffi::PyComplex_Type,
        &raw mut pyo3_ffi::PyRange_Type,
        &raw mut pyo3_ffi::PySlice_Type,
        &raw mut pyo3_ffi::PyByteArray_Type,
    ]
    .contains(&tp)
}

/// Whether the Python error set is a `MemoryError` (left set).
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn memory_error_set() -> bool {
    // SAFETY: the GIL is held (contract).
    unsafe {
        let raised = pyo3_ffi::PyErr_Occurred();
        !raised.is_null()
            && pyo3_ffi::PyErr_GivenExceptionMatches(raised, pyo3_ffi::PyExc_MemoryError) != 0
    }
}

/// `(module, qualname)` when `obj` is a function, builtin or class that importing `module` and
/// walking `qualname` finds again (the same object): it crosses by name, without pickle.
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive. Leaves no error set.
unsafe fn importable_name(obj: *mut PyObject) -> Option<(String, String)> {
    // SAFETY: the GIL is held and `obj` alive (caller's contract).
    unsafe {
        let is_candidate = pyo3_ffi::PyFunction_Check(obj) != 0
            || pyo3_ffi::PyCFunction_Check(obj) != 0
            || pyo3_ffi::PyType_Check(obj) != 0;
        if !is_candidate {
            return None;
        }
        let cache = name_cache();
        if let Some(cache) = cache {
            let hit = pyo3_ffi::PyDict_GetItemWithError(cache, obj); // borrowed
            if !hit.is_null() && pyo3_ffi::PyTuple_Check(hit) != 0 {
                let (m, q) = (
                    pyo3_ffi::PyTuple_GetItem(hit, 0),
                    pyo3_ffi::PyTuple_GetItem(hit, 1),
                );
                // Still what the module holds under that name (not replaced since)?
                if still_named(obj, m, q) {
                    if let (Some(m), Some(q)) = (pyutil::str_to_string(m), pyutil::str_to_string(q))
                    {
                        return Some((m, q));
                    }
                }
            }
            pyo3_ffi::PyErr_Clear();
        }
        let module = pyutil::getattr_string(obj, c"__module__")?;
        let qualname = pyutil::getattr_string(obj, c"__qualname__")?;
        if module == "__main__" || module == "__mp_main__" || qualname.contains('<') {
            return None;
        }
        let found = resolve(&module, &qualname);
        pyo3_ffi::PyErr_Clear();
        if found?.as_ptr() != obj {
            return None;
        }
        if let Some(cache) = cache {
            remember_name(cache, obj, &module, &qualname);
        }
        Some((module, qualname))
    }
}

/// Whether `module.qualname` (both `str`) is `obj`: the module imported already, the
/// qualname one name or dotted. Leaves an error set when it is not.
///
/// # Safety
/// The current interpreter's GIL is held; the pointers are alive.
unsafe fn still_named(obj: *mut PyObject, module: *mut PyObject, qualname: *mut PyObject) -> bool {
    // SAFETY: the GIL is held; references are owned and dropped here.
    unsafe {
        let Some(m) = Owned::from_owned(pyo3_ffi::PyImport_GetModule(module)) else {
            return false;
        };
        if pyo3_ffi::PyUnicode_FindChar(qualname, u32::from('.'), 0, isize::MAX, 1) == -1 {
            return Owned::from_owned(pyo3_ffi::PyObject_GetAttr(m.as_ptr(), qualname))
                .is_some_and(|f| f.as_ptr() == obj);
        }
        let (Some(module), Some(qualname)) = (
            pyutil::str_to_string(module),
            pyutil::str_to_string(qualname),
        ) else {
            return false;
        };
        resolve(&module, &qualname).is_some_and(|f| f.as_ptr() == obj)
    }
}

/// How many objects [`importable_name`] remembers per interpreter (then it starts over).
const NAME_CACHE_MAX: isize = 512;

/// This interpreter's `{object: (module, qualname)}` of the objects found importable (held,
/// so an address is never reused while remembered), in its state dict. A hit is checked
/// again against the module (the name may have been bound to another object since).
///
/// # Safety
/// The current interpreter's GIL is held.
unsafe fn name_cache() -> Option<*mut PyObject> {
    thread_local! {
        static LAST: std::cell::Cell<(i64, *mut PyObject)> =
            const { std::cell::Cell::new((-1, std::ptr::null_mut())) };
    }
    // SAFETY: the GIL is held (contract).
    unsafe {
        pyutil::state_object(c"subinterp_rs.importable_names", &LAST, || {
            Owned::from_owned(pyo3_ffi::PyDict_New())
        })
    }
}

/// Remembers that `obj` is importable as `module.qualname` (errors cleared).
///
/// # Safety
/// The current interpreter's GIL is held; `cache` is [`name_cache`]'s dict.
unsafe fn remember_name(cache: *mut PyObject, obj: *mut PyObject, module: &str, qualname: &str) {
    // SAFETY: the GIL is held; references are owned and dropped here.
    unsafe {
        if pyo3_ffi::PyDict_Size(cache) >= NAME_CACHE_MAX {
            pyo3_ffi::PyDict_Clear(cache);
        }
        if let (Some(m), Some(q)) = (pyutil::new_str(module), pyutil::new_str(qualname)) {
            if let Some(t) = Owned::from_owned(pyo3_ffi::PyTuple_Pack(2, m.as_ptr(), q.as_ptr())) {
                pyo3_ffi::PyDict_SetItem(cache, obj, t.as_ptr());
            }
        }
        pyo3_ffi::PyErr_Clear();
    }
}

/// `import module` then `getattr` along the dotted `qualname`.
///
/// # Safety
/// The current interpreter's GIL is held.
unsafe fn resolve(module: &str, qualname: &str) -> Option<Owned> {
    // SAFETY: caller holds the GIL.
    unsafe {
        let mut obj = pyutil::import_str(module)?;
        for part in qualname.split('.') {
            let name = CString::new(part).ok()?;
            obj = pyutil::getattr(obj.as_ptr(), &name)?;
        }
        Some(obj)
    }
}

/// `subinterp_rs._pickling.dumps(obj, closures)`.
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
unsafe fn pickle(obj: *mut PyObject, closures: bool) -> Result<Vec<u8>, NotShareable> {
    // SAFETY: caller holds the GIL.
    unsafe {
        let dumped =
            pyutil::cached_attr(c"subinterp_rs.dumps", c"subinterp_rs._pickling", c"dumps")
                .and_then(|dumps| {
                    let flag = if closures {
                        pyo3_ffi::Py_True()
                    } else {
                        pyo3_ffi::Py_False()
                    };
                    pyutil::call(dumps.as_ptr(), &[obj, flag])
                });
        match dumped {
            Some(data) if pyo3_ffi::PyBytes_Check(data.as_ptr()) != 0 => {
                let ptr = pyo3_ffi::PyBytes_AsString(data.as_ptr()).cast::<u8>();
                let len = pyo3_ffi::PyBytes_Size(data.as_ptr()) as usize;
                let mut out = Vec::new();
                if out.try_reserve_exact(len).is_err() {
                    pyo3_ffi::PyErr_SetString(
                        pyo3_ffi::PyExc_MemoryError,
                        c"the value is too big to cross to another interpreter".as_ptr(),
                    );
                    return Err(NotShareable(None));
                }
                out.extend_from_slice(std::slice::from_raw_parts(ptr, len));
                Ok(out)
            }
            Some(_) => Err(NotShareable(Some(
                "_pickling.dumps returned a non-bytes".into(),
            ))),
            None => {
                let raised = pyo3_ffi::PyErr_Occurred();
                if !raised.is_null()
                    && pyo3_ffi::PyErr_GivenExceptionMatches(raised, pyo3_ffi::PyExc_Exception) == 0
                {
                    return Err(NotShareable(None));
                }
                let why = ExcText::take();
                Err(NotShareable(Some(format!(
                    "{} object is not shareable between interpreters and could not be \
                     pickled: {why}",
                    pyutil::type_name(obj)
                ))))
            }
        }
    }
}

/// The current exception as `"Type: message"`, cleared.
struct ExcText;

impl ExcText {
    /// # Safety
    /// The current interpreter's GIL is held.
    unsafe fn take() -> String {
        // SAFETY: caller holds the GIL.
        unsafe {
            match Owned::from_owned(pyo3_ffi::PyErr_GetRaisedException()) {
                Some(exc) => {
                    let msg = pyutil::display(exc.as_ptr());
                    format!("{}: {msg}", pyutil::type_name(exc.as_ptr()))
                }
                None => "unknown error".into(),
            }
        }
    }
}

/// Builds the object a [`Value`] describes, in the current interpreter: importing the module
/// of a `Ref`, unpickling a `Pickled` value (either can fail), a new memoryview for a
/// `Buffer`, a queue object for a `Queue`.
///
/// # Safety
/// The current interpreter's GIL is held. On `None` a Python error is set.
pub unsafe fn from_value(value: &Value) -> Option<Owned> {
    // SAFETY: caller holds the GIL; every constructor returns a new reference or null.
    unsafe {
        match value {
            Value::None => Some(Owned::from_borrowed(std::ptr::NonNull::new_unchecked(
                pyo3_ffi::Py_None(),
            ))),
            Value::Bool(b) => Owned::from_owned(pyo3_ffi::PyBool_FromLong(i64::from(*b) as _)),
            Value::Int(n) => Owned::from_owned(pyo3_ffi::PyLong_FromLongLong(*n)),
            Value::BigInt(hex) => {
                let text = CString::new(hex.as_str()).ok()?;
                Owned::from_owned(pyo3_ffi::PyLong_FromString(
                    text.as_ptr(),
                    std::ptr::null_mut(),
                    0,
                ))
            }
            Value::Float(x) => Owned::from_owned(pyo3_ffi::PyFloat_FromDouble(*x)),
            Value::Str(s) => pyutil::new_str(s),
            Value::Bytes(b) => pyutil::new_bytes(b),
            Value::BigBytes(shared) => pyutil::new_bytes(shared.as_bytes()),
            Value::Tuple(items) => {
                let tuple = Owned::from_owned(pyo3_ffi::PyTuple_New(items.len() as _))?;
                for (i, item) in items.iter().enumerate() {
                    let obj = from_value(item)?;
                    // PyTuple_SetItem steals the reference.
                    pyo3_ffi::PyTuple_SetItem(tuple.as_ptr(), i as _, obj.into_ptr());
                }
                Some(tuple)
            }
            Value::Buffer(shared) => SharedBuffer::to_memoryview(shared),
            Value::Queue(q) => crate::runtime::queue::queue_object(q),
            Value::Ref { module, qualname } => resolve(module, qualname),
            Value::Data(encoded) => data::decode(encoded),
            Value::Pickled(data) => {
                let loads = pyutil::cached_attr(
                    c"subinterp_rs.loads",
                    c"subinterp_rs._pickling",
                    c"loads",
                )?;
                let bytes = pyutil::new_bytes(data)?;
                pyutil::call(loads.as_ptr(), &[bytes.as_ptr()])
            }
        }
    }
}
