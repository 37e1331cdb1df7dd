//! The client's side: a client connection (fixed seed, so its key is known) reads a server's
//! answer and frames, in pieces. Byte 0 picks whether a valid 101 comes first (so that frames
//! are reached) or the input is the whole answer. See fuzz/README.md for the oracles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::handshake::{ClientRequest, accept_key};
use rfc6455::{Config, Connection, Event, State};
use rfc6455_fuzz::{check_client_frames, split_points};
use std::sync::Arc;
use std::time::Instant;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    let (cuts, data) = split_points(rest, 8);
    let mut config = Config::default();
    config.max_message_size = 1 << 16;
    let config = Arc::new(config);
    let request = ClientRequest::new("localhost", "/").with_subprotocol("chat");
    let now = Instant::now();
    let mut out = Vec::new();
    let mut conn = Connection::client(config, &request, [7; 32], now, &mut out).unwrap();
    let written = String::from_utf8(std::mem::take(&mut out)).unwrap();
    let key = written.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
    let mut bytes = Vec::new();
    if mode & 1 == 1 {
        bytes.extend_from_slice(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n{}\r\n",
                accept_key(key.as_bytes()),
                if mode & 2 == 2 { "Sec-WebSocket-Extensions: permessage-deflate\r\n" } else { "" },
            )
            .as_bytes(),
        );
    }
    let head_len = bytes.len();
    bytes.extend_from_slice(data);
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts.iter().map(|c| c + head_len).chain([bytes.len()]) {
        if cut >= start {
            pieces.push(bytes[start..cut].to_vec());
            start = cut;
        }
    }
    let mut opened = false;
    for mut piece in pieces {
        let mut pos = 0;
        while pos < piece.len() {
            let before = conn.state();
            let left = piece.len() - pos;
            let r = conn.receive(&mut piece[pos..], now, &mut out);
            assert!(r.consumed <= left);
            match &r.event {
                Some(Event::Upgraded(upgraded)) => {
                    assert_eq!(before, State::Connecting);
                    assert!(matches!(upgraded.subprotocol.as_deref(), None | Some("chat")));
                    opened = true;
                }
                Some(Event::UpgradeFailed(_)) => {
                    assert!(!opened && conn.state() == State::Closed && out.is_empty());
                }
                Some(Event::Message(message)) => {
                    assert!(opened && message.payload().len() <= 1 << 16);
                }
                Some(Event::Request | Event::Rejected(_)) => panic!("a client got a request"),
                _ => {}
            }
            if !opened {
                assert!(out.is_empty(), "a client writes nothing before it is open");
            }
            pos += r.consumed;
            if r.consumed == 0 && r.event.is_none() {
                break;
            }
        }
    }
    // Everything the client wrote is whole frames, each masked with a key of its own.
    check_client_frames(&out);
});
