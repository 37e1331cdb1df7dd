//! The client under test for Autobahn|TestSuite's `fuzzingserver` mode: every case is a
//! connection that echoes each message back until the closing handshake.
//!
//! ```sh
//! wstest -m fuzzingserver -s autobahn/fuzzingserver.json --webport 0 &   # listens on 9001
//! cargo run --release --example autobahn_client -- --url ws://127.0.0.1:9001 --agent rfc6455
//! ```
//!
//! It asks `/getCaseCount`, runs each case through `/runCase?case=N&agent=NAME`, then asks for
//! the reports with `/updateReports?agent=NAME`. `scripts/autobahn-client.sh` does all of it
//! and checks the reports.

use rfc6455::client::{Client, ClientError, ClientOptions, Incoming, Url};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut url = "ws://127.0.0.1:9001".to_owned();
    let mut agent = "rfc6455".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--url", Some(value)) => url = value,
            ("--agent", Some(value)) => agent = value,
            _ => {
                eprintln!("usage: autobahn_client [--url ws://127.0.0.1:9001] [--agent NAME]");
                return ExitCode::from(2);
            }
        }
    }
    match run(url.trim_end_matches('/'), &agent) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("autobahn_client: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(base: &str, agent: &str) -> Result<(), String> {
    let count: u32 = match connect(&format!("{base}/getCaseCount"))?.recv() {
        Ok(Incoming::Text(text)) => {
            text.trim().parse().map_err(|_| format!("case count {text:?}"))?
        }
        other => return Err(format!("no case count: {other:?}")),
    };
    eprintln!("autobahn_client: {count} cases, agent {agent}");
    for case in 1..=count {
        let mut client = connect(&format!("{base}/runCase?case={case}&agent={agent}"))?;
        // Echo until the case ends: a clean close, or a failure the suite provoked on purpose
        // (the suite judges it; this client only reports it).
        let end = loop {
            let result = match client.recv() {
                Ok(Incoming::Text(text)) => client.send_text(&text),
                Ok(Incoming::Binary(data)) => client.send_binary(&data),
                Ok(Incoming::Close { .. }) => break None,
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                break Some(error);
            }
        };
        if let Some(error) = end.filter(|e| !matches!(e, ClientError::Closed)) {
            eprintln!("autobahn_client: case {case}: {error}");
        }
    }
    let mut client = connect(&format!("{base}/updateReports?agent={agent}"))?;
    while !matches!(client.recv(), Ok(Incoming::Close { .. }) | Err(_)) {}
    eprintln!("autobahn_client: reports updated");
    Ok(())
}

fn connect(url: &str) -> Result<Client, String> {
    let url = Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let mut options = ClientOptions::default();
    // The suite's largest messages are 16 MiB; leave room above them.
    options.config.max_frame_size = 64 << 20;
    options.config.max_message_size = 64 << 20;
    Client::connect_with(&url, options).map_err(|e| format!("{url}: {e}"))
}
