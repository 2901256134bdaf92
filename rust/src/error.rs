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

/// A configuration that is not the JSON expected, named by `what`. The parser's excerpt of
/// the text around the error is left out: it cuts through values (a secret among them) at
/// arbitrary bytes, where redaction cannot recognise what is left.
pub fn config_json(what: &str, e: &sonic_rs::Error) -> Error {
    let text = e.to_string();
    let message = text.split('\n').next().unwrap_or_default();
    Error::Config(format!("{what}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_quote_no_excerpt_of_the_text() {
        let text = r#"{"rules":[{"name":"r","rate":"x"}],"bogus":"ghp_abcdefghijklmnop"}"#;
        let e = sonic_rs::from_str::<crate::sample::SamplePolicy>(text).unwrap_err();
        assert!(
            e.to_string().contains('\n'),
            "the parser adds an excerpt: {e}"
        );
        let message = config_json("sampling policy", &e).to_string();
        assert!(
            message.starts_with("sampling policy: invalid type"),
            "{message}"
        );
        assert!(message.contains("at line 1 column"), "{message}");
        assert!(
            !message.contains('\n') && !message.contains("ghp_"),
            "{message}"
        );
    }
}
