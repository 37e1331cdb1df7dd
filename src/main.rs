//! The `rfc6455` command: `rfc6455 chat` (the group chat), `rfc6455 echo` (the echo server
//! that Autobahn tests) and `rfc6455 client URL` (a client for standard input and output).

mod client_cli;
mod signals;

use rfc6455::chat::{self, Chat, ChatOptions, RateLimit};
use rfc6455::echo::Echo;
use rfc6455::policy::Policy;
use rfc6455::server::{Handler, Log, Options, Record, Server};
use signals::Signals;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "\
usage: rfc6455 chat [options]   group chat with its page on http://127.0.0.1:8080/
       rfc6455 echo [options]   echo every message back (the Autobahn test server)
       rfc6455 client URL [options]  send stdin's lines, print what arrives (client --help)

options (defaults: chat / echo):
  --listen ADDR             address to listen on [127.0.0.1:8080 / 127.0.0.1:9001]
  --max-frame-size BYTES    largest frame payload, else close 1009 [65536 / 67108864]
  --max-message-size BYTES  largest message, else close 1009 [65536 / 67108864]
  --max-outbox BYTES        output others may queue for a client before it is closed with
                            1008 as too slow a reader [1048576 / 16777216]
  --max-head-size BYTES     largest handshake request head, else 431 [8192]
  --max-headers N           most header fields in it, else 431 [64]
  --max-fragments N         frames one message may arrive in, else close 1008 [1024 / 131072]
  --max-connections N       connections held at once, further ones get 503 [10000]
  --max-connections-per-ip N  the same, per peer address [256 / 10000]
  --allow-origin ORIGIN     accept WebSockets only from this Origin (repeatable), else 403;
                            without any, every origin is accepted [none]
  --subprotocol NAME        a subprotocol to accept (repeatable) [none]
  --handshake-timeout SECS  time from accept to the end of the handshake [10]
  --close-timeout SECS      time for the peer to answer a Close and close TCP [10]
  --ping-interval SECS      keepalive Ping after this long without a Pong, 0 = off [20]
  --pong-timeout SECS       close (1011) a peer whose Pong is this late [20]
  --no-deflate              never agree to permessage-deflate (RFC 7692) compression
  --deflate-window BITS     largest LZ77 window to compress with and to accept, 9-15 [15]
  --deflate-threshold BYTES messages shorter than this are sent uncompressed [128]
  --trace                   log every handshake, frame header and state change, with its
                            RFC 6455 section, to standard error
chat only:
  --heartbeat SECS          the tutorial's app-level heartbeat message, 0 = off [5]
  --history N               recent messages sent to a new client [50]
  --rate-limit N            messages per second a client may send (bursts of 2N); a
                            faster client is read at that rate, nothing is dropped; 0 = off [20]
  -h, --help                this text
";

fn main() -> ExitCode {
    // Before any thread starts, so that every thread inherits the blocked mask.
    let signals = Signals::block();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rfc6455: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String], signals: Signals) -> Result<(), String> {
    let Some((mode, rest)) = args.split_first() else {
        return Err("missing mode".into());
    };
    match mode.as_str() {
        "client" => match client_cli::run(rest, signals) {
            Ok(status) => std::process::exit(i32::from(status)),
            Err(message) => {
                eprintln!("rfc6455 client: {message}\n\n{}", client_cli::USAGE);
                std::process::exit(2);
            }
        },
        "chat" => {
            let mut settings = Settings::chat();
            settings.parse(rest)?;
            let chat = Chat::with_policy(settings.chat, settings.policy);
            serve(settings.listen, settings.options, chat, signals, "chat: open http://")
        }
        "echo" => {
            let mut settings = Settings::echo();
            settings.parse(rest)?;
            let echo = Echo { policy: settings.policy };
            serve(settings.listen, settings.options, echo, signals, "echo listening on ws://")
        }
        "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown mode {other:?}")),
    }
}

fn serve<H: Handler>(
    listen: SocketAddr,
    options: Options,
    handler: H,
    signals: Signals,
    banner: &str,
) -> Result<(), String> {
    let mut server = Server::bind(listen, options, handler)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    eprintln!("rfc6455 {banner}{addr}/");
    signals.shut_down_on_signal(server.handle());
    server.run().map_err(|e| format!("event loop failed: {e}"))
}

/// The command's log: every record a line on standard error.
struct Stderr;

impl Log for Stderr {
    fn record(&self, record: &Record<'_>) {
        match record {
            Record::Trace { conn, line } => eprintln!("[conn {conn}] {line}"),
            Record::AnswerRefused { conn, error } => {
                eprintln!("[conn {conn}] the handler's answer was refused: {error}")
            }
            other => eprintln!("{other:?}"),
        }
    }
}

/// Everything the command line sets.
struct Settings {
    listen: SocketAddr,
    options: Options,
    policy: Policy,
    chat: ChatOptions,
    is_chat: bool,
}

impl Settings {
    fn chat() -> Settings {
        let mut options = Options::default();
        options.connection.max_frame_size = 64 * 1024;
        options.connection.max_message_size = 64 * 1024;
        options.connection.max_fragments = 1024;
        options.connection.ping_interval = Some(Duration::from_secs(20));
        options.max_outbox = 1024 * 1024;
        options.max_connections_per_ip = 256;
        // A chat message is at most 64 KiB: a member whose reading is paused by the rate limit
        // holds at most this much read and not yet processed.
        options.read_budget = 64 * 1024;
        options.log = Some(Arc::new(Stderr));
        let listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        let chat = ChatOptions::default();
        Settings { listen, options, policy: chat::policy(), chat, is_chat: true }
    }

    fn echo() -> Settings {
        let mut options = Options::default();
        // Autobahn's largest messages are 16 MiB; leave room above them.
        options.connection.max_frame_size = 64 << 20;
        options.connection.max_message_size = 64 << 20;
        options.connection.ping_interval = Some(Duration::from_secs(20));
        options.log = Some(Arc::new(Stderr));
        let listen = SocketAddr::from(([127, 0, 0, 1], 9001));
        let chat = ChatOptions::default();
        Settings { listen, options, policy: Policy::default(), chat, is_chat: false }
    }

    fn parse(&mut self, args: &[String]) -> Result<(), String> {
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            if flag == "-h" || flag == "--help" {
                print!("{USAGE}");
                std::process::exit(0);
            }
            if flag == "--trace" {
                self.options.connection.trace = true;
                continue;
            }
            if flag == "--no-deflate" {
                #[cfg(feature = "deflate")]
                {
                    self.options.connection.deflate = None;
                }
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number =
                || value.parse::<u64>().map_err(|_| format!("{flag}: not a number: {value:?}"));
            let size = || {
                number().and_then(|n| usize::try_from(n).map_err(|_| format!("{flag}: too large")))
            };
            let secs = || number().map(Duration::from_secs);
            let optional_secs = || secs().map(|d| (!d.is_zero()).then_some(d));
            let connection = &mut self.options.connection;
            match flag.as_str() {
                "--listen" => {
                    self.listen =
                        value.parse().map_err(|_| format!("--listen: not an address: {value:?}"))?
                }
                "--max-frame-size" => connection.max_frame_size = number()?,
                "--max-message-size" => connection.max_message_size = number()?,
                "--max-outbox" => self.options.max_outbox = size()?,
                "--max-head-size" => connection.max_head_size = size()?,
                "--max-headers" => connection.max_headers = size()?,
                "--max-fragments" => {
                    connection.max_fragments =
                        u32::try_from(number()?).map_err(|_| format!("{flag}: too large"))?
                }
                "--max-connections" => self.options.max_connections = size()?,
                "--max-connections-per-ip" => self.options.max_connections_per_ip = size()?,
                "--allow-origin" => self.policy.allowed_origins.push(value.clone()),
                "--subprotocol" => self.policy.subprotocols.push(value.clone()),
                "--deflate-window" => {
                    let bits = u8::try_from(number()?)
                        .ok()
                        .filter(|bits| (9..=15).contains(bits))
                        .ok_or_else(|| format!("{flag}: a window is 9 to 15 bits, not {value}"))?;
                    #[cfg(feature = "deflate")]
                    if let Some(deflate) = &mut self.options.connection.deflate {
                        deflate.max_send_window_bits = bits;
                        deflate.max_receive_window_bits = bits;
                    }
                    let _ = bits;
                }
                "--deflate-threshold" => {
                    let _threshold = size()?;
                    #[cfg(feature = "deflate")]
                    if let Some(deflate) = &mut self.options.connection.deflate {
                        deflate.threshold = _threshold;
                    }
                }
                "--handshake-timeout" => connection.handshake_timeout = secs()?,
                "--close-timeout" => connection.close_timeout = secs()?,
                "--ping-interval" => connection.ping_interval = optional_secs()?,
                "--pong-timeout" => connection.pong_timeout = secs()?,
                "--heartbeat" if self.is_chat => self.chat.heartbeat = optional_secs()?,
                "--history" if self.is_chat => self.chat.history = size()?,
                "--rate-limit" if self.is_chat => {
                    let per_second = number()?;
                    self.chat.rate_limit = (per_second > 0).then_some(RateLimit {
                        per_second: per_second as f64,
                        burst: 2.0 * per_second as f64,
                    });
                }
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        Ok(())
    }
}
