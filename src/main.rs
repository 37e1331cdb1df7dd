//! The `rfc6455` command: `rfc6455 echo --listen 127.0.0.1:9001`.

use rfc6455::echo::Echo;
use rfc6455::server::{Options, Server};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: rfc6455 echo [options]

Runs a WebSocket echo server: every text and binary message goes back to its sender.

options:
  --listen ADDR             address to listen on [127.0.0.1:9001]
  --max-frame-size BYTES    largest frame payload accepted, else close 1009 [16777216]
  --max-message-size BYTES  largest message accepted, else close 1009 [67108864]
  --max-outbox BYTES        stop reading a client while this much output waits [4194304]
  --max-connections N       connections held at once, further ones get 503 [10000]
  --subprotocol NAME        a subprotocol to accept (repeatable) [none]
  --handshake-timeout SECS  time from accept to the end of the handshake [10]
  --close-timeout SECS      time for the peer to answer a Close and close TCP [10]
  -h, --help                this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rfc6455: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let Some((mode, rest)) = args.split_first() else {
        return Err("missing mode".into());
    };
    match mode.as_str() {
        "echo" => {
            let (listen, options) = parse_options(rest, "127.0.0.1:9001")?;
            let mut server = Server::bind(listen, options, Echo)
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let addr = server.local_addr().map_err(|e| e.to_string())?;
            eprintln!("rfc6455 echo listening on ws://{addr}");
            server.run().map_err(|e| format!("event loop failed: {e}"))
        }
        "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown mode {other:?}")),
    }
}

fn parse_options(args: &[String], default_listen: &str) -> Result<(SocketAddr, Options), String> {
    let mut listen: SocketAddr = default_listen.parse().map_err(|_| "bad default address")?;
    let mut options = Options::default();
    options.connection.max_message_size = 64 << 20;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number =
            || value.parse::<u64>().map_err(|_| format!("{flag}: not a number: {value:?}"));
        let size =
            || number().and_then(|n| usize::try_from(n).map_err(|_| format!("{flag}: too large")));
        match flag.as_str() {
            "--listen" => {
                listen =
                    value.parse().map_err(|_| format!("--listen: not an address: {value:?}"))?
            }
            "--max-frame-size" => options.connection.max_frame_size = number()?,
            "--max-message-size" => options.connection.max_message_size = number()?,
            "--max-outbox" => options.max_outbox = size()?,
            "--max-connections" => options.max_connections = size()?,
            "--subprotocol" => options.connection.subprotocols.push(value.clone()),
            "--handshake-timeout" => {
                options.connection.handshake_timeout = Duration::from_secs(number()?)
            }
            "--close-timeout" => options.connection.close_timeout = Duration::from_secs(number()?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok((listen, options))
}
