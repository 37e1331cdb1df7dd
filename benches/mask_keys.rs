//! Where a client's masking keys come from (RFC 6455 §5.3, §10.3): the ChaCha20 generator of
//! `rfc6455::random::Keys`, seeded once from `getrandom(2)`, against one `getrandom(2)` call
//! per key. Both are unpredictable to a page's script; the question is the cost per frame.
//!
//! ```sh
//! cargo bench --bench mask_keys            # ns per key, each way, and the ratio (one run)
//! ```
//!
//! A client frame of 20 bytes also costs its masking and its write; the figure to compare with
//! is the rest of a client's work per frame, printed last (encoding and masking a 20-byte text
//! frame through `Connection::send_text`).

use rfc6455::handshake::ClientRequest;
use rfc6455::random::{Keys, os_mask, os_seed};
use rfc6455::{Config, Connection, Event};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const KEYS: u32 = 2_000_000;
const ROUNDS: usize = 5;

fn per_key(f: &mut dyn FnMut() -> [u8; 4]) -> f64 {
    let start = Instant::now();
    let mut acc = 0u32;
    for _ in 0..KEYS {
        acc = acc.wrapping_add(u32::from_le_bytes(f()));
    }
    black_box(acc);
    start.elapsed().as_nanos() as f64 / f64::from(KEYS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut keys = Keys::new(os_seed().expect("getrandom"));
    let mut chacha = Vec::new();
    let mut syscall = Vec::new();
    let mut frames = Vec::new();
    // An open client connection, in memory, to time one frame's encoding with masking.
    #[allow(unused_mut)]
    let mut config = Config::default();
    #[cfg(feature = "deflate")]
    {
        config.deflate = None;
    }
    let config = Arc::new(config);
    let now = Instant::now();
    let mut out = Vec::new();
    let request = ClientRequest::new("localhost", "/");
    let mut client =
        Connection::client(config.clone(), &request, os_seed().unwrap(), now, &mut out)
            .expect("a valid request");
    let mut server = Connection::new(config, now);
    let mut response = Vec::new();
    server.receive(&mut out, now, &mut response);
    server.accept(&rfc6455::Accept::new(), &mut response, now).unwrap();
    let r = client.receive(&mut response, now, &mut Vec::new());
    assert!(matches!(r.event, Some(Event::Upgraded(_))));
    for _ in 0..ROUNDS {
        // Interleaved, so that both see the same machine.
        chacha.push(per_key(&mut || keys.mask()));
        syscall.push(per_key(&mut || os_mask().expect("getrandom")));
        let start = Instant::now();
        for _ in 0..KEYS / 4 {
            out.clear();
            client.send_text(&mut out, "a twenty-byte frame!").unwrap();
            black_box(&out);
        }
        frames.push(start.elapsed().as_nanos() as f64 / f64::from(KEYS / 4));
    }
    let (chacha, syscall, frame) = (median(chacha), median(syscall), median(frames));
    println!("masking keys, median of {ROUNDS} rounds of {KEYS} keys:");
    println!("  ChaCha20 (random::Keys, seeded once)   {chacha:8.1} ns/key");
    println!("  getrandom(2) per key (random::os_mask) {syscall:8.1} ns/key");
    println!("  ratio                                  {:8.1}x", syscall / chacha);
    println!(
        "  a whole 20-byte client text frame      {frame:8.1} ns/frame (with its ChaCha20 key)"
    );
}
