//! What an operator watches (`--metrics-listen`): each event loop counts in plain integers as it
//! works ([`Tally`], no atomic and no lock per message), and copies them into its
//! [`LoopMetrics`] once per turn of the loop (a few dozen relaxed stores per wakeup); a
//! scraper's thread reads those and renders the Prometheus text format ([`render`]). The
//! bytes queued in outboxes are summed over the table at most once a second.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The statuses of refused handshakes, counted each on its own (others: `OTHER`).
const STATUSES: [u16; 9] = [400, 403, 404, 405, 426, 431, 500, 503, 0];
/// Close codes counted each on their own (1000-1015; others under `OTHER`).
const FIRST_CODE: u16 = 1000;
const CODES: usize = 16;
/// How often the outbox total is summed.
const OUTBOX_EVERY: Duration = Duration::from_secs(1);

/// A loop's own counts, in plain integers.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) accepted: u64,
    pub(crate) messages_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) messages_out: u64,
    pub(crate) bytes_out: u64,
    pub(crate) slow_readers_cut_off: u64,
    /// Answers other than 101, by [`STATUSES`] (the last: any other status).
    refused: [u64; STATUSES.len()],
    /// Closes of opened connections by code, 1000-1015, then any other.
    closes: [u64; CODES + 1],
    /// When the outbox total is next summed.
    outbox_next: Option<Instant>,
}

impl Tally {
    /// A request answered with `status` instead of 101.
    pub(crate) fn refused(&mut self, status: u16) {
        let at = STATUSES.iter().position(|&s| s == status).unwrap_or(STATUSES.len() - 1);
        self.refused[at] += 1;
    }

    /// An opened connection ended with `code`.
    pub(crate) fn closed(&mut self, code: u16) {
        let at = usize::from(code.wrapping_sub(FIRST_CODE)).min(CODES);
        self.closes[at] += 1;
    }

    /// Whether the outbox total is due to be summed again at `now`.
    pub(crate) fn outbox_due(&mut self, now: Instant) -> bool {
        // A comparison per turn; the arithmetic only once a second.
        if self.outbox_next.is_some_and(|next| now < next) {
            return false;
        }
        self.outbox_next = Some(now + OUTBOX_EVERY);
        true
    }
}

/// One loop's figures, readable from any thread.
#[derive(Debug, Default)]
pub struct LoopMetrics {
    open: AtomicU64,
    outbox_bytes: AtomicU64,
    accepted: AtomicU64,
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    slow_readers_cut_off: AtomicU64,
    refused: [AtomicU64; STATUSES.len()],
    closes: [AtomicU64; CODES + 1],
}

impl LoopMetrics {
    /// Copies the loop's counts (once per turn), with its open connections and, when summed,
    /// the bytes waiting in its outboxes.
    pub(crate) fn publish(&self, tally: &Tally, open: usize, outbox_bytes: Option<usize>) {
        let set = |to: &AtomicU64, v: u64| to.store(v, Ordering::Relaxed);
        set(&self.open, u64::try_from(open).unwrap_or(u64::MAX));
        if let Some(bytes) = outbox_bytes {
            set(&self.outbox_bytes, u64::try_from(bytes).unwrap_or(u64::MAX));
        }
        set(&self.accepted, tally.accepted);
        set(&self.messages_in, tally.messages_in);
        set(&self.bytes_in, tally.bytes_in);
        set(&self.messages_out, tally.messages_out);
        set(&self.bytes_out, tally.bytes_out);
        set(&self.slow_readers_cut_off, tally.slow_readers_cut_off);
        for (to, &v) in self.refused.iter().zip(&tally.refused) {
            set(to, v);
        }
        for (to, &v) in self.closes.iter().zip(&tally.closes) {
            set(to, v);
        }
    }
}

/// Every loop's figures in the Prometheus text format (version 0.0.4), one label `loop` each.
pub fn render(loops: &[std::sync::Arc<LoopMetrics>]) -> String {
    let mut out = String::new();
    let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
    type Field = fn(&LoopMetrics) -> &AtomicU64;
    let simple: [(&str, &str, &str, Field); 8] = [
        (
            "rfc6455_connections_open",
            "gauge",
            "Connections held now (handshaking, open or closing).",
            |m| &m.open,
        ),
        (
            "rfc6455_outbox_bytes",
            "gauge",
            "Bytes queued for connections and not yet written (summed once a second).",
            |m| &m.outbox_bytes,
        ),
        ("rfc6455_connections_accepted_total", "counter", "TCP connections accepted.", |m| {
            &m.accepted
        }),
        ("rfc6455_messages_received_total", "counter", "WebSocket messages received.", |m| {
            &m.messages_in
        }),
        (
            "rfc6455_bytes_received_total",
            "counter",
            "Bytes read from sockets (with TLS: the plaintext out of it).",
            |m| &m.bytes_in,
        ),
        (
            "rfc6455_messages_sent_total",
            "counter",
            "WebSocket messages queued for sending (a broadcast counts once per recipient).",
            |m| &m.messages_out,
        ),
        (
            "rfc6455_bytes_sent_total",
            "counter",
            "Bytes written to sockets (with TLS: the plaintext handed to it).",
            |m| &m.bytes_out,
        ),
        (
            "rfc6455_slow_readers_cut_off_total",
            "counter",
            "Connections closed with 1008 for reading too slowly.",
            |m| &m.slow_readers_cut_off,
        ),
    ];
    for (name, kind, help, field) in simple {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (i, m) in loops.iter().enumerate() {
            let _ = writeln!(out, "{name}{{loop=\"{i}\"}} {}", get(field(m)));
        }
    }
    let name = "rfc6455_handshakes_refused_total";
    let _ = writeln!(
        out,
        "# HELP {name} Requests answered with an HTTP error instead of 101, by status."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (i, m) in loops.iter().enumerate() {
        for (status, v) in STATUSES.iter().zip(&m.refused) {
            let label = if *status == 0 { "other".to_owned() } else { status.to_string() };
            let _ = writeln!(out, "{name}{{loop=\"{i}\",status=\"{label}\"}} {}", get(v));
        }
    }
    let name = "rfc6455_closes_total";
    let _ = writeln!(
        out,
        "# HELP {name} Opened connections that ended, by close code (1006: TCP ended without a Close)."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (i, m) in loops.iter().enumerate() {
        for (n, v) in m.closes.iter().enumerate() {
            let label = match u16::try_from(n) {
                Ok(n) if usize::from(n) < CODES => (FIRST_CODE + n).to_string(),
                _ => "other".to_owned(),
            };
            let _ = writeln!(out, "{name}{{loop=\"{i}\",code=\"{label}\"}} {}", get(v));
        }
    }
    out
}

/// Serves `GET /metrics` on `listener` (a port of its own, never the public one): one request
/// per connection, on the calling thread, until the listener fails. Anything else gets 404.
pub fn serve_metrics(listener: std::net::TcpListener, loops: Vec<std::sync::Arc<LoopMetrics>>) {
    use std::io::{Read, Write as _};
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        // A scraper that stalls holds this thread for at most these.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let scrape = head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?");
        let (status, body) = if scrape {
            ("200 OK", render(&loops))
        } else {
            ("404 Not Found", "only GET /metrics here\n".to_owned())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_reach_the_text_format() {
        let mut tally = Tally { accepted: 3, bytes_in: 120, ..Tally::default() };
        tally.refused(503);
        tally.refused(503);
        tally.refused(418);
        tally.closed(1000);
        tally.closed(1006);
        tally.closed(4000);
        let (a, b) = (Arc::new(LoopMetrics::default()), Arc::new(LoopMetrics::default()));
        a.publish(&tally, 2, Some(512));
        let text = render(&[a, b]);
        for line in [
            "rfc6455_connections_open{loop=\"0\"} 2",
            "rfc6455_connections_open{loop=\"1\"} 0",
            "rfc6455_outbox_bytes{loop=\"0\"} 512",
            "rfc6455_connections_accepted_total{loop=\"0\"} 3",
            "rfc6455_bytes_received_total{loop=\"0\"} 120",
            "rfc6455_handshakes_refused_total{loop=\"0\",status=\"503\"} 2",
            "rfc6455_handshakes_refused_total{loop=\"0\",status=\"other\"} 1",
            "rfc6455_closes_total{loop=\"0\",code=\"1000\"} 1",
            "rfc6455_closes_total{loop=\"0\",code=\"1006\"} 1",
            "rfc6455_closes_total{loop=\"0\",code=\"other\"} 1",
            "# TYPE rfc6455_bytes_sent_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn the_outbox_is_summed_at_most_once_a_second() {
        let mut tally = Tally::default();
        let start = Instant::now();
        assert!(tally.outbox_due(start));
        assert!(!tally.outbox_due(start + Duration::from_millis(999)));
        assert!(tally.outbox_due(start + Duration::from_secs(1)));
    }
}
