//! The connection caps (`Options::max_connections`, `Options::max_connections_per_ip`), counted
//! once for every event loop of a server: a client cannot get N times its share by landing on
//! N loops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// Connections held, in all, and per peer address.
#[derive(Debug, Default)]
pub(crate) struct Caps {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    active: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Caps {
    /// Counts a connection from `ip`, or says why it is over a cap.
    pub(crate) fn admit(
        &self,
        ip: IpAddr,
        max: usize,
        max_per_ip: usize,
    ) -> Result<(), &'static str> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.active >= max {
            return Err("server at connection limit");
        }
        let from_ip = counts.per_ip.entry(ip).or_insert(0);
        if *from_ip >= max_per_ip {
            return Err("too many connections from this address");
        }
        *from_ip += 1;
        counts.active += 1;
        Ok(())
    }

    /// A connection counted by [`Caps::admit`] has gone.
    pub(crate) fn release(&self, ip: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.active = counts.active.saturating_sub(1);
        if let Some(count) = counts.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_in_all_and_per_address() {
        let caps = Caps::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(caps.admit(a, 3, 2), Ok(()));
        assert_eq!(caps.admit(a, 3, 2), Ok(()));
        assert_eq!(caps.admit(a, 3, 2), Err("too many connections from this address"));
        assert_eq!(caps.admit(b, 3, 2), Ok(()));
        assert_eq!(caps.admit(b, 3, 2), Err("server at connection limit"));
        caps.release(a);
        assert_eq!(caps.admit(b, 3, 2), Ok(()));
        caps.release(a);
        caps.release(b);
        caps.release(b);
        let counts = caps.counts.lock().unwrap();
        assert_eq!((counts.active, counts.per_ip.len()), (0, 0), "nothing left behind");
    }
}
