//! [`CancelToken`]: the one way long work is asked to stop — a separation (checked between
//! chunks), a training run (checked after each optimizer step, which then saves a checkpoint)
//! and a download (checked between reads; the part files stay for a resume).
//!
//! A leaf module: it imports nothing from the crate, so every room can use it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared cancel flag. Clones share one flag: cancelling any clone cancels them all. Once
/// cancelled it stays cancelled.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Requests cancellation; the work stops at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_flag_and_it_stays_set() {
        let a = CancelToken::new();
        let b = a.clone();
        let other = CancelToken::new();
        assert!(!a.is_cancelled() && !b.is_cancelled());
        b.cancel();
        assert!(a.is_cancelled() && b.is_cancelled());
        assert!(!other.is_cancelled(), "a new token has its own flag");
        a.cancel();
        assert!(a.is_cancelled());
    }
}
