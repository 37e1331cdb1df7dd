//! `ServerHandle`: sends, broadcasts and closes from other threads, over real loopback sockets.

mod common;

use common::{Client, TestServer};
use rfc6455::frame::OpCode;
use rfc6455::server::{ConnId, Ctx, HandleError, Handler, Options, ServerHandle, SharedFrame};
use rfc6455::{CloseCode, Message};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Records every opened connection's id; a text message "block" stops the loop until the test
/// sends on the gate.
struct Registry {
    ids: Arc<Mutex<Vec<ConnId>>>,
    gate: Option<Receiver<()>>,
    blocked: Option<Sender<()>>,
}

impl Handler for Registry {
    type State = ();

    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, _: &mut ()) {
        self.ids.lock().unwrap().extend(ctx.id());
    }

    fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: &mut (), message: &Message<'_>) {
        if message.as_text() == Some("block")
            && let (Some(gate), Some(blocked)) = (&self.gate, &self.blocked)
        {
            let _ = blocked.send(());
            let _ = gate.recv();
        }
    }
}

/// A running [`Registry`], the ids it records, and the two ends of its gate.
struct Fixture {
    server: TestServer<Registry>,
    ids: Arc<Mutex<Vec<ConnId>>>,
    /// Lets a blocked loop go on.
    open_gate: Sender<()>,
    /// Says the loop is blocked.
    loop_blocked: Receiver<()>,
}

fn registry(options: Options) -> Fixture {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let (open_gate, gate) = channel();
    let (blocked, loop_blocked) = channel();
    let handler = Registry { ids: ids.clone(), gate: Some(gate), blocked: Some(blocked) };
    Fixture { server: TestServer::start(options, handler), ids, open_gate, loop_blocked }
}

/// Connects `n` clients and returns them with their ids, in the same order.
fn connect(
    server: &TestServer<Registry>,
    ids: &Mutex<Vec<ConnId>>,
    n: usize,
) -> Vec<(Client, ConnId)> {
    (0..n)
        .map(|i| {
            let client = Client::connect(server.addr);
            let started = Instant::now();
            loop {
                if let Some(&id) = ids.lock().unwrap().get(i) {
                    return (client, id);
                }
                assert!(started.elapsed() < common::IO_TIMEOUT, "connection {i} never opened");
                std::thread::yield_now();
            }
        })
        .collect()
}

/// Retries a send while the queue is full, as a producer that respects backpressure does.
fn push(mut send: impl FnMut() -> Result<(), HandleError>) -> usize {
    let mut full = 0;
    loop {
        match send() {
            Ok(()) => return full,
            Err(HandleError::QueueFull) => {
                full += 1;
                std::thread::yield_now();
            }
            Err(other) => panic!("{other}"),
        }
    }
}

/// Four threads at once, each sending 300 messages to its own connection and broadcasting
/// 100: every client gets its 300 and all 400 broadcasts, each thread's in the order sent.
#[test]
fn several_threads_send_and_broadcast_at_once() {
    const THREADS: usize = 4;
    const DIRECT: usize = 300;
    const BROADCASTS: usize = 100;
    let mut options = Options::default();
    options.command_queue = 64;
    let Fixture { server, ids, .. } = registry(options);
    let clients = connect(&server, &ids, THREADS);
    let handle: ServerHandle = server.handle.clone();
    let senders: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(t, &(_, id))| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                let mut full = 0;
                for n in 0..DIRECT {
                    full += push(|| handle.send_text(id, &format!("direct {t} {n}")));
                    if n % 3 == 0 {
                        let frame = SharedFrame::text(&format!("all {t} {}", n / 3));
                        full += push(|| handle.broadcast(frame.clone()));
                    }
                }
                full
            })
        })
        .collect();
    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(me, (mut client, _))| {
            std::thread::spawn(move || {
                let mut direct = 0;
                let mut from: HashMap<usize, usize> = HashMap::new();
                while direct < DIRECT || from.values().sum::<usize>() < THREADS * BROADCASTS {
                    let frame = client.read_frame().expect("a frame");
                    assert_eq!(frame.opcode, OpCode::Text);
                    let text = String::from_utf8(frame.payload).unwrap();
                    let words: Vec<&str> = text.split(' ').collect();
                    let (t, n): (usize, usize) =
                        (words[1].parse().unwrap(), words[2].parse().unwrap());
                    match words[0] {
                        "direct" => {
                            assert_eq!((t, n), (me, direct), "direct messages in order");
                            direct += 1;
                        }
                        _ => {
                            let next = from.entry(t).or_default();
                            assert_eq!(n, *next, "broadcasts of thread {t} in order");
                            *next += 1;
                        }
                    }
                }
            })
        })
        .collect();
    let full: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
    for reader in readers {
        reader.join().unwrap();
    }
    eprintln!("{THREADS} threads: the queue of 64 was full {full} times (each retried)");
}

/// The queue is bounded: while the loop is busy, sends past its capacity fail with QueueFull
/// (nothing is queued for them), and the ones accepted are all delivered once it is free.
#[test]
fn a_full_queue_is_an_error_not_memory() {
    let mut options = Options::default();
    options.command_queue = 8;
    let Fixture { server, ids, open_gate, loop_blocked } = registry(options);
    let mut clients = connect(&server, &ids, 1);
    let (client, id) = &mut clients[0];
    client.send_text("block");
    loop_blocked.recv().unwrap();
    // The loop is inside a callback: nothing drains the queue now.
    for n in 0..8 {
        server.handle.send_text(*id, &format!("queued {n}")).unwrap();
    }
    assert_eq!(server.handle.send_text(*id, "one too many"), Err(HandleError::QueueFull));
    assert_eq!(server.handle.broadcast(SharedFrame::text("x")), Err(HandleError::QueueFull));
    open_gate.send(()).unwrap();
    for n in 0..8 {
        assert_eq!(client.read_frame().unwrap().payload, format!("queued {n}").as_bytes());
    }
    // Room again once the loop has drained it.
    let started = Instant::now();
    while server.handle.send_text(*id, "after").is_err() {
        assert!(started.elapsed() < common::IO_TIMEOUT);
        std::thread::yield_now();
    }
    assert_eq!(client.read_frame().unwrap().payload, b"after");
}

#[test]
fn a_close_from_another_thread_runs_the_closing_handshake() {
    let Fixture { server, ids, .. } = registry(Options::default());
    let mut clients = connect(&server, &ids, 2);
    let handle = server.handle.clone();
    let target = clients[0].1;
    std::thread::spawn(move || handle.close(target, CloseCode(4000), "from a worker").unwrap())
        .join()
        .unwrap();
    let (client, _) = &mut clients[0];
    assert_eq!(client.read_close(), (Some(4000), "from a worker".to_owned()));
    client.send_frame(true, OpCode::Close, b"\x0f\xa0");
    client.expect_eof();
    // Refused at once, on the caller's thread: codes that may not be sent.
    assert_eq!(
        server.handle.close(clients[1].1, CloseCode(1005), ""),
        Err(HandleError::InvalidCloseCode)
    );
    assert_eq!(
        server.handle.close(clients[1].1, CloseCode::NORMAL, &"x".repeat(124)),
        Err(HandleError::ReasonTooLong)
    );
    // The other connection is untouched.
    server.handle.send_text(clients[1].1, "still open").unwrap();
    assert_eq!(clients[1].0.read_frame().unwrap().payload, b"still open");
}

#[test]
fn a_stopped_server_refuses_commands() {
    let Fixture { server, ids, .. } = registry(Options::default());
    let clients = connect(&server, &ids, 1);
    let handle = server.handle.clone();
    drop(server.stop());
    assert_eq!(handle.send_text(clients[0].1, "late"), Err(HandleError::Stopped));
}

/// `Options::access_log`: one record per connection at its end, with what it did.
#[test]
fn the_access_log_has_one_record_per_connection() {
    use rfc6455::server::{Access, Log, Record};
    use std::sync::{Arc, Mutex};
    #[derive(Default)]
    struct Collect(Mutex<Vec<Access>>);
    impl Log for Collect {
        fn record(&self, record: &Record<'_>) {
            if let Record::Access { access, .. } = record {
                self.0.lock().unwrap().push((*access).clone());
            }
        }
    }
    let log = Arc::new(Collect::default());
    let mut options = Options::default();
    options.access_log = true;
    options.log = Some(log.clone());
    options.shutdown_timeout = std::time::Duration::from_millis(200);
    let server = TestServer::start(options, rfc6455::echo::Echo::default());
    let mut client = Client::connect(server.addr);
    client.send_text("logged");
    assert_eq!(client.read_frame().unwrap().payload, b"logged");
    client.send_frame(true, OpCode::Close, b"\x03\xe8");
    client.skip_to_close();
    client.expect_eof();
    drop(client);
    let refused = common::http_exchange(server.addr, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    // Both ended (the server saw our FIN): their records are written at removal.
    let deadline = Instant::now() + common::IO_TIMEOUT;
    while log.0.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let records = log.0.lock().unwrap().clone();
    assert_eq!(records.len(), 2, "{records:?}");
    let open = records.iter().find(|a| a.status == Some(101)).expect("the WebSocket");
    assert_eq!((open.target.as_deref(), open.close_code), (Some("/"), Some(1000)));
    assert_eq!((open.messages_in, open.messages_out), (1, 1));
    assert!(open.bytes_in > 0 && open.bytes_out > 0);
    assert_eq!(open.peer, Some("127.0.0.1".parse().unwrap()));
    let page = records.iter().find(|a| a.status == Some(400)).expect("the refusal");
    assert_eq!((page.target.as_deref(), page.close_code), (Some("/x"), None));
    // One still held when the server stops has its line too.
    let _held = Client::connect(server.addr);
    server.stop();
    assert_eq!(log.0.lock().unwrap().len(), 3);
}
