//! Stopping the work of a request nobody waits for any more. An adapter runs a tool on the
//! blocking pool with a `Cancel` whose guard (`CancelOnDrop`) lives in the request's future: when
//! the client goes away or the request's time runs out, the server drops that future, the guard
//! sets the flag, and the long loops (anomaly judging, the executions scan) stop at their next
//! check with `Error::Cancelled`. Work that is not checked is bounded by the window limits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Whether the request being served is still wanted. The default is never cancelled (the CLI,
/// tests, background work).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Option<Arc<AtomicBool>>);

/// Cancels its `Cancel` when dropped (see the module doc).
#[derive(Debug)]
pub struct CancelOnDrop(Arc<AtomicBool>);

impl Cancel {
    /// A flag and the guard that sets it when dropped.
    pub fn new() -> (Cancel, CancelOnDrop) {
        let flag = Arc::new(AtomicBool::new(false));
        (Cancel(Some(flag.clone())), CancelOnDrop(flag))
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// `Err(Error::Cancelled)` once the request is no longer wanted.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_guard_cancels_and_the_default_never_does() {
        let (c, guard) = Cancel::new();
        let copy = c.clone();
        assert!(c.check().is_ok());
        drop(guard);
        assert!(matches!(copy.check(), Err(Error::Cancelled)));
        assert!(Cancel::default().check().is_ok());
    }
}
