//! A connection's queue of bytes not yet taken by its socket.
//!
//! Most answers never land here: while a connection is being served, the event loop writes its
//! output into one buffer shared by the whole loop (the "cork") and hands it to the socket once
//! per wakeup. Only what the socket did not take is kept per connection, and the allocation is
//! given back as soon as it drains, so an idle connection holds no buffer at all.

/// Bytes waiting to be written, `buf[start..]`.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    buf: Vec<u8>,
    start: usize,
}

/// Leftovers larger than this move the cork's allocation into the outbox instead of copying.
const ADOPT_WHOLE: usize = 64 * 1024;

impl Outbox {
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes waiting, oldest first.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Drops `n` bytes that the socket took; frees the buffer once it is empty.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.buf.len() {
            *self = Outbox::default();
        }
    }

    /// The buffer to append new output to, after the bytes already waiting.
    pub(crate) fn tail(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Keeps `cork[written..]`, the part of the loop's shared buffer the socket did not take.
    /// The outbox must be empty. A large leftover takes the cork's allocation whole.
    pub(crate) fn keep_unwritten(&mut self, cork: &mut Vec<u8>, written: usize) {
        debug_assert!(self.is_empty());
        if cork.len() - written > ADOPT_WHOLE {
            *self = Outbox { buf: std::mem::take(cork), start: written };
        } else {
            *self = Outbox { buf: cork[written..].to_vec(), start: 0 };
            cork.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frees_its_buffer_when_drained() {
        let mut cork = b"hello world".to_vec();
        let mut outbox = Outbox::default();
        outbox.keep_unwritten(&mut cork, 6);
        assert_eq!(outbox.bytes(), b"world");
        assert!(cork.is_empty());
        outbox.tail().extend_from_slice(b"!");
        outbox.consume(3);
        assert_eq!(outbox.bytes(), b"ld!");
        outbox.consume(3);
        assert!(outbox.is_empty());
        assert_eq!(outbox.buf.capacity(), 0);
    }

    #[test]
    fn large_leftover_takes_the_cork_whole() {
        let mut cork = vec![7u8; ADOPT_WHOLE + 100];
        let mut outbox = Outbox::default();
        outbox.keep_unwritten(&mut cork, 50);
        assert_eq!(outbox.len(), ADOPT_WHOLE + 50);
        assert_eq!(cork.capacity(), 0);
    }
}
