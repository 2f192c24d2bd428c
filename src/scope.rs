//! Thread-state swap guards: [`ScopedActivate`] and [`ScopedSubinterpreter`].
//!
//! They follow pybind11's `subinterpreter_scoped_activate` and `scoped_subinterpreter`: entering
//! makes the interpreter current on this OS thread with its GIL held, releasing whatever GIL the
//! thread held; dropping restores the previous thread state and its GIL exactly.

use std::marker::PhantomData;
use std::ptr::NonNull;

use pyo3_ffi::{PyGILState_STATE, PyInterpreterState, PyThreadState};

use crate::config::Config;
use crate::error::Error;
use crate::interp::Subinterpreter;
use crate::tstate;

/// What entering did, so that dropping undoes exactly that.
enum Entry {
    /// The interpreter was already current with this thread's GIL-state thread state:
    /// `PyGILState_Ensure` made sure its GIL is held.
    Ensured(PyGILState_STATE),
    /// The interpreter was already current through another thread state: its GIL is held,
    /// nothing to undo.
    AlreadyAttached,
    /// A new thread state was made current; `previous` (maybe null) was detached.
    Swapped {
        tstate: *mut PyThreadState,
        previous: *mut PyThreadState,
    },
}

/// Makes an interpreter current on this OS thread with its GIL held, for the guard's lifetime.
///
/// While the guard lives, raw C-API calls on this thread act in that interpreter. Guards nest
/// (A, then B, then A again); drop them in reverse order of creation, which Rust's scoping does
/// for guards held in local variables.
///
/// Borrowing the [`Subinterpreter`] makes closing it while the guard lives a compile error:
///
/// ```compile_fail
/// use subinterp_rs::{ScopedActivate, Subinterpreter};
/// let mut si = Subinterpreter::create_default().unwrap();
/// let scope = ScopedActivate::new(&si).unwrap();
/// si.try_close().unwrap(); // error[E0502]: `si` is borrowed by `scope`
/// drop(scope);
/// ```
///
/// The guard is bound to its OS thread (neither `Send` nor `Sync`):
///
/// ```compile_fail
/// use subinterp_rs::{ScopedActivate, Subinterpreter};
/// fn needs_send<T: Send>(_: T) {}
/// let si = Subinterpreter::create_default().unwrap();
/// needs_send(ScopedActivate::new(&si).unwrap());
/// ```
pub struct ScopedActivate<'a> {
    interp: NonNull<PyInterpreterState>,
    entry: Entry,
    _borrow: PhantomData<&'a Subinterpreter>,
    _thread_bound: PhantomData<*mut ()>,
}

impl<'a> ScopedActivate<'a> {
    /// Activates `si` on this thread. Works whether or not this thread holds a GIL: a GIL of
    /// another interpreter is released (its thread state detached) until the guard drops.
    /// If `si` is already current on this thread, the guard only makes sure its GIL is held.
    ///
    /// It blocks while another thread holds `si`'s GIL.
    ///
    /// # Errors
    /// [`Error::Empty`] for an empty handle.
    ///
    /// # Panics
    /// If CPython cannot allocate a thread state (`PyThreadState_New` fails: out of memory).
    pub fn new(si: &'a Subinterpreter) -> Result<Self, Error> {
        let interp = NonNull::new(si.as_ptr()).ok_or(Error::Empty)?;
        // SAFETY: `si` is non-empty and borrowed for 'a, so its interpreter outlives the guard;
        // `enter` accepts any attached thread state, or none.
        Ok(unsafe { Self::enter(interp) })
    }

    /// Activates a raw interpreter.
    ///
    /// # Safety
    /// `interp` must stay alive until the guard is dropped, on this thread.
    pub(crate) unsafe fn enter(interp: NonNull<PyInterpreterState>) -> Self {
        let current = tstate::attached();
        let entry = if !current.is_null()
            // SAFETY: `current` is attached to this thread, hence alive.
            && unsafe { pyo3_ffi::PyThreadState_GetInterpreter(current) } == interp.as_ptr()
        {
            // SAFETY: reads this thread's GIL-state slot; no GIL needed.
            if unsafe { pyo3_ffi::PyGILState_GetThisThreadState() } == current {
                // SAFETY: the GIL-state thread state is the attached one, so Ensure only
                // bumps its counter (it never switches interpreters here).
                Entry::Ensured(unsafe { pyo3_ffi::PyGILState_Ensure() })
            } else {
                Entry::AlreadyAttached
            }
        } else {
            // SAFETY: `interp` is alive (caller's contract). tstate::new needs no GIL.
            // We detach the previous thread state (releasing its GIL) before attaching the
            // new one, which is what PyThreadState_Swap does on 3.12+.
            unsafe {
                let new = tstate::new(interp.as_ptr());
                let previous = tstate::detach();
                tstate::reattach(new);
                Entry::Swapped {
                    tstate: new,
                    previous,
                }
            }
        };
        ScopedActivate {
            interp,
            entry,
            _borrow: PhantomData,
            _thread_bound: PhantomData,
        }
    }

    /// The active interpreter (alive while the guard lives).
    #[must_use]
    pub fn interp_ptr(&self) -> *mut PyInterpreterState {
        self.interp.as_ptr()
    }

    /// The active interpreter's id. Needs no more than the guard.
    #[must_use]
    pub fn id(&self) -> i64 {
        // SAFETY: the interpreter is alive while the guard lives; reads a field (no GIL needed).
        unsafe { pyo3_ffi::PyInterpreterState_GetID(self.interp.as_ptr()) }
    }
}

impl Drop for ScopedActivate<'_> {
    fn drop(&mut self) {
        match self.entry {
            // SAFETY: pairs the Ensure made on this thread (the guard is not Send).
            Entry::Ensured(state) => unsafe { pyo3_ffi::PyGILState_Release(state) },
            Entry::AlreadyAttached => {}
            // SAFETY: the guard's thread state is still attached on this thread (scopes nest
            // strictly: inner guards restored it when they dropped); deleting it releases the
            // interpreter's GIL, then the previous thread state gets its GIL back.
            Entry::Swapped { tstate, previous } => unsafe {
                tstate::delete_attached(tstate);
                tstate::reattach(previous);
            },
        }
    }
}

/// A new subinterpreter, active on this thread for the guard's lifetime, destroyed after.
///
/// The Rust twin of pybind11's `scoped_subinterpreter`. Bound to its OS thread like
/// [`ScopedActivate`]. Dropping it deactivates, then destroys (leaking the interpreter with a
/// message on stderr if that would abort, as [`Subinterpreter`]'s drop does).
pub struct ScopedSubinterpreter {
    // Field order is drop order: deactivate first, then destroy.
    scope: ScopedActivate<'static>,
    si: Subinterpreter,
}

impl ScopedSubinterpreter {
    /// Creates an isolated interpreter and activates it, whatever GIL the caller holds.
    ///
    /// # Errors
    /// As [`Subinterpreter::create`].
    ///
    /// # Panics
    /// As [`ScopedActivate::new`].
    pub fn new() -> Result<Self, Error> {
        Self::with_config(&Config::isolated())
    }

    /// Creates an interpreter from `config` and activates it, whatever GIL the caller holds.
    ///
    /// # Errors
    /// As [`Subinterpreter::create`].
    ///
    /// # Panics
    /// As [`ScopedActivate::new`].
    pub fn with_config(config: &Config) -> Result<Self, Error> {
        let si = Subinterpreter::create(config)?;
        let interp = NonNull::new(si.as_ptr()).ok_or(Error::Empty)?;
        // SAFETY: `si` is stored beside the guard and dropped after it (field order), so the
        // interpreter outlives the 'static the guard claims; neither leaves this struct.
        // `create` gave this thread its thread state back, which `enter` accepts, any or none.
        let scope = unsafe { ScopedActivate::enter(interp) };
        Ok(ScopedSubinterpreter { scope, si })
    }

    /// The interpreter (non-owning view; the guard keeps ownership).
    #[must_use]
    pub fn interp(&self) -> &Subinterpreter {
        &self.si
    }

    /// The activation, the proof needed by [`Subinterpreter::state_dict`].
    #[must_use]
    pub fn scope(&self) -> &ScopedActivate<'static> {
        &self.scope
    }
}
