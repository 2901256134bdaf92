//! The one error type of the engine. The binding layer maps each variant to a Python class.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// A configuration value is wrong; the message names the key.
    #[error("{0}")]
    Config(String),
    /// Input that cannot be decoded at all (as opposed to a bad record, which is dead-lettered).
    #[error("{0}")]
    Decode(String),
    /// An audit chain was used after it was finished, or its state is inconsistent.
    #[error("{0}")]
    Audit(String),
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
}

pub type Result<T> = std::result::Result<T, Error>;
