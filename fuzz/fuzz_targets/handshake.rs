//! The opening handshake: `find_head_end` in pieces, `Request::parse`, `validate`, a `Policy`'s
//! answer, and the responses. See fuzz/README.md for the oracles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::handshake::{HandshakeError, Request, accept_key, find_head_end, write_accept};
use rfc6455::policy::Policy;
use rfc6455_fuzz::fnv1a;

fuzz_target!(|input: &[u8]| {
    // The end of the head, found in one search and in up to three pieces as they would arrive
    // from the socket (split points picked from the input's hash), must agree.
    let once = find_head_end(input, 0);
    let h = fnv1a(input);
    let len = input.len() as u64;
    let mut cuts = [h % (len + 1), (h >> 32) % (len + 1)].map(|c| c as usize);
    cuts.sort_unstable();
    let mut scanned = 0;
    let mut found = None;
    for end in cuts.into_iter().chain([input.len()]) {
        if found.is_none() && end >= scanned {
            found = find_head_end(&input[..end], scanned);
            scanned = end;
        }
    }
    assert_eq!(found, once, "pieces {cuts:?} of {} bytes", input.len());
    if let Some(end) = once {
        assert!(end <= input.len() && input[..end].ends_with(b"\r\n\r\n"));
        assert!(!input[..end - 1].windows(4).any(|w| w == b"\r\n\r\n"), "not the first end");
    }

    let mut policy = Policy::default();
    policy.subprotocols = vec!["chat".to_owned()];
    check(input, &policy);
    // The connection parses exactly the head, up to the blank line.
    if let Some(end) = once.filter(|&end| end < input.len()) {
        check(&input[..end], &policy);
    }
});

fn check(head: &[u8], policy: &Policy) {
    let request = match Request::parse(head, 64) {
        Ok(request) => request,
        Err(error) => return respond(error),
    };
    // Every accessor works on whatever was parsed.
    let _ = (request.method(), request.path(), request.query(), request.origin());
    assert!(request.headers().count() <= 64);
    match request.validate() {
        Ok(upgrade) => {
            let accept = policy.decide(&request).expect("this policy accepts every handshake");
            let mut out = Vec::new();
            write_accept(&mut out, upgrade.key, &accept, None);
            assert!(out.starts_with(b"HTTP/1.1 101 "), "{:?}", String::from_utf8_lossy(&out));
            let text = std::str::from_utf8(&out).expect("the 101 response is ASCII");
            let accept_value = format!("\r\nSec-WebSocket-Accept: {}\r\n", accept_key(upgrade.key));
            assert!(text.contains(&accept_value), "{text:?}");
            // One head, ending in the blank line: nothing from the request leaks in as a header.
            assert_eq!(text.find("\r\n\r\n"), Some(text.len() - 4), "{text:?}");
            assert!(matches!(accept.subprotocol.as_deref(), None | Some("chat")), "{accept:?}");
            assert_eq!(upgrade.key.len(), 24);
        }
        Err(error) => respond(error),
    }
}

fn respond(error: HandshakeError) {
    let status = error.status();
    assert!(matches!(status, 400 | 405 | 426 | 431), "{error:?} has status {status}");
    let mut out = Vec::new();
    error.write_response(&mut out);
    let text = String::from_utf8(out).expect("error responses are text");
    assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text:?}");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())), "{text:?}");
}
