//! Runs `examples/embed_core.rs`, a program built against the core's public API only (no
//! Python package, no PyO3), and checks what it computed.

#[path = "../examples/embed_core.rs"]
mod embed_core;

#[test]
fn the_core_only_program_runs_four_interpreters_in_parallel() {
    let results = embed_core::run_four();
    assert_eq!(results.len(), 4);
    for (k, &(id, sum)) in results.iter().enumerate() {
        let n = 1000 * (k as i64 + 1);
        assert!(id > 0, "a subinterpreter, not main");
        assert_eq!(sum, (0..n).map(|i| i * i).sum::<i64>());
    }
    let mut ids: Vec<i64> = results.iter().map(|r| r.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four distinct interpreters");
}
