//! One error and its causes as one log field.

use std::error::Error;
use std::fmt;

/// Displays an error and each of its sources once, `: `-separated. A source whose text the
/// line already ends with (an error that prints its own cause) is skipped, so no cause is
/// repeated; `None` and `Some(..)` wrappers never appear.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous = self.0.to_string();
        f.write_str(&previous)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            let text = err.to_string();
            if !text.is_empty() && !previous.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            previous = text;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("store unavailable")]
        Plain(#[source] Inner),
        #[error("store unavailable: {0}")]
        Repeating(#[source] Inner),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Inner;

    #[test]
    fn each_cause_is_printed_once() {
        assert_eq!(
            Chain(&Outer::Plain(Inner)).to_string(),
            "store unavailable: connection refused"
        );
        assert_eq!(
            Chain(&Outer::Repeating(Inner)).to_string(),
            "store unavailable: connection refused"
        );
        assert_eq!(Chain(&Inner).to_string(), "connection refused");
    }
}
