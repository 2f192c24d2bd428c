/* Dicts made from a template: a dict whose keys crossed in the same order before is made by
 * copying the keys table of a template dict (CPython's own PyDict_Copy of a compact table:
 * one allocation and a copy, no hashing, no probing) and storing the new values in its
 * entries, instead of inserting each item. The layout of a dict's keys table is CPython's
 * internal one (pycore_dict.h), compiled by build.rs against the headers of the Python the
 * extension is built for, never mirrored by hand; each function checks that a dict has the
 * shape it reads (a combined table of `str` keys, no deleted entries) and refuses any other.
 *
 * The caller holds the GIL of the interpreter the dicts belong to. Off (each function
 * refuses) on free-threaded builds, whose dicts are shared between threads without a GIL,
 * and where build.rs found that the internal headers do not compile
 * (SUBINTERP_NO_DICT_TEMPLATE). */
#define PY_SSIZE_T_CLEAN
#ifndef SUBINTERP_NO_DICT_TEMPLATE
/* The internal headers are CPython's own build's: they want its flag from the start. */
#define Py_BUILD_CORE 1
#endif
#include <Python.h>
#include <stddef.h>

#if defined(Py_GIL_DISABLED) || defined(SUBINTERP_NO_DICT_TEMPLATE)
#define TEMPLATES_OFF 1
#endif

#ifndef TEMPLATES_OFF
#include "internal/pycore_dict.h"

/* Whether `d` holds its `n` items in a combined table of `str` keys, in entries 0..n. */
static int plain(PyDictObject *d, Py_ssize_t n) {
    PyDictKeysObject *keys = d->ma_keys;
    return d->ma_values == NULL && keys->dk_kind == DICT_KEYS_UNICODE &&
           keys->dk_nentries == n && d->ma_used == n;
}

/* Whether `obj` is an exact dict of that shape. */
static int plain_dict(PyObject *obj, Py_ssize_t n) {
    return PyDict_CheckExact(obj) && plain((PyDictObject *)obj, n);
}
#endif

/* Where the entries of the exact dict `d` of `n` items are, when it is of the shape
 * templates have (else NULL): entry `i`'s key is the `PyObject *` at
 * `entries + i * subinterp_dict_entry_size + subinterp_dict_entry_key`. The caller keeps `d`
 * alive and unchanged while it reads them. */
#ifdef TEMPLATES_OFF
const size_t subinterp_dict_entry_size = 0;
const size_t subinterp_dict_entry_key = 0;
#else
const size_t subinterp_dict_entry_size = sizeof(PyDictUnicodeEntry);
const size_t subinterp_dict_entry_key = offsetof(PyDictUnicodeEntry, me_key);
#endif

const char *subinterp_dict_entries(PyObject *d, Py_ssize_t n) {
#ifdef TEMPLATES_OFF
    (void)d, (void)n;
    return NULL;
#else
    return plain_dict(d, n) ? (const char *)DK_UNICODE_ENTRIES(((PyDictObject *)d)->ma_keys)
                            : NULL;
#endif
}

#ifndef TEMPLATES_OFF
/* A copy of the dict `src` of `n` items, of the shape templates have, whose value `i` is
 * `values[i * step]` (borrowed), or None where `values` is NULL. NULL with an error set on
 * failure; NULL without one if the copy is not of that shape. */
static PyObject *copy_with_values(PyObject *src, Py_ssize_t n, PyObject *const *values,
                                  Py_ssize_t step) {
    PyObject *copy = PyDict_Copy(src);
    if (copy == NULL) {
        return NULL;
    }
    if (!plain((PyDictObject *)copy, n)) {
        Py_DECREF(copy);
        return NULL;
    }
    PyDictUnicodeEntry *entries = DK_UNICODE_ENTRIES(((PyDictObject *)copy)->ma_keys);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *old = entries[i].me_value;
        entries[i].me_value = Py_NewRef(values == NULL ? Py_None : values[i * step]);
        Py_XDECREF(old);
    }
    return copy;
}
#endif

/* A new dict with the keys of `tmpl` (which are `items[0], items[2], ...`: the caller
 * checked), in its order, and the values `items[1], items[3], ...` (borrowed). NULL with an
 * error set on failure; NULL without one if the copy is not of the shape expected (the
 * caller then makes the dict item by item). */
PyObject *subinterp_dict_from_template(PyObject *tmpl, PyObject *const *items, Py_ssize_t n) {
#ifdef TEMPLATES_OFF
    (void)tmpl, (void)items, (void)n;
    return NULL;
#else
    PyObject *copy = copy_with_values(tmpl, n, items + 1, 2);
    /* The template's values were None: its copy may be untracked, the new values may be
     * containers. */
    if (copy != NULL && !PyObject_GC_IsTracked(copy)) {
        PyObject_GC_Track(copy);
    }
    return copy;
#endif
}

/* A template of the exact dict `d` of `n` items: a copy whose values are all None (so that
 * it keeps no value alive), or NULL without an error if `d` is not of the shape templates
 * have; NULL with an error set on failure. */
PyObject *subinterp_dict_template(PyObject *d, Py_ssize_t n) {
#ifdef TEMPLATES_OFF
    (void)d, (void)n;
    return NULL;
#else
    return plain_dict(d, n) ? copy_with_values(d, n, NULL, 0) : NULL;
#endif
}
