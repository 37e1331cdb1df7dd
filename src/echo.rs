//! The echo handler: every text and binary message goes back to its sender unchanged. This is
//! the server the Autobahn|TestSuite fuzzing client is run against.

use crate::handshake::Request;
use crate::message::Message;
use crate::policy::Policy;
use crate::server::{Ctx, Decision, Handler};
use std::net::SocketAddr;

/// Echoes every message back to the connection it came from. Requests are answered by its
/// [`Policy`] (by default: every opening handshake is accepted, on any path).
#[derive(Debug, Default)]
pub struct Echo {
    /// Which requests are accepted.
    pub policy: Policy,
}

impl Handler for Echo {
    type State = ();

    fn on_request(&mut self, request: &Request, _peer: SocketAddr) -> Decision<()> {
        Decision::from_policy(self.policy.decide(request), || ())
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, _: &mut (), message: &Message<'_>) {
        // Sending fails only when the connection is already closing; nothing is owed then.
        let _ = ctx.send(message);
    }
}
