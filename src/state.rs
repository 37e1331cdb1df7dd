//! The states of a WebSocket connection, and the moves between them.
//!
//! They are the project's, not the RFC's four one for one (CONNECTING, OPEN, CLOSING, CLOSED):
//! `CloseSent` and `Closed` are both the RFC's CLOSING (§7.1.3: "Upon either sending or
//! receiving a Close control frame, ... the WebSocket connection is in the CLOSING state"),
//! which ends when TCP is closed (§7.1.4), after the connection is `Closed` here: `Closed` means
//! that no frame may be sent or is read any more.
//!
//! Everything that decides which state may follow which lives here, in [`State::can_become`];
//! the connection changes its state in exactly one function (`Connection::transition`), which
//! checks every move against this table.
//!
//! ```text
//!             101 sent                 we send Close
//! Connecting ─────────▶ Open ─────────────────────────▶ CloseSent
//!     │                  │                                  │
//!     │ HTTP error       │ peer's Close answered,           │ peer's Close received,
//!     │ or timeout       │ or the connection failed         │ failure, or timeout
//!     ▼                  ▼                                  ▼
//!   Closed ◀─────────────┴──────────────────────────────────┘
//! ```

/// Where a connection is in its life (RFC 6455 §4, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// §4.2.1: reading the client's opening handshake. Frames are not accepted yet.
    Connecting,
    /// §4.2.2: "_The WebSocket Connection is Established_ and the WebSocket Connection is in
    /// the OPEN state": messages flow both ways.
    Open,
    /// §7.1.2: we sent a Close frame ("_Start the WebSocket Closing Handshake_") and wait for the
    /// peer's. No more data frames may be sent; received ones are still delivered.
    CloseSent,
    /// §7.1.4: the closing handshake is complete, the connection failed (§7.1.7), or the
    /// handshake was refused. Input is no longer interpreted. Once the output is flushed the
    /// server closes TCP first (§7.1.1), and gives the peer until the deadline to close its end.
    Closed,
}

impl State {
    /// Whether `next` may follow `self`.
    pub fn can_become(self, next: State) -> bool {
        use State::*;
        matches!(
            (self, next),
            (Connecting, Open)
                | (Connecting, Closed)
                | (Open, CloseSent)
                | (Open, Closed)
                | (CloseSent, Closed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::State::*;

    #[test]
    fn transition_table() {
        let all = [Connecting, Open, CloseSent, Closed];
        let legal = [
            (Connecting, Open),
            (Connecting, Closed),
            (Open, CloseSent),
            (Open, Closed),
            (CloseSent, Closed),
        ];
        for from in all {
            for to in all {
                assert_eq!(from.can_become(to), legal.contains(&(from, to)), "{from:?} -> {to:?}");
            }
        }
    }
}
