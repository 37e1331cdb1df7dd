//! Presence, coalesced: who joined and who left is gathered and told at most once per
//! interval, as one notice for everybody, instead of one notice per join.
//!
//! Told one by one, `n` members joining at once cost `n²/2` notices (every join to every member
//! already there); after a restart every page reconnects within seconds, and the leaves of a
//! network blip cost the same again. Gathered, they cost one notice per interval to each member:
//! O(n) per interval, however many come and go. A change after a quiet spell (no notice within
//! the last interval) is told at once, so a small chat sees each join as it happens.
//!
//! Above a room size (`names_up_to`), names are no longer told at all, only the online count,
//! and at most every [`COUNT_EVERY`] intervals (a count is worth less than a name, and a big
//! room is where each notice costs most); a client that wants the member list asks for it
//! (`{"cmd":"who"}`). The notices stay
//! additive on the wire: one change is the same `join` or `leave` notice as before, several
//! are a `batch`, and a count alone is a `count`.
//!
//! No clock is read here: the times come in as arguments, so the coalescing is tested without
//! sleeping.

use std::time::{Duration, Instant};

/// Above the room size, a count is told at most once per this many intervals.
pub(crate) const COUNT_EVERY: u32 = 4;

/// Gathers joins and leaves until their notice is due.
#[derive(Debug)]
pub(crate) struct Presence {
    every: Duration,
    names_up_to: usize,
    /// Names that joined since the last notice (and have not left again).
    joined: Vec<String>,
    /// Names that left since the last notice (and had joined before it).
    left: Vec<String>,
    /// More changes than `names_up_to` came: no names are kept, only the count.
    overflowed: bool,
    /// Change to the member count since the last notice.
    delta: i64,
    /// When the gathered changes are to be told; `None`: nothing is waiting.
    due: Option<Instant>,
    /// When the last notice was told.
    last: Option<Instant>,
}

/// What the members are told: the gathered changes, for one notice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Notice {
    /// Names that joined; empty when the names are not told.
    pub(crate) joined: Vec<String>,
    /// Names that left; empty when the names are not told.
    pub(crate) left: Vec<String>,
    /// Whether names are told at all (false: the count alone).
    pub(crate) names: bool,
    /// Change to the member count.
    pub(crate) delta: i64,
}

impl Presence {
    /// Notices at most every `every`; names told while at most `names_up_to` members are
    /// online and at most that many changed.
    pub(crate) fn new(every: Duration, names_up_to: usize) -> Presence {
        Presence {
            every,
            names_up_to,
            joined: Vec::new(),
            left: Vec::new(),
            overflowed: false,
            delta: 0,
            due: None,
            last: None,
        }
    }

    /// `name` joined at `now`, `online` members with it; returns when the notice is due.
    pub(crate) fn join(&mut self, name: &str, online: usize, now: Instant) -> Instant {
        self.delta += 1;
        self.note(now, online, |p| p.joined.push(name.to_owned()))
    }

    /// `name` left at `now`, `online` members staying; returns when the notice is due. A
    /// member that joined since the last notice and leaves before the next is not told at all.
    pub(crate) fn leave(&mut self, name: &str, online: usize, now: Instant) -> Instant {
        self.delta -= 1;
        self.note(now, online, |p| match p.joined.iter().position(|n| n == name) {
            Some(at) => {
                p.joined.swap_remove(at);
            }
            None => p.left.push(name.to_owned()),
        })
    }

    fn note(&mut self, now: Instant, online: usize, record: impl FnOnce(&mut Presence)) -> Instant {
        if !self.overflowed {
            record(self);
            if self.joined.len() + self.left.len() > self.names_up_to {
                // Too many to name: from here on, only the count.
                self.overflowed = true;
                self.joined = Vec::new();
                self.left = Vec::new();
            }
        }
        // The first change after a notice is due one interval after that notice (at once
        // after a quiet spell); later ones go with it.
        let every = if self.names_told(online) { self.every } else { self.every * COUNT_EVERY };
        *self.due.get_or_insert_with(|| match self.last {
            Some(last) if last + every > now => last + every,
            _ => now,
        })
    }

    /// When the gathered changes are due, if any are waiting.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The gathered changes, if they are due at `now` (or at once, with `now_anyway`: before a
    /// chat message or a rename, so that a member's join is always told before what it says).
    pub(crate) fn take(&mut self, now: Instant, now_anyway: bool) -> Option<Notice> {
        let due = self.due?;
        if due > now && !now_anyway {
            return None;
        }
        let notice = Notice {
            joined: std::mem::take(&mut self.joined),
            left: std::mem::take(&mut self.left),
            names: !self.overflowed,
            delta: self.delta,
        };
        self.overflowed = false;
        self.delta = 0;
        self.due = None;
        self.last = Some(now);
        Some(notice)
    }

    /// Whether names are told in a chat of `online` members.
    pub(crate) fn names_told(&self, online: usize) -> bool {
        online <= self.names_up_to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(250);

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn after_a_quiet_spell_a_change_is_told_at_once() {
        let start = Instant::now();
        let mut p = Presence::new(EVERY, 100);
        assert_eq!(p.join("a", 1, start), start);
        let notice = p.take(start, false).unwrap();
        assert_eq!(notice.joined, ["a"]);
        assert_eq!((notice.names, notice.delta), (true, 1));
        assert_eq!(p.due(), None);
        // A second later, quiet again: at once.
        assert_eq!(p.leave("a", 1, at(start, 1000)), at(start, 1000));
    }

    #[test]
    fn a_storm_is_told_once_per_interval() {
        let start = Instant::now();
        let mut p = Presence::new(EVERY, 1000);
        p.join("first", 1, start);
        p.take(start, false).unwrap();
        // 600 joins over 600 ms: one notice per 250 ms, not one per join.
        let mut notices = Vec::new();
        for ms in 1..=600 {
            let now = at(start, ms);
            let due = p.join(&format!("g{ms}"), 1, now);
            assert!(due >= now && due <= at(start, 750), "{ms}: due {:?}", due - start);
            if let Some(notice) = p.take(now, false) {
                notices.push((ms, notice));
            }
        }
        let told: Vec<u64> = notices.iter().map(|(ms, _)| *ms).collect();
        assert_eq!(told, [250, 500]);
        assert_eq!(notices[0].1.joined.len(), 250);
        assert_eq!(notices[1].1.joined.len(), 250);
        assert_eq!(p.due(), Some(at(start, 750)));
        assert!(p.take(at(start, 749), false).is_none(), "not due yet");
        let last = p.take(at(start, 750), false).unwrap();
        assert_eq!((last.joined.len(), last.delta), (100, 100));
    }

    #[test]
    fn who_came_and_went_within_one_interval_is_not_told() {
        let start = Instant::now();
        let mut p = Presence::new(EVERY, 100);
        p.join("old", 1, start);
        p.take(start, false);
        p.join("brief", 1, at(start, 10));
        p.leave("brief", 1, at(start, 20));
        p.leave("old", 1, at(start, 30));
        let notice = p.take(at(start, 250), false).unwrap();
        assert_eq!(notice.joined, Vec::<String>::new());
        assert_eq!(notice.left, ["old"]);
        assert_eq!(notice.delta, -1);
        // Came and went, nothing else: nothing to tell.
        p.join("x", 1, at(start, 600));
        p.leave("x", 1, at(start, 600));
        let nothing = p.take(at(start, 600), false).unwrap();
        assert_eq!(nothing, Notice { names: true, ..Notice::default() });
    }

    #[test]
    fn past_the_room_size_only_the_count_and_less_often() {
        let start = Instant::now();
        let mut p = Presence::new(EVERY, 3);
        for i in 0..3 {
            p.join(&i.to_string(), i + 1, start);
        }
        let notice = p.take(start, false).unwrap();
        assert_eq!((notice.names, notice.joined.len()), (true, 3));
        for i in 3..10 {
            let due = p.join(&i.to_string(), i + 1, at(start, 100));
            assert_eq!(due, at(start, 1000), "a count waits four intervals");
        }
        assert!(p.take(at(start, 250), false).is_none());
        let notice = p.take(at(start, 1000), false).unwrap();
        assert_eq!((notice.names, notice.delta), (false, 7));
        assert!(notice.joined.is_empty(), "no names are kept past the size");
        assert!(p.names_told(3) && !p.names_told(4));
        // Back to three: names again, at the usual interval.
        p.leave("9", 3, at(start, 1100));
        let notice = p.take(at(start, 1250), false).unwrap();
        assert_eq!((notice.names, notice.left.len()), (true, 1));
    }

    #[test]
    fn a_message_takes_what_is_waiting_at_once() {
        let start = Instant::now();
        let mut p = Presence::new(EVERY, 100);
        p.join("a", 1, start);
        p.take(start, false);
        p.join("b", 1, at(start, 1));
        assert!(p.take(at(start, 2), false).is_none());
        let notice = p.take(at(start, 2), true).unwrap();
        assert_eq!(notice.joined, ["b"]);
        assert!(p.take(at(start, 3), true).is_none(), "nothing waits");
    }
}
