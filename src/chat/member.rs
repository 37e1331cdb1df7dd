//! What the chat keeps per member (the connection's state in the server's table), and its two
//! clocks: a member's rate limit and the heartbeat's cadence. Both take the time as an input,
//! so they are tested here without sockets or sleeping.

use std::time::{Duration, Instant};

/// A token bucket: `burst` messages at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_second: f64,
    /// Messages that may be sent at once after a quiet spell.
    pub burst: f64,
}

/// One member of the chat.
#[derive(Debug, Default)]
pub struct Member {
    /// The nickname, `guest-N` until the member picks one (shared with the chat's list of
    /// names: one string for both).
    pub name: std::sync::Arc<str>,
    /// We closed this member (it sent binary): what it still sends is ignored.
    pub closing: bool,
    /// How fast it may send.
    pub bucket: Bucket,
    /// `?since=ID` on its request: the id of the last message it saw before it reconnected.
    pub since: Option<u64>,
}

/// A member's tokens. Full when it joins.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date; `None`: never used, so full.
    updated: Option<Instant>,
}

impl Bucket {
    /// Spends a token on a message that arrived at `now`. A message is never refused: if the
    /// bucket is empty now, it returns when the next token will be there, and the caller stops
    /// reading from the member until then (TCP pushes back on the sender), so that the
    /// messages it sends afterwards come in at the configured rate.
    pub fn spend(&mut self, limit: &RateLimit, now: Instant) -> Option<Instant> {
        let refilled = match self.updated {
            None => limit.burst,
            Some(at) => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                (self.tokens + elapsed * limit.per_second).min(limit.burst)
            }
        };
        // May go below zero for a message read before a pause began; it is paid back in time.
        self.tokens = refilled - 1.0;
        self.updated = Some(now);
        (self.tokens < 1.0).then(|| {
            let wait = (1.0 - self.tokens) / limit.per_second;
            now + Duration::from_secs_f64(wait.clamp(0.0, 3600.0))
        })
    }
}

/// A timer that fires every `every`, keeping its cadence, and never in a burst after a stall.
#[derive(Clone, Copy, Debug)]
pub struct Cadence {
    every: Duration,
    next: Option<Instant>,
}

impl Cadence {
    /// A cadence not started yet.
    pub fn new(every: Duration) -> Cadence {
        Cadence { every, next: None }
    }

    /// Starts it at `now` (the first tick is one period later); a no-op once started.
    pub fn start(&mut self, now: Instant) {
        self.next.get_or_insert(now + self.every);
    }

    /// When it next fires.
    pub fn next(&self) -> Option<Instant> {
        self.next
    }

    /// Whether it fires at `now`; if so, the next tick is one period after the one due, or
    /// one period after `now` if that is already past (after a stall: no burst).
    pub fn fire(&mut self, now: Instant) -> bool {
        match self.next {
            Some(due) if due <= now => {
                let next = due + self.every;
                self.next = Some(if next > now { next } else { now + self.every });
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit { per_second: 20.0, burst: 40.0 };

    #[test]
    fn a_burst_then_the_rate() {
        let mut bucket = Bucket::default();
        let start = Instant::now();
        // The first 39 messages leave tokens; the 40th empties the bucket.
        for n in 0..39 {
            assert_eq!(bucket.spend(&LIMIT, start), None, "message {n}");
        }
        let resume = bucket.spend(&LIMIT, start).expect("empty after the burst");
        assert_eq!(resume, start + Duration::from_millis(50));
        // Read again at `resume`: one token is back, spent at once, so the next pause is 50 ms.
        let next = bucket.spend(&LIMIT, resume).unwrap();
        assert_eq!(next, resume + Duration::from_millis(50));
        // 200 messages, each read when the bucket says: 40 at once, then 20 a second.
        let mut bucket = Bucket::default();
        let mut now = start;
        for _ in 0..200 {
            if let Some(at) = bucket.spend(&LIMIT, now) {
                now = at;
            }
        }
        let spent = now - start;
        assert!(
            spent >= Duration::from_secs(8) && spent < Duration::from_millis(8100),
            "{spent:?}"
        );
    }

    #[test]
    fn a_quiet_spell_refills_up_to_the_burst() {
        let mut bucket = Bucket::default();
        let start = Instant::now();
        for _ in 0..40 {
            bucket.spend(&LIMIT, start);
        }
        let later = start + Duration::from_secs(3600);
        for n in 0..39 {
            assert_eq!(bucket.spend(&LIMIT, later), None, "message {n}");
        }
        assert!(bucket.spend(&LIMIT, later).is_some());
    }

    /// The heartbeat's schedule, checked on the sans-I/O timer: the cadence is kept, a late tick
    /// does not shift it, and a long stall gives one tick, not a burst.
    #[test]
    fn the_heartbeat_keeps_its_cadence() {
        let every = Duration::from_secs(5);
        let start = Instant::now();
        let mut cadence = Cadence::new(every);
        assert_eq!(cadence.next(), None);
        cadence.start(start);
        cadence.start(start + every);
        assert_eq!(cadence.next(), Some(start + every));
        assert!(!cadence.fire(start + every - Duration::from_millis(1)), "never early");
        assert!(cadence.fire(start + every + Duration::from_millis(300)), "late is fine");
        assert_eq!(cadence.next(), Some(start + 2 * every), "the cadence is kept");
        let stalled = start + 10 * every;
        assert!(cadence.fire(stalled));
        assert_eq!(cadence.next(), Some(stalled + every), "no burst after a stall");
        assert!(!cadence.fire(stalled));
    }
}
