//! The client's side of negotiating permessage-deflate (RFC 7692 §5, §7.1): the offer it
//! sends, and the checks it applies to the server's answer.
//!
//! The server decides; the client only refuses an answer it cannot honour. §7.1: "A client
//! MUST _Fail the WebSocket Connection_ if the peer server accepted an extension negotiation
//! offer for this extension with an extension negotiation response meeting any of the
//! following conditions", one [`OfferError`] each.

use super::negotiate::{OfferError, window_bits};
use super::{Agreed, DeflateConfig, EXTENSION_NAME, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use crate::handshake::Extension;
use std::fmt::Write as _;

/// The value of the request's |Sec-WebSocket-Extensions| for this configuration: one offer.
///
/// With the defaults of [`DeflateConfig::for_client`] it is what browsers send,
/// `permessage-deflate; client_max_window_bits`: any window, context kept both ways. Without
/// context takeover on either side it asks the server not to take context over
/// (`server_no_context_takeover`) and says the client will not (`client_no_context_takeover`);
/// smaller windows are asked for with their limits.
pub fn client_offer(config: &DeflateConfig) -> String {
    let config = config.clamped();
    let mut offer = EXTENSION_NAME.to_owned();
    if !config.receive_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if !config.send_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if config.max_receive_window_bits < MAX_WINDOW_BITS {
        let _ = write!(offer, "; server_max_window_bits={}", config.max_receive_window_bits);
    }
    // §7.1.2.2: "the client supports the "client_max_window_bits" extension parameter": the
    // server may then give it a smaller window. Always offered (Autobahn 13.3-13.6 need it).
    offer.push_str("; client_max_window_bits");
    if config.max_send_window_bits < MAX_WINDOW_BITS {
        let _ = write!(offer, "={}", config.max_send_window_bits);
    }
    offer
}

/// Reads the server's acceptance of [`client_offer`]`(config)` and returns what the client
/// then does.
pub fn accept_answer(
    extension: &Extension<'_>,
    config: &DeflateConfig,
) -> Result<Agreed, OfferError> {
    let config = config.clamped();
    let mut agreed = Agreed {
        send_window_bits: config.max_send_window_bits,
        receive_window_bits: MAX_WINDOW_BITS,
        send_context_takeover: config.send_context_takeover,
        receive_context_takeover: true,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &extension.params {
        // "The negotiation response contains multiple extension parameters with the same name."
        if seen.contains(name) {
            return Err(OfferError::DuplicateParameter);
        }
        seen.push(name);
        let value = value.as_deref();
        match *name {
            "server_no_context_takeover" | "client_no_context_takeover" if value.is_some() => {
                return Err(OfferError::InvalidValue);
            }
            // §7.1.1.1: "A server MAY include the "server_no_context_takeover" extension
            // parameter in an extension negotiation response even if the extension
            // negotiation offer being accepted by the extension negotiation response didn't
            // include" it. The server starts each message afresh: no inflater is kept.
            "server_no_context_takeover" => agreed.receive_context_takeover = false,
            // §7.1.1.2: "By including the "client_no_context_takeover" extension parameter in
            // an extension negotiation response, a server prevents the peer client from using
            // context takeover." "A client MUST support" it: each message starts afresh.
            "client_no_context_takeover" => agreed.send_context_takeover = false,
            // §7.1.2.1: the server's window, "the same or smaller value as the offer"; the
            // server may name one even when the offer did not ask.
            "server_max_window_bits" => {
                let bits = value.map(window_bits).ok_or(OfferError::InvalidValue)??;
                if bits > config.max_receive_window_bits {
                    // "The client does not support the configuration that the response
                    // represents": a window larger than it allows.
                    return Err(OfferError::Unsupported);
                }
                agreed.receive_window_bits = bits;
            }
            // §7.1.2.2: in a response the parameter has a value, no larger than the offer's.
            // A window of 2^8 is legal; zlib cannot compress with it, so the client then sends
            // every message uncompressed (§6 allows that).
            "client_max_window_bits" => {
                let bits = value.map(window_bits).ok_or(OfferError::InvalidValue)??;
                if bits > config.max_send_window_bits {
                    return Err(OfferError::Unsupported);
                }
                agreed.send_window_bits = bits;
            }
            // "The negotiation response contains an extension parameter not defined for use in
            // a response."
            _ => return Err(OfferError::UnknownParameter),
        }
    }
    Ok(agreed)
}

impl Agreed {
    /// Whether this endpoint can compress at all: zlib cannot with a window under 2^9.
    pub fn can_compress(&self) -> bool {
        self.send_window_bits >= MIN_WINDOW_BITS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::parse_extensions;

    fn answer(text: &str, config: &DeflateConfig) -> Result<Agreed, OfferError> {
        let extensions = parse_extensions([text.as_bytes()]).unwrap();
        accept_answer(&extensions[0], config)
    }

    #[test]
    fn offers_follow_the_configuration() {
        assert_eq!(
            client_offer(&DeflateConfig::for_client()),
            "permessage-deflate; client_max_window_bits"
        );
        assert_eq!(
            client_offer(&DeflateConfig::default()),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             client_max_window_bits"
        );
        let small = DeflateConfig {
            max_send_window_bits: 10,
            max_receive_window_bits: 8,
            ..DeflateConfig::for_client()
        };
        assert_eq!(
            client_offer(&small),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
            "8 is brought up to the 9 zlib can use"
        );
    }

    #[test]
    fn the_servers_parameters_are_taken() {
        let config = DeflateConfig::for_client();
        let agreed = answer("permessage-deflate", &config).unwrap();
        assert_eq!(
            agreed,
            Agreed {
                send_window_bits: 15,
                receive_window_bits: 15,
                send_context_takeover: true,
                receive_context_takeover: true,
            }
        );
        let agreed = answer(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=8",
            &config,
        )
        .unwrap();
        assert_eq!((agreed.send_window_bits, agreed.receive_window_bits), (8, 10));
        assert!(!agreed.send_context_takeover && !agreed.receive_context_takeover);
        assert!(!agreed.can_compress(), "a 2^8 window: send uncompressed");
    }

    #[test]
    fn answers_that_break_section_7_1_are_refused() {
        let config = DeflateConfig::for_client();
        for (text, error) in [
            ("permessage-deflate; foo", OfferError::UnknownParameter),
            ("permessage-deflate; server_no_context_takeover=1", OfferError::InvalidValue),
            ("permessage-deflate; client_max_window_bits", OfferError::InvalidValue),
            ("permessage-deflate; client_max_window_bits=16", OfferError::InvalidValue),
            ("permessage-deflate; server_max_window_bits", OfferError::InvalidValue),
            ("permessage-deflate; server_max_window_bits=07", OfferError::InvalidValue),
            (
                "permessage-deflate; server_max_window_bits=9; server_max_window_bits=9",
                OfferError::DuplicateParameter,
            ),
        ] {
            assert_eq!(answer(text, &config), Err(error), "{text}");
        }
        let small = DeflateConfig {
            max_send_window_bits: 10,
            max_receive_window_bits: 11,
            ..DeflateConfig::for_client()
        };
        assert_eq!(
            answer("permessage-deflate; server_max_window_bits=12", &small),
            Err(OfferError::Unsupported),
            "a server window larger than offered"
        );
        assert_eq!(
            answer("permessage-deflate; client_max_window_bits=11", &small),
            Err(OfferError::Unsupported),
            "a client window larger than offered"
        );
    }
}
