//! Ordering rules of the Rust core (run with `cargo test`; links libpython).
//!
//! Python is initialised once and its GIL released, so every test starts on a thread that holds
//! no GIL, as a Rust thread calling into the core would.

use std::ffi::CString;
use std::sync::mpsc;
use std::sync::Once;
use std::thread;

use subinterp_rs::{
    Config, ConfigError, Error, Gil, ScopedActivate, ScopedSubinterpreter, Subinterpreter,
};

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // SAFETY: first and only initialisation; the GIL the main thread gets is released
        // at once so that other test threads can take it.
        unsafe {
            pyo3_ffi::Py_InitializeEx(0);
            pyo3_ffi::PyEval_SaveThread();
        }
    });
}

/// Runs `code` in the interpreter `scope` activates; returns whether it raised.
fn run(_scope: &ScopedActivate<'_>, code: &str) -> bool {
    let code = CString::new(code).unwrap();
    // SAFETY: the scope holds its interpreter's GIL on this thread.
    unsafe { pyo3_ffi::PyRun_SimpleString(code.as_ptr()) == 0 }
}

/// Ids of all interpreters alive, read under the main GIL.
fn live_ids() -> Vec<i64> {
    let main = Subinterpreter::main();
    let _scope = ScopedActivate::new(&main).unwrap();
    let mut ids = Vec::new();
    // SAFETY: main's GIL is held; walking the interpreter list.
    unsafe {
        let mut i = pyo3_ffi::PyInterpreterState_Head();
        while !i.is_null() {
            ids.push(pyo3_ffi::PyInterpreterState_GetID(i));
            i = pyo3_ffi::PyInterpreterState_Next(i);
        }
    }
    ids
}

#[test]
fn create_and_drop_on_the_same_thread() {
    init();
    let si = Subinterpreter::create_default().unwrap();
    let id = si.id();
    assert!(id > 0);
    assert!(si.is_owned());
    assert!(live_ids().contains(&id));
    drop(si);
    assert!(!live_ids().contains(&id));
}

#[test]
fn drop_on_another_thread() {
    init();
    let si = Subinterpreter::create_default().unwrap();
    let id = si.id();
    thread::spawn(move || {
        {
            let scope = ScopedActivate::new(&si).unwrap();
            assert!(run(&scope, "x = 6 * 7"));
        }
        drop(si);
    })
    .join()
    .unwrap();
    assert!(!live_ids().contains(&id));
}

#[test]
fn created_on_one_thread_closed_from_a_third_after_use_on_a_second() {
    init();
    let mut si = thread::spawn(Subinterpreter::create_default)
        .join()
        .unwrap()
        .unwrap();
    let si_ref = &si;
    thread::scope(|s| {
        s.spawn(|| {
            let scope = ScopedActivate::new(si_ref).unwrap();
            assert!(run(&scope, "import math; assert math.factorial(5) == 120"));
        });
    });
    si.try_close().unwrap();
    assert!(si.is_empty());
    assert_eq!(si.id(), -1);
}

#[test]
fn nested_activation_a_b_a_restores_each_level() {
    init();
    let a = Subinterpreter::create_default().unwrap();
    let b = Subinterpreter::create_default().unwrap();
    let sa = ScopedActivate::new(&a).unwrap();
    assert_eq!(Subinterpreter::current().id(), a.id());
    assert!(run(&sa, "marker = 'a'"));
    {
        let sb = ScopedActivate::new(&b).unwrap();
        assert_eq!(Subinterpreter::current().id(), b.id());
        assert!(run(&sb, "assert 'marker' not in globals()"));
        {
            let sa2 = ScopedActivate::new(&a).unwrap();
            assert_eq!(Subinterpreter::current().id(), a.id());
            // A fresh thread state, but the same interpreter and __main__.
            assert!(run(&sa2, "assert marker == 'a'"));
        }
        assert_eq!(Subinterpreter::current().id(), b.id());
    }
    assert_eq!(Subinterpreter::current().id(), a.id());
    drop(sa);
    assert_eq!(Subinterpreter::current().id(), -1);
}

#[test]
fn activating_the_current_interpreter_only_ensures_its_gil() {
    init();
    let si = Subinterpreter::create_default().unwrap();
    let outer = ScopedActivate::new(&si).unwrap();
    let before = attached_tstate();
    {
        let inner = ScopedActivate::new(&si).unwrap();
        assert_eq!(attached_tstate(), before);
        assert!(run(&inner, "y = 1"));
    }
    assert_eq!(attached_tstate(), before);
    assert!(run(&outer, "assert y == 1"));
}

/// The thread state attached to this thread (null if none).
fn attached_tstate() -> *mut pyo3_ffi::PyThreadState {
    // SAFETY: reads a thread-local slot; valid with or without a GIL.
    unsafe { pyo3_ffi::compat::PyThreadState_GetUnchecked() }
}

#[test]
fn main_and_current_do_not_own() {
    init();
    let mut main = Subinterpreter::main();
    assert_eq!(main.id(), 0);
    assert!(!main.is_owned());
    assert_eq!(main.try_close(), Err(Error::NotOwned));
    assert_eq!(
        Subinterpreter::current().id(),
        -1,
        "no GIL held: no current interpreter"
    );
    let si = Subinterpreter::create_default().unwrap();
    let _scope = ScopedActivate::new(&si).unwrap();
    let mut current = Subinterpreter::current();
    assert_eq!(current.id(), si.id());
    assert_eq!(current.try_close(), Err(Error::NotOwned));
}

#[test]
fn empty_handle() {
    init();
    let mut empty = Subinterpreter::default();
    assert_eq!(empty.id(), -1);
    assert!(empty.is_empty());
    assert!(matches!(ScopedActivate::new(&empty), Err(Error::Empty)));
    assert_eq!(empty.try_close(), Err(Error::Empty));
}

#[test]
fn disarm_leaks_on_purpose() {
    init();
    let mut si = Subinterpreter::create_default().unwrap();
    let id = si.id();
    si.disarm();
    assert!(!si.is_owned());
    assert_eq!(si.try_close(), Err(Error::NotOwned));
    drop(si);
    assert!(
        live_ids().contains(&id),
        "a disarmed handle must not destroy"
    );
}

#[test]
fn state_dict_needs_the_matching_scope() {
    init();
    let a = Subinterpreter::create_default().unwrap();
    let b = Subinterpreter::create_default().unwrap();
    let sa = ScopedActivate::new(&a).unwrap();
    assert!(a.state_dict(&sa).is_some());
    assert!(b.state_dict(&sa).is_none());
}

/// A thread of `si`'s: it activates `si` (flagging it running `__main__` if `running_main`),
/// detaches, keeping its thread state alive, and waits; returned once it waits, with the
/// sender that lets it go (it re-attaches, clears the flag and leaves) and its handle.
fn held_by_another_thread(
    si: &Subinterpreter,
    running_main: bool,
) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
    let (started_tx, started_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let si_ptr = si.as_ptr() as usize;
    let worker = thread::spawn(move || {
        // SAFETY: the interpreter outlives this thread (the caller joins it before closing).
        let view = unsafe { Subinterpreter::from_raw(si_ptr as *mut _) };
        let _scope = ScopedActivate::new(&view).unwrap();
        if running_main {
            // SAFETY: its GIL is held through the scope.
            assert!(unsafe { subinterp_rs::ffi_ext::set_running_main(view.as_ptr()) });
        }
        // SAFETY: detach (keeping the thread state alive) while waiting without the GIL;
        // re-attached right after, before the flag is cleared under the GIL.
        unsafe {
            let t = pyo3_ffi::PyEval_SaveThread();
            started_tx.send(()).unwrap();
            stop_rx.recv().unwrap();
            pyo3_ffi::PyEval_RestoreThread(t);
            if running_main {
                subinterp_rs::ffi_ext::set_not_running_main(view.as_ptr());
            }
        }
    });
    started_rx.recv().unwrap();
    (stop_tx, worker)
}

#[test]
fn close_while_running_in_another_thread_is_refused() {
    init();
    let mut si = Subinterpreter::create_default().unwrap();
    let (stop_tx, worker) = held_by_another_thread(&si, true);
    assert_eq!(si.try_close(), Err(Error::Running));
    assert!(!si.is_empty(), "a refused close leaves the handle usable");
    stop_tx.send(()).unwrap();
    worker.join().unwrap();
    si.try_close().unwrap();
}

#[test]
fn close_with_a_foreign_thread_state_is_refused() {
    init();
    let mut si = Subinterpreter::create_default().unwrap();
    let (stop_tx, worker) = held_by_another_thread(&si, false);
    assert_eq!(
        si.try_close(),
        Err(Error::ThreadsAlive {
            daemon: 0,
            foreign: 1
        })
    );
    stop_tx.send(()).unwrap();
    worker.join().unwrap();
    si.try_close().unwrap();
}

#[test]
fn close_with_a_daemon_thread_is_refused_and_joins_normal_threads() {
    init();
    let cfg = Config {
        allow_daemon_threads: true,
        ..Config::isolated()
    };
    let mut si = Subinterpreter::create(&cfg).unwrap();
    {
        let scope = ScopedActivate::new(&si).unwrap();
        assert!(run(
            &scope,
            "import threading, time\nstop = threading.Event()\n\
             t = threading.Thread(target=stop.wait, daemon=True)\nt.start()"
        ));
    }
    assert_eq!(
        si.try_close(),
        Err(Error::ThreadsAlive {
            daemon: 1,
            foreign: 0
        })
    );
    {
        let scope = ScopedActivate::new(&si).unwrap();
        assert!(run(&scope, "stop.set(); t.join()\n\
             done = []\nn = threading.Thread(target=lambda: (time.sleep(0.05), done.append(1)))\nn.start()"));
    }
    // A non-daemon thread still running is joined by Py_EndInterpreter, as in the stdlib.
    si.try_close().unwrap();
}

#[test]
fn invalid_config_is_refused_before_cpython() {
    init();
    let cfg = Config {
        use_main_obmalloc: true,
        ..Config::isolated()
    };
    assert_eq!(
        Subinterpreter::create(&cfg).unwrap_err(),
        Error::Config(ConfigError::OwnGilNeedsOwnObmalloc)
    );
}

#[test]
fn legacy_and_shared_gil_configs() {
    init();
    for cfg in [
        Config::legacy(),
        Config {
            gil: Gil::Shared,
            ..Config::isolated()
        },
    ] {
        let si = Subinterpreter::create(&cfg).unwrap();
        let scope = ScopedActivate::new(&si).unwrap();
        assert!(run(
            &scope,
            "import sys; assert sys.version_info >= (3, 12)"
        ));
    }
}

#[test]
fn scoped_subinterpreter_creates_activates_and_destroys() {
    init();
    let id = {
        let guard = ScopedSubinterpreter::new().unwrap();
        assert_eq!(Subinterpreter::current().id(), guard.interp().id());
        assert!(run(guard.scope(), "import json; json.dumps([1])"));
        assert!(guard.interp().state_dict(guard.scope()).is_some());
        guard.interp().id()
    };
    assert_eq!(Subinterpreter::current().id(), -1);
    assert!(!live_ids().contains(&id));
}

#[test]
fn create_while_holding_another_interpreters_gil() {
    init();
    let outer = Subinterpreter::create_default().unwrap();
    let scope = ScopedActivate::new(&outer).unwrap();
    let inner = Subinterpreter::create_default().unwrap();
    // The caller's thread state came back.
    assert_eq!(Subinterpreter::current().id(), outer.id());
    assert!(run(&scope, "z = 3"));
    drop(scope);
    drop(inner);
    drop(outer);
}

#[test]
fn concurrent_creation_and_destruction_from_many_threads() {
    init();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            thread::spawn(move || {
                for _ in 0..4 {
                    let si = Subinterpreter::create_default().unwrap();
                    let scope = ScopedActivate::new(&si).unwrap();
                    assert!(run(&scope, &format!("v = sum(range({i} * 1000))")));
                    drop(scope);
                    drop(si);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn create_with_runs_init_in_the_new_interpreter_before_returning() {
    init();
    let (si, (init_id, ran)) = Subinterpreter::create_with(&Config::isolated(), || {
        // SAFETY: create_with runs this under the new interpreter's creation thread state,
        // its GIL held.
        unsafe {
            let id = pyo3_ffi::PyInterpreterState_GetID(pyo3_ffi::PyInterpreterState_Get());
            let ran = pyo3_ffi::PyRun_SimpleString(c"import sys; sys.made_by_init = 42".as_ptr());
            (id, ran)
        }
    })
    .unwrap();
    assert_eq!(init_id, si.id(), "init ran in another interpreter");
    assert_eq!(ran, 0, "init's code raised");
    assert!(
        attached_tstate().is_null(),
        "the caller's (no) thread state is not back"
    );
    let scope = ScopedActivate::new(&si).unwrap();
    assert!(run(&scope, "import sys; assert sys.made_by_init == 42"));
    drop(scope);
    drop(si);
}

#[test]
fn create_with_from_a_main_thread_state_keeps_it_attached() {
    init();
    let main = Subinterpreter::main();
    let scope = ScopedActivate::new(&main).unwrap();
    let before = attached_tstate();
    let (si, in_new) = Subinterpreter::create_with(&Config::isolated(), || {
        // SAFETY: create_with runs this with the new interpreter's thread state attached.
        unsafe { pyo3_ffi::PyThreadState_GetInterpreter(pyo3_ffi::PyThreadState_Get()) }
    })
    .unwrap();
    assert_eq!(
        attached_tstate(),
        before,
        "the caller's thread state changed"
    );
    assert_eq!(in_new, si.as_ptr());
    assert!(run(&scope, "x = 1"));
    drop(scope);
    drop(si);
}

/// Many threads activating one interpreter at once: each activation creates a thread state
/// for it and deletes it on drop, so its last thread state is often deleted while another
/// thread creates one. CPython without the fix for gh-126914 (3.12.x, 3.13.0) hands the
/// second thread the interpreter's preallocated thread state while the first is still
/// resetting it, and aborts; `tstate::new` and the deletes take one lock so ours never do.
#[test]
fn activating_one_interpreter_from_many_threads_at_once() {
    init();
    // SUBINTERP_SOAK (the suite's soak switch) runs it 100 times longer.
    let rounds: usize = std::env::var("SUBINTERP_SOAK")
        .ok()
        .map_or(150_000, |_: String| 15_000_000);
    let si = Subinterpreter::create_default().unwrap();
    thread::scope(|s| {
        for t in 0..6 {
            let si = &si;
            s.spawn(move || {
                for i in 0..rounds {
                    let scope = ScopedActivate::new(si).unwrap();
                    if i % 500 == 0 {
                        assert!(run(&scope, &format!("last_{t} = {i}")));
                    }
                }
            });
        }
    });
    let scope = ScopedActivate::new(&si).unwrap();
    assert!(run(&scope, "assert last_0 == last_5 > 0"));
    drop(scope);
    drop(si);
}
