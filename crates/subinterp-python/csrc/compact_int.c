/* Where an `int` keeps its value, so that the value of a one-digit ("compact") int can be read
 * inline, as CPython's own static inline PyUnstable_Long_IsCompact/CompactValue (3.12+) read
 * it. The layout (the offset and bit fields of `lv_tag`, the digit's offset and size) belongs
 * to each minor version and build: these constants are compiled by build.rs against the
 * headers of the Python the extension is built for, never mirrored by hand. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

/* Offset of `lv_tag` (number of digits << NON_SIZE_BITS | sign bits) in an int. */
const size_t subinterp_long_tag_offset = offsetof(PyLongObject, long_value.lv_tag);
/* Offset of the first digit. */
const size_t subinterp_long_digit_offset = offsetof(PyLongObject, long_value.ob_digit);
/* Bytes per digit (4 with 30-bit digits, 2 with 15-bit ones). */
const size_t subinterp_long_digit_size = sizeof(digit);
/* Low bits of `lv_tag` that are not the digit count. */
const size_t subinterp_long_non_size_bits = _PyLong_NON_SIZE_BITS;
/* The sign bits: 0 positive, 1 zero, 2 negative. */
const size_t subinterp_long_sign_mask = _PyLong_SIGN_MASK;
