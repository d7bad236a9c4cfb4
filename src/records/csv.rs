//! CSV fields as RFC 4180 writes them, for every export of history (`query`, the read API).

use std::borrow::Cow;

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
pub fn field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(field("iotitan/a/t"), "iotitan/a/t");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert!(matches!(field("plain"), Cow::Borrowed(_)));
    }
}
