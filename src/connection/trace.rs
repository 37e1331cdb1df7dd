//! `--trace`: one line per thing that happens on a connection, each with the RFC section it
//! belongs to. Nothing is formatted unless tracing is on (the lines are built in closures that
//! only run then), so the cost when off is one branch per frame.

use super::{Connection, Role};
use crate::close::CloseCode;
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, OpCode, RSV_MASK};
use crate::mask::apply_mask;
use crate::state::State;
use std::fmt::Write as _;

/// How many payload bytes a frame line shows.
const PREVIEW: usize = 24;

impl Connection {
    /// Records a line if tracing is on; `line` is only called then.
    pub(super) fn trace(&mut self, line: impl FnOnce() -> String) {
        if let Some(lines) = self.extras.as_mut().and_then(|extras| extras.trace.as_mut()) {
            lines.push(line());
        }
    }

    /// Records that TCP is closed, the RFC's CLOSED (§7.1.4), for the driver that closed it,
    /// with the code and reason it ended with when it knows them.
    pub(crate) fn trace_tcp_closed(&mut self, why: Option<(CloseCode, &str)>) {
        self.trace(|| match why {
            Some((code, reason)) => format!("§7.1.4 TCP closed: CLOSED ({} {reason})", code.0),
            None => "§7.1.4 TCP closed: CLOSED".to_owned(),
        });
    }

    /// The lines recorded since the last call (none when tracing is off).
    pub fn take_trace(&mut self) -> Vec<String> {
        let lines = self.extras.as_mut().and_then(|extras| extras.trace.as_mut());
        lines.map(std::mem::take).unwrap_or_default()
    }

    /// Records a frame header read from the peer, with a preview of the payload bytes that
    /// came with it (unmasked on a copy: the input is not touched here).
    pub(super) fn trace_received(&mut self, header: &FrameHeader, payload_start: &[u8]) {
        self.trace(|| {
            let mut preview = payload_start[..payload_start.len().min(PREVIEW)].to_vec();
            if let Some(key) = header.mask {
                apply_mask(&mut preview, key, 0);
            }
            frame_line("<-", header, &preview)
        });
    }

    /// Records a frame we send (`rsv`: RSV1 for a compressed message; `mask`: a client's key),
    /// with its payload before masking.
    pub(super) fn trace_sent(
        &mut self,
        opcode: OpCode,
        rsv: u8,
        mask: Option<[u8; 4]>,
        payload: &[u8],
    ) {
        self.trace(|| {
            let header =
                FrameHeader { fin: true, rsv, opcode, mask, payload_len: payload.len() as u64 };
            frame_line("->", &header, &payload[..payload.len().min(PREVIEW)])
        });
    }

    /// Records, when tracing, a frame that was encoded once for many connections (a broadcast)
    /// and queued for this one.
    pub(super) fn trace_shared_frame(&mut self, encoded: &[u8]) {
        if self.extras.as_ref().is_some_and(|extras| extras.trace.is_some())
            && let Ok(Some((header, n))) = crate::frame::decode_header(encoded)
        {
            self.trace_sent(header.opcode, header.rsv, None, &encoded[n..]);
        }
    }

    /// Records a change of state.
    pub(super) fn trace_state(&mut self, from: State, to: State) {
        let role = self.role();
        let (section, rfc) = (state_section(from, to, role), rfc_state(to));
        self.trace(|| format!("{section} state {from:?} -> {to:?} ({rfc})"));
    }
}

/// `<- §5.2 frame fin=1 rsv=000 op=Text mask=37fa213d len=5 "Hello"`
fn frame_line(direction: &str, header: &FrameHeader, preview: &[u8]) -> String {
    let section = match header.opcode {
        OpCode::Continuation => "§5.4",
        OpCode::Text | OpCode::Binary => "§5.6",
        OpCode::Close => "§5.5.1",
        OpCode::Ping => "§5.5.2",
        OpCode::Pong => "§5.5.3",
    };
    let rsv = (header.rsv & RSV_MASK) >> 4;
    let mask =
        header.mask.map_or("-".to_owned(), |k| k.iter().map(|b| format!("{b:02x}")).collect());
    let mut line = format!(
        "{direction} {section} frame fin={} rsv={rsv:03b} op={:?}(0x{:x}) mask={mask} len={}",
        u8::from(header.fin),
        header.opcode,
        header.opcode.bits(),
        header.payload_len
    );
    if header.opcode == OpCode::Close && preview.len() >= 2 {
        let code = u16::from_be_bytes([preview[0], preview[1]]);
        let _ = write!(line, " code={code} reason={}", printable(&preview[2..]));
    } else if header.payload_len > 0 {
        let _ = write!(line, " {}", printable(preview));
        if header.payload_len > preview.len() as u64 && header.payload_len > MAX_CONTROL_PAYLOAD {
            line.push('…');
        }
    }
    line
}

/// The bytes as text where they are printable ASCII or UTF-8, escaped otherwise.
fn printable(bytes: &[u8]) -> String {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(e) => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
    };
    if text.len() == bytes.len() && !text.chars().any(char::is_control) {
        format!("{text:?}")
    } else {
        bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }
}

fn state_section(from: State, to: State, role: Role) -> &'static str {
    match to {
        State::Connecting => "§4.1",
        // §4.1: the client's "_The WebSocket Connection is Established_".
        State::Open if role == Role::Client => "§4.1",
        State::Open => "§4.2.2",
        // §7.1.3: "Upon either sending or receiving a Close control frame, it is said that _The
        // WebSocket Closing Handshake is Started_ and that the WebSocket connection is in the
        // CLOSING state."
        State::CloseSent => "§7.1.3",
        State::Closed if from != State::Connecting => "§7.1.3",
        // A refused or failed opening handshake.
        State::Closed if role == Role::Client => "§4.1",
        State::Closed => "§4.2.1",
    }
}

/// The RFC's name for where `to` is: our states are not the RFC's four one for one.
/// CloseSent and Closed are both the RFC's CLOSING, which lasts until TCP is closed (§7.1.4:
/// "When the underlying TCP connection is closed, it is said that _The WebSocket Connection is
/// Closed_ and that the WebSocket connection is in the CLOSED state"); our Closed means that
/// no frame may be sent or is read any more, and the loop's "§7.1.4 TCP closed" line marks
/// the RFC's CLOSED.
fn rfc_state(to: State) -> &'static str {
    match to {
        State::Connecting => "CONNECTING",
        State::Open => "OPEN",
        State::CloseSent => "CLOSING: our Close is sent",
        State::Closed => "CLOSING until TCP is closed: no more frames",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lines() {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Text,
            mask: Some([0x37, 0xfa, 0x21, 0x3d]),
            payload_len: 5,
        };
        let masked = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let mut preview = masked.to_vec();
        apply_mask(&mut preview, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(
            frame_line("<-", &header, &preview),
            "<- §5.6 frame fin=1 rsv=000 op=Text(0x1) mask=37fa213d len=5 \"Hello\""
        );
        let close =
            FrameHeader { fin: true, rsv: 0, opcode: OpCode::Close, mask: None, payload_len: 2 };
        assert_eq!(
            frame_line("->", &close, &[0x03, 0xe8]),
            "-> §5.5.1 frame fin=1 rsv=000 op=Close(0x8) mask=- len=2 code=1000 reason=\"\""
        );
    }
}
