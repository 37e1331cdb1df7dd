//! `rfc6455 client URL`: each line of standard input is sent as a text message, each message
//! received is printed as one line; at the end of input the client waits until the server has
//! been quiet for a moment (its answers to the last lines are still on their way: once a
//! server has received our Close it may send nothing more), then sends Close 1000, waits for
//! the closing handshake and the server's TCP close, and exits.
//!
//! One thread reads standard input and hands lines over a bounded channel (so a slow server
//! slows the reading, never the memory); the main thread runs a mio loop with the socket and
//! a `Waker` for those lines, driving a `rfc6455::client::Session`.

use crate::signals::Signals;
use rfc6455::CloseCode;
use rfc6455::client::{ClientError, ClientOptions, Incoming, Session, Update, Url};
use rfc6455::handshake::UpgradeError;
use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

pub const USAGE: &str = "\
usage: rfc6455 client URL [options]   a WebSocket client: stdin lines out, messages in

  URL                       ws://host[:port][/path][?query], or wss:// (cargo feature tls)
  --ca-file PEM             wss://: trust this file's certificates, not the Mozilla roots
  --insecure                wss://: accept any certificate (no protection in the middle)
  --header 'NAME: VALUE'    add a header field to the opening handshake (repeatable)
  --origin ORIGIN           send this Origin
  --subprotocol NAME        offer this subprotocol (repeatable)
  --no-deflate              do not offer permessage-deflate (RFC 7692)
  --ping SECS               keepalive Ping every SECS, fail if no Pong within 2 x SECS
  --binary                  print binary messages raw (default: as hex)
  --max-message-size BYTES  largest message accepted, else close 1009 [67108864]
  --quiet MS                at the end of input, close once nothing has arrived for MS
                            milliseconds (answers to the last lines still arrive) [500]
  --trace                   print the handshake, every frame both ways and every state
                            change with its RFC section, to standard error
exit status: 0 after a clean closing handshake (code 1000, 1001 or none), 1 after any
other end (another code, a protocol error, a lost connection, a timeout), 2 for bad
arguments, 3 when the server refused the handshake (its status is printed).
";

/// Where lines from standard input (and the signal) reach the loop.
enum Input {
    Line(String),
    End,
    Interrupted,
}

struct Settings {
    url: Url,
    options: ClientOptions,
    binary: bool,
    quiet: Duration,
}

fn parse(args: &[String]) -> Result<Settings, String> {
    let mut url = None;
    let mut options = ClientOptions::default();
    let mut binary = false;
    let mut quiet = Duration::from_millis(500);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--trace" => options.config.trace = true,
            "--binary" => binary = true,
            "--insecure" => {
                #[cfg(feature = "tls")]
                {
                    options.tls.insecure = true;
                }
                #[cfg(not(feature = "tls"))]
                return Err("--insecure: this build has no TLS (cargo feature tls)".into());
            }
            "--no-deflate" => {
                #[cfg(feature = "deflate")]
                {
                    options.config.deflate = None;
                }
            }
            flag if flag.starts_with("--") => {
                let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
                let number = || value.parse::<u64>().map_err(|_| format!("{flag}: not a number"));
                match flag {
                    "--header" => {
                        let (name, field) = value
                            .split_once(':')
                            .ok_or_else(|| format!("--header: 'NAME: VALUE', not {value:?}"))?;
                        options.headers.push((name.trim().into(), field.trim().into()));
                    }
                    "--origin" => options.origin = Some(value.clone()),
                    #[cfg(feature = "tls")]
                    "--ca-file" => options.tls.ca_file = Some(value.into()),
                    "--quiet" => quiet = Duration::from_millis(number()?),
                    "--subprotocol" => options.subprotocols.push(value.clone()),
                    "--ping" => {
                        let secs = Duration::from_secs(number()?);
                        if secs.is_zero() {
                            return Err("--ping: at least 1 second".into());
                        }
                        options.config.ping_interval = Some(secs);
                        options.config.pong_timeout = 2 * secs;
                    }
                    "--max-message-size" => {
                        options.config.max_message_size = number()?;
                        options.config.max_frame_size = number()?;
                    }
                    _ => return Err(format!("unknown option {flag}")),
                }
            }
            text if url.is_none() => {
                url = Some(Url::parse(text).map_err(|e| format!("{text:?}: {e}"))?);
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let url = url.ok_or("missing URL")?;
    Ok(Settings { url, options, binary, quiet })
}

/// Runs the client; returns the process's exit status.
pub fn run(args: &[String], signals: Signals) -> Result<u8, String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return Ok(0);
    }
    let settings = parse(args)?;
    #[cfg(not(feature = "tls"))]
    if settings.url.secure {
        return Err("wss:// needs TLS, which this build does not have (cargo feature tls)".into());
    }
    let trace = settings.options.config.trace;
    let request = settings.options.request(&settings.url);
    let address = (settings.url.host.as_str(), settings.url.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", settings.url.host))?
        .next()
        .ok_or_else(|| format!("{}: no address", settings.url.host))?;
    let stream = mio::net::TcpStream::connect(address).map_err(|e| format!("{address}: {e}"))?;
    let seed = rfc6455::random::os_seed().map_err(|e| format!("getrandom: {e}"))?;
    let config = Arc::new(settings.options.config.clone());
    #[cfg(feature = "tls")]
    let started = if settings.url.secure {
        let (host, tls) = (&settings.url.host, &settings.options.tls);
        Session::start_tls(stream, host, tls, &request, config, seed, Instant::now())
            .map_err(|e| format!("cannot start TLS or send this request: {e}"))
    } else {
        Session::start(stream, &request, config, seed, Instant::now())
            .map_err(|e| format!("cannot send this request: {e}"))
    };
    #[cfg(not(feature = "tls"))]
    let started = Session::start(stream, &request, config, seed, Instant::now())
        .map_err(|e| format!("cannot send this request: {e}"));
    let mut session = started?;

    let mut poll = mio::Poll::new().map_err(|e| e.to_string())?;
    const SOCKET: mio::Token = mio::Token(0);
    const INPUT: mio::Token = mio::Token(1);
    let interest = session.interest();
    poll.registry().register(session.stream(), SOCKET, interest).map_err(|e| e.to_string())?;
    let waker = Arc::new(mio::Waker::new(poll.registry(), INPUT).map_err(|e| e.to_string())?);
    let (lines, input) = sync_channel::<Input>(64);
    start_stdin_reader(lines.clone(), waker.clone());
    signals.on_signal(move |_| {
        let _ = lines.send(Input::Interrupted);
        let _ = waker.wake();
    });

    let mut out = Output { binary: settings.binary, status: None, open: false, last: None };
    // Set at the end of input: close once the server has been quiet for `settings.quiet`.
    let mut ending = false;
    let mut waiting: VecDeque<Input> = VecDeque::new();
    let mut input_done = false;
    let mut events = mio::Events::with_capacity(16);
    while !session.is_done() {
        let quiet_until = ending.then(|| out.last.unwrap_or_else(Instant::now) + settings.quiet);
        let wake = match (session.poll_timeout(), quiet_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = wake.map(|t| t.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout)
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            return Err(format!("poll: {e}"));
        }
        let now = Instant::now();
        let mut updates = |update: Update| out.update(update);
        if events.iter().any(|e| e.token() == SOCKET) {
            session.ready(now, &mut updates);
        }
        session.handle_timeout(now, &mut updates);
        if trace {
            for line in session.take_trace() {
                eprintln!("{line}");
            }
        }
        // Lines from standard input, once the connection is open, while the socket keeps up.
        if !input_done {
            pull_input(&input, &mut waiting);
        }
        while out.open && session.pending() < 1 << 20 {
            let Some(next) = waiting.pop_front() else { break };
            let sent = match next {
                Input::Line(line) => session.send_text(&line),
                Input::End => {
                    input_done = true;
                    ending = true;
                    out.last = Some(out.last.map_or(now, |last| last.max(now)));
                    Ok(())
                }
                Input::Interrupted => {
                    input_done = true;
                    session.close(CloseCode::GOING_AWAY, "interrupted", now)
                }
            };
            if sent.is_err() {
                // Closing already (the server closed first): the rest of the input has
                // nowhere to go.
                input_done = true;
                waiting.clear();
            }
            if input_done {
                waiting.clear();
            }
        }
        if ending
            && session.pending() == 0
            && out.last.is_some_and(|last| now >= last + settings.quiet)
        {
            ending = false;
            // Closing may fail if the server closed first; its closing handshake then ends it.
            let _ = session.close(CloseCode::NORMAL, "", now);
        }
        if trace {
            for line in session.take_trace() {
                eprintln!("{line}");
            }
        }
        let _ = std::io::stdout().flush();
    }
    Ok(out.status.unwrap_or(1))
}

/// Takes what the reader thread has sent, without blocking.
fn pull_input(input: &Receiver<Input>, waiting: &mut VecDeque<Input>) {
    while waiting.len() < 64 {
        match input.try_recv() {
            Ok(next) => waiting.push_back(next),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => {
                waiting.push_back(Input::End);
                break;
            }
        }
    }
}

fn start_stdin_reader(lines: SyncSender<Input>, waker: Arc<mio::Waker>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = lines.send(Input::End);
                    let _ = waker.wake();
                    return;
                }
                Ok(_) => {
                    number += 1;
                    if line.ends_with(b"\n") {
                        line.pop();
                        if line.ends_with(b"\r") {
                            line.pop();
                        }
                    }
                    let text = match String::from_utf8(std::mem::take(&mut line)) {
                        Ok(text) => text,
                        Err(e) => {
                            eprintln!(
                                "rfc6455 client: line {number} is not UTF-8: sent with U+FFFD"
                            );
                            String::from_utf8_lossy(e.as_bytes()).into_owned()
                        }
                    };
                    if lines.send(Input::Line(text)).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                }
            }
        }
    });
}

/// What is printed, and the exit status it adds up to.
struct Output {
    binary: bool,
    status: Option<u8>,
    open: bool,
    /// When the last message arrived (or the input ended, if later).
    last: Option<Instant>,
}

impl Output {
    fn update(&mut self, update: Update) {
        let stdout = std::io::stdout();
        let mut stdout = stdout.lock();
        if matches!(update, Update::Incoming(Incoming::Text(_) | Incoming::Binary(_))) {
            self.last = Some(Instant::now());
        }
        match update {
            Update::Open(_) => self.open = true,
            Update::Incoming(Incoming::Text(text)) => {
                let _ = writeln!(stdout, "{text}");
            }
            Update::Incoming(Incoming::Binary(data)) => {
                if self.binary {
                    let _ = stdout.write_all(&data);
                    let _ = stdout.write_all(b"\n");
                } else {
                    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
                    let _ = writeln!(stdout, "{hex}");
                }
            }
            Update::Incoming(Incoming::Close { code, .. }) => {
                self.open = false;
                let clean =
                    code.is_none_or(|c| c == CloseCode::NORMAL || c == CloseCode::GOING_AWAY);
                if !clean {
                    // The code, not the reason: §5.5.1 "As the data is not guaranteed to be
                    // human readable, clients MUST NOT show it to end users." (--trace shows
                    // the frame, reason included, to whoever asked for the wire.)
                    let code = code.map_or(0, |c| c.0);
                    eprintln!("rfc6455 client: the server closed with code {code}");
                }
                self.status.get_or_insert(if clean { 0 } else { 1 });
            }
            Update::Failed(ClientError::Upgrade(UpgradeError::Refused {
                status, reason, ..
            })) => {
                eprintln!(
                    "rfc6455 client: the server refused the handshake: HTTP {status} {reason}"
                );
                self.status = Some(3);
            }
            Update::Failed(error) => {
                self.open = false;
                eprintln!("rfc6455 client: {error}");
                self.status = Some(1);
            }
            Update::Done => {}
            _ => {}
        }
    }
}
