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

/// Runs an example that ends by itself, and returns its standard output.
fn run_example(name: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(common::process::example_path(name))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{name}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// `blocking_client`: against its own echo server, every message back, then a clean close.
#[test]
fn blocking_client_echoes_and_closes() {
    let stdout = run_example("blocking_client", &[]);
    assert_eq!(stdout.matches("same: true").count(), 3, "{stdout}");
    assert!(stdout.ends_with("closed: Some(1000)\n"), "{stdout}");
    #[cfg(feature = "deflate")]
    assert!(stdout.contains("(extensions: permessage-deflate"), "{stdout}");
}

/// `mio_clients`: 50 sessions on one thread, 20 messages each, against a server of ours.
#[test]
fn mio_clients_all_echoed_and_closed() {
    let server = Process::start(&["echo"], None);
    let url = format!("ws://{}/", server.addr);
    let stdout = run_example("mio_clients", &[&url, "50", "20"]);
    assert!(
        stdout.starts_with(
            "50 clients: 50 opened, 1000 of 1000 messages echoed, 50 closed, 0 failed"
        ),
        "{stdout}"
    );
}
