/* Fields of a thread state that CPython declares in its public, non-limited header
 * (Include/cpython/pystate.h, `struct _ts`) but that no function returns. Compiled by
 * build.rs against the headers of the Python the extension is built for, so the layout read
 * is that version's (it changes between minor versions: never mirror it by hand).
 *
 * Callers hold the GIL of the interpreter that `t` belongs to, and `t` is not attached to a
 * running thread meanwhile (another thread of that interpreter cannot run Python while the
 * caller holds its GIL). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* `threading.get_ident()` of the thread that created `t` (the key of sys._current_frames()). */
unsigned long subinterp_tstate_thread_id(const PyThreadState *t) {
    return t->thread_id;
}

/* The exception `t` is handling (the innermost `except` block's, as sys.exception() would
 * return in that thread): borrowed, or NULL if none. The walk is CPython's
 * _PyErr_GetTopmostException. */
PyObject *subinterp_tstate_handled_exception(const PyThreadState *t) {
    for (const _PyErr_StackItem *item = t->exc_info; item != NULL; item = item->previous_item) {
        if (item->exc_value != NULL && item->exc_value != Py_None) {
            return item->exc_value;
        }
    }
    return NULL;
}
