//! Positions in the revocation feed and the audit log.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A position in a store's revocation feed or audit log.
///
/// Opaque to callers: hand back a cursor you were given to resume after it.
/// Every store writes its cursors as fixed-width decimal text, so within one
/// store a later entry always has a cursor that compares greater (the
/// derived `Ord` is that store's order). Cursors of different stores must
/// not be mixed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps text received from a client (for example `?after=`).
    ///
    /// The text is checked by the store that reads it; a malformed cursor
    /// is reported there as an invalid-cursor error.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The cursor as text, for a response body or a query string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
