//! Many client connections on one thread: `rfc6455::client::Session`s on a `mio::Poll`. Each
//! of N clients sends M messages to an echo server, counts the echoes, and closes when they
//! are all back. Without a URL it starts this crate's echo server on a free loopback port.
//!
//! ```sh
//! cargo run --release --example mio_clients                 # 100 clients x 10 messages
//! cargo run --release --example mio_clients -- ws://127.0.0.1:9001/ 500 20
//! ```

use rfc6455::CloseCode;
use rfc6455::client::{ClientOptions, Incoming, Session, Update, Url};
use rfc6455::echo::Echo;
use rfc6455::server::{Options, Server};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = match args.next() {
        Some(url) => url,
        None => {
            let mut server =
                Server::bind("127.0.0.1:0".parse()?, Options::default(), Echo::default())?;
            let url = format!("ws://{}/", server.local_addr()?);
            std::thread::spawn(move || server.run());
            url
        }
    };
    let clients: usize = args.next().map_or(Ok(100), |n| n.parse())?;
    let messages: usize = args.next().map_or(Ok(10), |n| n.parse())?;
    let url = Url::parse(&url)?;
    let address = (url.host.as_str(), url.port).to_socket_addrs()?.next().ok_or("no address")?;
    let options = ClientOptions::default();
    let request = options.request(&url);
    let config = Arc::new(options.config);

    let mut poll = mio::Poll::new()?;
    let mut sessions = Vec::with_capacity(clients);
    let mut echoes = vec![0usize; clients];
    let started = Instant::now();
    for i in 0..clients {
        let stream = mio::net::TcpStream::connect(address)?;
        let seed = rfc6455::random::os_seed()?;
        let mut session = Session::start(stream, &request, config.clone(), seed, Instant::now())?;
        let interest = session.interest();
        poll.registry().register(session.stream(), mio::Token(i), interest)?;
        sessions.push(session);
    }
    let (mut open, mut done, mut failed) = (0, 0, 0);
    let mut events = mio::Events::with_capacity(1024);
    // Bounded: every load here stops by itself.
    let deadline = started + Duration::from_secs(60);
    while done < clients && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        let now = Instant::now();
        for event in &events {
            let i = event.token().0;
            let mut happened = Vec::new();
            sessions[i].ready(now, &mut |update| happened.push(update));
            for update in happened {
                match update {
                    Update::Open(_) => {
                        open += 1;
                        for m in 0..messages {
                            sessions[i].send_text(&format!("client {i} message {m}"))?;
                        }
                    }
                    Update::Incoming(Incoming::Text(_)) => {
                        echoes[i] += 1;
                        if echoes[i] == messages {
                            sessions[i].close(CloseCode::NORMAL, "all echoed", now)?;
                        }
                    }
                    Update::Failed(error) => {
                        eprintln!("client {i}: {error}");
                        failed += 1;
                    }
                    Update::Done => done += 1,
                    _ => {}
                }
            }
        }
        for session in &mut sessions {
            session.handle_timeout(now, &mut |update| match update {
                Update::Failed(_) => failed += 1,
                Update::Done => done += 1,
                _ => {}
            });
        }
    }
    let echoed: usize = echoes.iter().sum();
    println!(
        "{clients} clients: {open} opened, {echoed} of {} messages echoed, {done} closed, \
         {failed} failed, in {:.2} s",
        clients * messages,
        started.elapsed().as_secs_f64()
    );
    if echoed == clients * messages && done == clients && failed == 0 {
        Ok(())
    } else {
        Err("not every message came back".into())
    }
}
