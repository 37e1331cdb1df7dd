//! The echo path allocates nothing per message when messages fit the read buffer: a counting
//! allocator counts the allocations made on the server's thread while it echoes 10,000
//! pipelined messages.

mod common;

use rfc6455::echo::Echo;
use rfc6455::frame::{self, OpCode};
use rfc6455::server::{Options, Server};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts allocations made by threads that set `COUNTED`.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is passed straight to the system allocator; the counting touches only an
// atomic and a const-initialised thread-local `Cell`, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sends `count` pipelined messages of `size` bytes and reads every echo back.
fn echo_batch(client: &mut common::Client, count: usize, size: usize) {
    let payload = vec![b'a'; size];
    let mut bytes = Vec::new();
    for _ in 0..count {
        bytes.extend(client.frame_bytes(true, OpCode::Binary, &payload));
    }
    let mut writer = client.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    let expected = count
        * (size
            + frame::FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: None,
                payload_len: size as u64,
            }
            .encoded_len());
    let mut received = vec![0u8; expected];
    client.stream.read_exact(&mut received).unwrap();
    sender.join().unwrap();
}

fn allocations_for(count: usize, size: usize) -> u64 {
    let mut server =
        Server::bind("127.0.0.1:0".parse().unwrap(), Options::default(), Echo::default()).unwrap();
    let addr = server.local_addr().unwrap();
    let stop = server.handle();
    let thread = std::thread::spawn(move || {
        COUNTED.with(|c| c.set(true));
        server.run().unwrap();
    });
    let mut client = common::Client::connect(addr);
    // Warm up: the buffers the loop keeps reach their working size.
    echo_batch(&mut client, 1_000, size);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    echo_batch(&mut client, count, size);
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    stop.shutdown();
    drop(client);
    thread.join().unwrap();
    during
}

#[test]
fn echo_allocates_nothing_per_message() {
    for size in [20, 1024, 16 * 1024] {
        let count = 10_000;
        let allocations = allocations_for(count, size);
        eprintln!("{count} echoes of {size} B: {allocations} allocations on the server thread");
        // Buffers come from the loop's pool; the few allocations left are the pool growing its
        // buffers to the working size. Never one per message.
        assert!(
            allocations < (count / 20) as u64,
            "{allocations} allocations for {count} echoes of {size} B"
        );
    }
}
