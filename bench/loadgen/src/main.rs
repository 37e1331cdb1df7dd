//! `loadgen`: a single-threaded mio WebSocket load generator for the rfc6455 benchmarks.
//!
//! ```text
//! loadgen echo      --url ws://127.0.0.1:PORT/ --conns N --size BYTES --window W --duration S [--warmup S]
//! loadgen broadcast --url ... --receivers N --size BYTES --rate MSGS_PER_S --duration S
//! loadgen connect   --url ... --conns C --duration S
//! loadgen idle      --url ... --conns N --pid PID [--settle S]
//! loadgen storm     --url ... --conns N --pid PID [--settle S] [--restart --ready-file F --pid-file F]
//!
//! echo, broadcast, idle: [--deflate [--deflate-level L]]; echo, broadcast: [--text]
//! ```
//!
//! Prints one JSON object on stdout at the end; progress goes to stderr. Only loopback URLs are
//! accepted. See bench/README.md.

mod deflate;
mod hist;
mod modes;
mod net;
mod sock;
mod storm;
mod sys;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

const USAGE: &str = "\
usage: loadgen MODE --url ws://127.0.0.1:PORT/PATH [options]   (loopback only)

modes:
  echo       --conns N --size BYTES --window W --duration SECS [--warmup SECS] [--count N]
             each connection keeps W messages in flight; round trips/s, MB/s, latency
  broadcast  --receivers N --size BYTES --rate MSGS_PER_S --duration SECS [--warmup SECS]
             [--grace SECS] [--p99-limit-ms MS] [--quiet-ms MS]
             one extra sender connection publishes at a fixed rate; every receiver times each
             delivery; the sender's own copies are ignored; lost = sent x N - received for the
             messages sent after the warmup [0 s]; waits --grace [2 s] for stragglers;
             --p99-limit-ms stops early once the p99 cannot end up under it;
             --sender-url URL: the sender connects there (another process of one chat)
  connect    --conns C --duration SECS
             C workers loop: TCP connect, upgrade, Close, read the server's Close, close TCP
  idle       --conns N --pid PID [--settle SECS]
             the server's VmRSS growth per upgraded, idle connection
  storm      --conns N (--pid PID | --pid-file FILE) [--settle SECS] [--retry-window SECS]
             [--restart --ready-file FILE]
             N members join at once (--max-pending in flight; a 503's Retry-After honoured),
             settle, [--restart: FILE is written once all are in; the script restarts the
             server and writes the new pid to --pid-file; every member reconnects, the first
             retry at a random moment within --retry-window [3 s]], then all leave at once;
             times, the server's CPU and VmRSS through each phase, messages per member

echo, broadcast and idle:
  --deflate               offer permessage-deflate (RFC 7692; \"permessage-deflate;
                          client_max_window_bits\"); a server that does not agree is an error;
                          every message sent is compressed, compressed messages are inflated
  --deflate-level L       zlib level of what the load generator compresses, 1-9 [1]: the
                          cheapest (a fresh 1 KiB message costs some 6 us at 1, 17 us at 6,
                          taken from the server when both share a CPU)
echo and broadcast:
  --text                  after the stamp, an English chat sentence repeated to the size
                          (compressible), not x padding
broadcast:
  --inflate-all           inflate every compressed delivery; by default a whole message whose
                          bytes were already inflated (a server without context takeover sends
                          every receiver the same bytes) reuses that result

common options:
  --ca-file PEM           wss:// URLs: trust this CA (the server's certificate is checked)
  --pid PID               also report the server's CPU use (all modes) [none]
  --max-pending N         handshakes in progress at once while opening [128]
  --connect-timeout SECS  time allowed to open all connections [30]
";

/// Options without a value.
const FLAGS: [&str; 4] = ["deflate", "text", "inflate-all", "restart"];

/// `--name value` pairs (and [`FLAGS`]).
struct Args(Vec<(String, String)>);

impl Args {
    fn parse(rest: &[String]) -> Result<Args, String> {
        let mut pairs = Vec::new();
        let mut it = rest.iter();
        while let Some(flag) = it.next() {
            let Some(name) = flag.strip_prefix("--") else {
                return Err(format!("unexpected argument {flag:?}"));
            };
            if FLAGS.contains(&name) {
                pairs.push((name.to_string(), String::new()));
                continue;
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            pairs.push((name.to_string(), value.clone()));
        }
        Ok(Args(pairs))
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn num(&self, name: &str, default: Option<f64>, min: f64, max: f64) -> Result<f64, String> {
        let v = match self.get(name) {
            Some(s) => s.parse::<f64>().map_err(|_| format!("--{name}: not a number: {s:?}"))?,
            None => default.ok_or_else(|| format!("--{name} is required"))?,
        };
        if !(min..=max).contains(&v) {
            return Err(format!("--{name} must be between {min} and {max}"));
        }
        Ok(v)
    }

    fn int(&self, name: &str, default: Option<u64>, min: u64, max: u64) -> Result<u64, String> {
        let v = self.num(name, default.map(|d| d as f64), min as f64, max as f64)?;
        if v.fract() != 0.0 {
            return Err(format!("--{name} must be a whole number"));
        }
        Ok(v as u64)
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        for (n, _) in &self.0 {
            if !known.contains(&n.as_str()) {
                return Err(format!("unknown option --{n}"));
            }
        }
        Ok(())
    }
}

/// A parsed `ws://` or `wss://` URL on a loopback address.
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
    pub url: String,
    /// `wss://`.
    pub tls: bool,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let (tls, rest) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(format!("only ws:// and wss:// URLs are supported: {url:?}")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once("]:").ok_or_else(|| format!("{url:?}: needs [v6]:port"))?;
        (h, p)
    } else {
        authority.rsplit_once(':').ok_or_else(|| format!("{url:?}: needs host:port"))?
    };
    let port: u16 = port.parse().map_err(|_| format!("{url:?}: bad port"))?;
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().map_err(|_| format!("{url:?}: the host must be a loopback IP or localhost"))?
    };
    if !ip.is_loopback() {
        return Err(format!("refusing {url:?}: only loopback addresses may be loaded"));
    }
    Ok(Target {
        addr: SocketAddr::new(ip, port),
        host: authority.to_string(),
        path: path.to_string(),
        url: url.to_string(),
        tls,
    })
}

fn run(argv: &[String]) -> Result<(), String> {
    let Some((mode, rest)) = argv.split_first() else {
        return Err("missing mode".into());
    };
    if mode == "-h" || mode == "--help" {
        print!("{USAGE}");
        return Ok(());
    }
    let args = Args::parse(rest)?;
    let target = parse_url(args.get("url").ok_or("--url is required")?)?;
    let nofile = sys::raise_nofile();
    let secure = target.tls;
    let common = modes::Common {
        target,
        pid: match args.get("pid") {
            Some(_) => Some(args.int("pid", None, 1, u32::MAX as u64)? as u32),
            None => None,
        },
        max_pending: args.int("max-pending", Some(128), 1, 10_000)? as usize,
        connect_timeout: args.num("connect-timeout", Some(30.0), 0.1, 600.0)?,
        nofile,
        deflate: if args.flag("deflate") {
            Some(args.int("deflate-level", Some(1), 1, 9)? as u8)
        } else {
            None
        },
        tls: match (secure, args.get("ca-file")) {
            (true, Some(ca)) => Some(sock::client_config(ca)?),
            (true, None) => return Err("wss:// needs --ca-file PEM (the server's CA)".into()),
            (false, Some(_)) => return Err("--ca-file is for wss:// URLs".into()),
            (false, None) => None,
        },
    };
    if args.get("deflate-level").is_some() && !args.flag("deflate") {
        return Err("--deflate-level needs --deflate".into());
    }
    let common_opts = ["url", "pid", "max-pending", "connect-timeout", "ca-file"];
    let known = |extra: &[&str]| -> Result<(), String> {
        let all: Vec<&str> = common_opts.iter().chain(extra).copied().collect();
        args.check_known(&all)
    };
    let max_conns = nofile.saturating_sub(64).max(1);
    let json = match mode.as_str() {
        "echo" => {
            known(&[
                "conns",
                "size",
                "window",
                "duration",
                "warmup",
                "count",
                "deflate",
                "deflate-level",
                "text",
            ])?;
            modes::echo(
                common,
                modes::EchoOpts {
                    conns: args.int("conns", None, 1, max_conns)? as usize,
                    size: args.int("size", None, net::MIN_PAYLOAD as u64, 16 << 20)? as usize,
                    window: args.int("window", Some(1), 1, 4096)? as u32,
                    duration: args.num("duration", None, 0.1, 3600.0)?,
                    warmup: args.num("warmup", Some(1.0), 0.0, 600.0)?,
                    count: args
                        .get("count")
                        .map(|_| args.int("count", None, 1, u64::MAX >> 1))
                        .transpose()?,
                    text: args.flag("text"),
                },
            )
        }
        "broadcast" => {
            known(&[
                "receivers",
                "size",
                "rate",
                "duration",
                "warmup",
                "grace",
                "p99-limit-ms",
                "quiet-ms",
                "deflate",
                "deflate-level",
                "text",
                "inflate-all",
                "sender-url",
            ])?;
            let sender = args.get("sender-url").map(parse_url).transpose()?;
            modes::broadcast(
                common,
                modes::BroadcastOpts {
                    receivers: args.int("receivers", None, 1, max_conns - 1)? as usize,
                    size: args.int("size", None, net::MIN_PAYLOAD as u64, 1 << 20)? as usize,
                    rate: args.num("rate", None, 0.01, 10_000_000.0)?,
                    duration: args.num("duration", None, 0.1, 3600.0)?,
                    grace: args.num("grace", Some(2.0), 0.0, 60.0)?,
                    warmup: args.num("warmup", Some(0.0), 0.0, 600.0)?,
                    p99_limit_ms: args
                        .get("p99-limit-ms")
                        .map(|_| args.num("p99-limit-ms", None, 0.001, 1e6))
                        .transpose()?,
                    quiet_ms: args.num("quiet-ms", Some(300.0), 0.0, 60_000.0)?,
                    text: args.flag("text"),
                    inflate_all: args.flag("inflate-all"),
                    sender,
                },
            )
        }
        "connect" => {
            known(&["conns", "duration"])?;
            modes::connect(
                common,
                args.int("conns", None, 1, max_conns.min(10_000))? as usize,
                args.num("duration", None, 0.1, 3600.0)?,
            )
        }
        "idle" => {
            known(&["conns", "settle", "deflate", "deflate-level"])?;
            if common.pid.is_none() {
                return Err("idle needs --pid (the server's process id)".into());
            }
            modes::idle(
                common,
                args.int("conns", None, 1, max_conns)? as usize,
                args.num("settle", Some(2.0), 0.0, 600.0)?,
            )
        }
        "storm" => {
            known(&["conns", "settle", "restart", "ready-file", "pid-file", "retry-window"])?;
            if common.pid.is_none() && args.get("pid-file").is_none() {
                return Err("storm needs --pid or --pid-file (the server's process id)".into());
            }
            let restart = args.flag("restart");
            if restart && (args.get("ready-file").is_none() || args.get("pid-file").is_none()) {
                return Err("--restart needs --ready-file and --pid-file".into());
            }
            storm::storm(
                common,
                storm::StormOpts {
                    conns: args.int("conns", None, 1, max_conns)? as usize,
                    settle: args.num("settle", Some(2.0), 0.0, 600.0)?,
                    restart,
                    ready_file: args.get("ready-file").map(Into::into),
                    pid_file: args.get("pid-file").map(Into::into),
                    retry_window: args.num("retry-window", Some(3.0), 0.1, 60.0)?,
                },
            )
        }
        other => return Err(format!("unknown mode {other:?}")),
    }
    .map_err(|e| format!("{mode}: {e}"))?;
    println!("{json}");
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("ws://127.0.0.1:9001/").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(t.path, "/");
        assert_eq!(parse_url("ws://localhost:80").unwrap().path, "/");
        assert_eq!(parse_url("ws://[::1]:80/x").unwrap().path, "/x");
        assert!(parse_url("ws://127.5.6.7:1/").is_ok());
        assert!(parse_url("ws://10.0.0.1:9001/").is_err());
        assert!(parse_url("ws://example.com:9001/").is_err());
        assert!(parse_url("wss://127.0.0.1:9001/").is_err());
        assert!(parse_url("ws://0.0.0.0:9001/").is_err());
    }
}
