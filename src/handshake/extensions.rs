//! RFC 6455 §9.1 Negotiating Extensions: the grammar of |Sec-WebSocket-Extensions|.
//!
//! ```text
//! Sec-WebSocket-Extensions = extension-list
//! extension-list = 1#extension
//! extension = extension-token *( ";" extension-param )
//! extension-token = registered-token
//! registered-token = token
//! extension-param = token [ "=" (token | quoted-string) ]
//!     ;When using the quoted-string syntax variant, the value
//!     ;after quoted-string unescaping MUST conform to the
//!     ;'token' ABNF.
//! ```
//!
//! §9.1: "If a value is received by either the client or the server during negotiation that
//! does not conform to the ABNF below, the recipient of such malformed data MUST immediately
//! _Fail the WebSocket Connection_." A server does that during the opening handshake by
//! refusing it (400). What the offers mean is each extension's business (`crate::deflate`).

use std::borrow::Cow;

/// One extension in a |Sec-WebSocket-Extensions| list, with its parameters in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension<'h> {
    /// The extension-token, e.g. `permessage-deflate`.
    pub name: &'h str,
    /// Each extension-param: its name and its value, if it has one (quoted-string values
    /// unescaped).
    pub params: Vec<(&'h str, Option<Cow<'h, str>>)>,
}

/// A header value that does not follow §9.1's ABNF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedExtensions;

/// Parses every extension of every `Sec-WebSocket-Extensions` line (a list may be split over
/// several lines, RFC 7230 §3.2.2), in order. Empty list elements are skipped, as the `#` rule
/// allows.
pub fn parse_extensions<'h>(
    lines: impl IntoIterator<Item = &'h [u8]>,
) -> Result<Vec<Extension<'h>>, MalformedExtensions> {
    let mut extensions = Vec::new();
    for line in lines {
        let line = std::str::from_utf8(line).map_err(|_| MalformedExtensions)?;
        let mut rest = line;
        loop {
            rest = skip_spaces(rest);
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
                continue;
            }
            let (extension, after) = parse_extension(rest)?;
            extensions.push(extension);
            rest = skip_spaces(after);
            match rest.strip_prefix(',') {
                Some(after) => rest = after,
                None if rest.is_empty() => break,
                None => return Err(MalformedExtensions),
            }
        }
    }
    Ok(extensions)
}

/// `extension = extension-token *( ";" extension-param )`, up to the next `,` or the end.
fn parse_extension(input: &str) -> Result<(Extension<'_>, &str), MalformedExtensions> {
    let (name, mut rest) = take_token(input)?;
    let mut params = Vec::new();
    loop {
        rest = skip_spaces(rest);
        let Some(after) = rest.strip_prefix(';') else { break };
        let (param, after) = take_token(skip_spaces(after))?;
        rest = skip_spaces(after);
        let value = match rest.strip_prefix('=') {
            Some(after) => {
                let after = skip_spaces(after);
                let (value, after) = if after.starts_with('"') {
                    take_quoted(after)?
                } else {
                    let (token, after) = take_token(after)?;
                    (Cow::Borrowed(token), after)
                };
                rest = after;
                Some(value)
            }
            None => None,
        };
        params.push((param, value));
    }
    Ok((Extension { name, params }, rest))
}

/// RFC 7230 §3.2.6: `token = 1*tchar`.
fn take_token(input: &str) -> Result<(&str, &str), MalformedExtensions> {
    let end = input.bytes().position(|b| !is_tchar(b)).unwrap_or(input.len());
    if end == 0 {
        return Err(MalformedExtensions);
    }
    Ok(input.split_at(end))
}

/// `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE`, unescaped; §9.1: the value
/// "after quoted-string unescaping MUST conform to the 'token' ABNF".
fn take_quoted(input: &str) -> Result<(Cow<'_, str>, &str), MalformedExtensions> {
    let body = &input[1..];
    let mut value = String::new();
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match (escaped, c) {
            (true, c) => {
                value.push(c);
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, '"') => {
                if value.is_empty() || !value.bytes().all(is_tchar) {
                    return Err(MalformedExtensions);
                }
                return Ok((Cow::Owned(value), &body[i + 1..]));
            }
            (false, c) => value.push(c),
        }
    }
    Err(MalformedExtensions)
}

fn skip_spaces(input: &str) -> &str {
    input.trim_start_matches([' ', '\t'])
}

/// RFC 7230 §3.2.6: `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
/// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Vec<Extension<'static>>, MalformedExtensions> {
        let lines: Vec<&'static [u8]> =
            lines.iter().map(|l| &*Box::leak(l.as_bytes().to_vec().into_boxed_slice())).collect();
        parse_extensions(lines)
    }

    fn names(extensions: &[Extension<'_>]) -> Vec<String> {
        extensions
            .iter()
            .map(|e| {
                let params: Vec<String> = e
                    .params
                    .iter()
                    .map(|(n, v)| match v {
                        Some(v) => format!("{n}={v}"),
                        None => n.to_string(),
                    })
                    .collect();
                [e.name.to_string()].into_iter().chain(params).collect::<Vec<_>>().join(";")
            })
            .collect()
    }

    /// RFC 7692 §5.1's own examples of offers, and the ABNF's corners.
    #[test]
    fn offers_parse_as_the_abnf_says() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["permessage-deflate"], &["permessage-deflate"]),
            (
                &["permessage-deflate; client_max_window_bits"],
                &["permessage-deflate;client_max_window_bits"],
            ),
            (
                &["permessage-deflate; client_max_window_bits; server_max_window_bits=10"],
                &["permessage-deflate;client_max_window_bits;server_max_window_bits=10"],
            ),
            (
                &["permessage-deflate; server_max_window_bits=10, permessage-deflate"],
                &["permessage-deflate;server_max_window_bits=10", "permessage-deflate"],
            ),
            // Quoted values are unescaped; spaces around separators are allowed.
            (
                &["permessage-deflate ;server_max_window_bits = \"1\\0\" , foo"],
                &["permessage-deflate;server_max_window_bits=10", "foo"],
            ),
            // A list over several lines, and empty elements.
            (&["a, , b", "c; x"], &["a", "b", "c;x"]),
            (&[""], &[]),
        ];
        for (lines, expected) in cases {
            assert_eq!(names(&parse(lines).unwrap()), *expected, "{lines:?}");
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        for line in [
            "permessage-deflate;",
            "permessage-deflate; =10",
            "permessage-deflate; x=",
            "permessage-deflate; x=\"\"",
            "permessage-deflate; x=\"a b\"",
            "permessage-deflate; x=\"unterminated",
            "permessage-deflate x",
            "perm@ssage",
            "a;b=c=d",
            ";a",
            "a, b c",
        ] {
            assert_eq!(parse(&[line]), Err(MalformedExtensions), "{line:?}");
        }
        assert_eq!(parse_extensions([&b"a\xff"[..]]), Err(MalformedExtensions));
    }
}
