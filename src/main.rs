//! The `rfc6455` command: `rfc6455 chat` (the group chat), `rfc6455 echo` (the echo server
//! that Autobahn tests) and `rfc6455 client URL` (a client for standard input and output).

mod client_cli;
mod signals;

use rfc6455::chat::{self, Chat, ChatOptions, RateLimit};
use rfc6455::echo::Echo;
use rfc6455::policy::Policy;
use rfc6455::server::{
    Access, Balance, Handler, Log, LoopMetrics, Loops, Options, Record, Server, ServerHandle,
    serve_metrics,
};
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
  --threads N               event loops, each on its own thread and core, sharing the port;
                            the chat stays one chat with one order [1]
  --balance HOW             how new connections reach the loops: acceptor (the first loop
                            accepts, the loop holding fewest gets it) or reuseport (a
                            listener per loop, the kernel hashes) [acceptor]
  --max-connections N       connections held at once (all event loops together), further
                            ones get 503 [10000]
  --max-connections-per-ip N  the same, per peer address [256 / 10000]
  --access-log              one line per connection at its end, on standard error: client
                            address, request target, status, close code, duration,
                            messages/bytes in and out
  --log-format FORMAT       plain or json (the access log's lines) [plain]
  --metrics-listen ADDR     serve GET /metrics (Prometheus text) on this address, a port
                            of its own: connections, refusals, messages, bytes, closes by
                            code, slow readers, per event loop [none]
  --tls-cert PEM --tls-key PEM  speak TLS (wss:// and https:// on the one port) with this
                            certificate chain and private key (cargo feature tls) [none]
  --trust-proxy ADDR        a reverse proxy (address or network, e.g. 10.0.0.0/8; repeatable)
                            whose X-Forwarded-For or Forwarded header gives the client's
                            address, for the per-address cap and the handler [none]
  --max-handshake-rate N    opening handshakes each event loop completes per second; past
                            it, 503 with a Retry-After that spreads them, 0 = off [10000 / 0]
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
  --kept N                  recent messages kept for clients that resume with ?since=ID [1000]
  --history-file PATH       keep every message in PATH (one JSON line each, on disk within
                            100 ms); at start, its last messages are the history and ids go on
  --redis redis://HOST:PORT[/DB]  one chat across any number of processes and machines,
                            through a Redis stream (cargo feature redis)
  --rate-limit N            messages per second a client may send (bursts of 2N); a
                            faster client is read at that rate, nothing is dropped; 0 = off [20]
  --presence-interval MS    joins and leaves are gathered and told at most this often, as
                            one notice [250]
  --presence-names N        up to N members online, joins, leaves and renames are told by
                            name; above, only the online count (the who command lists) [200]
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
            let (ports, secure) = (settings.ports(), settings.secure());
            let (threads, chat, policy) = (settings.threads, settings.chat, settings.policy);
            let chats = match (&settings.history_file, &settings.redis) {
                (Some(_), Some(_)) => {
                    return Err("--history-file and --redis: the history is in one place".into());
                }
                (Some(path), None) => Chat::open(threads, chat, policy, path)
                    .map_err(|e| format!("--history-file: {e}"))?,
                #[cfg(feature = "redis")]
                (None, Some(url)) => Chat::connect_redis(threads, chat, policy, url)
                    .map_err(|e| format!("--redis: {e}"))?,
                #[cfg(not(feature = "redis"))]
                (None, Some(_)) => {
                    return Err("--redis: this build has no Redis (cargo feature redis)".into());
                }
                (None, None) => Chat::group(threads, chat, policy),
            };
            let attach = |chat: &Chat, handles| chat.attach(handles);
            let banner = if secure { "chat: open https://" } else { "chat: open http://" };
            serve(ports, settings.options, chats, attach, signals, banner)
        }
        "echo" => {
            let mut settings = Settings::echo();
            settings.parse(rest)?;
            let (ports, secure) = (settings.ports(), settings.secure());
            let policy = settings.policy;
            let echoes = (0..settings.threads).map(|_| Echo { policy: policy.clone() }).collect();
            let banner =
                if secure { "echo listening on wss://" } else { "echo listening on ws://" };
            serve(ports, settings.options, echoes, |_, _| {}, signals, banner)
        }
        "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown mode {other:?}")),
    }
}

/// Serves with one event loop per handler: on this thread for one, else with [`Loops`] (each
/// on its own thread, connections spread by `balance`). `attach` gives the handlers the
/// loops' handles before they start.
/// Where the server listens, and how.
struct Ports {
    listen: SocketAddr,
    balance: Balance,
    /// `--metrics-listen`.
    metrics: Option<SocketAddr>,
}

fn serve<H>(
    ports: Ports,
    options: Options,
    mut handlers: Vec<H>,
    attach: impl FnOnce(&H, Vec<ServerHandle>),
    signals: Signals,
    banner: &str,
) -> Result<(), String>
where
    H: Handler + Send + 'static,
    H::State: Send,
{
    let Ports { listen, balance, metrics } = ports;
    let metrics = bind_metrics(metrics)?;
    if handlers.len() == 1
        && let Some(handler) = handlers.pop()
    {
        let mut server = Server::bind(listen, options, handler)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        attach(server.handler(), vec![server.handle()]);
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        eprintln!("rfc6455 {banner}{addr}/");
        serve_metrics_on(metrics, vec![server.metrics()])?;
        signals.shut_down_on_signal(server.handle());
        return server.run().map_err(|e| format!("event loop failed: {e}"));
    }
    let threads = handlers.len();
    let loops = Loops::bind_balanced(listen, options, handlers, balance)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    if let Some(first) = loops.handler(0) {
        attach(first, loops.handles());
    }
    let per_loop = loops.metrics();
    let addr = loops.local_addr();
    let running = loops.spawn().map_err(|e| format!("cannot start the event loops: {e}"))?;
    eprintln!("rfc6455 {banner}{addr}/ ({threads} event loops)");
    serve_metrics_on(metrics, per_loop)?;
    let handles = running.handles().to_vec();
    signals.on_signal(move |signal| {
        eprintln!("rfc6455: signal {signal}: closing connections (1001), then exiting");
        for handle in &handles {
            handle.shutdown();
        }
    });
    running.join().map(|_| ()).map_err(|e| format!("event loop failed: {e}"))
}

/// `--metrics-listen ADDR`: its port, taken at start (a clear error if it cannot be).
fn bind_metrics(at: Option<SocketAddr>) -> Result<Option<std::net::TcpListener>, String> {
    at.map(|at| {
        std::net::TcpListener::bind(at)
            .map_err(|e| format!("--metrics-listen: cannot listen on {at}: {e}"))
    })
    .transpose()
}

/// `GET /metrics` on a thread of its own (after the server's banner, which comes first).
fn serve_metrics_on(
    listener: Option<std::net::TcpListener>,
    loops: Vec<Arc<LoopMetrics>>,
) -> Result<(), String> {
    let Some(listener) = listener else { return Ok(()) };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("rfc6455-metrics".into())
        .spawn(move || serve_metrics(listener, loops))
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    eprintln!("rfc6455 metrics: http://{addr}/metrics");
    Ok(())
}

/// The command's log: every record a line on standard error.
struct Stderr {
    /// `--log-format json`: access lines as JSON objects.
    json: bool,
}

impl Log for Stderr {
    fn record(&self, record: &Record<'_>) {
        match record {
            Record::Trace { conn, line } => eprintln!("[conn {conn}] {line}"),
            Record::AnswerRefused { conn, error } => {
                eprintln!("[conn {conn}] the handler's answer was refused: {error}")
            }
            Record::Access { access, .. } if self.json => eprintln!("{}", access_json(access)),
            Record::Access { access, .. } => eprintln!("{}", access_line(access)),
            other => eprintln!("{other:?}"),
        }
    }
}

/// `access 203.0.113.7 "/?since=41" 101 1000 12.345s in 3/410 out 57/9321`: the client, the
/// request target, the status, the close code, the duration, messages/bytes each way.
fn access_line(a: &Access) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    format!(
        "access {} {} {} {} {:.3}s in {}/{} out {}/{}",
        dash(a.peer.map(|ip| ip.to_string())),
        dash(a.target.as_deref().map(|t| serde_json::Value::from(t).to_string())),
        dash(a.status.map(|s| s.to_string())),
        dash(a.close_code.map(|c| c.to_string())),
        a.duration.as_secs_f64(),
        a.messages_in,
        a.bytes_in,
        a.messages_out,
        a.bytes_out
    )
}

fn access_json(a: &Access) -> String {
    serde_json::json!({
        "peer": a.peer.map(|ip| ip.to_string()),
        "target": a.target,
        "status": a.status,
        "close_code": a.close_code,
        "duration_ms": (a.duration.as_secs_f64() * 1e6).round() / 1e3,
        "messages_in": a.messages_in,
        "bytes_in": a.bytes_in,
        "messages_out": a.messages_out,
        "bytes_out": a.bytes_out,
    })
    .to_string()
}

/// Everything the command line sets.
struct Settings {
    listen: SocketAddr,
    /// Event loops, each on its own thread.
    threads: usize,
    /// How new connections are spread over them.
    balance: Balance,
    /// The chat's durable history.
    history_file: Option<std::path::PathBuf>,
    /// The Redis that chat processes share.
    redis: Option<String>,
    /// Where `GET /metrics` is served.
    metrics: Option<SocketAddr>,
    /// `--tls-cert` and `--tls-key`.
    tls: (Option<std::path::PathBuf>, Option<std::path::PathBuf>),
    options: Options,
    policy: Policy,
    chat: ChatOptions,
    is_chat: bool,
}

impl Settings {
    fn ports(&self) -> Ports {
        Ports { listen: self.listen, balance: self.balance, metrics: self.metrics }
    }

    fn chat() -> Settings {
        let mut options = Options::default();
        options.connection.max_frame_size = 64 * 1024;
        options.connection.max_message_size = 64 * 1024;
        options.connection.max_fragments = 1024;
        options.connection.ping_interval = Some(Duration::from_secs(20));
        options.max_outbox = 1024 * 1024;
        options.max_connections_per_ip = 256;
        // Past what one loop completes (about 9,000 joins a second in bench/storm.sh on a
        // 2-core machine), joins are refused for later rather than queued.
        options.max_handshake_rate = Some(10_000.0);
        // A chat message is at most 64 KiB: a member whose reading is paused by the rate limit
        // holds at most this much read and not yet processed.
        options.read_budget = 64 * 1024;
        options.log = Some(Arc::new(Stderr { json: false }));
        let listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        let chat = ChatOptions::default();
        let (threads, history_file, redis) = (1, None, None);
        Settings {
            listen,
            threads,
            balance: Balance::default(),
            history_file,
            redis,
            metrics: None,
            tls: (None, None),
            options,
            policy: chat::policy(),
            chat,
            is_chat: true,
        }
    }

    fn echo() -> Settings {
        let mut options = Options::default();
        // Autobahn's largest messages are 16 MiB; leave room above them.
        options.connection.max_frame_size = 64 << 20;
        options.connection.max_message_size = 64 << 20;
        options.connection.ping_interval = Some(Duration::from_secs(20));
        options.log = Some(Arc::new(Stderr { json: false }));
        let listen = SocketAddr::from(([127, 0, 0, 1], 9001));
        let chat = ChatOptions::default();
        let (threads, history_file, redis, policy) = (1, None, None, Policy::default());
        let balance = Balance::default();
        Settings {
            listen,
            threads,
            balance,
            history_file,
            redis,
            metrics: None,
            tls: (None, None),
            options,
            policy,
            chat,
            is_chat: false,
        }
    }

    fn parse(&mut self, args: &[String]) -> Result<(), String> {
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            if flag == "-h" || flag == "--help" {
                print!("{USAGE}");
                std::process::exit(0);
            }
            if flag == "--access-log" {
                self.options.access_log = true;
                continue;
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
                "--threads" => {
                    self.threads = size()?;
                    if !(1..=256).contains(&self.threads) {
                        return Err(format!("{flag}: 1 to 256 event loops, not {value}"));
                    }
                }
                "--balance" => {
                    self.balance = match value.as_str() {
                        "acceptor" => Balance::Acceptor,
                        "reuseport" => Balance::ReusePort,
                        _ => return Err(format!("{flag}: acceptor or reuseport, not {value:?}")),
                    }
                }
                "--max-connections-per-ip" => self.options.max_connections_per_ip = size()?,
                "--log-format" => {
                    let json = match value.as_str() {
                        "plain" => false,
                        "json" => true,
                        _ => return Err(format!("{flag}: plain or json, not {value:?}")),
                    };
                    self.options.log = Some(Arc::new(Stderr { json }));
                }
                "--metrics-listen" => {
                    let at =
                        value.parse().map_err(|_| format!("{flag}: not an address: {value:?}"))?;
                    self.metrics = Some(at);
                }
                "--trust-proxy" => {
                    let net = value.parse().map_err(|e| format!("{flag}: {e}"))?;
                    self.options.trusted_proxies.push(net);
                }
                "--max-handshake-rate" => {
                    let rate = number()?;
                    self.options.max_handshake_rate = (rate > 0).then_some(rate as f64);
                }
                "--tls-cert" => self.tls.0 = Some(value.into()),
                "--tls-key" => self.tls.1 = Some(value.into()),
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
                "--kept" if self.is_chat => self.chat.kept = size()?,
                "--presence-interval" if self.is_chat => {
                    self.chat.presence_interval = Duration::from_millis(number()?)
                }
                "--presence-names" if self.is_chat => self.chat.presence_names = size()?,
                "--history-file" if self.is_chat => self.history_file = Some(value.into()),
                "--redis" if self.is_chat => self.redis = Some(value.clone()),
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
        self.load_tls()
    }

    /// `--tls-cert` and `--tls-key` together, loaded now: a bad file stops the start.
    fn load_tls(&mut self) -> Result<(), String> {
        match &self.tls {
            (None, None) => Ok(()),
            (Some(_cert), Some(_key)) => {
                #[cfg(feature = "tls")]
                {
                    self.options.tls = Some(rfc6455::server::tls_config(_cert, _key)?);
                    Ok(())
                }
                #[cfg(not(feature = "tls"))]
                Err("--tls-cert: this build has no TLS (cargo feature tls)".into())
            }
            _ => Err("--tls-cert and --tls-key go together".into()),
        }
    }

    /// Whether the server speaks TLS.
    fn secure(&self) -> bool {
        self.tls.0.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_plain_and_json() {
        let mut a = Access::default();
        (a.peer, a.target, a.status, a.close_code) =
            (Some([203, 0, 113, 7].into()), Some("/?since=4".into()), Some(101), Some(1000));
        a.duration = Duration::from_micros(12_345_678);
        (a.messages_in, a.bytes_in, a.messages_out, a.bytes_out) = (3, 410, 57, 9321);
        assert_eq!(
            access_line(&a),
            r#"access 203.0.113.7 "/?since=4" 101 1000 12.346s in 3/410 out 57/9321"#
        );
        let json: serde_json::Value = serde_json::from_str(&access_json(&a)).unwrap();
        assert_eq!(json["duration_ms"], 12345.678);
        assert_eq!(
            (json["peer"].as_str(), json["status"].as_u64()),
            (Some("203.0.113.7"), Some(101))
        );
        let mut refused = Access::default();
        refused.status = Some(400);
        assert_eq!(access_line(&refused), "access - - 400 - 0.000s in 0/0 out 0/0");
    }
}
