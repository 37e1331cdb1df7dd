//! WebSocket URIs (RFC 6455 §3):
//!
//! ```text
//! ws-URI = "ws:" "//" host [ ":" port ] path [ "?" query ]
//! wss-URI = "wss:" "//" host [ ":" port ] path [ "?" query ]
//! ```
//!
//! "The port component is OPTIONAL; the default for "ws" is port 80, while the default for
//! "wss" is port 443." "Fragment identifiers are meaningless in the context of WebSocket URIs
//! and MUST NOT be used on these URIs." Hosts are names, IPv4 addresses or IPv6 literals in
//! brackets (RFC 3986 §3.2.2); anything else is an error, never a panic.

use std::fmt;
use std::net::Ipv6Addr;

/// A parsed `ws://` or `wss://` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `wss`: the connection runs over TLS (§3: "the "wss" scheme ... the secure flag").
    pub secure: bool,
    /// The host as it is looked up: a name, an IPv4 address, or an IPv6 address without its
    /// brackets.
    pub host: String,
    /// The port, or the scheme's default.
    pub port: u16,
    /// The /resource name/ (§3): the path (`/` when empty) and the query, if any.
    pub resource: String,
}

/// Why a string is not a WebSocket URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is not `ws` or `wss` (or there is no `://`).
    Scheme,
    /// §3: "Fragment identifiers ... MUST NOT be used on these URIs."
    Fragment,
    /// User information (`user@`) has no meaning for a WebSocket.
    UserInfo,
    /// An empty host, a character a host cannot have, or a bad IPv6 literal.
    Host,
    /// A port that is not a number from 1 to 65535.
    Port,
    /// A space or control character in the path or query.
    Resource,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::Scheme => "not a ws:// or wss:// URI",
            UrlError::Fragment => "a WebSocket URI has no #fragment (RFC 6455 §3)",
            UrlError::UserInfo => "a WebSocket URI has no user@ part",
            UrlError::Host => "invalid host",
            UrlError::Port => "invalid port (1-65535)",
            UrlError::Resource => "space or control character in the path",
        })
    }
}

impl std::error::Error for UrlError {}

impl Url {
    /// Parses `ws://host[:port][/path][?query]` (or `wss://`); the scheme is case-insensitive.
    pub fn parse(text: &str) -> Result<Url, UrlError> {
        let (scheme, rest) = text.split_once("://").ok_or(UrlError::Scheme)?;
        let secure = if scheme.eq_ignore_ascii_case("ws") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") {
            true
        } else {
            return Err(UrlError::Scheme);
        };
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(split);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = if let Some(literal) = authority.strip_prefix('[') {
            let (address, after) = literal.split_once(']').ok_or(UrlError::Host)?;
            address.parse::<Ipv6Addr>().map_err(|_| UrlError::Host)?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(UrlError::Host)?),
            };
            (address, port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let name_char = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
        let is_literal = authority.starts_with('[');
        if host.is_empty() || (!is_literal && !host.chars().all(name_char)) {
            return Err(UrlError::Host);
        }
        let port = match port {
            None => {
                if secure {
                    443
                } else {
                    80
                }
            }
            Some(digits) => {
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(UrlError::Port);
                }
                digits.parse::<u16>().ok().filter(|&p| p != 0).ok_or(UrlError::Port)?
            }
        };
        if resource.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(UrlError::Resource);
        }
        let resource = match resource.strip_prefix('?') {
            Some(_) => format!("/{resource}"),
            None if resource.is_empty() => "/".to_owned(),
            None => resource.to_owned(),
        };
        let resource = percent_encode_non_ascii(&resource);
        Ok(Url { secure, host: host.to_owned(), port, resource })
    }

    /// The value of the |Host| header (§4.1 item 4: "the host name ... followed by ":"
    /// and the port number if a non-default port is used"): IPv6 literals in brackets.
    pub fn host_header(&self) -> String {
        let host =
            if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.secure { 443 } else { 80 };
        if self.port == default { host } else { format!("{host}:{}", self.port) }
    }

    /// The `Origin` a page served from the same host would send (`http://host[:port]`), for
    /// servers that check it.
    pub fn same_origin(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}", self.host_header())
    }
}

/// §11.1.1: "Characters in other components that are excluded by the syntax defined above MUST
/// be converted from Unicode to ASCII by first encoding the characters as UTF-8 and then
/// replacing the corresponding bytes using their percent-encoded form as defined in the URI
/// [RFC3986] and Internationalized Resource Identifier (IRI) [RFC3987] specifications."
fn percent_encode_non_ascii(resource: &str) -> String {
    let mut out = String::with_capacity(resource.len());
    for c in resource.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.resource)
    }
}

impl std::str::FromStr for Url {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Url, UrlError> {
        Url::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(secure: bool, host: &str, port: u16, resource: &str) -> Url {
        Url { secure, host: host.into(), port, resource: resource.into() }
    }

    #[test]
    fn uris_parse_as_section_3_says() {
        for (text, expected, host_header) in [
            ("ws://example.com", url(false, "example.com", 80, "/"), "example.com"),
            ("WS://example.com/", url(false, "example.com", 80, "/"), "example.com"),
            ("wss://example.com/chat", url(true, "example.com", 443, "/chat"), "example.com"),
            ("ws://127.0.0.1:9001", url(false, "127.0.0.1", 9001, "/"), "127.0.0.1:9001"),
            // §11.1.1: non-ASCII in the path and query, as UTF-8 percent-encoded.
            ("ws://h/ü?q=é", url(false, "h", 80, "/%C3%BC?q=%C3%A9"), "h"),
            ("ws://h:80/a?b=c&d", url(false, "h", 80, "/a?b=c&d"), "h"),
            ("ws://h?x=1", url(false, "h", 80, "/?x=1"), "h"),
            ("ws://[::1]:8080/x", url(false, "::1", 8080, "/x"), "[::1]:8080"),
            ("wss://[2001:db8::7]", url(true, "2001:db8::7", 443, "/"), "[2001:db8::7]"),
            (
                "ws://my-host.local:1/%7Euser",
                url(false, "my-host.local", 1, "/%7Euser"),
                "my-host.local:1",
            ),
        ] {
            let parsed = Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.host_header(), host_header, "{text}");
        }
        assert_eq!(Url::parse("ws://[::1]:9/a?b").unwrap().to_string(), "ws://[::1]:9/a?b");
        assert_eq!(Url::parse("ws://h:81").unwrap().same_origin(), "http://h:81");
    }

    #[test]
    fn bad_uris_are_errors() {
        for (text, error) in [
            ("http://example.com", UrlError::Scheme),
            ("example.com", UrlError::Scheme),
            ("ws:/example.com", UrlError::Scheme),
            ("ws://example.com/#frag", UrlError::Fragment),
            ("ws://user@example.com", UrlError::UserInfo),
            ("ws://", UrlError::Host),
            ("ws://:80", UrlError::Host),
            ("ws://exa mple.com", UrlError::Host),
            // A Unicode host would need IDNA (§11.1.1, RFC 3987), which this parser does not
            // do: give it in its xn-- form.
            ("ws://bücher.example/", UrlError::Host),
            ("ws://[::1", UrlError::Host),
            ("ws://[::g]", UrlError::Host),
            ("ws://[::1]x", UrlError::Host),
            ("ws://::1", UrlError::Host),
            ("ws://h:", UrlError::Port),
            ("ws://h:0", UrlError::Port),
            ("ws://h:65536", UrlError::Port),
            ("ws://h:+80", UrlError::Port),
            ("ws://h:8a", UrlError::Port),
            ("ws://h/a b", UrlError::Resource),
            ("ws://h/a\nb", UrlError::Resource),
        ] {
            assert_eq!(Url::parse(text), Err(error), "{text}");
        }
    }

    proptest::proptest! {
        /// Any string is a URI or an error, never a panic; a URI prints back to itself.
        #[test]
        fn any_string_parses_or_fails(text in "(ws|wss|http)://[a-z0-9:\\[\\]@/?#. -]{0,30}") {
            if let Ok(parsed) = Url::parse(&text) {
                proptest::prop_assert_eq!(Url::parse(&parsed.to_string()), Ok(parsed));
            }
        }
    }
}
