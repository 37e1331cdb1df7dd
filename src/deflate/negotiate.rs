//! Negotiating permessage-deflate (RFC 7692 §5, §7.1): reading an offer's parameters, and
//! the server's choice of the first acceptable offer.

use crate::handshake::Extension;
#[cfg(feature = "deflate")]
use {
    super::{Agreed, DeflateConfig, EXTENSION_NAME, MAX_WINDOW_BITS, MIN_WINDOW_BITS},
    std::fmt::Write as _,
};

/// One permessage-deflate offer's parameters (§7.1), checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeflateOffer {
    /// §7.1.1.1: the client asks the server not to take context over between messages.
    pub server_no_context_takeover: bool,
    /// §7.1.1.2: the client says it will not take context over (a hint).
    pub client_no_context_takeover: bool,
    /// §7.1.2.1: the largest window the server may compress with.
    pub server_max_window_bits: Option<u8>,
    /// §7.1.2.2: present (`Some`) when the client can be told a window; with its own limit,
    /// if it gave one.
    pub client_max_window_bits: Option<Option<u8>>,
}

/// Why an offer is declined (§7: "A server MUST decline an extension negotiation offer for
/// this extension if any of the following conditions are met"), or why a client fails the
/// connection on the server's answer (§7.1: the same conditions, for a response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferError {
    /// "The negotiation offer contains an extension parameter not defined for use in an
    /// offer."
    UnknownParameter,
    /// "The negotiation offer contains an extension parameter with an invalid value."
    InvalidValue,
    /// "The negotiation offer contains multiple extension parameters with the same name."
    DuplicateParameter,
    /// "The server doesn't support the offered configuration": a 2^8-byte window, which zlib
    /// cannot compress with.
    Unsupported,
}

impl std::fmt::Display for OfferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OfferError::UnknownParameter => "an unknown parameter",
            OfferError::InvalidValue => "a parameter with an invalid value",
            OfferError::DuplicateParameter => "a parameter given twice",
            OfferError::Unsupported => "a configuration this endpoint does not support",
        })
    }
}

impl std::error::Error for OfferError {}

/// Reads one permessage-deflate offer's parameters.
pub fn parse_offer(extension: &Extension<'_>) -> Result<DeflateOffer, OfferError> {
    let mut offer = DeflateOffer::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &extension.params {
        // Parameter names are compared as written: the RFC defines them in lower case.
        if seen.contains(name) {
            return Err(OfferError::DuplicateParameter);
        }
        seen.push(name);
        let value = value.as_deref();
        match *name {
            // §7.1.1.1, §7.1.1.2: these "MUST NOT have a value".
            "server_no_context_takeover" | "client_no_context_takeover" if value.is_some() => {
                return Err(OfferError::InvalidValue);
            }
            "server_no_context_takeover" => offer.server_no_context_takeover = true,
            "client_no_context_takeover" => offer.client_no_context_takeover = true,
            // §7.1.2.1: "This parameter has a decimal integer value without leading zeroes
            // between 8 to 15, inclusive" (in an offer, a value is required).
            "server_max_window_bits" => {
                let bits = value.map(window_bits).ok_or(OfferError::InvalidValue)??;
                offer.server_max_window_bits = Some(bits);
            }
            // §7.1.2.2: "This parameter has no value or a decimal integer value without leading
            // zeroes between 8 to 15 inclusive".
            "client_max_window_bits" => {
                offer.client_max_window_bits = Some(value.map(window_bits).transpose()?);
            }
            _ => return Err(OfferError::UnknownParameter),
        }
    }
    Ok(offer)
}

/// `8` to `15`, in decimal without leading zeros.
pub(super) fn window_bits(value: &str) -> Result<u8, OfferError> {
    match value.as_bytes() {
        [b'8'] => Ok(8),
        [b'9'] => Ok(9),
        [b'1', d @ b'0'..=b'5'] => Ok(10 + (d - b'0')),
        _ => Err(OfferError::InvalidValue),
    }
}

/// The server's side (§5, §7.1): accepts the first acceptable permessage-deflate offer of
/// `extensions` (in the client's order of preference) and returns what was agreed, with the
/// value of the 101's |Sec-WebSocket-Extensions|. `None`: no offer is acceptable, and the
/// connection is not compressed.
#[cfg(feature = "deflate")]
pub fn negotiate_server(
    extensions: &[Extension<'_>],
    config: &DeflateConfig,
) -> Option<(Agreed, String)> {
    let config = config.clamped();
    extensions
        .iter()
        .filter(|extension| extension.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|extension| accept(parse_offer(extension).ok()?, &config))
}

#[cfg(feature = "deflate")]
fn accept(offer: DeflateOffer, config: &DeflateConfig) -> Option<(Agreed, String)> {
    let mut answer = EXTENSION_NAME.to_owned();
    // §7.1.2.1: the server's window, no more than the client allows. zlib cannot compress
    // with 2^8 bytes, so a limit of 8 is a configuration this server does not support.
    let send_window_bits = match offer.server_max_window_bits {
        Some(bits) if bits < MIN_WINDOW_BITS => return None,
        Some(bits) => bits.min(config.max_send_window_bits),
        None => config.max_send_window_bits,
    };
    // §7.1.1.1: "the server MUST NOT use context takeover" when the client asks; without the
    // parameter, a server that does not take context over may say so anyway.
    let send_context_takeover = config.send_context_takeover && !offer.server_no_context_takeover;
    if !send_context_takeover {
        answer.push_str("; server_no_context_takeover");
    }
    // §7.1.1.2: the server may ask the client not to take context over, whether or not the
    // client offered to.
    let receive_context_takeover =
        config.receive_context_takeover && !offer.client_no_context_takeover;
    if !receive_context_takeover {
        answer.push_str("; client_no_context_takeover");
    }
    if offer.server_max_window_bits.is_some() {
        // "A server accepts an extension negotiation offer with this parameter by including
        // the "server_max_window_bits" extension parameter in the extension negotiation
        // response to send back to the client with the same or smaller value as the offer."
        let _ = write!(answer, "; server_max_window_bits={send_window_bits}");
    }
    // §7.1.2.2: only if the client offered the parameter may the answer have it, with a value
    // no larger than the client's own limit; without it the client may use up to 2^15.
    let receive_window_bits = match offer.client_max_window_bits {
        Some(limit) => {
            let bits = limit.unwrap_or(MAX_WINDOW_BITS).min(config.max_receive_window_bits);
            if limit.is_some() || bits < MAX_WINDOW_BITS {
                let _ = write!(answer, "; client_max_window_bits={bits}");
            }
            bits
        }
        None => MAX_WINDOW_BITS,
    };
    let agreed = Agreed {
        send_window_bits,
        receive_window_bits,
        send_context_takeover,
        receive_context_takeover,
    };
    Some((agreed, answer))
}

#[cfg(all(test, feature = "deflate"))]
mod tests {
    use super::*;
    use crate::handshake::parse_extensions;

    fn negotiate(offer: &str, config: &DeflateConfig) -> Option<(Agreed, String)> {
        let extensions = parse_extensions([offer.as_bytes()]).unwrap();
        negotiate_server(&extensions, config)
    }

    fn answer(offer: &str) -> Option<String> {
        negotiate(offer, &DeflateConfig::default()).map(|(_, answer)| answer)
    }

    const BOTH: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    /// RFC 7692 §5.1's and §7.1's examples of offers, answered as this server answers them.
    #[test]
    fn the_rfc_examples() {
        // §5.1: "permessage-deflate" alone.
        assert_eq!(answer("permessage-deflate").as_deref(), Some(BOTH));
        // What browsers send.
        assert_eq!(
            answer("permessage-deflate; client_max_window_bits").as_deref(),
            Some(BOTH),
            "without a limit of its own the client keeps 15 bits, so nothing to say"
        );
        // §7.1.2.1: "permessage-deflate; server_max_window_bits=10" is answered with 10.
        assert_eq!(
            answer("permessage-deflate; server_max_window_bits=10").as_deref(),
            Some(format!("{BOTH}; server_max_window_bits=10").as_str())
        );
        // §5.2's example: two offers, the first one acceptable.
        let (agreed, text) = negotiate(
            "permessage-deflate; client_max_window_bits=10, permessage-deflate",
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(text, format!("{BOTH}; client_max_window_bits=10"));
        assert_eq!((agreed.send_window_bits, agreed.receive_window_bits), (15, 10));
    }

    #[test]
    fn bad_offers_are_declined_and_the_next_one_tried() {
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=x",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=16",
            // zlib cannot compress with a 2^8 window: unsupported, declined.
            "permessage-deflate; server_max_window_bits=8",
        ] {
            assert_eq!(answer(bad), None, "{bad}");
            assert_eq!(
                answer(&format!("{bad}, permessage-deflate")).as_deref(),
                Some(BOTH),
                "{bad}"
            );
        }
        assert_eq!(answer("x-webkit-deflate-frame, permessage-deflate").as_deref(), Some(BOTH));
        assert_eq!(answer("x-webkit-deflate-frame"), None);
    }

    #[test]
    fn window_limits_are_honoured() {
        let small = DeflateConfig {
            max_send_window_bits: 11,
            max_receive_window_bits: 12,
            ..DeflateConfig::default()
        };
        let (agreed, text) = negotiate(
            "permessage-deflate; client_max_window_bits; server_max_window_bits=13",
            &small,
        )
        .unwrap();
        assert_eq!(text, format!("{BOTH}; server_max_window_bits=11; client_max_window_bits=12"));
        assert_eq!((agreed.send_window_bits, agreed.receive_window_bits), (11, 12));
        // The client's smaller limits win; without client_max_window_bits in the offer, none in
        // the answer (§7.1.2.2), and the inflater must take 15 bits.
        let (agreed, text) =
            negotiate("permessage-deflate; server_max_window_bits=9", &small).unwrap();
        assert_eq!(text, format!("{BOTH}; server_max_window_bits=9"));
        assert_eq!((agreed.send_window_bits, agreed.receive_window_bits), (9, 15));
        // A value of 8 for the client's window is fine: inflating with 2^15 reads it.
        let (_, text) = negotiate("permessage-deflate; client_max_window_bits=8", &small).unwrap();
        assert_eq!(text, format!("{BOTH}; client_max_window_bits=8"));
    }

    #[test]
    fn context_takeover_when_configured_and_not_refused() {
        let keep = DeflateConfig {
            send_context_takeover: true,
            receive_context_takeover: true,
            ..DeflateConfig::default()
        };
        let (agreed, text) = negotiate("permessage-deflate", &keep).unwrap();
        assert_eq!(text, "permessage-deflate");
        assert!(agreed.send_context_takeover && agreed.receive_context_takeover);
        let (agreed, text) = negotiate(BOTH, &keep).unwrap();
        assert_eq!(text, BOTH, "the client's wishes are granted");
        assert!(!agreed.send_context_takeover && !agreed.receive_context_takeover);
    }
}
