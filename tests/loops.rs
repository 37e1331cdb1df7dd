//! Several event loops on one port (`Loops`): how new connections are spread over them, with
//! each `Balance`, over real loopback sockets. The distributions are printed (they are what
//! docs/scaling.md reports); the acceptor's are asserted exactly, the kernel's hash only
//! loosely (it is a hash).

mod common;

use common::{Client, IO_TIMEOUT};
use rfc6455::Message;
use rfc6455::frame::OpCode;
use rfc6455::server::{Balance, CloseStatus, Ctx, Handler, Loops, Options};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Answers any message with the number of its loop; counts the connections each loop holds.
struct Which {
    index: usize,
    open: Arc<Vec<AtomicUsize>>,
}

impl Handler for Which {
    type State = ();

    fn on_open(&mut self, _: &mut Ctx<'_, ()>, _: &mut ()) {
        self.open[self.index].fetch_add(1, Ordering::SeqCst);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, _: &mut (), _: &Message<'_>) {
        let _ = ctx.send_text(&self.index.to_string());
    }

    fn on_close(&mut self, _: &mut Ctx<'_, ()>, _: (), _: &CloseStatus) {
        self.open[self.index].fetch_sub(1, Ordering::SeqCst);
    }
}

fn counts(open: &[AtomicUsize]) -> Vec<usize> {
    open.iter().map(|n| n.load(Ordering::SeqCst)).collect()
}

/// Connects a client and asks it which loop serves it.
fn connect(addr: std::net::SocketAddr) -> (Client, usize) {
    let mut client = Client::connect(addr);
    client.send_text("which");
    let frame = client.read_frame().unwrap();
    assert_eq!(frame.opcode, OpCode::Text);
    let index = String::from_utf8(frame.payload).unwrap().parse().unwrap();
    (client, index)
}

/// Waits until the loops hold `want` connections.
fn wait_for(open: &[AtomicUsize], want: &[usize]) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while counts(open) != want {
        assert!(Instant::now() < deadline, "loops hold {:?}, not {want:?}", counts(open));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Three loops; 30 clients connect one after another, then the 10 (or so) on loop 1 leave and
/// 10 more connect. Returns the loops' counts after the first 30 and after the second 10.
fn spread(balance: Balance) -> (Vec<usize>, Vec<usize>) {
    let open: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let handlers = (0..3).map(|index| Which { index, open: open.clone() }).collect();
    let loops =
        Loops::bind_balanced("127.0.0.1:0".parse().unwrap(), Options::default(), handlers, balance)
            .unwrap();
    let addr = loops.local_addr();
    let running = loops.spawn().unwrap();
    let mut clients: Vec<(Client, usize)> = (0..30).map(|_| connect(addr)).collect();
    let first = counts(&open);
    assert_eq!(first.iter().sum::<usize>(), 30);
    // The clients on loop 1 leave, with the closing handshake.
    let (leaving, mut staying): (Vec<_>, Vec<_>) = clients.drain(..).partition(|(_, i)| *i == 1);
    for (mut client, _) in leaving {
        client.send_frame(true, OpCode::Close, &1000u16.to_be_bytes());
        client.read_close();
        client.expect_eof();
    }
    wait_for(&open, &[first[0], 0, first[2]]);
    let mut later: Vec<(Client, usize)> = (0..10).map(|_| connect(addr)).collect();
    let second = counts(&open);
    eprintln!("{balance:?}: 30 clients -> {first:?}; loop 1's leave, 10 more -> {second:?}");
    running.shutdown();
    for (client, _) in staying.iter_mut().chain(later.iter_mut()) {
        assert_eq!(client.skip_to_close().0, Some(1001));
    }
    running.join().unwrap();
    (first, second)
}

#[test]
fn the_acceptor_gives_each_connection_to_the_loop_holding_fewest() {
    let (first, second) = spread(Balance::Acceptor);
    assert_eq!(first, [10, 10, 10], "one after another, the loops take turns");
    assert_eq!(second, [10, 10, 10], "the newcomers all go where the leavers were");
}

#[test]
fn with_reuseport_the_kernel_spreads_connections_by_a_hash() {
    let (first, second) = spread(Balance::ReusePort);
    // A hash of 30 random ports over 3 listeners: a loop with none is a 1-in-70,000 event.
    assert!(first.iter().all(|&n| n > 0), "{first:?}");
    assert_eq!(second.iter().sum::<usize>(), first[0] + first[2] + 10, "{second:?}");
}
