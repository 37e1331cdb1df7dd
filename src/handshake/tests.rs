//! Unit tests of the opening handshake: the request's parsing and §4.2.1 checks, the 101.

use super::*;
use crate::policy::Policy;

const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn request(head: &str) -> Request {
    Request::parse(head.as_bytes(), DEFAULT_MAX_HEADERS).unwrap()
}

fn parse(head: &str) -> Result<Request, HandshakeError> {
    let request = Request::parse(head.as_bytes(), DEFAULT_MAX_HEADERS)?;
    request.validate()?;
    Ok(request)
}

/// The 101 for `head`, choosing what `policy` chooses.
fn accept_with(head: &str, policy: &Policy) -> String {
    let request = parse(head).unwrap();
    let accept = policy.decide(&request).unwrap();
    accept.check(&request).unwrap();
    let mut out = Vec::new();
    write_accept(&mut out, request.validate().unwrap().key, &accept, None);
    String::from_utf8(out).unwrap()
}

fn speaking(protocols: &[&str]) -> Policy {
    Policy { subprotocols: protocols.iter().map(|p| p.to_string()).collect(), ..Policy::default() }
}

/// §1.3: "the server would append the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" [...]
/// This value is then base64-encoded [...] to give the value "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="".
#[test]
fn rfc_1_3_accept_key() {
    assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn accepts_the_rfc_request() {
    let req = parse(GOOD).unwrap();
    assert_eq!(
        (req.method(), req.target(), req.path(), req.query()),
        ("GET", "/chat", "/chat", None)
    );
    assert_eq!(req.origin(), Some("http://example.com"));
    assert_eq!(req.subprotocols().collect::<Vec<_>>(), ["chat", "superchat"]);
    assert_eq!(req.header("host"), Some(&b"server.example.com"[..]));
    assert_eq!(
        accept_with(GOOD, &speaking(&["superchat"])),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: superchat\r\n\r\n"
    );
}

#[test]
fn the_target_has_a_path_and_a_query() {
    let req = request(&GOOD.replacen("/chat", "/chat?token=s3cret&debug&x=", 1));
    assert_eq!((req.target(), req.path()), ("/chat?token=s3cret&debug&x=", "/chat"));
    assert_eq!(req.query(), Some("token=s3cret&debug&x="));
    assert_eq!(req.query_param("token"), Some("s3cret"));
    assert_eq!(req.query_param("debug"), Some(""));
    assert_eq!(req.query_param("x"), Some(""));
    assert_eq!(req.query_param("tok"), None);
    let headers: Vec<&str> = req.headers().map(|(name, _)| name).collect();
    assert_eq!(headers[..2], ["Host", "Upgrade"]);
}

#[test]
fn first_offered_supported_protocol_wins_and_none_is_omitted() {
    let head = GOOD.replace("chat, superchat", "a, b");
    assert!(accept_with(&head, &speaking(&["b", "a"])).contains("Sec-WebSocket-Protocol: a\r\n"));
    assert!(!accept_with(&head, &speaking(&[])).contains("Sec-WebSocket-Protocol"));
    // §4.2.2: the server may only choose what the client offered.
    let req = parse(&head).unwrap();
    assert_eq!(
        Accept::new().with_subprotocol("c").check(&req),
        Err(AnswerError::SubprotocolNotOffered)
    );
}

#[test]
fn header_names_and_values_are_case_insensitive() {
    let head = GOOD
        .replace("Upgrade: websocket", "UPGRADE: WebSocket")
        .replace("Connection: Upgrade", "connection: keep-alive, upgrade");
    assert!(parse(&head).is_ok());
}

#[test]
fn each_rejection_has_its_status() {
    let cases: Vec<(String, HandshakeError, u16)> = vec![
        (GOOD.replace("GET", "POST"), HandshakeError::MethodNotAllowed, 405),
        (GOOD.replace("HTTP/1.1", "HTTP/1.0"), HandshakeError::NotHttp11, 400),
        (GOOD.replace("Host: server.example.com\r\n", ""), HandshakeError::MissingHost, 400),
        (GOOD.replace("Upgrade: websocket\r\n", ""), HandshakeError::MissingUpgrade, 400),
        (GOOD.replace("Upgrade: websocket", "Upgrade: h2c"), HandshakeError::MissingUpgrade, 400),
        (
            GOOD.replace("Connection: Upgrade", "Connection: close"),
            HandshakeError::MissingConnectionUpgrade,
            400,
        ),
        (
            GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
            HandshakeError::MissingKey,
            400,
        ),
        (
            GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="),
            HandshakeError::InvalidKey,
            400,
        ),
        (
            GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!!!!!!!!!!!!!!!!!!!!=="),
            HandshakeError::InvalidKey,
            400,
        ),
        (GOOD.replace("Sec-WebSocket-Version: 13\r\n", ""), HandshakeError::MissingVersion, 400),
        (GOOD.replace("Version: 13", "Version: 8"), HandshakeError::UnsupportedVersion, 426),
        (
            GOOD.replace("\r\n\r\n", "\r\nContent-Length: 5\r\n\r\n"),
            HandshakeError::UnexpectedBody,
            400,
        ),
        (
            GOOD.replace("\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HandshakeError::UnexpectedBody,
            400,
        ),
        (
            GOOD.replace("\r\n\r\n", "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
            HandshakeError::InvalidKey,
            400,
        ),
        ("GARBAGE\r\n\r\n".to_owned(), HandshakeError::Malformed, 400),
        (
            GOOD.replace("Protocol: chat, superchat", "Protocol: chat, super chat"),
            HandshakeError::MalformedSubprotocols,
            400,
        ),
        (
            GOOD.replace("Protocol: chat, superchat", "Protocol: chat/1"),
            HandshakeError::MalformedSubprotocols,
            400,
        ),
        (
            GOOD.replace("Protocol: chat, superchat", "Protocol: ,"),
            HandshakeError::MalformedSubprotocols,
            400,
        ),
        // Not ASCII, so no token (§8.1 would have it UTF-8; the ABNF asks for less still).
        (
            GOOD.replace("Protocol: chat, superchat", "Protocol: chat, café"),
            HandshakeError::MalformedSubprotocols,
            400,
        ),
    ];
    for (head, error, status) in cases {
        assert_eq!(parse(&head), Err(error), "{head}");
        assert_eq!(error.status(), status);
    }
}

#[test]
fn upgrade_may_list_other_protocols_and_extensions_are_ignored() {
    let head = GOOD.replace("Upgrade: websocket", "Upgrade: h2c, WebSocket").replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    );
    // §4.2.1 item 9 / §9.1: no extension is agreed to, so none is named in the answer.
    assert!(!accept_with(&head, &Policy::default()).contains("Extensions"));
}

/// §11.3.4: |Sec-WebSocket-Protocol| may be split over several header lines.
#[test]
fn subprotocols_offered_over_several_lines() {
    let head = GOOD.replace(
        "Sec-WebSocket-Protocol: chat, superchat\r\n",
        "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n",
    );
    assert!(accept_with(&head, &speaking(&["superchat"])).contains("Protocol: superchat\r\n"));
}

#[test]
fn a_repeated_version_is_400() {
    let head = GOOD.replace("\r\n\r\n", "\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert_eq!(parse(&head), Err(HandshakeError::RepeatedVersion));
    assert_eq!(HandshakeError::RepeatedVersion.status(), 400);
}

#[test]
fn an_absolute_form_target_names_its_path() {
    for (target, path) in
        [("/chat?x=1", "/chat"), ("ws://example.com/chat?x", "/chat"), ("http://h", "/")]
    {
        let head = request(&GOOD.replacen("/chat", target, 1));
        assert_eq!(head.path(), path, "{target}");
    }
}

#[test]
fn too_many_headers_is_431() {
    let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
    let head = GOOD.replace("\r\n\r\n", &format!("\r\n{many}\r\n"));
    assert_eq!(parse(&head), Err(HandshakeError::TooManyHeaders));
    assert_eq!(HandshakeError::TooManyHeaders.status(), 431);
}

#[test]
fn error_responses_are_complete_http() {
    let mut out = Vec::new();
    HandshakeError::UnsupportedVersion.write_response(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("Content-Length: {}", body.len())));

    let mut out = Vec::new();
    HandshakeError::MethodNotAllowed.write_response(&mut out);
    assert!(String::from_utf8(out).unwrap().contains("\r\nAllow: GET\r\n"));
}

#[test]
fn head_end_is_found_across_pieces_scanning_only_new_bytes() {
    let head = GOOD.as_bytes();
    for cut in 0..head.len() {
        let mut scanned = 0;
        let mut found = None;
        for end in [cut, head.len()] {
            if found.is_none() {
                found = find_head_end(&head[..end], scanned);
                scanned = end;
            }
        }
        assert_eq!(found, Some(head.len()), "cut {cut}");
    }
    assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n", 0), None);
}

proptest::proptest! {
    /// Any bytes as a request head: parsed and checked without panicking, and every
    /// refusal is one of the statuses the server documents.
    #[test]
    fn any_head_is_accepted_or_refused_with_a_known_status(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        split in 0usize..300,
    ) {
        let whole = find_head_end(&bytes, 0);
        let split = split.min(bytes.len());
        let in_two = find_head_end(&bytes[..split], 0).or_else(|| find_head_end(&bytes, split));
        proptest::prop_assert_eq!(whole, in_two);
        match Request::parse(&bytes, DEFAULT_MAX_HEADERS) {
            Ok(request) => {
                // Every accessor works on whatever was parsed.
                let _ = (request.path(), request.query(), request.origin(), request.headers().count());
                match request.validate() {
                    Ok(upgrade) => {
                        let mut out = Vec::new();
                        write_accept(&mut out, upgrade.key, &Accept::new(), None);
                        proptest::prop_assert!(out.starts_with(b"HTTP/1.1 101 "));
                    }
                    Err(e) => proptest::prop_assert!([400, 405, 426].contains(&e.status())),
                }
            }
            Err(e) => proptest::prop_assert!([400, 431].contains(&e.status())),
        }
    }

    /// A valid request with noise header lines in any order and case is still accepted.
    #[test]
    fn valid_requests_survive_noise(noise in proptest::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,20}", 0..8)) {
        let extra: String = noise.iter().filter(|line| {
            let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            !["host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
              "content-length", "transfer-encoding", "sec-websocket-protocol", "origin"]
                .contains(&name.as_str())
        }).map(|line| format!("{line}\r\n")).collect();
        let head = GOOD.replace("\r\n\r\n", &format!("\r\n{extra}\r\n"));
        proptest::prop_assert!(parse(&head).is_ok(), "{}", head);
    }
}

/// §4.2.2 /subprotocol/: "The empty string is not the same as the null value for these purposes
/// and is not a legal value for this field." An answer naming "" is refused before it is sent,
/// as any name the client did not offer is; no subprotocol at all is the null value.
#[test]
fn the_empty_subprotocol_is_never_answered() {
    let request = parse(GOOD).unwrap();
    assert_eq!(
        Accept::new().with_subprotocol("").check(&request),
        Err(AnswerError::SubprotocolNotOffered)
    );
    assert_eq!(Accept::new().with_subprotocol("chat").check(&request), Ok(()));
    assert_eq!(Accept::new().check(&request), Ok(()));
}
