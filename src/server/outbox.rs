//! A connection's queue of bytes not yet taken by its socket, and the loop's pool of buffers.
//!
//! Most answers never land here: while a connection is being served, the event loop writes its
//! output into one buffer (the "cork") and hands it to the socket once per wakeup. Only what the
//! socket did not take is queued, and without a copy: the cork itself moves into the queue and
//! the loop takes another buffer from its [`Pool`]. A frame encoded once for a broadcast is
//! queued for every recipient as the same shared `Bytes`. Buffers go back to the pool as soon as
//! they are written, so an idle connection that is caught up holds no buffer at all, and a busy
//! loop allocates nothing once the pool is warm.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// At most this many chunks go to one `writev`.
const MAX_IOVECS: usize = 64;
/// The pool keeps at most this many buffers...
const MAX_POOLED: usize = 64;
/// ...of at most this capacity each; larger ones are freed.
const MAX_POOLED_CAPACITY: usize = 1 << 20;

/// Buffers that were written out, kept for reuse instead of freed.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    free: Vec<Vec<u8>>,
}

impl Pool {
    /// An empty buffer, reused when one is available.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    /// Gives a buffer back (freed if the pool is full or the buffer is large).
    pub(crate) fn give(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < MAX_POOLED && buf.capacity() <= MAX_POOLED_CAPACITY {
            buf.clear();
            self.free.push(buf);
        }
    }
}

/// A piece of queued output. Every chunk ends at a frame boundary.
#[derive(Debug)]
enum Chunk {
    /// A frame shared with other connections.
    Shared(Bytes),
    /// This connection's own output, `buf[start..]` still to write.
    Owned { buf: Vec<u8>, start: usize },
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Shared(bytes) => bytes,
            Chunk::Owned { buf, start } => &buf[*start..],
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Chunk::Shared(bytes) => bytes.advance(n),
            Chunk::Owned { start, .. } => *start += n,
        }
    }

    fn recycle(self, pool: &mut Pool) {
        if let Chunk::Owned { buf, .. } = self {
            pool.give(buf);
        }
    }
}

/// Bytes waiting to be written, oldest first. The first chunk is held inline, so the common
/// case (one leftover) needs no queue allocation.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    head: Option<Chunk>,
    rest: VecDeque<Chunk>,
    len: usize,
}

impl Outbox {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, chunk: Chunk) {
        let len = chunk.bytes().len();
        if len == 0 {
            return;
        }
        self.len += len;
        if self.head.is_none() {
            self.head = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    /// Queues a frame shared with other connections (not copied).
    pub(crate) fn push_shared(&mut self, frame: Bytes) {
        self.push(Chunk::Shared(frame));
    }

    /// Queues a buffer of this connection's own output.
    pub(crate) fn push_owned(&mut self, buf: Vec<u8>, pool: &mut Pool) {
        if buf.is_empty() {
            pool.give(buf);
        } else {
            self.push(Chunk::Owned { buf, start: 0 });
        }
    }

    /// Queues `cork[written..]`, the part of the loop's output buffer that the socket did not
    /// take: the cork's buffer itself moves here, and the cork gets one from the pool.
    pub(crate) fn keep_unwritten(&mut self, cork: &mut Vec<u8>, written: usize, pool: &mut Pool) {
        if written >= cork.len() {
            cork.clear();
            return;
        }
        let buf = std::mem::replace(cork, pool.take());
        self.push(Chunk::Owned { buf, start: written });
    }

    /// Queues what is left of `parts` after their first `written` bytes, copied into one buffer
    /// (the parts are borrowed: a large payload written from where it lay).
    pub(crate) fn keep_unwritten_slices(
        &mut self,
        parts: &[&[u8]],
        written: usize,
        pool: &mut Pool,
    ) {
        let mut rest = pool.take();
        let mut skip = written;
        for part in parts {
            let from = skip.min(part.len());
            skip -= from;
            rest.extend_from_slice(&part[from..]);
        }
        self.push_owned(rest, pool);
    }

    /// Writes as much as the socket takes without blocking, in one `writev` per round; returns
    /// how many bytes it took.
    pub(crate) fn write_to(
        &mut self,
        stream: &mut impl Write,
        pool: &mut Pool,
    ) -> io::Result<usize> {
        let mut total = 0;
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let chunks = self.head.iter().chain(self.rest.iter());
            let mut count = 0;
            for (slot, chunk) in slices.iter_mut().zip(chunks) {
                *slot = IoSlice::new(chunk.bytes());
                count += 1;
            }
            let written = match stream.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += written;
            self.consume(written, pool);
        }
        Ok(total)
    }

    fn consume(&mut self, mut n: usize, pool: &mut Pool) {
        self.len -= n;
        while n > 0 {
            let Some(head) = self.head.as_mut() else { break };
            let len = head.bytes().len();
            if n < len {
                head.advance(n);
                break;
            }
            n -= len;
            if let Some(done) = std::mem::replace(&mut self.head, self.rest.pop_front()) {
                done.recycle(pool);
            }
        }
        if self.head.is_none() && self.rest.capacity() > 0 {
            // Give the queue's memory back.
            self.rest = VecDeque::new();
        }
    }

    /// Drops every chunk but the first (which may be partly written, and ends at a frame
    /// boundary), so that a Close frame can follow at once. Returns the bytes dropped.
    pub(crate) fn drop_queued(&mut self, pool: &mut Pool) -> usize {
        let mut dropped = 0;
        for chunk in self.rest.drain(..) {
            dropped += chunk.bytes().len();
            chunk.recycle(pool);
        }
        self.len -= dropped;
        dropped
    }
}

/// Writes `parts`, in order, with `writev` until the socket would block; returns how many
/// bytes of them it took.
pub(crate) fn write_slices(stream: &mut impl Write, parts: &[&[u8]]) -> io::Result<usize> {
    let total: usize = parts.iter().map(|part| part.len()).sum();
    let mut written = 0;
    while written < total {
        // The parts not yet written, the first of them cut where the last write ended.
        let mut slices = [IoSlice::new(&[]); 4];
        let (mut skip, mut count) = (written, 0);
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            if count < slices.len() {
                slices[count] = IoSlice::new(&part[skip..]);
                count += 1;
            }
            skip = 0;
        }
        match stream.write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes per call, and would block after 3 calls.
    struct Trickle {
        taken: Vec<u8>,
        limit: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls == 3 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.limit - n);
                self.taken.extend_from_slice(&b[..take]);
                n += take;
            }
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_and_buffers_return_to_the_pool() {
        let mut pool = Pool::default();
        let mut cork = b"hello ".to_vec();
        let mut outbox = Outbox::default();
        outbox.keep_unwritten(&mut cork, 0, &mut pool);
        assert!(cork.is_empty());
        let shared = Bytes::from_static(b"shared frame");
        outbox.push_shared(shared.clone());
        outbox.push_owned(b"!".to_vec(), &mut pool);
        let mut w = Trickle { taken: Vec::new(), limit: 5, calls: 0 };
        outbox.write_to(&mut w, &mut pool).unwrap();
        assert_eq!(w.taken, b"hello shared fr");
        assert_eq!(outbox.len(), 4);
        assert_eq!(pool.free.len(), 1, "the cork's buffer is back once written");
        w.calls = 0;
        outbox.write_to(&mut w, &mut pool).unwrap();
        assert_eq!(w.taken, b"hello shared frame!");
        assert!(outbox.is_empty());
        assert!(outbox.head.is_none() && outbox.rest.capacity() == 0);
        assert_eq!(pool.free.len(), 2);
        // The shared chunk was never copied: the caller's handle still sees the same bytes.
        assert_eq!(&shared[..], b"shared frame");
    }

    #[test]
    fn the_unwritten_part_of_the_cork_moves_without_a_copy() {
        let mut pool = Pool::default();
        let mut cork = vec![7u8; 1000];
        let address = cork.as_ptr();
        let mut outbox = Outbox::default();
        outbox.keep_unwritten(&mut cork, 50, &mut pool);
        assert_eq!(outbox.len(), 950);
        assert_eq!(outbox.head.as_ref().unwrap().bytes().as_ptr(), address.wrapping_add(50));
    }

    #[test]
    fn drop_queued_keeps_the_front_chunk() {
        let mut pool = Pool::default();
        let mut outbox = Outbox::default();
        outbox.push_shared(Bytes::from_static(b"front"));
        outbox.push_shared(Bytes::from_static(b"second"));
        outbox.push_owned(b"third".to_vec(), &mut pool);
        assert_eq!(outbox.drop_queued(&mut pool), 11);
        assert_eq!(outbox.len(), 5);
        assert_eq!(pool.free.len(), 1);
    }

    #[test]
    fn the_pool_is_bounded() {
        let mut pool = Pool::default();
        for _ in 0..MAX_POOLED + 10 {
            pool.give(Vec::with_capacity(16));
        }
        pool.give(Vec::with_capacity(MAX_POOLED_CAPACITY + 1));
        assert_eq!(pool.free.len(), MAX_POOLED);
    }
}
