//! The examples run as their docs say, over real loopback sockets.

mod common;

use common::process::Process;
use common::{Client, http_exchange, upgrade_request};
use rfc6455::frame::OpCode;
use std::io::Write;

/// `token_auth`: 401 without the token or with a wrong one (and no upgrade); with it, a
/// connection whose state holds `user-N`, answering every text with `user-N: text`.
#[test]
fn token_auth_refuses_without_the_token_and_names_each_user() {
    let server = Process::start_example("token_auth", &["--token", "s3cret"]);
    let upgrade = upgrade_request(&server.addr);
    let with_target = |target: &str| upgrade.replacen("GET / ", &format!("GET {target} "), 1);
    for target in ["/", "/?token=wrong", "/?token=s3cre", "/?token=s3cretx", "/?tok=s3cret"] {
        let response = http_exchange(server.addr, with_target(target).as_bytes());
        assert!(response.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{target}: {response}");
        assert!(response.contains("\r\nWWW-Authenticate: Bearer"), "{response}");
        assert!(response.ends_with("a valid token is required: add ?token=... to the URL\n"));
        assert!(!response.contains("Sec-WebSocket-Accept"));
    }
    let mut clients: Vec<Client> = ["/?token=s3cret", "/chat?x=1&token=s3cret"]
        .iter()
        .map(|target| {
            let mut client = Client::unconnected(server.addr);
            client.stream.write_all(with_target(target).as_bytes()).unwrap();
            client.finish_handshake();
            client
        })
        .collect();
    // The header works too.
    let mut bearer = Client::unconnected(server.addr);
    let request = upgrade.replace("\r\n\r\n", "\r\nAuthorization: Bearer s3cret\r\n\r\n");
    bearer.stream.write_all(request.as_bytes()).unwrap();
    bearer.finish_handshake();
    clients.push(bearer);
    for (n, client) in clients.iter_mut().enumerate().rev() {
        client.send_text("hello");
        let frame = client.read_frame().unwrap();
        assert_eq!(frame.opcode, OpCode::Text);
        assert_eq!(String::from_utf8(frame.payload).unwrap(), format!("user-{}: hello", n + 1));
    }
}
