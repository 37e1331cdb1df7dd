//! Admission: at most so many opening handshakes per second on one loop, the rest refused
//! with `503 Service Unavailable` and a `Retry-After` that spreads them out.
//!
//! After a restart or a network blip every client reconnects within a few seconds. A loop
//! that accepts them all at once spends its time on handshakes, welcomes and history while the
//! members it has fall behind; past a rate it can sustain, a quick refusal costs far less than
//! a join. §4.2.2: "If the server does not wish to accept this connection, it MUST return an
//! appropriate HTTP error code"; `Retry-After` (RFC 9110 §10.2.3) says when to come back.
//! Each refused client is told a later second than the one before it, as many per second as
//! the rate admits, so that they come back spread out instead of all at once again.
//!
//! Browsers do not show a failed handshake's status or headers to the page (the WebSocket API
//! reports only that the connection closed); a page spreads its reconnects itself, with a
//! random delay (see the chat's page).

use std::time::Instant;

/// The longest wait a refusal asks for, in seconds.
const MAX_RETRY_AFTER: f64 = 60.0;

/// A token bucket over opening handshakes: `per_second` sustained, a second's worth at once (at
/// least one). A smaller burst refuses clients the loop could have served (a refused client's
/// place is taken at once by another, and a loop alone completes handshakes faster than it
/// does on average): with a tenth of a second's burst, `bench/storm.sh` saw 3,455 of 10,000
/// joins refused at 10,000 a second; with a second's, none.
#[derive(Clone, Debug)]
pub(crate) struct Admission {
    per_second: f64,
    /// Handshakes at once.
    burst: f64,
    tokens: f64,
    /// Clients told to come back, not yet due (it drains at `per_second`).
    promised: f64,
    updated: Option<Instant>,
}

impl Admission {
    /// At most `per_second` handshakes a second.
    pub(crate) fn new(per_second: f64) -> Admission {
        let per_second = per_second.max(0.001);
        let burst = per_second.max(1.0);
        Admission { per_second, burst, tokens: burst, promised: 0.0, updated: None }
    }

    /// An opening handshake arrived at `now`: admitted, or refused with the seconds to wait.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<(), u64> {
        if let Some(at) = self.updated {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + refill).min(self.burst);
            self.promised = (self.promised - refill).max(0.0);
        }
        self.updated = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        // The n-th client refused comes back after the n handshakes ahead of it.
        self.promised = (self.promised + 1.0).min(MAX_RETRY_AFTER * self.per_second);
        let wait = (self.promised / self.per_second).ceil().clamp(1.0, MAX_RETRY_AFTER);
        // In 1..=60 by the clamp above: the conversion cannot lose anything.
        Err(wait as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate_and_the_refused_spread_out() {
        let start = Instant::now();
        let mut admission = Admission::new(100.0);
        for n in 0..100 {
            assert_eq!(admission.admit(start), Ok(()), "handshake {n} of the burst");
        }
        // 250 more at once: told 1 s, 2 s and 3 s, 100 per second.
        let waits: Vec<u64> = (0..250).map(|_| admission.admit(start).unwrap_err()).collect();
        assert_eq!(waits.iter().filter(|&&w| w == 1).count(), 100);
        assert_eq!(waits.iter().filter(|&&w| w == 2).count(), 100);
        assert_eq!(waits.iter().filter(|&&w| w == 3).count(), 50);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "later clients wait longer");
        // Half a second on: 50 tokens are back.
        let later = start + Duration::from_millis(500);
        for _ in 0..50 {
            assert_eq!(admission.admit(later), Ok(()));
        }
        assert_eq!(admission.admit(later), Err(3), "200 promised ahead of it");
    }

    #[test]
    fn waits_are_bounded() {
        let start = Instant::now();
        let mut admission = Admission::new(1.0);
        assert_eq!(admission.admit(start), Ok(()));
        let last = (0..1000).map(|_| admission.admit(start).unwrap_err()).last();
        assert_eq!(last, Some(60));
        // A quiet minute later: admitted again, told nothing.
        assert_eq!(admission.admit(start + Duration::from_secs(61)), Ok(()));
    }
}
