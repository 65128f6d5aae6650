//! The one error type of the storage layer.

/// Why a store operation failed.
///
/// Messages name keys and ids only, never token or key material.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time. Nothing
    /// was acknowledged; the caller may retry. The server answers 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database itself is damaged or in a format this build cannot read.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// A stored record could not be decoded into its type.
    #[error("stored record could not be decoded: {0}")]
    Decode(String),
    /// A cursor given by the caller is not one this store hands out.
    #[error("invalid cursor: {0:?}")]
    InvalidCursor(String),
    /// The write would take a record past one of the store's bounds (for
    /// example a person's most explicit roles); nothing was written. The
    /// server answers 400 `invalid_request` with this message.
    #[error("store limit: {0}")]
    Limit(String),
    /// Reading or writing local files failed.
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The backend refused the operation for another reason (a server
    /// error reply, a lock held by another process, a failed worker task).
    #[error("store backend error: {0}")]
    Backend(String),
}
