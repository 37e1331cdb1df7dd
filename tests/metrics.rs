//! `--metrics-listen`: `GET /metrics` on a port of its own, scraped while the server works, and
//! its counters move with what clients do.

mod common;

use common::process::Process;
use common::{Client, http_exchange};
use rfc6455::frame::OpCode;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

fn scrape(at: SocketAddr) -> String {
    http_exchange(at, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// The value of the sample `name{labels}` in a scrape.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes until `want` holds (the loop publishes once per turn), for at most a few seconds.
fn scrape_until(at: SocketAddr, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + common::IO_TIMEOUT;
    loop {
        let text = scrape(at);
        if want(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn counters_move_with_what_clients_do() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics: SocketAddr = ([127, 0, 0, 1], port).into();
    let listen = metrics.to_string();
    let server = Process::start(&["echo", "--metrics-listen", &listen], None);
    let before = scrape(metrics);
    assert!(before.starts_with("HTTP/1.1 200 OK\r\n"), "{before}");
    assert!(before.contains("Content-Type: text/plain; version=0.0.4"), "{before}");
    assert_eq!(sample(&before, "rfc6455_connections_accepted_total{loop=\"0\"}"), Some(0));
    // A message echoed, a clean close, and a plain request the echo server refuses.
    let mut client = Client::connect(server.addr);
    client.send_text("counted");
    assert_eq!(client.read_frame().unwrap().payload, b"counted");
    client.send_frame(true, OpCode::Close, b"\x03\xe8");
    client.skip_to_close();
    client.expect_eof();
    assert!(
        http_exchange(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .starts_with("HTTP/1.1 400")
    );
    let series = |name: &str| format!("{name}{{loop=\"0\"}}");
    let after = scrape_until(metrics, |text| {
        sample(text, "rfc6455_closes_total{loop=\"0\",code=\"1000\"}") == Some(1)
            && sample(text, "rfc6455_handshakes_refused_total{loop=\"0\",status=\"400\"}")
                == Some(1)
    });
    assert_eq!(sample(&after, &series("rfc6455_connections_accepted_total")), Some(2), "{after}");
    assert_eq!(sample(&after, &series("rfc6455_messages_received_total")), Some(1), "{after}");
    assert_eq!(sample(&after, &series("rfc6455_messages_sent_total")), Some(1), "{after}");
    assert!(sample(&after, &series("rfc6455_bytes_received_total")).unwrap() > 0);
    assert!(sample(&after, &series("rfc6455_bytes_sent_total")).unwrap() > 0);
    assert_eq!(
        sample(&after, "rfc6455_closes_total{loop=\"0\",code=\"1000\"}"),
        Some(1),
        "{after}"
    );
    let refused = "rfc6455_handshakes_refused_total{loop=\"0\",status=\"400\"}";
    assert_eq!(sample(&after, refused), Some(1), "{after}");
    // Nothing else is served there, and nothing of it on the public port.
    let other = http_exchange(metrics, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let public = http_exchange(server.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!public.contains("rfc6455_"), "{public}");
}
