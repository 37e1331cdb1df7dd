//! permessage-deflate: the |Sec-WebSocket-Extensions| grammar and the server's negotiation on
//! any header value, and inflating any payload in compressed frames. See fuzz/README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::deflate::{DeflateConfig, negotiate_server};
use rfc6455::handshake::parse_extensions;
use rfc6455_fuzz::{DeflateConnection, split_points};

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (header, frames) = input;
    // Any header value parses or is refused; an accepted offer gets an answer that follows the
    // same grammar, names one permessage-deflate, and keeps to the windows it may use.
    if let Ok(offers) = parse_extensions([&header[..]])
        && let Some((agreed, answer)) = negotiate_server(&offers, &DeflateConfig::default())
    {
        let parsed = parse_extensions([answer.as_bytes()]).expect("the answer follows §9.1");
        assert!(parsed.len() == 1 && parsed[0].name == "permessage-deflate", "{answer}");
        assert!((9..=15).contains(&agreed.send_window_bits), "{agreed:?}");
    }
    // Any bytes as the payloads of compressed frames: inflated within the limit, or refused
    // with 1007 or 1009; never a panic, never more memory than the limit.
    let (cuts, payload) = split_points(&frames, 8);
    DeflateConnection::new(4096).feed_compressed(payload, &cuts);
});
