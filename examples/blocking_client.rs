//! The blocking client: connect, send, receive, close. Without a URL it starts this crate's
//! echo server on a free loopback port first and talks to that.
//!
//! ```sh
//! cargo run --example blocking_client                          # against its own echo server
//! cargo run --example blocking_client -- ws://127.0.0.1:9001/  # against any echo server
//! ```

use rfc6455::CloseCode;
use rfc6455::client::{Client, ClientError, Incoming};
use rfc6455::echo::Echo;
use rfc6455::server::{Options, Server};

fn main() -> Result<(), ClientError> {
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            let mut server =
                Server::bind("127.0.0.1:0".parse().unwrap(), Options::default(), Echo::default())?;
            let url = format!("ws://{}/", server.local_addr()?);
            std::thread::spawn(move || server.run());
            url
        }
    };
    let mut client = Client::connect(&url)?;
    let agreed = client.upgraded().extensions.clone();
    println!("connected to {url} (extensions: {})", agreed.as_deref().unwrap_or("none"));
    for text in ["hello", "wörld", &"compressible ".repeat(100)] {
        client.send_text(text)?;
        match client.recv()? {
            Incoming::Text(echo) => println!("echo: {} bytes, same: {}", echo.len(), echo == text),
            other => println!("unexpected: {other:?}"),
        }
    }
    client.close(CloseCode::NORMAL, "done")?;
    // Messages sent before the server's Close still arrive; then the closing handshake ends.
    loop {
        match client.recv()? {
            Incoming::Close { code, .. } => {
                // The code; §5.5.1: the reason is "not guaranteed to be human readable".
                println!("closed: {:?}", code.map(|c| c.0));
                return Ok(());
            }
            other => println!("after our Close: {other:?}"),
        }
    }
}
