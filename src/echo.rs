//! The echo handler: every text and binary message goes back to its sender unchanged. This is
//! the server the Autobahn|TestSuite fuzzing client is run against.

use crate::message::Message;
use crate::server::{Ctx, Handler};

/// Echoes every message back to the connection it came from.
#[derive(Debug, Default)]
pub struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message<'_>) {
        // Sending fails only when the connection is already closing; nothing is owed then.
        let _ = ctx.send(message);
    }
}
