//! jemalloc as the process's allocator, with purging off: measured on the resident set, so
//! this test has a binary of its own (nothing else allocates or purges meanwhile).
use fixclf::memory::{release_free_memory, rss_mb};

#[test]
fn freed_pages_stay_until_purged() {
    // 1 GB touched and freed stays resident (no page faults when the next step asks for it
    // again); the purge hands it back. Alone in its test binary: a library test that trains
    // purges too (and others allocate), which made this flaky beside them.
    const MB: usize = 1 << 20;
    let before = rss_mb();
    let v = std::hint::black_box(vec![1u8; 1024 * MB]);
    let touched = rss_mb();
    assert!(touched - before > 900.0, "{before} -> {touched}");
    drop(std::hint::black_box(v));
    let freed = rss_mb();
    assert!(
        touched - freed < 100.0,
        "freed pages were purged: {touched} -> {freed}"
    );
    release_free_memory();
    let after = rss_mb();
    assert!(touched - after > 700.0, "{touched} -> {after}");
}
