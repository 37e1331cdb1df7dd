//! A minimal embedded server with a handler of its own: every text message from anyone is
//! counted, and everyone connected is told the new count. The count is encoded once per
//! message and shared by every recipient.
//!
//! ```sh
//! cargo run --example broadcast_counter            # ws://127.0.0.1:9002/
//! ```

use rfc6455::Message;
use rfc6455::server::{Ctx, Handler, Options, Server, SharedFrame};

#[derive(Default)]
struct Counter {
    messages: u64,
}

impl Handler for Counter {
    // Nothing is kept per connection.
    type State = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, _: &mut (), message: &Message<'_>) {
        if message.as_text().is_none() {
            return;
        }
        self.messages += 1;
        // Encoded once, queued for everyone; a connection that is closing or too far behind is
        // skipped, and the loop deals with it.
        ctx.broadcast(&SharedFrame::text(&format!("{} messages so far", self.messages)));
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let mut server =
        Server::bind(addr.parse().expect("an address"), Options::default(), Counter::default())?;
    eprintln!("broadcast counter on ws://{}/", server.local_addr()?);
    server.run()
}
