//! The one source of the current time, for the issuer and the verifier
//! (the token core never reads it: the time is an argument).

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// The source of the current time. Any `Fn() -> DateTime<Utc>` is one (a
/// test clock is a closure over a settable time).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

impl<F: Fn() -> DateTime<Utc> + Send + Sync> Clock for F {
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// A clock shared by the parts that read it (`AppState::clock`, the
/// verifier's `clock` setting).
pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place Tessera reads the wall clock
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
