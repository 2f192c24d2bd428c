//! Containers as data: a flat byte encoding of `list`, `dict`, `set`, `frozenset`, `tuple`,
//! `complex`, `range`, `slice`, `bytearray` and any nesting of them with `None`, `bool`, `int`,
//! `float`, `str` and `bytes`, written under the sending interpreter's GIL ([`encode`]) and
//! rebuilt under the receiver's ([`decode`]), without pickle.
//!
//! Exact types only: a subclass (or any other type) anywhere makes [`encode`] give up with
//! [`EncodeError::Unsupported`], and the caller pickles the whole value instead. Pickle's
//! semantics are kept: the result is a copy; a container referenced twice arrives as one
//! object (a memo, in the order containers are first met), and a cycle through mutable
//! containers arrives as a cycle (one through a `tuple`, `frozenset` or `slice` that is not
//! finished yet goes to pickle, which handles it). Nesting is bounded by [`MAX_DEPTH`] (deeper
//! goes to pickle), the encoding's size by memory (and by [`set_max_bytes`]): too big is
//! [`EncodeError::TooBig`], raised as `MemoryError`.
//!
//! Encoding: one tag byte per object, lengths as LEB128 varints, numbers little-endian.
//! `str` goes as its raw code units (kind 1, 2 or 4, as CPython stores it), so nothing is
//! transcoded and lone surrogates cross too; a `dict` whose keys are all exact `str` carries
//! each key's hash, so the receiver does not hash them again.

// The per-item paths (`item`, `str`, `number`, the writers) are inlined into the container
// loops: callgrind counts 3-10% fewer instructions per container than with `#[inline]`.
#![allow(clippy::inline_always)]

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3_ffi::{PyObject, Py_hash_t, Py_ssize_t};

use crate::runtime::pyutil;
use crate::runtime::xi::intern::{self, compact_int, str_parts, Interned, Kind, Tally};
use crate::runtime::xi::template;
use subinterp_rs::ffi_ext;
use subinterp_rs::owned::Owned;

/// Containers nested deeper than this are not encoded (the value goes to pickle instead).
pub const MAX_DEPTH: usize = 400;

const NONE: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const BIG_INT: u8 = 4;
const FLOAT: u8 = 5;
const STR1: u8 = 6;
const STR2: u8 = 7;
const STR4: u8 = 8;
const BYTES: u8 = 9;
const BYTEARRAY: u8 = 10;
const COMPLEX: u8 = 11;
const TUPLE: u8 = 12;
const LIST: u8 = 13;
const DICT: u8 = 14;
const DICT_STR_KEYS: u8 = 15;
const SET: u8 = 16;
const FROZENSET: u8 = 17;
const RANGE: u8 = 18;
const SLICE: u8 = 19;
const MEMO: u8 = 20;
const EMPTY_TUPLE: u8 = 21;
const STR_ASCII: u8 = 22;
/// Set on a container's tag when it has no memo entry: it is referenced once only (its
/// reference count is 1), so nothing in the value can refer to it again.
const UNMEMO: u8 = 0x80;

static MAX_BYTES: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sets the largest encoding [`encode`] makes (bytes; larger is [`EncodeError::TooBig`]) and
/// returns the previous bound. `usize::MAX` (the default): as memory allows. For tests.
pub fn set_max_bytes(n: usize) -> usize {
    MAX_BYTES.swap(n, Ordering::Relaxed)
}

/// Why [`encode`] made no encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// Some object in it is not of a type encoded here (or is nested too deep, or a cycle
    /// goes through an unfinished immutable container): pickle it instead. No error is set.
    Unsupported,
    /// The encoding would not fit in memory (or passes [`set_max_bytes`]). No error is set.
    TooBig,
    /// A Python error is set (reading an `int` failed).
    Failed,
}

/// A hasher for object addresses (already unique; mixed once).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

struct Encoder {
    buf: Vec<u8>,
    /// The memo index of each container met (by address).
    memo: HashMap<usize, u32, BuildHasherDefault<AddrHasher>>,
    /// By memo index: whether that container is finished (or open: see [`Encoder::seen`]).
    done: Vec<bool>,
    /// How many memo entries to make room for at the first: the top container's items.
    memo_hint: usize,
    max: usize,
    /// Every container gets a memo entry (see [`encode_canonical`]).
    canonical: bool,
}

/// Encodes `obj` (see the module doc).
///
/// # Errors
/// See [`EncodeError`].
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
pub unsafe fn encode(obj: *mut PyObject) -> Result<Vec<u8>, EncodeError> {
    // SAFETY: as this function's contract.
    unsafe { encode_with(obj, false) }
}

/// [`encode`], the same value always as the same bytes: a container referenced once gets its
/// memo entry too (else whether it has one depends on reference counts, which differ from
/// call to call), for encodings that are compared (`SharedDict.compare_and_set`).
///
/// # Errors
/// See [`EncodeError`].
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
pub unsafe fn encode_canonical(obj: *mut PyObject) -> Result<Vec<u8>, EncodeError> {
    // SAFETY: as this function's contract.
    unsafe { encode_with(obj, true) }
}

/// [`encode`] or [`encode_canonical`].
///
/// # Safety
/// The current interpreter's GIL is held; `obj` is alive.
unsafe fn encode_with(obj: *mut PyObject, canonical: bool) -> Result<Vec<u8>, EncodeError> {
    let max = MAX_BYTES.load(Ordering::Relaxed);
    let mut buf = Vec::new();
    // SAFETY: the GIL is held and `obj` alive (contract). Never more than the bound (beyond
    // it, `room` must see every byte), and a failed allocation only starts it smaller.
    let first = unsafe { first_capacity(obj) };
    let _ = buf.try_reserve(first.min(max));
    let mut enc = Encoder {
        buf,
        memo: HashMap::default(),
        done: Vec::new(),
        memo_hint: first / 16,
        max,
        canonical,
    };
    // SAFETY: the GIL is held and `obj` alive (contract).
    unsafe { enc.item(obj, 0)? };
    Ok(enc.buf)
}

/// The buffer to start an encoding of `obj` with: about 16 bytes per item of a top-level
/// list, tuple, dict or set (what a scalar item takes), so a big one does not grow it a dozen
/// times; bounded, so a huge one still grows (and fails as `TooBig`, not here).
///
/// # Safety
/// The GIL is held; `obj` is alive.
unsafe fn first_capacity(obj: *mut PyObject) -> usize {
    // SAFETY: as this function's contract; each size is read from an object of that exact type.
    let items = unsafe {
        let tp = pyo3_ffi::Py_TYPE(obj);
        if tp == &raw mut pyo3_ffi::PyList_Type {
            pyo3_ffi::PyList_GET_SIZE(obj)
        } else if tp == &raw mut pyo3_ffi::PyTuple_Type {
            pyo3_ffi::PyTuple_GET_SIZE(obj)
        } else if tp == &raw mut pyo3_ffi::PyDict_Type {
            2 * pyo3_ffi::PyDict_Size(obj)
        } else if tp == &raw mut pyo3_ffi::PySet_Type || tp == &raw mut pyo3_ffi::PyFrozenSet_Type {
            pyo3_ffi::PySet_Size(obj)
        } else {
            0
        }
    };
    (items.max(0) as usize)
        .saturating_mul(16)
        .clamp(64, 1 << 20)
}

impl Encoder {
    /// Makes room for `n` more bytes (a failed allocation is `TooBig`, never an abort).
    #[inline]
    fn room(&mut self, n: usize) -> Result<(), EncodeError> {
        if self.buf.capacity() - self.buf.len() >= n {
            return Ok(());
        }
        self.grow(n)
    }

    /// [`Encoder::room`] when the buffer must grow.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, n: usize) -> Result<(), EncodeError> {
        if self.buf.len().saturating_add(n) > self.max {
            return Err(EncodeError::TooBig);
        }
        let want = n.max(self.buf.len()).max(256);
        self.buf
            .try_reserve(want)
            .or_else(|_| self.buf.try_reserve_exact(n))
            .map_err(|_| EncodeError::TooBig)
    }

    /// Whether `obj` needs no memo entry: referenced once only, and not a canonical encoding.
    ///
    /// # Safety
    /// The GIL is held; `obj` is alive.
    #[inline]
    unsafe fn once(&self, obj: *mut PyObject) -> bool {
        // SAFETY: as this function's contract.
        !self.canonical && unsafe { referenced_once(obj) }
    }

    /// Appends `b`, for which [`Encoder::room`] made room.
    #[inline]
    fn put(&mut self, b: &[u8]) {
        let len = self.buf.len();
        assert!(self.buf.capacity() - len >= b.len());
        // SAFETY: the capacity holds `b` after the length (checked above: the compiler drops
        // the check where `room` made it), the two do not overlap, and the bytes written are
        // initialized before the length covers them.
        unsafe {
            intern::copy_bytes(b, self.buf.as_mut_ptr().add(len));
            self.buf.set_len(len + b.len());
        }
    }

    /// Makes room for `n` bytes and lets `fill` write at most that many at the end of the
    /// buffer: it returns how many it wrote.
    #[inline(always)]
    fn write_with(
        &mut self,
        n: usize,
        fill: impl FnOnce(*mut u8) -> usize,
    ) -> Result<(), EncodeError> {
        self.room(n)?;
        let len = self.buf.len();
        // SAFETY: `room` made `n` bytes of capacity after the length; `fill` initializes the
        // bytes it says it wrote (at most `n`) before the length covers them.
        unsafe {
            let filled = fill(self.buf.as_mut_ptr().add(len));
            debug_assert!(filled <= n);
            self.buf.set_len(len + filled);
        }
        Ok(())
    }

    /// A tag and 8 bytes.
    #[inline(always)]
    fn tag8(&mut self, tag: u8, b: [u8; 8]) -> Result<(), EncodeError> {
        self.write_with(9, |p| {
            // SAFETY: `write_with` gives 9 writable bytes at `p`.
            unsafe {
                *p = tag;
                p.add(1).cast::<[u8; 8]>().write_unaligned(b);
            }
            9
        })
    }

    #[inline]
    fn byte(&mut self, b: u8) -> Result<(), EncodeError> {
        self.room(1)?;
        self.put(&[b]);
        Ok(())
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        self.room(b.len())?;
        self.put(b);
        Ok(())
    }

    /// A tag and a length, in one write.
    #[inline]
    fn tag_len(&mut self, tag: u8, n: usize) -> Result<(), EncodeError> {
        self.write_with(11, |p| {
            // SAFETY: `write_with` gives room for the tag and a varint (10 bytes at most).
            unsafe {
                *p = tag;
                1 + write_varint(p.add(1), n)
            }
        })
    }

    /// Records a container met for the first time (`open`: it may be referenced before it is
    /// finished, as the receiver makes it before its items): `Ok` with its memo index. `Err`
    /// if it was met before: `Err(Ok)` when a memo reference was written, `Err(Err)` if it is
    /// neither finished nor open.
    #[inline]
    fn seen(&mut self, obj: *mut PyObject, open: bool) -> Result<u32, Result<(), EncodeError>> {
        let next = self.done.len() as u32;
        if self.memo.is_empty() {
            // The items of a container shared with the caller (records kept in a list of
            // their own too) usually all are: room for as many as the top container holds
            // saves the table's regrowths (a failed allocation only leaves them).
            let _ = self.memo.try_reserve(self.memo_hint.clamp(16, 1 << 16));
        }
        match self.memo.entry(obj as usize) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let index = *e.get();
                if !self.done[index as usize] {
                    return Err(Err(EncodeError::Unsupported));
                }
                Err(self.tag_len(MEMO, index as usize))
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(next);
                self.done.push(open);
                Ok(next)
            }
        }
    }

    /// Marks the container of memo index `index` finished (a later reference may use the
    /// memo).
    #[inline]
    fn finished(&mut self, index: u32) {
        self.done[index as usize] = true;
    }

    /// Anything but a `str`, a one-digit `int` or a `float` (which [`Encoder::item`] writes).
    ///
    /// # Safety
    /// The GIL is held; `obj` is alive.
    unsafe fn other(&mut self, obj: *mut PyObject, depth: usize) -> Result<(), EncodeError> {
        // SAFETY: the GIL is held and `obj` alive (contract); exact-type checks compare the
        // type pointer; every read below is of an object of that exact type, and no Python
        // code runs (exact built-in types only), so nothing changes under us.
        unsafe {
            let tp = pyo3_ffi::Py_TYPE(obj);
            if tp == &raw mut pyo3_ffi::PyLong_Type {
                return self.int(obj);
            }
            if obj == pyo3_ffi::Py_None() {
                return self.byte(NONE);
            }
            if obj == pyo3_ffi::Py_True() {
                return self.byte(TRUE);
            }
            if obj == pyo3_ffi::Py_False() {
                return self.byte(FALSE);
            }
            if tp == &raw mut pyo3_ffi::PyBytes_Type {
                let n = pyo3_ffi::PyBytes_Size(obj) as usize;
                self.tag_len(BYTES, n)?;
                let p = pyo3_ffi::PyBytes_AsString(obj).cast::<u8>();
                return self.bytes(std::slice::from_raw_parts(p, n));
            }
            let container = tp == &raw mut pyo3_ffi::PyTuple_Type
                || tp == &raw mut pyo3_ffi::PyList_Type
                || tp == &raw mut pyo3_ffi::PyDict_Type
                || tp == &raw mut pyo3_ffi::PySet_Type
                || tp == &raw mut pyo3_ffi::PyFrozenSet_Type
                || tp == &raw mut pyo3_ffi::PySlice_Type
                || tp == &raw mut pyo3_ffi::PyByteArray_Type;
            if container {
                if tp == &raw mut pyo3_ffi::PyTuple_Type && pyo3_ffi::PyTuple_GET_SIZE(obj) == 0 {
                    return self.byte(EMPTY_TUPLE);
                }
                if depth >= MAX_DEPTH {
                    return Err(EncodeError::Unsupported);
                }
                if tp == &raw mut pyo3_ffi::PyDict_Type {
                    return self.dict_value(obj, depth + 1);
                }
                if self.once(obj) {
                    // Its one reference is the slot we came from (or the caller's): nothing
                    // in the value refers to it again, so it needs no memo entry.
                    return self.container(obj, tp, depth + 1, UNMEMO);
                }
                // Lists are made before their items: a cycle back to one is fine.
                let index = match self.seen(obj, tp == &raw mut pyo3_ffi::PyList_Type) {
                    Ok(index) => index,
                    Err(met) => return met,
                };
                self.container(obj, tp, depth + 1, 0)?;
                self.finished(index);
                return Ok(());
            }
            if tp == &raw mut pyo3_ffi::PyComplex_Type {
                self.byte(COMPLEX)?;
                self.bytes(&pyo3_ffi::PyComplex_RealAsDouble(obj).to_le_bytes())?;
                return self.bytes(&pyo3_ffi::PyComplex_ImagAsDouble(obj).to_le_bytes());
            }
            if tp == &raw mut pyo3_ffi::PyRange_Type {
                self.byte(RANGE)?;
                for name in [c"start", c"stop", c"step"] {
                    let Some(v) = pyutil::getattr(obj, name) else {
                        return Err(EncodeError::Failed);
                    };
                    self.int(v.as_ptr())?;
                }
                return Ok(());
            }
            Err(EncodeError::Unsupported)
        }
    }

    /// Any object: the common scalars (`str`, one-digit `int`, `float`) inline, anything else
    /// through [`Encoder::other`].
    ///
    /// # Safety
    /// The GIL is held; `obj` is alive.
    #[inline(always)]
    unsafe fn item(&mut self, obj: *mut PyObject, depth: usize) -> Result<(), EncodeError> {
        // SAFETY: the GIL is held and `obj` alive (contract); each read is of the exact type
        // compared.
        unsafe {
            let tp = pyo3_ffi::Py_TYPE(obj);
            if tp == &raw mut pyo3_ffi::PyUnicode_Type {
                return self.str(obj);
            }
            if tp == &raw mut pyo3_ffi::PyLong_Type {
                if let Some(n) = compact_int(obj) {
                    return self.tag8(INT, n.to_le_bytes());
                }
            } else if tp == &raw mut pyo3_ffi::PyFloat_Type {
                return self.tag8(FLOAT, pyo3_ffi::PyFloat_AS_DOUBLE(obj).to_le_bytes());
            }
            self.other(obj, depth)
        }
    }

    /// # Safety
    /// The GIL is held; `obj` is an exact `str`.
    #[inline(always)]
    unsafe fn str(&mut self, obj: *mut PyObject) -> Result<(), EncodeError> {
        // SAFETY: as this function's contract.
        unsafe { self.text(obj, None) }
    }

    /// A `str`, then its `hash` when given (a dict key's: 8 bytes), in one write.
    ///
    /// # Safety
    /// The GIL is held; `obj` is an exact `str`.
    #[inline(always)]
    unsafe fn text(
        &mut self,
        obj: *mut PyObject,
        hash: Option<Py_hash_t>,
    ) -> Result<(), EncodeError> {
        // SAFETY: the GIL is held; a `str` of 3.12+ is always ready, its data `len` code units
        // of `kind` bytes each.
        unsafe {
            let (kind, len, data) = str_parts(obj);
            // `write_with` gives room for the tag, a varint (10 bytes at most), the data and
            // the hash.
            self.write_with(19 + data.len(), |p| {
                *p = str_tag(kind);
                let k = write_varint(p.add(1), len);
                intern::copy_bytes(data, p.add(1 + k));
                let end = 1 + k + data.len();
                match hash {
                    Some(h) => {
                        p.add(end)
                            .cast::<[u8; 8]>()
                            .write_unaligned(h.to_le_bytes());
                        end + 8
                    }
                    None => end,
                }
            })
        }
    }

    /// # Safety
    /// The GIL is held; `obj` is an `int`.
    unsafe fn int(&mut self, obj: *mut PyObject) -> Result<(), EncodeError> {
        // SAFETY: the GIL is held; `obj` is an int.
        unsafe {
            if let Some(n) = compact_int(obj) {
                return self.tag8(INT, n.to_le_bytes());
            }
            let mut overflow = 0;
            let n = pyo3_ffi::PyLong_AsLongLongAndOverflow(obj, &raw mut overflow);
            if overflow == 0 {
                if n == -1 && !pyo3_ffi::PyErr_Occurred().is_null() {
                    return Err(EncodeError::Failed);
                }
                return self.tag8(INT, n.to_le_bytes());
            }
            let Some(hex) = Owned::from_owned(pyo3_ffi::PyNumber_ToBase(obj, 16)) else {
                return Err(EncodeError::Failed);
            };
            let mut len: Py_ssize_t = 0;
            let text = pyo3_ffi::PyUnicode_AsUTF8AndSize(hex.as_ptr(), &raw mut len);
            if text.is_null() {
                return Err(EncodeError::Failed);
            }
            self.tag_len(BIG_INT, len as usize)?;
            self.bytes(std::slice::from_raw_parts(text.cast::<u8>(), len as usize))
        }
    }

    /// # Safety
    /// The GIL is held; `obj` is of the exact container type `tp`.
    unsafe fn container(
        &mut self,
        obj: *mut PyObject,
        tp: *mut pyo3_ffi::PyTypeObject,
        depth: usize,
        unmemo: u8,
    ) -> Result<(), EncodeError> {
        // SAFETY: the GIL is held; indexes stay below each container's size, which cannot
        // change (no Python code runs while we read).
        unsafe {
            if tp == &raw mut pyo3_ffi::PyTuple_Type {
                let n = pyo3_ffi::PyTuple_GET_SIZE(obj);
                self.tag_len(TUPLE | unmemo, n as usize)?;
                for i in 0..n {
                    self.item(pyo3_ffi::PyTuple_GET_ITEM(obj, i), depth)?;
                }
            } else if tp == &raw mut pyo3_ffi::PyList_Type {
                let n = pyo3_ffi::PyList_GET_SIZE(obj);
                self.tag_len(LIST | unmemo, n as usize)?;
                let mut i = 0;
                // Re-read the size: it cannot change, but a stale length must never index.
                while i < n.min(pyo3_ffi::PyList_GET_SIZE(obj)) {
                    self.item(pyo3_ffi::PyList_GET_ITEM(obj, i), depth)?;
                    i += 1;
                }
                if i < n {
                    return Err(EncodeError::Unsupported);
                }
            } else if tp == &raw mut pyo3_ffi::PySet_Type
                || tp == &raw mut pyo3_ffi::PyFrozenSet_Type
            {
                let n = pyo3_ffi::PySet_Size(obj);
                let tag = if tp == &raw mut pyo3_ffi::PySet_Type {
                    SET
                } else {
                    FROZENSET
                };
                self.tag_len(tag | unmemo, n as usize)?;
                let Some(iter) = Owned::from_owned(pyo3_ffi::PyObject_GetIter(obj)) else {
                    return Err(EncodeError::Failed);
                };
                let mut count = 0;
                while let Some(item) = Owned::from_owned(pyo3_ffi::PyIter_Next(iter.as_ptr())) {
                    self.item(item.as_ptr(), depth)?;
                    count += 1;
                }
                if !pyo3_ffi::PyErr_Occurred().is_null() {
                    return Err(EncodeError::Failed);
                }
                if count != n {
                    return Err(EncodeError::Unsupported);
                }
            } else if tp == &raw mut pyo3_ffi::PySlice_Type {
                self.byte(SLICE | unmemo)?;
                for name in [c"start", c"stop", c"step"] {
                    let Some(v) = pyutil::getattr(obj, name) else {
                        return Err(EncodeError::Failed);
                    };
                    self.item(v.as_ptr(), depth)?;
                }
            } else {
                let n = pyo3_ffi::PyByteArray_Size(obj) as usize;
                self.tag_len(BYTEARRAY | unmemo, n)?;
                let p = pyo3_ffi::PyByteArray_AsString(obj).cast::<u8>();
                if n > 0 {
                    self.bytes(std::slice::from_raw_parts(p, n))?;
                }
            }
            Ok(())
        }
    }

    /// A `dict` (at `depth`, counting itself): first as one with `str` keys only (the receiver
    /// makes it at once, with the keys' hashes), and if a key that is not an exact `str` turns
    /// up, again as any dict (made before its items: a cycle back to it is fine).
    ///
    /// # Safety
    /// The GIL is held; `obj` is an exact `dict`.
    unsafe fn dict_value(&mut self, obj: *mut PyObject, depth: usize) -> Result<(), EncodeError> {
        // SAFETY: the GIL is held; `obj` is an exact dict (contract).
        unsafe {
            let once = self.once(obj);
            let unmemo = if once { UNMEMO } else { 0 };
            let (start, index) = (self.buf.len(), self.done.len());
            let mut own = None;
            if !once {
                match self.seen(obj, false) {
                    Ok(i) => own = Some(i),
                    Err(met) => return met,
                }
            }
            if !self.dict(obj, true, depth, unmemo)? {
                // Undo the attempt: its bytes and the memo entries of what it met (the dict's
                // own stays, now open: it may be referenced before it is done).
                self.buf.truncate(start);
                let keep = if once { index } else { index + 1 };
                if self.done.len() > keep {
                    self.memo.retain(|_, i| (*i as usize) < keep);
                    self.done.truncate(keep);
                }
                if let Some(i) = own {
                    self.finished(i);
                }
                self.dict(obj, false, depth, unmemo)?;
            }
            if let Some(i) = own {
                self.finished(i);
            }
            Ok(())
        }
    }

    /// Writes the dict `obj`; with `str_keys`, as one whose keys are all exact `str`s: then
    /// `false` (what was written is to be dropped) as soon as a key is not.
    ///
    /// # Safety
    /// The GIL is held; `obj` is an exact `dict`.
    unsafe fn dict(
        &mut self,
        obj: *mut PyObject,
        str_keys: bool,
        depth: usize,
        unmemo: u8,
    ) -> Result<bool, EncodeError> {
        // SAFETY: the GIL is held; PyDict_Next yields borrowed references that live as long as
        // the dict, which nothing changes while we read.
        unsafe {
            let n = pyo3_ffi::PyDict_Size(obj);
            let (mut pos, mut key, mut value): (Py_ssize_t, *mut PyObject, *mut PyObject) =
                (0, std::ptr::null_mut(), std::ptr::null_mut());
            let tag = if str_keys { DICT_STR_KEYS } else { DICT };
            self.tag_len(tag | unmemo, n as usize)?;
            let mut count = 0;
            while pyo3_ffi::PyDict_Next(obj, &raw mut pos, &raw mut key, &raw mut value) != 0 {
                if str_keys {
                    if pyo3_ffi::Py_TYPE(key) != &raw mut pyo3_ffi::PyUnicode_Type {
                        return Ok(false);
                    }
                    // An exact str's hash: cached, or computed once (it cannot fail).
                    let mut h = (*key.cast::<pyo3_ffi::PyASCIIObject>()).hash;
                    if h == -1 {
                        h = pyo3_ffi::PyObject_Hash(key);
                    }
                    self.text(key, Some(h))?;
                } else {
                    self.item(key, depth)?;
                }
                self.item(value, depth)?;
                count += 1;
            }
            if count != n {
                return Err(EncodeError::Unsupported);
            }
            Ok(true)
        }
    }
}

/// Writes `n` as a varint at `p` (10 bytes at most); returns how many bytes it took.
///
/// # Safety
/// `p` is valid for 10 bytes of writes.
#[inline(always)]
unsafe fn write_varint(p: *mut u8, mut n: usize) -> usize {
    let mut i = 0;
    // SAFETY: a usize takes 10 varint bytes at most (contract).
    unsafe {
        while n >= 0x80 {
            *p.add(i) = (n as u8) | 0x80;
            n >>= 7;
            i += 1;
        }
        *p.add(i) = n as u8;
    }
    i + 1
}

/// Whether `obj` is referenced once only. Not on free-threaded builds, whose reference counts
/// are split between threads.
///
/// # Safety
/// The GIL is held; `obj` is alive.
#[inline]
unsafe fn referenced_once(obj: *mut PyObject) -> bool {
    #[cfg(Py_GIL_DISABLED)]
    {
        let _ = obj;
        false
    }
    // SAFETY: the GIL is held and `obj` alive (contract).
    #[cfg(not(Py_GIL_DISABLED))]
    unsafe {
        pyo3_ffi::Py_REFCNT(obj) == 1
    }
}

/// Reads an encoding back; the memo holds borrowed pointers into the object being built
/// (kept alive by it).
struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    memo: Vec<*mut PyObject>,
    /// The interpreter's interned scalars, once looked up (`Some(None)`: there are none).
    interned: Option<Option<Interned>>,
    /// How interning goes in this decoding, for `str`, `int`, `float`, tuples, dict
    /// templates and list templates.
    tallies: [Tally; 6],
}

/// Rebuilds what [`encode`] wrote, in the current interpreter.
///
/// # Safety
/// The current interpreter's GIL is held. On `None` a Python error is set (`MemoryError` when
/// an allocation failed; `SystemError` for a malformed encoding).
pub unsafe fn decode(data: &[u8]) -> Option<Owned> {
    let mut dec = Decoder {
        data,
        pos: 0,
        memo: Vec::new(),
        interned: None,
        tallies: [Tally::default(); 6],
    };
    // SAFETY: the GIL is held (contract).
    unsafe {
        let obj = dec.object()?;
        if dec.pos != data.len() {
            return malformed();
        }
        Some(obj)
    }
}

/// Sets `SystemError` for a malformed encoding; returns `None`.
///
/// # Safety
/// The GIL is held.
unsafe fn malformed<T>() -> Option<T> {
    // SAFETY: the GIL is held (contract).
    unsafe {
        pyo3_ffi::PyErr_SetString(
            pyo3_ffi::PyExc_SystemError,
            c"subinterp_rs: malformed crossing data".as_ptr(),
        );
    }
    None
}

/// The `str` tag of text of kind `kind`.
#[inline]
fn str_tag(kind: Kind) -> u8 {
    match kind.width {
        1 if kind.ascii => STR_ASCII,
        1 => STR1,
        2 => STR2,
        _ => STR4,
    }
}

/// The text kind of a `str` tag.
#[inline]
/// The varint at `at` of `data`, and how many bytes it takes (`None`: malformed or cut).
fn varint_at(data: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut n: usize = 0;
    for k in 0..10 {
        let b = *data.get(at + k)?;
        n |= usize::from(b & 0x7F).checked_shl(7 * k as u32)?;
        if b < 0x80 {
            return Some((n, k + 1));
        }
    }
    None
}

fn str_kind(tag: u8) -> Kind {
    match tag {
        STR_ASCII => Kind {
            width: 1,
            ascii: true,
        },
        STR1 => Kind {
            width: 1,
            ascii: false,
        },
        STR2 => Kind {
            width: 2,
            ascii: false,
        },
        _ => Kind {
            width: 4,
            ascii: false,
        },
    }
}

impl<'a> Decoder<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    #[inline]
    fn varint(&mut self) -> Option<usize> {
        let first = self.byte()?;
        if first < 0x80 {
            return Some(usize::from(first));
        }
        self.pos -= 1;
        self.long_varint()
    }

    /// [`Decoder::varint`] of more than one byte.
    #[cold]
    fn long_varint(&mut self) -> Option<usize> {
        let mut n: usize = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift >= usize::BITS {
                return None;
            }
            n |= usize::from(b & 0x7F) << shift;
            if b < 0x80 {
                return Some(n);
            }
            shift += 7;
        }
    }

    #[inline]
    fn eight(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }

    /// A length that cannot be more than the bytes left (each item takes one at least), so
    /// a malformed one never makes a huge allocation.
    #[inline]
    fn count(&mut self) -> Option<Py_ssize_t> {
        let n = self.varint()?;
        (n <= self.data.len() - self.pos).then_some(n as Py_ssize_t)
    }

    /// # Safety
    /// The GIL is held. On `None` a Python error is set.
    unsafe fn object(&mut self) -> Option<Owned> {
        // SAFETY: the GIL is held (contract).
        unsafe {
            let Some(raw) = self.byte() else {
                return malformed();
            };
            let (tag, memo) = (raw & !UNMEMO, raw & UNMEMO == 0);
            if !memo
                && !matches!(
                    tag,
                    TUPLE | LIST | DICT | DICT_STR_KEYS | SET | FROZENSET | SLICE | BYTEARRAY
                )
            {
                return malformed();
            }
            let obj = match tag {
                NONE => pyo3_ffi::Py_NewRef(pyo3_ffi::Py_None()),
                FALSE => pyo3_ffi::Py_NewRef(pyo3_ffi::Py_False()),
                TRUE => pyo3_ffi::Py_NewRef(pyo3_ffi::Py_True()),
                EMPTY_TUPLE => pyo3_ffi::PyTuple_New(0),
                INT | FLOAT => {
                    let Some(b) = self.eight() else {
                        return malformed();
                    };
                    return self.number(tag, b);
                }
                STR_ASCII | STR1 | STR2 | STR4 => return self.str(tag),
                BYTES | BYTEARRAY => {
                    let Some(n) = self.varint() else {
                        return malformed();
                    };
                    let Some(b) = self.take(n) else {
                        return malformed();
                    };
                    let (p, n) = (b.as_ptr().cast::<c_char>(), b.len() as Py_ssize_t);
                    if tag == BYTES {
                        pyo3_ffi::PyBytes_FromStringAndSize(p, n)
                    } else {
                        let ba = pyo3_ffi::PyByteArray_FromStringAndSize(p, n);
                        if !ba.is_null() && memo {
                            self.memo.push(ba);
                        }
                        ba
                    }
                }
                BIG_INT => return self.big_int(),
                COMPLEX => match (self.eight(), self.eight()) {
                    (Some(re), Some(im)) => pyo3_ffi::PyComplex_FromDoubles(
                        f64::from_le_bytes(re),
                        f64::from_le_bytes(im),
                    ),
                    _ => return malformed(),
                },
                TUPLE => return self.tuple(memo),
                LIST => return self.list(memo),
                DICT | DICT_STR_KEYS => return self.dict(tag == DICT_STR_KEYS, memo),
                SET | FROZENSET => return self.set(tag == FROZENSET, memo),
                RANGE => {
                    let [a, b, c] = self.three()?;
                    let range = (&raw mut pyo3_ffi::PyRange_Type).cast::<PyObject>();
                    return pyutil::call(range, &[a.as_ptr(), b.as_ptr(), c.as_ptr()]);
                }
                SLICE => {
                    let slot = self.reserve(memo);
                    let [a, b, c] = self.three()?;
                    let s = Owned::from_owned(pyo3_ffi::PySlice_New(
                        a.as_ptr(),
                        b.as_ptr(),
                        c.as_ptr(),
                    ))?;
                    self.fill(slot, s.as_ptr());
                    return Some(s);
                }
                MEMO => {
                    let Some(i) = self.varint() else {
                        return malformed();
                    };
                    match self.memo.get(i) {
                        Some(&p) if !p.is_null() => pyo3_ffi::Py_NewRef(p),
                        _ => return malformed(),
                    }
                }
                _ => return malformed(),
            };
            Owned::from_owned(obj)
        }
    }

    /// An item of a container: the common scalars (one-digit `int`, `float`, ASCII `str`) and
    /// tuples at once, anything else through [`Decoder::object`].
    ///
    /// # Safety
    /// The GIL is held. On `None` a Python error is set.
    #[inline(always)]
    unsafe fn item(&mut self) -> Option<Owned> {
        // SAFETY: the GIL is held (contract).
        unsafe {
            if let Some(&[tag, a, b, c, d, e, f, g, h]) = self.data.get(self.pos..self.pos + 9) {
                if tag == INT || tag == FLOAT {
                    self.pos += 9;
                    return self.number(tag, [a, b, c, d, e, f, g, h]);
                }
                if tag == STR_ASCII {
                    self.pos += 1;
                    return self.str(STR_ASCII);
                }
                if tag & !UNMEMO == TUPLE {
                    self.pos += 1;
                    return self.tuple(tag & UNMEMO == 0);
                }
            }
            self.object()
        }
    }

    /// The `int` (`tag` [`INT`]) or `float` of 8 little-endian bytes `b`, interned (see
    /// [`intern`]) when the interpreter interns. On `None` a Python error is set.
    ///
    /// # Safety
    /// The GIL is held.
    #[inline(always)]
    unsafe fn number(&mut self, tag: u8, b: [u8; 8]) -> Option<Owned> {
        // SAFETY: the GIL is held (contract).
        unsafe {
            let interned = self.interned();
            if tag == INT {
                let n = i64::from_le_bytes(b);
                match interned {
                    Some(interned) => interned.int(n, &mut self.tallies[1]),
                    None => Owned::from_owned(pyo3_ffi::PyLong_FromLongLong(n)),
                }
            } else {
                let x = f64::from_le_bytes(b);
                match interned {
                    Some(interned) => interned.float(x, &mut self.tallies[2]),
                    None => Owned::from_owned(pyo3_ffi::PyFloat_FromDouble(x)),
                }
            }
        }
    }

    /// Three objects in a row (`start`, `stop`, `step`).
    ///
    /// # Safety
    /// The GIL is held.
    unsafe fn three(&mut self) -> Option<[Owned; 3]> {
        // SAFETY: the GIL is held (contract).
        unsafe { Some([self.object()?, self.object()?, self.object()?]) }
    }

    /// A memo slot for a container whose object is made after its items (`None` for one
    /// that has no memo entry).
    fn reserve(&mut self, memo: bool) -> Option<usize> {
        memo.then(|| {
            self.memo.push(std::ptr::null_mut());
            self.memo.len() - 1
        })
    }

    /// Fills the memo slot [`Decoder::reserve`] gave.
    fn fill(&mut self, slot: Option<usize>, obj: *mut PyObject) {
        if let Some(i) = slot {
            self.memo[i] = obj;
        }
    }

    /// # Safety
    /// The GIL is held.
    unsafe fn str(&mut self, tag: u8) -> Option<Owned> {
        // SAFETY: the GIL is held (contract).
        unsafe {
            let Some(b) = self.str_data(tag) else {
                return malformed();
            };
            self.new_str(tag, b, None)
        }
    }

    /// The interpreter's interned scalars (looked up on first use).
    ///
    /// # Safety
    /// The GIL is held.
    #[inline]
    unsafe fn interned(&mut self) -> Option<Interned> {
        if let Some(interned) = self.interned {
            return interned;
        }
        // SAFETY: the GIL is held (contract); decoding runs in the interpreter it is for.
        let interned = unsafe { Interned::current() };
        self.interned = Some(interned);
        interned
    }

    /// The `str` of the code units `b` of a `str` tag, with `hash` when the sender sent it:
    /// interned (see [`intern`]) when the interpreter interns. On `None` a Python error is set.
    ///
    /// # Safety
    /// The GIL is held.
    #[inline]
    unsafe fn new_str(&mut self, tag: u8, b: &[u8], hash: Option<Py_hash_t>) -> Option<Owned> {
        // SAFETY: the GIL is held (contract).
        unsafe {
            let kind = str_kind(tag);
            match self.interned() {
                Some(interned) => interned.str(kind, b, hash, &mut self.tallies[0]),
                None => Some(intern::with_hash(intern::new_str(kind, b)?, hash)),
            }
        }
    }

    /// The code units of a `str` whose tag was `tag` (`None`: malformed).
    fn str_data(&mut self, tag: u8) -> Option<&'a [u8]> {
        let len = self.varint()?;
        len.checked_mul(str_kind(tag).width)
            .and_then(|n| self.take(n))
    }

    /// # Safety
    /// The GIL is held.
    unsafe fn big_int(&mut self) -> Option<Owned> {
        // SAFETY: the GIL is held; the text is `hex(n)`'s, NUL-terminated by CString.
        unsafe {
            let Some(n) = self.varint() else {
                return malformed();
            };
            let Some(text) = self.take(n).and_then(|b| CString::new(b).ok()) else {
                return malformed();
            };
            Owned::from_owned(pyo3_ffi::PyLong_FromString(
                text.as_ptr(),
                std::ptr::null_mut(),
                0,
            ))
        }
    }

    /// # Safety
    /// The GIL is held.
    unsafe fn tuple(&mut self, memo: bool) -> Option<Owned> {
        // SAFETY: the GIL is held; PyTuple_SET_ITEM steals each new item reference into a
        // slot of the new tuple (a tuple with empty slots is safe to free or traverse).
        unsafe {
            let Some(n) = self.count() else {
                return malformed();
            };
            let slot = self.reserve(memo);
            if n as usize <= intern::TUPLE_MAX_ITEMS {
                if let Some(interned) = self.interned() {
                    let t = self.small_tuple(interned, n as usize)?;
                    self.fill(slot, t.as_ptr());
                    return Some(t);
                }
            }
            let t = Owned::from_owned(pyo3_ffi::PyTuple_New(n))?;
            for i in 0..n {
                let item = self.item()?;
                pyo3_ffi::PyTuple_SET_ITEM(t.as_ptr(), i, item.into_ptr());
            }
            self.fill(slot, t.as_ptr());
            Some(t)
        }
    }

    /// A tuple of `n` items (at most [`intern::TUPLE_MAX_ITEMS`]), read first, then interned
    /// (see [`Interned::tuple`]).
    ///
    /// # Safety
    /// The GIL is held.
    unsafe fn small_tuple(&mut self, interned: Interned, n: usize) -> Option<Owned> {
        /// The items read so far: new references, dropped if reading stops early.
        struct Items {
            ptrs: [*mut PyObject; intern::TUPLE_MAX_ITEMS],
            len: usize,
        }
        impl Drop for Items {
            fn drop(&mut self) {
                for &p in &self.ptrs[..self.len] {
                    // SAFETY: each is a new reference made under the GIL, still held (the
                    // guard lives inside `small_tuple`).
                    unsafe { pyo3_ffi::Py_DECREF(p) };
                }
            }
        }
        // SAFETY: the GIL is held (contract); `Interned::tuple` takes every item reference.
        unsafe {
            let mut items = Items {
                ptrs: [std::ptr::null_mut(); intern::TUPLE_MAX_ITEMS],
                len: 0,
            };
            while items.len < n {
                items.ptrs[items.len] = self.item()?.into_ptr();
                items.len += 1;
            }
            items.len = 0;
            interned.tuple(&items.ptrs[..n], &mut self.tallies[3])
        }
    }

    /// # Safety
    /// The GIL is held.
    unsafe fn list(&mut self, memo: bool) -> Option<Owned> {
        // SAFETY: the GIL is held; PyList_SET_ITEM steals each new item reference into a slot
        // of the new list (one with empty slots is safe to free or traverse). The list is in
        // the memo before its items, so a cycle back to it finds it.
        unsafe {
            let Some(n) = self.count() else {
                return malformed();
            };
            let l = Owned::from_owned(pyo3_ffi::PyList_New(n))?;
            if memo {
                self.memo.push(l.as_ptr());
            }
            let interned = self.interned();
            let guide = match interned {
                Some(interned) => interned.list_template(
                    n as usize,
                    |first| self.same_len(first, self.pos, true).is_some(),
                    &self.tallies[5],
                ),
                None => None,
            };
            let mut missed = 0;
            for i in 0..n {
                let followed = guide.as_ref().and_then(|g| {
                    let obj = pyo3_ffi::PyTuple_GET_ITEM(g.as_ptr(), i);
                    self.same_len(obj, self.pos, true).map(|len| (obj, len))
                });
                let item = if let Some((obj, len)) = followed {
                    if self.data[self.pos] == TUPLE {
                        // A tuple with a memo entry (referenced elsewhere too): its entry is
                        // this object, as when it is decoded.
                        self.memo.push(obj);
                    }
                    self.pos += len;
                    pyo3_ffi::Py_NewRef(obj)
                } else {
                    missed += 1;
                    self.item()?.into_ptr()
                };
                pyo3_ffi::PyList_SET_ITEM(l.as_ptr(), i, item);
            }
            if let Some(interned) = interned {
                if guide.is_some() && missed <= n / 8 {
                    Interned::template_used(&mut self.tallies[5]);
                } else {
                    interned.add_list_template(&l, &mut self.tallies[5])?;
                }
            }
            Some(l)
        }
    }

    /// If the item encoded at `at` is `obj` (equal, and of a kind interning keeps: a scalar,
    /// `None`, a bool, or with `tuples` a tuple of these), the number of bytes its encoding
    /// takes. Reads only: nothing is decoded or made (a tuple's memo entry is the caller's).
    ///
    /// # Safety
    /// The GIL is held; `obj` is alive.
    unsafe fn same_len(&self, obj: *mut PyObject, at: usize, tuples: bool) -> Option<usize> {
        // SAFETY: the GIL is held; each read of `obj` is of the exact type compared.
        unsafe {
            let tag = *self.data.get(at)?;
            let tp = pyo3_ffi::Py_TYPE(obj);
            match tag {
                NONE => (obj == pyo3_ffi::Py_None()).then_some(1),
                TRUE => (obj == pyo3_ffi::Py_True()).then_some(1),
                FALSE => (obj == pyo3_ffi::Py_False()).then_some(1),
                INT | FLOAT => {
                    let b: [u8; 8] = self.data.get(at + 1..at + 9)?.try_into().ok()?;
                    let same = if tag == INT {
                        tp == &raw mut pyo3_ffi::PyLong_Type
                            && compact_int(obj) == Some(i64::from_le_bytes(b))
                    } else {
                        tp == &raw mut pyo3_ffi::PyFloat_Type
                            && pyo3_ffi::PyFloat_AS_DOUBLE(obj).to_bits() == u64::from_le_bytes(b)
                    };
                    same.then_some(9)
                }
                STR_ASCII | STR1 | STR2 | STR4 => {
                    if tp != &raw mut pyo3_ffi::PyUnicode_Type {
                        return None;
                    }
                    let (len, k) = varint_at(self.data, at + 1)?;
                    let kind = str_kind(tag);
                    let size = len.checked_mul(kind.width)?;
                    let text = self.data.get(at + 1 + k..(at + 1 + k).checked_add(size)?)?;
                    let (have, _, data) = str_parts(obj);
                    (have == kind && intern::same_bytes(data, text)).then_some(1 + k + size)
                }
                EMPTY_TUPLE => (tp == &raw mut pyo3_ffi::PyTuple_Type
                    && pyo3_ffi::PyTuple_GET_SIZE(obj) == 0)
                    .then_some(1),
                _ if tuples && tag & !UNMEMO == TUPLE => {
                    if tp != &raw mut pyo3_ffi::PyTuple_Type {
                        return None;
                    }
                    let (m, k) = varint_at(self.data, at + 1)?;
                    if pyo3_ffi::PyTuple_GET_SIZE(obj) != m as Py_ssize_t {
                        return None;
                    }
                    let mut len = 1 + k;
                    for j in 0..m {
                        let item = pyo3_ffi::PyTuple_GET_ITEM(obj, j as Py_ssize_t);
                        len += self.same_len(item, at + len, false)?;
                    }
                    Some(len)
                }
                _ => None,
            }
        }
    }

    /// # Safety
    /// The GIL is held.
    unsafe fn dict(&mut self, str_keys: bool, memo: bool) -> Option<Owned> {
        // SAFETY: the GIL is held (contract).
        unsafe {
            let Some(n) = self.count() else {
                return malformed();
            };
            if str_keys {
                return self.str_key_dict(n, memo);
            }
            let d = Owned::from_owned(ffi_ext::dict_new_presized(n))?;
            if memo {
                self.memo.push(d.as_ptr());
            }
            for _ in 0..n {
                let key = self.object()?;
                let value = self.item()?;
                if pyo3_ffi::PyDict_SetItem(d.as_ptr(), key.as_ptr(), value.as_ptr()) < 0 {
                    return None;
                }
            }
            Some(d)
        }
    }

    /// A dict of `n` items whose keys are all `str`, each with its hash: made at once, after
    /// its items (the encoder sends a cycle through one to pickle instead).
    ///
    /// # Safety
    /// The GIL is held.
    unsafe fn str_key_dict(&mut self, n: Py_ssize_t, memo: bool) -> Option<Owned> {
        /// New references, dropped at the end.
        struct Refs(Vec<*mut PyObject>);
        impl Drop for Refs {
            fn drop(&mut self) {
                for &p in &self.0 {
                    // SAFETY: each is a new reference made under the GIL, still held (these
                    // are dropped before `str_key_dict` returns).
                    unsafe { pyo3_ffi::Py_DECREF(p) };
                }
            }
        }
        // SAFETY: the GIL is held. `items` keeps every key and value alive until the dict holds
        // its own references; a key taken from the followed template is a new reference too.
        unsafe {
            let slot = self.reserve(memo);
            let n = n as usize;
            let mut items = Refs(Vec::with_capacity(2 * n));
            let interned = self.interned();
            let (mut guide, mut first_hash, mut short) = (None, 0, true);
            for i in 0..n {
                let (tag, b, hash) = self.key_parts()?;
                short &= b.len() <= intern::STR_MAX_BYTES;
                let kind = str_kind(tag);
                if i == 0 {
                    first_hash = hash;
                    if let Some(interned) = interned {
                        guide = interned.template(n, kind, b, hash, &self.tallies[4]);
                    }
                }
                let key = if let Some(key) = guide.as_ref().and_then(|g| g.key(i, kind, b, hash)) {
                    pyo3_ffi::Py_NewRef(key)
                } else {
                    guide = None;
                    self.new_str(tag, b, Some(hash))?.into_ptr()
                };
                items.0.push(key);
                items.0.push(self.item()?.into_ptr());
            }
            let d = if let Some(guide) = &guide {
                Interned::template_used(&mut self.tallies[4]);
                guide.copy(&items.0)?
            } else {
                let d = template::item_by_item(&items.0)?;
                // A template holds its keys: only short ones, as interned strings are.
                if let Some(interned) = interned.filter(|_| short) {
                    interned.add_template(&d, n, first_hash, &mut self.tallies[4])?;
                }
                d
            };
            self.fill(slot, d.as_ptr());
            Some(d)
        }
    }

    /// A key of a dict with `str` keys: its tag, code units and hash (the sender's `hash()`
    /// of it). On `None` a Python error is set.
    ///
    /// # Safety
    /// The GIL is held.
    #[inline]
    unsafe fn key_parts(&mut self) -> Option<(u8, &'a [u8], Py_hash_t)> {
        // SAFETY: the GIL is held (contract), as `malformed` needs.
        unsafe {
            let Some(tag @ (STR_ASCII | STR1 | STR2 | STR4)) = self.byte() else {
                return malformed();
            };
            let Some(b) = self.str_data(tag) else {
                return malformed();
            };
            let Some(h) = self.eight().map(Py_hash_t::from_le_bytes) else {
                return malformed();
            };
            Some((tag, b, h))
        }
    }

    /// # Safety
    /// The GIL is held.
    unsafe fn set(&mut self, frozen: bool, memo: bool) -> Option<Owned> {
        // SAFETY: the GIL is held; a new frozenset may be filled with PySet_Add before anyone
        // else sees it (the C API allows that).
        unsafe {
            let Some(n) = self.count() else {
                return malformed();
            };
            let slot = self.reserve(memo);
            let s = Owned::from_owned(if frozen {
                pyo3_ffi::PyFrozenSet_New(std::ptr::null_mut())
            } else {
                pyo3_ffi::PySet_New(std::ptr::null_mut())
            })?;
            if !frozen {
                self.fill(slot, s.as_ptr());
            }
            for _ in 0..n {
                let item = self.item()?;
                if pyo3_ffi::PySet_Add(s.as_ptr(), item.as_ptr()) < 0 {
                    return None;
                }
            }
            self.fill(slot, s.as_ptr());
            Some(s)
        }
    }
}
