//! RFC 6455 §7.4 Status Codes, and the body of a Close frame (§5.5.1).
//!
//! > "If there is a body, the first two bytes of the body MUST be a 2-byte unsigned integer (in
//! > network byte order) representing a status code with value /code/ defined in Section 7.4.
//! > Following the 2-byte integer, the body MAY contain UTF-8-encoded data with value /reason/"

use crate::error::ProtocolError;
use std::fmt;

/// A close status code (§7.4). A plain number: any `u16` can be carried, and
/// [`CloseCode::is_valid_on_wire`] says whether a peer may send it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: "normal closure, meaning that the purpose for which the connection was established
    /// has been fulfilled."
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: "an endpoint is "going away", such as a server going down".
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: "an endpoint is terminating the connection due to a protocol error."
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: "it has received a type of data it cannot accept".
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reserved; "MUST NOT be set as a status code in a Close control frame by an
    /// endpoint": it stands for "no status code was present".
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reserved; "the connection was closed abnormally, e.g., without sending or receiving
    /// a Close control frame". Never on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: "data within a message that was not consistent with the type of the message (e.g.,
    /// non-UTF-8 \[RFC3629\] data within a text message)."
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: "a message that violates its policy."
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: "a message that is too big for it to process."
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: "an unexpected condition that prevented it from fulfilling the request."
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1013 (IANA registry, after RFC 6455): try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Whether a peer may put this code in a Close frame.
    ///
    /// §7.4.1 defines 1000–1003 and 1007–1011 for use on the wire; 1004 is reserved, and 1005,
    /// 1006 and 1015 "MUST NOT be set as a status code in a Close control frame by an
    /// endpoint". IANA has since registered 1012–1014. §7.4.2: 0–999 are "not used",
    /// 1000–2999 are "reserved for definition by this protocol" (so the rest of that range is
    /// undefined), 3000–3999 are for libraries and frameworks, 4000–4999 for private use.
    /// Nothing above 4999 is defined.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The body of a Close frame a peer sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseBody<'a> {
    /// The status code, or `None` for an empty body (reported as 1005 by convention).
    pub code: Option<CloseCode>,
    /// The UTF-8 reason after the code; empty when there is none.
    pub reason: &'a str,
}

/// Parses and validates a Close frame's (unmasked) payload.
pub fn parse_close_body(payload: &[u8]) -> Result<CloseBody<'_>, ProtocolError> {
    match payload {
        [] => Ok(CloseBody { code: None, reason: "" }),
        // §5.5.1: the body, if present, starts with a 2-byte code.
        [_] => Err(ProtocolError::CloseBodyTooShort),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(CloseBody { code: Some(code), reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn invalid_codes() {
        for code in [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
            let body = code.to_be_bytes();
            assert_eq!(parse_close_body(&body), Err(ProtocolError::InvalidCloseCode(code)));
        }
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_close_body(b""), Ok(CloseBody { code: None, reason: "" }));
        assert_eq!(parse_close_body(b"\x03"), Err(ProtocolError::CloseBodyTooShort));
        assert_eq!(
            parse_close_body(b"\x03\xe8bye"),
            Ok(CloseBody { code: Some(CloseCode::NORMAL), reason: "bye" })
        );
        assert_eq!(parse_close_body(b"\x03\xe8\xff"), Err(ProtocolError::InvalidCloseReason));
    }
}
