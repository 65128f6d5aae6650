//! The web kit (src/web): login through the test IdP (tests/idp) over
//! plain HTTP and in a real headless chromium (tests/browser), and the
//! attacks on it.

mod attack;
pub mod authorize;
mod authorize_agent;
mod authorize_confidential;
pub mod browser;
mod consents;
mod console;
pub mod fixture;
mod login;
