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

/// Why a connection is over a cap.
pub(crate) const AT_LIMIT: &str = "server at connection limit";
/// Why a connection is over the per-address cap.
pub(crate) const FROM_THIS_ADDRESS: &str = "too many connections from this address";

impl Caps {
    /// Counts a connection from `ip` (`None`: its address is not known yet, as behind a trusted
    /// proxy, and only the total is counted), or says why it is over a cap.
    pub(crate) fn admit(
        &self,
        ip: Option<IpAddr>,
        max: usize,
        max_per_ip: usize,
    ) -> Result<(), &'static str> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.active >= max {
            return Err(AT_LIMIT);
        }
        if let Some(ip) = ip {
            let from_ip = counts.per_ip.entry(ip).or_insert(0);
            if *from_ip >= max_per_ip {
                return Err(FROM_THIS_ADDRESS);
            }
            *from_ip += 1;
        }
        counts.active += 1;
        Ok(())
    }

    /// Counts a connection admitted with `None` under the address it turned out to come from.
    pub(crate) fn count_address(&self, ip: IpAddr, max_per_ip: usize) -> Result<(), &'static str> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let from_ip = counts.per_ip.entry(ip).or_insert(0);
        if *from_ip >= max_per_ip {
            return Err(FROM_THIS_ADDRESS);
        }
        *from_ip += 1;
        Ok(())
    }

    /// A connection counted by [`Caps::admit`] (under `ip`, if it was counted under one) has
    /// gone.
    pub(crate) fn release(&self, ip: Option<IpAddr>) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.active = counts.active.saturating_sub(1);
        if let Some(ip) = ip
            && let Some(count) = counts.per_ip.get_mut(&ip)
        {
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
        assert_eq!(caps.admit(Some(a), 3, 2), Ok(()));
        assert_eq!(caps.admit(Some(a), 3, 2), Ok(()));
        assert_eq!(caps.admit(Some(a), 3, 2), Err(FROM_THIS_ADDRESS));
        assert_eq!(caps.admit(Some(b), 3, 2), Ok(()));
        assert_eq!(caps.admit(Some(b), 3, 2), Err(AT_LIMIT));
        caps.release(Some(a));
        assert_eq!(caps.admit(Some(b), 3, 2), Ok(()));
        caps.release(Some(a));
        caps.release(Some(b));
        caps.release(Some(b));
        // Behind a proxy: the total first, the address once it is known.
        assert_eq!(caps.admit(None, 3, 1), Ok(()));
        assert_eq!(caps.count_address(a, 1), Ok(()));
        assert_eq!(caps.admit(None, 3, 1), Ok(()));
        assert_eq!(caps.count_address(a, 1), Err(FROM_THIS_ADDRESS));
        caps.release(None);
        caps.release(Some(a));
        let counts = caps.counts.lock().unwrap();
        assert_eq!((counts.active, counts.per_ip.len()), (0, 0), "nothing left behind");
    }
}
