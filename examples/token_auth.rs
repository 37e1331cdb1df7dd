//! A small authenticated service on the handshake hook: a WebSocket opens only with the right
//! token, each connection keeps its user's name in the server's table, and every text message
//! is answered with `<name>: <text>`.
//!
//! ```sh
//! cargo run --release --example token_auth -- --listen 127.0.0.1:9004 --token s3cret
//! # then connect to ws://127.0.0.1:9004/?token=s3cret
//! # (or send the header `Authorization: Bearer s3cret`)
//! ```
//!
//! An upgrade without the token, or with a wrong one, gets `401 Unauthorized` with a one-line
//! body, and no `101`. The token is compared as it appears in the URL (not percent-decoded),
//! in time that does not depend on where it differs.

use rfc6455::http::Response;
use rfc6455::server::{Ctx, Decision, Handler, Options, Server};
use rfc6455::{Message, Request};
use std::net::SocketAddr;

struct TokenAuth {
    token: String,
    next_user: u64,
}

impl TokenAuth {
    /// The token the request carries: `?token=...`, or `Authorization: Bearer ...`.
    fn offered(request: &Request) -> Option<&str> {
        let bearer = request.header_str("authorization").and_then(|v| v.strip_prefix("Bearer "));
        request.query_param("token").or(bearer)
    }
}

impl Handler for TokenAuth {
    /// The user's name, given when the token was checked.
    type State = String;

    fn on_request(&mut self, request: &Request, _peer: SocketAddr) -> Decision<String> {
        match TokenAuth::offered(request) {
            Some(token) if same(token.as_bytes(), self.token.as_bytes()) => {
                self.next_user += 1;
                Decision::accept(format!("user-{}", self.next_user))
            }
            // RFC 9110 §11.6.1: a 401 says how to authenticate.
            _ => Decision::Respond(
                Response::text(401, "a valid token is required: add ?token=... to the URL")
                    .with_header("WWW-Authenticate", "Bearer realm=\"token_auth\""),
            ),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, String>, name: &mut String, message: &Message<'_>) {
        if let Some(text) = message.as_text() {
            let _ = ctx.send_text(&format!("{name}: {text}"));
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let listen = value("--listen").map_or("127.0.0.1:9004", |v| v.as_str());
    let (Ok(listen), Some(token)) = (listen.parse::<SocketAddr>(), value("--token")) else {
        eprintln!("usage: token_auth [--listen ADDR] --token SECRET");
        std::process::exit(2);
    };
    let handler = TokenAuth { token: token.clone(), next_user: 0 };
    let mut server = Server::bind(listen, Options::default(), handler).unwrap_or_else(|e| {
        eprintln!("token_auth: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    let addr = server.local_addr().expect("a bound address");
    eprintln!("token_auth listening on ws://{addr}/?token=...");
    if let Err(e) = server.run() {
        eprintln!("token_auth: {e}");
        std::process::exit(1);
    }
}
