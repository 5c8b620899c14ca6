//! Marks the threads that answer queries, so that code which must never run there (the
//! store's sled reads and writes, a zone's status mutex) can assert it does not.
//!
//! The UDP workers call [`enter`] once; [`assert_off`] panics in debug builds (tests, the
//! cluster tests' debug binary) when called on such a thread, and costs nothing in release.

use std::cell::Cell;

thread_local! {
    static ON_QUERY_PATH: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as a query-path thread for the rest of its life.
pub fn enter() {
    ON_QUERY_PATH.with(|flag| flag.set(true));
}

/// True on a thread marked by [`enter`].
pub fn is_on() -> bool {
    ON_QUERY_PATH.with(Cell::get)
}

/// Asserts (debug builds) that the calling thread is not answering queries: `what` names the
/// thing that must stay off the query path.
pub fn assert_off(what: &str) {
    debug_assert!(!is_on(), "{what} used on a query-path thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_the_thread_that_entered() {
        std::thread::spawn(|| {
            enter();
            assert!(is_on());
            let caught = std::panic::catch_unwind(|| assert_off("the store"));
            assert_eq!(caught.is_err(), cfg!(debug_assertions));
        })
        .join()
        .expect("thread");
        assert!(!is_on());
    }
}
