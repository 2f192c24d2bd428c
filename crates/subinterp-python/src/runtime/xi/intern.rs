//! Interning of the immutable scalars that cross: each receiving interpreter keeps the last
//! `str`, `int` and `float` objects that [`super::data`] rebuilt, in slots picked by their
//! value, and a value that crosses again is that object again, not a new one: no allocation
//! now and no freeing later. CPython does the same with its small ints, one-character strings
//! and interned names: equal immutable objects are interchangeable, and which of them a value
//! is, is no part of any type's contract. The records, JSON-like data and task arguments that
//! cross again and again (the same keys, labels, counters) then cost neither.
//!
//! One list per interpreter, in its state dict (freed with it), made on first use: `None` or
//! an object in each slot, read and replaced under that interpreter's GIL. Memory is bounded
//! by the slots: [`STR_SLOTS`] strings of at most [`STR_MAX_BYTES`] bytes of text (two per
//! pair of slots that their text picks), [`INT_SLOTS`] one-digit ints, [`FLOAT_SLOTS`]
//! floats; at most about 1.2 MiB, and only what crossed. Not on free-threaded builds, whose
//! threads of one interpreter run at once and could race on a slot.

use std::ffi::c_void;

use pyo3_ffi::{PyObject, Py_hash_t, Py_ssize_t};

use crate::runtime::pyutil;
use subinterp_rs::owned::Owned;

/// String slots: pairs of two, the most recently found first.
pub const STR_SLOTS: usize = 8192;
/// Strings with more bytes of text than this are not interned.
pub const STR_MAX_BYTES: usize = 64;
/// Int slots: one per value modulo the count, for ints of one digit outside CPython's own
/// small-int range.
pub const INT_SLOTS: usize = 4096;
/// Float slots, picked by the bits of the value.
pub const FLOAT_SLOTS: usize = 1024;

const INT_BASE: usize = STR_SLOTS;
const FLOAT_BASE: usize = STR_SLOTS + INT_SLOTS;
const SLOTS: usize = STR_SLOTS + INT_SLOTS + FLOAT_SLOTS;

extern "C" {
    // Where an int keeps its value (csrc/compact_int.c, compiled against this Python's headers).
    static subinterp_long_tag_offset: usize;
    static subinterp_long_digit_offset: usize;
    static subinterp_long_digit_size: usize;
    static subinterp_long_non_size_bits: usize;
    static subinterp_long_sign_mask: usize;
}

/// The value of the `int` `obj` when it has one digit (|n| < 2**30 with 30-bit digits), read
/// inline as CPython's `PyUnstable_Long_CompactValue` reads it, with the layout of the Python
/// the extension was built for.
///
/// # Safety
/// The GIL of `obj`'s interpreter is held; `obj` is an `int` (or a subclass), alive.
#[inline]
pub unsafe fn compact_int(obj: *mut PyObject) -> Option<i64> {
    // SAFETY: `obj` is an int (contract): its `lv_tag` and first digit are at these offsets of
    // this build's layout; a one-digit int's digit is initialized.
    unsafe {
        let tag = obj
            .cast::<usize>()
            .byte_add(subinterp_long_tag_offset)
            .read();
        if tag >= 2 << subinterp_long_non_size_bits {
            return None;
        }
        let digit = if subinterp_long_digit_size == 4 {
            i64::from(
                obj.cast::<u32>()
                    .byte_add(subinterp_long_digit_offset)
                    .read(),
            )
        } else {
            i64::from(
                obj.cast::<u16>()
                    .byte_add(subinterp_long_digit_offset)
                    .read(),
            )
        };
        Some((1 - (tag & subinterp_long_sign_mask) as i64) * digit)
    }
}

/// The text kinds of a `str` as [`super::data`] sends it: bytes per code unit, and whether
/// the text is ASCII (1-byte text that is not ASCII is Latin-1: another `str` layout).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// 1, 2 or 4.
    pub width: usize,
    /// 1-byte text of code points below 128 only.
    pub ascii: bool,
}

/// The [`Kind`], length and code units of an exact `str`, read from the object (the layout of
/// CPython 3.12 to 3.15's GIL builds: exact `str`s are compact, their data right after the
/// header, the state bit field's `kind` at bits 2-4 and `ascii` at bit 6); on free-threaded
/// builds through the C API.
///
/// # Safety
/// The GIL is held; `obj` is an exact `str`, alive for as long as the slice is used.
#[inline]
pub unsafe fn str_parts<'s>(obj: *mut PyObject) -> (Kind, usize, &'s [u8]) {
    // SAFETY: the GIL is held and `obj` an exact (so compact) `str` (contract): its data is
    // `len` code units of `kind` bytes right after the `PyASCIIObject` header when it is
    // ASCII, else after the `PyCompactUnicodeObject` one.
    unsafe {
        let len = pyo3_ffi::PyUnicode_GET_LENGTH(obj) as usize;
        #[cfg(not(Py_GIL_DISABLED))]
        let (width, ascii, data) = {
            let state = (*obj.cast::<pyo3_ffi::PyASCIIObject>()).state;
            let (width, ascii) = (((state >> 2) & 7) as usize, state & (1 << 6) != 0);
            let data = if ascii {
                obj.cast::<pyo3_ffi::PyASCIIObject>().add(1).cast::<u8>()
            } else {
                obj.cast::<pyo3_ffi::PyCompactUnicodeObject>()
                    .add(1)
                    .cast::<u8>()
            };
            (width, ascii, data)
        };
        #[cfg(Py_GIL_DISABLED)]
        let (width, ascii, data) = {
            let width = pyo3_ffi::PyUnicode_KIND(obj) as usize;
            let data = pyo3_ffi::PyUnicode_DATA(obj).cast::<u8>();
            (
                width,
                width == 1 && std::slice::from_raw_parts(data, len).is_ascii(),
                data,
            )
        };
        debug_assert_eq!(data.cast::<c_void>(), pyo3_ffi::PyUnicode_DATA(obj));
        (
            Kind { width, ascii },
            len,
            std::slice::from_raw_parts(data, len * width),
        )
    }
}

/// A new `str` of the code units `b` of kind `kind`. ASCII text (checked) is made and copied
/// at once; other text by `PyUnicode_FromKindAndData`, which finds the narrowest kind (and
/// the one-character singletons). On `None` a Python error is set.
///
/// # Safety
/// The GIL is held.
pub unsafe fn new_str(kind: Kind, b: &[u8]) -> Option<Owned> {
    // SAFETY: the GIL is held; a new ASCII `str` of `len` characters has room for `len` bytes
    // of data, written before anyone sees it; `b` holds whole code units of `kind`.
    unsafe {
        if kind.ascii && b.len() > 1 {
            if !b.is_ascii() {
                pyo3_ffi::PyErr_SetString(
                    pyo3_ffi::PyExc_SystemError,
                    c"subinterp_rs: malformed crossing data (text that is not ASCII)".as_ptr(),
                );
                return None;
            }
            let s = Owned::from_owned(pyo3_ffi::PyUnicode_New(b.len() as Py_ssize_t, 127))?;
            // A new ASCII `str`'s data follows its `PyASCIIObject` header.
            let data = s
                .as_ptr()
                .cast::<pyo3_ffi::PyASCIIObject>()
                .add(1)
                .cast::<u8>();
            debug_assert_eq!(data.cast::<c_void>(), pyo3_ffi::PyUnicode_DATA(s.as_ptr()));
            copy_bytes(b, data);
            return Some(s);
        }
        Owned::from_owned(pyo3_ffi::PyUnicode_FromKindAndData(
            kind.width as _,
            b.as_ptr().cast::<c_void>(),
            (b.len() / kind.width) as Py_ssize_t,
        ))
    }
}

/// Copies `src` to `dst`: short runs (most text that crosses) inline, with overlapping
/// word moves, rather than through a `memcpy` call.
///
/// # Safety
/// `dst` is valid for `src.len()` bytes of writes and does not overlap `src`.
#[inline]
pub unsafe fn copy_bytes(src: &[u8], dst: *mut u8) {
    let (len, from) = (src.len(), src.as_ptr());
    // SAFETY: every read is inside `src` and every write inside `dst[..len]` (contract): the
    // two words of a short run overlap in its middle instead of reaching past either end.
    unsafe {
        match len {
            0 => {}
            1..=3 => {
                *dst = *from;
                *dst.add(len / 2) = *from.add(len / 2);
                *dst.add(len - 1) = *from.add(len - 1);
            }
            4..=7 => {
                let head = from.cast::<u32>().read_unaligned();
                let tail = from.add(len - 4).cast::<u32>().read_unaligned();
                dst.cast::<u32>().write_unaligned(head);
                dst.add(len - 4).cast::<u32>().write_unaligned(tail);
            }
            8..=16 => {
                let head = from.cast::<u64>().read_unaligned();
                let tail = from.add(len - 8).cast::<u64>().read_unaligned();
                dst.cast::<u64>().write_unaligned(head);
                dst.add(len - 8).cast::<u64>().write_unaligned(tail);
            }
            _ => std::ptr::copy_nonoverlapping(from, dst, len),
        }
    }
}

/// Whether `a` and `b` hold the same bytes: short runs compared inline, as [`copy_bytes`]
/// copies them.
#[inline]
fn same_bytes(left: &[u8], right: &[u8]) -> bool {
    let len = left.len();
    if len != right.len() {
        return false;
    }
    let (l, r) = (left.as_ptr(), right.as_ptr());
    // SAFETY: every read is inside `left` or `right`, both `len` bytes long.
    unsafe {
        match len {
            4..=7 => {
                l.cast::<u32>().read_unaligned() == r.cast::<u32>().read_unaligned()
                    && l.add(len - 4).cast::<u32>().read_unaligned()
                        == r.add(len - 4).cast::<u32>().read_unaligned()
            }
            8..=16 => {
                l.cast::<u64>().read_unaligned() == r.cast::<u64>().read_unaligned()
                    && l.add(len - 8).cast::<u64>().read_unaligned()
                        == r.add(len - 8).cast::<u64>().read_unaligned()
            }
            _ => left == right,
        }
    }
}

/// A hash of a string's code units, to pick its slots (FxHash's mixing of its first and last
/// words, read in place: no byte is copied), for text of up to [`STR_MAX_BYTES`] bytes. Its
/// high bits are the well-mixed ones.
#[inline]
fn text_hash(text: &[u8]) -> u64 {
    const MIX: u64 = 0x517c_c1b7_2722_0a95;
    let (len, at) = (text.len(), text.as_ptr());
    // SAFETY: every read is inside `text` (the words of a short run overlap in its middle).
    let (first, last) = unsafe {
        match len {
            0 => (0, 0),
            1..=3 => (
                u64::from(*at)
                    | u64::from(*at.add(len / 2)) << 8
                    | u64::from(*at.add(len - 1)) << 16,
                0,
            ),
            4..=7 => (
                u64::from(at.cast::<u32>().read_unaligned()),
                u64::from(at.add(len - 4).cast::<u32>().read_unaligned()),
            ),
            _ => (
                at.cast::<u64>().read_unaligned(),
                at.add(len - 8).cast::<u64>().read_unaligned(),
            ),
        }
    };
    let mut hash = (len as u64 ^ first).wrapping_mul(MIX);
    hash = (hash.rotate_left(5) ^ last).wrapping_mul(MIX);
    // The middle of longer text (up to STR_MAX_BYTES), a word at a time.
    let mut i = 8;
    while i + 8 < len {
        // SAFETY: `i + 8 < len`: the word is inside `text`.
        let word = unsafe { at.add(i).cast::<u64>().read_unaligned() };
        hash = (hash.rotate_left(5) ^ word).wrapping_mul(MIX);
        i += 8;
    }
    hash
}

/// Hits and misses of one kind of scalar over one decoding: whether looking them up pays.
/// New data (every lookup a miss) would only pay for the lookups, the new objects' slots and
/// the freeing of the ones they replace: once misses outnumber hits many times over, the
/// rest of that decoding makes its objects directly. The objects interned until then are
/// found by the next decoding of the same data, which then goes on interning.
#[derive(Clone, Copy, Default)]
pub struct Tally {
    hits: u32,
    misses: u32,
}

impl Tally {
    /// Misses always looked up first.
    const TRIAL: u32 = 32;

    /// Whether to look the next one up.
    #[inline]
    fn worth_it(self) -> bool {
        self.misses < Self::TRIAL || self.misses / 8 <= self.hits
    }
}

/// The current interpreter's interned scalars (see the module doc).
#[derive(Clone, Copy)]
pub struct Interned {
    /// The list of [`SLOTS`] slots, kept alive by the interpreter's state dict.
    slots: *mut PyObject,
}

impl Interned {
    /// The current interpreter's, made on first use; `None` (no error set) on free-threaded
    /// builds or when it cannot be made.
    ///
    /// # Safety
    /// The current interpreter's GIL is held; the result is used under it, in it.
    pub unsafe fn current() -> Option<Self> {
        #[cfg(Py_GIL_DISABLED)]
        {
            None
        }
        #[cfg(not(Py_GIL_DISABLED))]
        {
            thread_local! {
                static LAST: std::cell::Cell<(i64, *mut PyObject)> =
                    const { std::cell::Cell::new((-1, std::ptr::null_mut())) };
            }
            // SAFETY: the GIL is held (contract); the new list is filled before anyone sees it.
            let slots = unsafe {
                pyutil::state_object(c"subinterp_rs.interned", &LAST, || {
                    let list = Owned::from_owned(pyo3_ffi::PyList_New(SLOTS as Py_ssize_t))?;
                    for i in 0..SLOTS {
                        pyo3_ffi::PyList_SET_ITEM(
                            list.as_ptr(),
                            i as Py_ssize_t,
                            pyo3_ffi::Py_NewRef(pyo3_ffi::Py_None()),
                        );
                    }
                    Some(list)
                })
            }?;
            Some(Self { slots })
        }
    }

    /// Slot `i`, borrowed.
    ///
    /// # Safety
    /// The GIL is held; `i < SLOTS`.
    #[inline]
    unsafe fn get(self, i: usize) -> *mut PyObject {
        // SAFETY: the list has SLOTS items (contract), never resized.
        unsafe { pyo3_ffi::PyList_GET_ITEM(self.slots, i as Py_ssize_t) }
    }

    /// Puts a new reference to `obj` in slot `i`, dropping the one there.
    ///
    /// # Safety
    /// The GIL is held; `i < SLOTS`.
    #[inline]
    unsafe fn put(self, i: usize, obj: *mut PyObject) {
        // SAFETY: the GIL is held; the old item is released after the new one is in (its
        // freeing cannot see a half-updated slot).
        unsafe {
            let old = self.get(i);
            pyo3_ffi::PyList_SET_ITEM(self.slots, i as Py_ssize_t, pyo3_ffi::Py_NewRef(obj));
            pyo3_ffi::Py_DECREF(old);
        }
    }

    /// The `str` of code units `b` of kind `kind`: an interned one with that text, or a new
    /// one (interned if short enough and `tally` finds it worth it). `hash` is the text's
    /// `hash()` when the sender knew it (a dict key): a new string gets it, so a dict does not
    /// hash it again. On `None` a Python error is set.
    ///
    /// # Safety
    /// The GIL is held.
    #[inline]
    pub unsafe fn str(
        self,
        kind: Kind,
        b: &[u8],
        hash: Option<Py_hash_t>,
        tally: &mut Tally,
    ) -> Option<Owned> {
        // SAFETY: the GIL is held. Interned slots hold exact `str`s or `None`. A hash written
        // into a new str's cache is that str's own (str hashes are the same in every
        // interpreter of a process: one hash secret), so the cache is as CPython would fill it.
        unsafe {
            if b.len() > STR_MAX_BYTES || b.len() < 2 || !tally.worth_it() {
                return Some(with_hash(new_str(kind, b)?, hash));
            }
            // A key's `hash()` is well mixed already; other text gets one of its own.
            let h = match hash {
                Some(h) => h as u64,
                None => text_hash(b),
            };
            let pair = (h >> (64 - (STR_SLOTS / 2).trailing_zeros())) as usize * 2;
            for i in [pair, pair + 1] {
                let hit = self.get(i);
                if pyo3_ffi::Py_TYPE(hit) == &raw mut pyo3_ffi::PyUnicode_Type {
                    let (k, _, data) = str_parts(hit);
                    if k == kind && same_bytes(data, b) {
                        tally.hits += 1;
                        if i != pair {
                            // Found second: it goes first, the other second (they swap places;
                            // each slot keeps one reference).
                            let first = self.get(pair);
                            pyo3_ffi::PyList_SET_ITEM(self.slots, pair as Py_ssize_t, hit);
                            pyo3_ffi::PyList_SET_ITEM(self.slots, i as Py_ssize_t, first);
                        }
                        return Some(Owned::from_borrowed(std::ptr::NonNull::new_unchecked(hit)));
                    }
                }
            }
            tally.misses += 1;
            let s = with_hash(new_str(kind, b)?, hash);
            // The least recently found of the two makes room: the first moves second (the
            // second is dropped) and the new text goes first.
            self.put(pair + 1, self.get(pair));
            self.put(pair, s.as_ptr());
            Some(s)
        }
    }

    /// The `int` `n`: an interned one, or a new one (interned if it has one digit and `tally`
    /// finds it worth it). On `None` a Python error is set.
    ///
    /// # Safety
    /// The GIL is held.
    #[inline]
    pub unsafe fn int(self, n: i64, tally: &mut Tally) -> Option<Owned> {
        // SAFETY: the GIL is held; interned int slots hold exact ints or `None`.
        unsafe {
            // CPython's small ints are never allocated; bigger than a digit is not interned.
            if (-5..=256).contains(&n) || !(-(1 << 30) < n && n < (1 << 30)) || !tally.worth_it() {
                return Owned::from_owned(pyo3_ffi::PyLong_FromLongLong(n));
            }
            let i = INT_BASE + (n as usize & (INT_SLOTS - 1));
            self.one_slot(
                i,
                tally,
                |hit| {
                    pyo3_ffi::Py_TYPE(hit) == &raw mut pyo3_ffi::PyLong_Type
                        && compact_int(hit) == Some(n)
                },
                || pyo3_ffi::PyLong_FromLongLong(n),
            )
        }
    }

    /// The `float` `x` (its exact bits: `-0.0` and every NaN payload kept): an interned one,
    /// or a new one (interned if `tally` finds it worth it). On `None` a Python error is set.
    ///
    /// # Safety
    /// The GIL is held.
    #[inline]
    pub unsafe fn float(self, x: f64, tally: &mut Tally) -> Option<Owned> {
        // SAFETY: the GIL is held; interned float slots hold exact floats or `None`.
        unsafe {
            if !tally.worth_it() {
                return Owned::from_owned(pyo3_ffi::PyFloat_FromDouble(x));
            }
            let bits = x.to_bits();
            let pick =
                bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FLOAT_SLOTS.trailing_zeros());
            let i = FLOAT_BASE + pick as usize;
            self.one_slot(
                i,
                tally,
                |hit| {
                    pyo3_ffi::Py_TYPE(hit) == &raw mut pyo3_ffi::PyFloat_Type
                        && pyo3_ffi::PyFloat_AS_DOUBLE(hit).to_bits() == bits
                },
                || pyo3_ffi::PyFloat_FromDouble(x),
            )
        }
    }

    /// The object in slot `i` if `same` says it is the one wanted, else a new one from `make`
    /// (a new reference or null with an error set), put in the slot; counted in `tally`.
    ///
    /// # Safety
    /// The GIL is held; `i < SLOTS`; `same` only reads the slot's object.
    #[inline]
    unsafe fn one_slot(
        self,
        i: usize,
        tally: &mut Tally,
        same: impl FnOnce(*mut PyObject) -> bool,
        make: impl FnOnce() -> *mut PyObject,
    ) -> Option<Owned> {
        // SAFETY: the GIL is held and `i` a slot (contract).
        unsafe {
            let hit = self.get(i);
            if same(hit) {
                tally.hits += 1;
                return Some(Owned::from_borrowed(std::ptr::NonNull::new_unchecked(hit)));
            }
            tally.misses += 1;
            let obj = Owned::from_owned(make())?;
            self.put(i, obj.as_ptr());
            Some(obj)
        }
    }
}

/// `s`, its hash cache set to `hash` when given and not yet set.
///
/// # Safety
/// The GIL is held; `s` is an exact `str`, `hash` its text's hash.
#[inline]
pub unsafe fn with_hash(s: Owned, hash: Option<Py_hash_t>) -> Owned {
    if let Some(h) = hash {
        // SAFETY: as this function's contract. Only a string no one else holds (not a
        // singleton CPython handed out) gets its cache written.
        unsafe {
            let ascii = s.as_ptr().cast::<pyo3_ffi::PyASCIIObject>();
            if (*ascii).hash == -1 && pyo3_ffi::Py_REFCNT(s.as_ptr()) == 1 {
                (*ascii).hash = h;
            }
        }
    }
    s
}
