//! Interning of the immutable scalars that cross: each receiving interpreter keeps the last
//! `str`, `int` and `float` objects that [`super::data`] rebuilt, in slots picked by their
//! value, and a value that crosses again is that object again, not a new one: no allocation
//! now and no freeing later. CPython does the same with its small ints, one-character strings
//! and interned names: equal immutable objects are interchangeable, and which of them a value
//! is, is no part of any type's contract. The records, JSON-like data and task arguments that
//! cross again and again (the same keys, labels, counters) then cost neither.
//!
//! Small tuples of those scalars (and `None`, `True`, `False`) are immutable values too, and
//! are interned by the identity of their items: a record `(id, name, score)` that crosses
//! again is the tuple made the first time, once its items were found interned.
//!
//! One list per interpreter, in its state dict (freed with it), made on first use: `None` or
//! an object in each slot, read and replaced under that interpreter's GIL. Memory is bounded
//! by the slots: [`STR_SLOTS`] strings of at most [`STR_MAX_BYTES`] bytes of text (two per
//! pair of slots that their text picks), [`INT_SLOTS`] one-digit ints, [`FLOAT_SLOTS`]
//! floats, [`TUPLE_SLOTS`] tuples of at most [`TUPLE_MAX_ITEMS`] such items; at most about
//! 1.5 MiB for the scalars' slots and 1.6 MiB more for the tuples' (with the items only they
//! hold), and only what crossed. Not on free-threaded builds, whose
//! threads of one interpreter run at once and could race on a slot.

use std::ffi::c_void;

use pyo3_ffi::{PyObject, Py_hash_t, Py_ssize_t};

use crate::runtime::pyutil;
use crate::runtime::xi::template;
use subinterp_rs::owned::Owned;

/// Slots per set: a value may be in any of the [`WAYS`] slots of the set its hash picks.
pub const WAYS: usize = 4;
/// A miss puts the new object first in its set (not last) once in this many: see
/// [`Interned::in_set`].
const FRONT_EVERY: u32 = 4;
/// String slots, in sets picked by the text.
pub const STR_SLOTS: usize = 8192;
/// Strings with more bytes of text than this are not interned.
pub const STR_MAX_BYTES: usize = 64;
/// Int slots: one per value modulo the count, for ints of one digit outside CPython's own
/// small-int range.
pub const INT_SLOTS: usize = 4096;
/// Float slots, in sets picked by the bits of the value.
pub const FLOAT_SLOTS: usize = 4096;
/// Tuple slots, in sets picked by the objects a tuple holds.
pub const TUPLE_SLOTS: usize = 4096;
/// Lists of more items than this have no template (see [`Interned::list_template`]).
pub const LIST_MAX_ITEMS: usize = 2048;
/// Tuples of more items than this are not interned.
pub const TUPLE_MAX_ITEMS: usize = 6;

const INT_BASE: usize = STR_SLOTS;
const FLOAT_BASE: usize = INT_BASE + INT_SLOTS;
const TUPLE_BASE: usize = FLOAT_BASE + FLOAT_SLOTS;
const TEMPLATE_BASE: usize = TUPLE_BASE + TUPLE_SLOTS;
const LIST_BASE: usize = TEMPLATE_BASE + template::SLOTS;
const SLOTS: usize = LIST_BASE + WAYS;

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

/// What picks the template set of a dict of `n` keys whose first key has hash `hash`.
#[inline]
fn template_pick(n: usize, hash: Py_hash_t) -> u64 {
    (hash as u64 ^ (n as u64).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The first slot (from a kind's base) of the set of `slots` slots that the well-mixed `hash`
/// picks: its high bits.
#[inline]
fn set_of(hash: u64, slots: usize) -> usize {
    (hash >> (64 - (slots / WAYS).trailing_zeros())) as usize * WAYS
}

/// Whether `obj` is a scalar that [`Interned`] keeps, or `None`, `True` or `False`: an
/// immutable object a tuple may be interned with.
///
/// # Safety
/// The GIL is held; `obj` is alive.
#[inline]
unsafe fn is_atom(obj: *mut PyObject) -> bool {
    // SAFETY: the GIL is held; each read is of the exact type compared.
    unsafe {
        let tp = pyo3_ffi::Py_TYPE(obj);
        if tp == &raw mut pyo3_ffi::PyUnicode_Type {
            let (kind, len, _) = str_parts(obj);
            return len * kind.width <= STR_MAX_BYTES;
        }
        if tp == &raw mut pyo3_ffi::PyLong_Type {
            return compact_int(obj).is_some();
        }
        tp == &raw mut pyo3_ffi::PyFloat_Type
            || obj == pyo3_ffi::Py_None()
            || obj == pyo3_ffi::Py_True()
            || obj == pyo3_ffi::Py_False()
    }
}

/// A new tuple of `items` (new references, all taken, also on failure). On `None` a Python
/// error is set.
///
/// # Safety
/// The GIL is held; each of `items` is a new reference.
unsafe fn new_tuple(items: &[*mut PyObject]) -> Option<Owned> {
    // SAFETY: the GIL is held; PyTuple_SET_ITEM steals each reference into a slot of the new
    // tuple; on failure each is dropped instead.
    unsafe {
        let Some(t) = Owned::from_owned(pyo3_ffi::PyTuple_New(items.len() as Py_ssize_t)) else {
            for &item in items {
                pyo3_ffi::Py_DECREF(item);
            }
            return None;
        };
        for (k, &item) in items.iter().enumerate() {
            pyo3_ffi::PyTuple_SET_ITEM(t.as_ptr(), k as Py_ssize_t, item);
        }
        Some(t)
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
pub fn same_bytes(left: &[u8], right: &[u8]) -> bool {
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
    pub fn worth_it(self) -> bool {
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
            self.in_set(
                set_of(h, STR_SLOTS),
                tally,
                |hit| {
                    pyo3_ffi::Py_TYPE(hit) == &raw mut pyo3_ffi::PyUnicode_Type && {
                        let (k, _, data) = str_parts(hit);
                        k == kind && same_bytes(data, b)
                    }
                },
                || Some(with_hash(new_str(kind, b)?, hash)),
            )
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
            self.in_set(
                FLOAT_BASE + set_of(bits.wrapping_mul(0x9E37_79B9_7F4A_7C15), FLOAT_SLOTS),
                tally,
                |hit| {
                    pyo3_ffi::Py_TYPE(hit) == &raw mut pyo3_ffi::PyFloat_Type
                        && pyo3_ffi::PyFloat_AS_DOUBLE(hit).to_bits() == bits
                },
                || Owned::from_owned(pyo3_ffi::PyFloat_FromDouble(x)),
            )
        }
    }

    /// A tuple of the `items` (new references, all taken: each is dropped or put in the
    /// tuple). One of [`TUPLE_MAX_ITEMS`] items at most, each an exact `str` of at most
    /// [`STR_MAX_BYTES`] bytes, a one-digit `int`, a `float`, `None`, `True` or `False`, is
    /// the interned tuple holding these very objects if there is one, else a new one,
    /// interned if `tally` finds it worth it. Items found interned are the same objects from
    /// one crossing to the next, so a tuple of them is found by their addresses: a hit holds
    /// the same objects, hence equal values. On `None` a Python error is set.
    ///
    /// # Safety
    /// The GIL is held; each of `items` is a new reference to a live object.
    pub unsafe fn tuple(self, items: &[*mut PyObject], tally: &mut Tally) -> Option<Owned> {
        // SAFETY: the GIL is held; the slot holds a tuple or `None`, read by its exact type;
        // each item reference is given to the new tuple or dropped, once.
        unsafe {
            let n = items.len();
            let mut pick: u64 = n as u64;
            let mut atomic = n <= TUPLE_MAX_ITEMS && tally.worth_it();
            for &item in items {
                if !atomic {
                    break;
                }
                atomic = is_atom(item);
                pick = (pick.rotate_left(5) ^ item as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
            }
            if !atomic {
                return new_tuple(items);
            }
            let mut made = false;
            let t = self.in_set(
                TUPLE_BASE + set_of(pick, TUPLE_SLOTS),
                tally,
                |hit| {
                    pyo3_ffi::Py_TYPE(hit) == &raw mut pyo3_ffi::PyTuple_Type
                        && pyo3_ffi::PyTuple_GET_SIZE(hit) == n as Py_ssize_t
                        && (0..n)
                            .all(|k| pyo3_ffi::PyTuple_GET_ITEM(hit, k as Py_ssize_t) == items[k])
                },
                || {
                    made = true;
                    let t = new_tuple(items)?;
                    // Only atoms inside: the cyclic collector has nothing to find through it,
                    // and it is kept for long (CPython untracks such a tuple at its next
                    // collection anyway).
                    pyo3_ffi::PyObject_GC_UnTrack(t.as_ptr().cast());
                    Some(t)
                },
            );
            if !made {
                // Found (the items are the tuple's already) or not made: ours go.
                for &item in items {
                    pyo3_ffi::Py_DECREF(item);
                }
            }
            t
        }
    }

    /// The interned template for a dict of `n` keys whose first key is the `str` of kind
    /// `kind`, code units `b` and hash `hash`, to follow as the other keys are read; `None`
    /// if there is none (or `tally` finds looking no longer worth it: then no template is
    /// made either).
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn template(
        self,
        n: usize,
        kind: Kind,
        b: &[u8],
        hash: Py_hash_t,
        tally: &Tally,
    ) -> Option<template::Guide> {
        if n == 0 || n > template::MAX_KEYS || !tally.worth_it() {
            return None;
        }
        let set = TEMPLATE_BASE + set_of(template_pick(n, hash), template::SLOTS);
        // SAFETY: the GIL is held; template slots hold templates or `None`, which
        // `Guide::new` tells apart.
        unsafe {
            for i in set..set + WAYS {
                if let Some(guide) = template::Guide::new(self.get(i), n) {
                    if guide.key(0, kind, b, hash).is_some() {
                        self.to_front(set, i);
                        return Some(guide);
                    }
                }
            }
        }
        None
    }

    /// Interns a template of the dict `d` of `n` items whose first key has hash `hash`, after
    /// [`Interned::template`] found none (counted as a miss in `tally`, as a followed template
    /// is counted a hit by [`Interned::template_used`]). On `None` a Python error is set.
    ///
    /// # Safety
    /// The GIL is held; `d` is an exact dict of `n` items, its keys exact `str`s.
    pub unsafe fn add_template(
        self,
        d: &Owned,
        n: usize,
        hash: Py_hash_t,
        tally: &mut Tally,
    ) -> Option<()> {
        if n == 0 || n > template::MAX_KEYS || !tally.worth_it() {
            return Some(());
        }
        tally.misses += 1;
        // SAFETY: the GIL is held (contract).
        unsafe {
            let t = template::of(d, n)?;
            self.insert(
                TEMPLATE_BASE + set_of(template_pick(n, hash), template::SLOTS),
                &t,
                tally,
            );
        }
        Some(())
    }

    /// The items of a list of `n` that crossed before (a tuple of them), whose first item
    /// `first` says is the first item of the list now read: the list now read is followed
    /// item by item against it, each item found equal taken as is. One set of [`WAYS`]
    /// slots, kept for lists of up to [`LIST_MAX_ITEMS`] items of the kinds interning keeps
    /// (scalars and small tuples of them: immutable, so one object may stand for each equal
    /// item); `None` if there is none (or `tally` finds looking no longer worth it).
    ///
    /// # Safety
    /// The GIL is held; `first` only reads the object it is given.
    pub unsafe fn list_template(
        self,
        n: usize,
        first: impl Fn(*mut PyObject) -> bool,
        tally: &Tally,
    ) -> Option<Owned> {
        if n == 0 || n > LIST_MAX_ITEMS || !tally.worth_it() {
            return None;
        }
        // SAFETY: the GIL is held; list template slots hold tuples or `None`.
        unsafe {
            for i in LIST_BASE..LIST_BASE + WAYS {
                let t = self.get(i);
                if pyo3_ffi::Py_TYPE(t) == &raw mut pyo3_ffi::PyTuple_Type
                    && pyo3_ffi::PyTuple_GET_SIZE(t) == n as Py_ssize_t
                    && first(pyo3_ffi::PyTuple_GET_ITEM(t, 0))
                {
                    self.to_front(LIST_BASE, i);
                    return Some(Owned::from_borrowed(std::ptr::NonNull::new_unchecked(t)));
                }
            }
        }
        None
    }

    /// Keeps the items of the list `l` (a tuple of them) for [`Interned::list_template`] if
    /// they all are of the kinds interning keeps and `tally` finds it worth it (counted as
    /// a miss). On `None` a Python error is set.
    ///
    /// # Safety
    /// The GIL is held; `l` is an exact list that nothing else holds yet.
    pub unsafe fn add_list_template(self, l: &Owned, tally: &mut Tally) -> Option<()> {
        // SAFETY: the GIL is held; `l`'s items are read by index below its size.
        unsafe {
            let n = pyo3_ffi::PyList_GET_SIZE(l.as_ptr());
            if n == 0 || n as usize > LIST_MAX_ITEMS || !tally.worth_it() {
                return Some(());
            }
            let keepable = (0..n).all(|i| {
                let item = pyo3_ffi::PyList_GET_ITEM(l.as_ptr(), i);
                is_atom(item)
                    || (pyo3_ffi::Py_TYPE(item) == &raw mut pyo3_ffi::PyTuple_Type
                        && pyo3_ffi::PyTuple_GET_SIZE(item) as usize <= TUPLE_MAX_ITEMS
                        && (0..pyo3_ffi::PyTuple_GET_SIZE(item))
                            .all(|j| is_atom(pyo3_ffi::PyTuple_GET_ITEM(item, j))))
            });
            if !keepable {
                return Some(());
            }
            tally.misses += 1;
            let t = Owned::from_owned(pyo3_ffi::PyList_AsTuple(l.as_ptr()))?;
            self.insert(LIST_BASE, &t, tally);
        }
        Some(())
    }

    /// Counts a template followed to the end in `tally`.
    pub fn template_used(tally: &mut Tally) {
        tally.hits += 1;
    }

    /// The object in the set of [`WAYS`] slots from `set` that `same` says is the one wanted,
    /// else a new one from `make` (on `None` a Python error is set), counted in `tally`.
    ///
    /// The set is kept most recently found first: one found moves to the front. A new one
    /// takes the first empty slot, else the last one goes and the new one is put last, or,
    /// every [`FRONT_EVERY`]th miss, first. Plain least-recently-used (new ones first) loses
    /// every object of a set that a value picks for more objects than the set holds, each
    /// time it crosses; putting new ones last keeps those that were found, and the few put
    /// first let new data displace what no longer crosses.
    ///
    /// # Safety
    /// The GIL is held; `set + WAYS <= SLOTS`; `same` only reads the slot's object.
    #[inline]
    unsafe fn in_set(
        self,
        set: usize,
        tally: &mut Tally,
        same: impl Fn(*mut PyObject) -> bool,
        make: impl FnOnce() -> Option<Owned>,
    ) -> Option<Owned> {
        // SAFETY: the GIL is held and the set's slots are in the list (contract); swapping two
        // slots moves their references without changing any count.
        unsafe {
            let mut empty = None;
            for i in set..set + WAYS {
                let hit = self.get(i);
                if same(hit) {
                    tally.hits += 1;
                    self.to_front(set, i);
                    return Some(Owned::from_borrowed(std::ptr::NonNull::new_unchecked(hit)));
                }
                if empty.is_none() && hit == pyo3_ffi::Py_None() {
                    empty = Some(i);
                }
            }
            tally.misses += 1;
            let obj = make()?;
            self.insert_at(set, empty, &obj, tally);
            Some(obj)
        }
    }

    /// Puts `obj` in the set from `set` after a miss: in its first empty slot, else in the
    /// last one (every [`FRONT_EVERY`]th miss of `tally` moved first).
    ///
    /// # Safety
    /// The GIL is held; `set + WAYS <= SLOTS`.
    unsafe fn insert(self, set: usize, obj: &Owned, tally: &Tally) {
        // SAFETY: as this function's contract.
        unsafe {
            let empty = (set..set + WAYS).find(|&i| self.get(i) == pyo3_ffi::Py_None());
            self.insert_at(set, empty, obj, tally);
        }
    }

    /// [`Interned::insert`] with the set's first empty slot known.
    ///
    /// # Safety
    /// As [`Interned::insert`]; `empty` is the set's first empty slot, if any.
    #[inline]
    unsafe fn insert_at(self, set: usize, empty: Option<usize>, obj: &Owned, tally: &Tally) {
        // SAFETY: as this function's contract.
        unsafe {
            let last = set + WAYS - 1;
            self.put(empty.unwrap_or(last), obj.as_ptr());
            if empty.is_none() && tally.misses % FRONT_EVERY == 0 {
                self.to_front(set, last);
            }
        }
    }

    /// Moves slot `i`'s object to slot `set`, and those of the slots in between one slot on.
    ///
    /// # Safety
    /// The GIL is held; `set <= i < SLOTS`.
    #[inline]
    unsafe fn to_front(self, set: usize, i: usize) {
        // SAFETY: the GIL is held and the slots are in the list (contract); moving references
        // between slots changes no count.
        unsafe {
            let moved = self.get(i);
            for k in (set..i).rev() {
                pyo3_ffi::PyList_SET_ITEM(self.slots, (k + 1) as Py_ssize_t, self.get(k));
            }
            pyo3_ffi::PyList_SET_ITEM(self.slots, set as Py_ssize_t, moved);
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
