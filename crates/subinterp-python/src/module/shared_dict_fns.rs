//! The shared dict functions of `_native` (`subinterp_rs.SharedDict`).

use pyo3_ffi::PyObject;

use super::raise::{self, Exc};
use super::{args, native_functions};
use crate::runtime::shared_dict::{self, Data, Key, MapError};
use crate::runtime::xi::{self, Fallback, Value};

/// Raises the exception for `e`; returns null. The GIL is held.
unsafe fn map_error(e: MapError) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        match e {
            MapError::Closed(name) => raise::raise(
                Exc::SharedDictClosed,
                &format!("shared dict {name:?} is closed; open it again by name for a new one"),
            ),
            MapError::NotFound(id) => raise::raise(
                Exc::SharedDictClosed,
                &format!("shared dict {id} is closed (or was never open)"),
            ),
            MapError::Full(name, maxsize) => raise::raise(
                Exc::SharedDictFull,
                &format!("shared dict {name:?} is full: it holds at most {maxsize} keys"),
            ),
            MapError::NotANumber => {
                args::set_error(
                    pyo3_ffi::PyExc_TypeError,
                    "increment needs an int or float value (or default) and delta",
                );
                std::ptr::null_mut()
            }
            MapError::Overflow => {
                args::set_error(
                    pyo3_ffi::PyExc_OverflowError,
                    "the sum does not fit 64 bits",
                );
                std::ptr::null_mut()
            }
        }
    }
}

/// The crossed form of `obj`; `NotShareableError` (with what was expected) if it is not data.
unsafe fn value_arg(obj: *mut PyObject, what: &str) -> Option<Value> {
    // SAFETY: the GIL is held (module function).
    unsafe {
        let value = xi::to_value(obj, Fallback::SharedOnly).ok();
        if value.is_none() {
            raise::raise(Exc::NotShareable, &not_data(obj, what));
        }
        value
    }
}

unsafe fn not_data(obj: *mut PyObject, what: &str) -> String {
    // SAFETY: the GIL is held.
    let ty = unsafe { crate::runtime::pyutil::type_name(obj) };
    if what == "key" {
        format!(
            "a shared dict key must be a str, an int of 64 bits, bytes or a tuple of these, \
             not {ty}"
        )
    } else {
        format!(
            "a shared dict {what} must be None, bool, int, float, str, bytes, or a tuple, \
             list, dict, set, frozenset, bytearray, complex, range or slice of these (exact \
             types: values cross as data, without pickle), not {ty}"
        )
    }
}

unsafe fn key_arg(obj: *mut PyObject) -> Option<Key> {
    // SAFETY: the GIL is held.
    unsafe {
        let value = value_arg(obj, "key")?;
        let key = Key::from_value(value).ok();
        if key.is_none() {
            raise::raise(Exc::NotShareable, &not_data(obj, "key"));
        }
        key
    }
}

unsafe fn data_arg(obj: *mut PyObject, what: &str) -> Option<Data> {
    // SAFETY: the GIL is held.
    unsafe {
        let data = match xi::to_value(obj, Fallback::SharedOnly) {
            Ok(value) => Data::from_value(value).ok(),
            // Containers of data: the encoding calls use (exact types only).
            Err(_) => xi::data::encode_canonical(obj).ok().map(Data::Encoded),
        };
        if data.is_none() {
            pyo3_ffi::PyErr_Clear();
            raise::raise(Exc::NotShareable, &not_data(obj, what));
        }
        data
    }
}

/// A new object for `value`. The GIL is held.
unsafe fn object(value: &Value) -> *mut PyObject {
    // SAFETY: the GIL is held; `from_value` sets an error on `None`.
    unsafe {
        xi::from_value(value).map_or(std::ptr::null_mut(), subinterp_rs::owned::Owned::into_ptr)
    }
}

/// `(found, value)`.
unsafe fn found(value: Option<&Data>) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        let item = match value {
            Some(d) => object(&d.to_value()),
            None => args::none(),
        };
        if item.is_null() {
            return item;
        }
        let t = pyo3_ffi::PyTuple_New(2);
        if t.is_null() {
            pyo3_ffi::Py_DECREF(item);
            return t;
        }
        pyo3_ffi::PyTuple_SetItem(t, 0, args::boolean(value.is_some()));
        pyo3_ffi::PyTuple_SetItem(t, 1, item);
        t
    }
}

native_functions! {
    /// Open (or create) the shared dict `name`; return `(id, maxsize)`.
    fn shareddict_open(name, maxsize) {
        let Some(name) = crate::runtime::pyutil::str_to_string(name) else {
            if pyo3_ffi::PyErr_Occurred().is_null() {
                args::set_error(pyo3_ffi::PyExc_TypeError, "name must be a str");
            }
            return std::ptr::null_mut();
        };
        let Some(maxsize) = args::int(maxsize, "maxsize") else { return std::ptr::null_mut() };
        let Ok(maxsize) = usize::try_from(maxsize) else {
            args::set_error(pyo3_ffi::PyExc_ValueError, "maxsize must be >= 0");
            return std::ptr::null_mut();
        };
        let (id, maxsize) = shared_dict::open(&name, maxsize);
        let t = pyo3_ffi::PyTuple_New(2);
        if t.is_null() { return t; }
        pyo3_ffi::PyTuple_SetItem(t, 0, args::integer(id));
        pyo3_ffi::PyTuple_SetItem(t, 1, args::integer(i64::try_from(maxsize).unwrap_or(i64::MAX)));
        t
    }

    /// Close the shared dict for every interpreter.
    fn shareddict_close(id) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        match shared_dict::close(id) { Ok(()) => args::none(), Err(e) => map_error(e) }
    }

    /// Whether it is closed.
    fn shareddict_is_closed(id) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        args::boolean(shared_dict::is_closed(id))
    }

    /// `(found, value)` of `key`.
    fn shareddict_get(id, key) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        let Some(key) = key_arg(key) else { return std::ptr::null_mut() };
        match shared_dict::get(id, &key) { Ok(v) => found(v.as_ref()), Err(e) => map_error(e) }
    }

    /// Set `key` to `value`.
    fn shareddict_set(id, key, value) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        let Some(key) = key_arg(key) else { return std::ptr::null_mut() };
        let Some(data) = data_arg(value, "value") else { return std::ptr::null_mut() };
        match shared_dict::set(id, key, data) { Ok(()) => args::none(), Err(e) => map_error(e) }
    }

    /// Remove `key`: `(found, value)`.
    fn shareddict_pop(id, key) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        let Some(key) = key_arg(key) else { return std::ptr::null_mut() };
        match shared_dict::pop(id, &key) { Ok(v) => found(v.as_ref()), Err(e) => map_error(e) }
    }

    /// The value of `key`, set to `value` first if it has none.
    fn shareddict_setdefault(id, key, value) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        let Some(key) = key_arg(key) else { return std::ptr::null_mut() };
        let Some(data) = data_arg(value, "value") else { return std::ptr::null_mut() };
        match shared_dict::setdefault(id, key, data) {
            Ok(v) => object(&v.to_value()),
            Err(e) => map_error(e),
        }
    }

    /// Set `key` to `new` if its value is `expected` (if it has none, with `absent`).
    fn shareddict_compare_and_set(id, key, expected, new, absent) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        let Some(key) = key_arg(key) else { return std::ptr::null_mut() };
        let Some(absent) = args::truth(absent) else { return std::ptr::null_mut() };
        let expected = if absent {
            None
        } else {
            let Some(d) = data_arg(expected, "expected value") else { return std::ptr::null_mut() };
            Some(d)
        };
        let Some(new) = data_arg(new, "value") else { return std::ptr::null_mut() };
        match shared_dict::compare_and_set(id, key, expected.as_ref(), new) {
            Ok(done) => args::boolean(done),
            Err(e) => map_error(e),
        }
    }

    /// Add `delta` to the number at `key` (`default` if none); return the sum.
    fn shareddict_increment(id, key, delta, default) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        let Some(key) = key_arg(key) else { return std::ptr::null_mut() };
        let Some(delta) = data_arg(delta, "delta") else { return std::ptr::null_mut() };
        let Some(default) = data_arg(default, "default") else { return std::ptr::null_mut() };
        match shared_dict::increment(id, key, &delta, &default) {
            Ok(v) => object(&v.to_value()),
            Err(e) => map_error(e),
        }
    }

    /// How many keys.
    fn shareddict_len(id) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        match shared_dict::len(id) {
            Ok(n) => args::integer(i64::try_from(n).unwrap_or(i64::MAX)),
            Err(e) => map_error(e),
        }
    }

    /// A snapshot: a list of `(key, value)`.
    fn shareddict_items(id) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        let items = match shared_dict::items(id) { Ok(v) => v, Err(e) => return map_error(e) };
        let list = pyo3_ffi::PyList_New(0);
        if list.is_null() { return list; }
        for (k, v) in items {
            let pair = object(&Value::Tuple(vec![k.to_value(), v.to_value()]));
            if pair.is_null() || pyo3_ffi::PyList_Append(list, pair) != 0 {
                if !pair.is_null() { pyo3_ffi::Py_DECREF(pair); }
                pyo3_ffi::Py_DECREF(list);
                return std::ptr::null_mut();
            }
            pyo3_ffi::Py_DECREF(pair);
        }
        list
    }

    /// Remove every key.
    fn shareddict_clear(id) {
        let Some(id) = args::id(id) else { return std::ptr::null_mut() };
        match shared_dict::clear(id) { Ok(()) => args::none(), Err(e) => map_error(e) }
    }
}
