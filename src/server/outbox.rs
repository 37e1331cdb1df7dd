//! A connection's queue of bytes not yet taken by its socket.
//!
//! Most answers never land here: while a connection is being served, the event loop writes its
//! output into one buffer shared by the whole loop (the "cork") and hands it to the socket once
//! per wakeup. Only what the socket did not take is kept per connection, as a queue of chunks:
//! a frame encoded once for a broadcast is queued for every recipient as the same shared
//! `Bytes`, never copied. The queue's memory is given back as soon as it drains, so an idle
//! connection that is caught up holds no buffer at all.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// At most this many chunks go to one `writev`.
const MAX_IOVECS: usize = 64;
/// A cork leftover larger than this moves its allocation into the queue instead of a copy.
const ADOPT_WHOLE: usize = 64 * 1024;

/// Bytes waiting to be written, oldest first. Every chunk ends at a frame boundary.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Outbox {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a chunk (shared, not copied).
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Queues `cork[written..]`, the part of the loop's shared buffer the socket did not take,
    /// and leaves the cork empty. A large leftover takes the cork's allocation whole.
    pub(crate) fn keep_unwritten(&mut self, cork: &mut Vec<u8>, written: usize) {
        if cork.len() - written > ADOPT_WHOLE {
            let mut whole = Bytes::from(std::mem::take(cork));
            whole.advance(written);
            self.push(whole);
        } else {
            self.push(Bytes::copy_from_slice(&cork[written..]));
            cork.clear();
        }
    }

    /// Writes as much as the socket takes without blocking, in one `writev` per round.
    pub(crate) fn write_to(&mut self, stream: &mut impl Write) -> io::Result<()> {
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
                *slot = IoSlice::new(chunk);
                count += 1;
            }
            let written = match stream.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written);
        }
        Ok(())
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else { break };
            if n < front.len() {
                front.advance(n);
                break;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            // Give the queue's memory back.
            *self = Outbox::default();
        }
    }

    /// Drops every chunk but the first (which may be partly written, and ends at a frame
    /// boundary), so that a Close frame can follow at once. Returns the bytes dropped.
    pub(crate) fn drop_queued(&mut self) -> usize {
        let mut dropped = 0;
        while self.chunks.len() > 1 {
            if let Some(chunk) = self.chunks.pop_back() {
                dropped += chunk.len();
            }
        }
        self.len -= dropped;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes per call, then would block.
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
    fn partial_writes_keep_order_and_free_memory_when_drained() {
        let mut cork = b"hello ".to_vec();
        let mut outbox = Outbox::default();
        outbox.keep_unwritten(&mut cork, 0);
        assert!(cork.is_empty());
        let shared = Bytes::from_static(b"shared frame");
        outbox.push(shared.clone());
        outbox.push(Bytes::from_static(b"!"));
        let mut w = Trickle { taken: Vec::new(), limit: 5, calls: 0 };
        outbox.write_to(&mut w).unwrap();
        assert_eq!(w.taken, b"hello shared fr");
        assert_eq!(outbox.len(), 4);
        w.calls = 0;
        outbox.write_to(&mut w).unwrap();
        assert_eq!(w.taken, b"hello shared frame!");
        assert!(outbox.is_empty());
        assert_eq!(outbox.chunks.capacity(), 0);
        // The shared chunk was never copied: the caller's handle still sees the same bytes.
        assert_eq!(&shared[..], b"shared frame");
    }

    #[test]
    fn large_leftover_takes_the_cork_whole() {
        let mut cork = vec![7u8; ADOPT_WHOLE + 100];
        let mut outbox = Outbox::default();
        outbox.keep_unwritten(&mut cork, 50);
        assert_eq!(outbox.len(), ADOPT_WHOLE + 50);
        assert_eq!(cork.capacity(), 0);
    }

    #[test]
    fn drop_queued_keeps_the_front_chunk() {
        let mut outbox = Outbox::default();
        outbox.push(Bytes::from_static(b"front"));
        outbox.push(Bytes::from_static(b"second"));
        outbox.push(Bytes::from_static(b"third"));
        assert_eq!(outbox.drop_queued(), 11);
        assert_eq!(outbox.len(), 5);
    }
}
