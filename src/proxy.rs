//! Behind a reverse proxy: the client's address from `X-Forwarded-For` or `Forwarded`
//! (RFC 7239), believed only from proxies the operator trusts (`--trust-proxy`).
//!
//! Every connection through a proxy comes from the proxy's address: without this, the
//! per-address cap counts the whole site as one client. But the headers are written by whoever
//! sends the request, so they are read only on connections from a trusted proxy, and there
//! only as far as the trusted proxies go: each proxy appends the address it received the
//! request from, so the list is read from the right, skipping trusted addresses, and the first
//! address that is not trusted is the client's (what a client wrote itself lies further left,
//! and is ignored). RFC 7239 §5.2: the `for` parameter "identifies the node making the request
//! to the proxy"; §8.1 warns that the header "cannot be relied upon to be correct" unless the
//! proxies on the way are trusted to set it.
//!
//! No I/O here: the request's fields and the peer's address come in, an address goes out.

use crate::handshake::Request;
use std::net::IpAddr;
use std::str::FromStr;

/// An address or a network (`10.0.0.0/8`, `::1`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4 address also matches as `::ffff:a.b.c.d`).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr =
            addr.parse().map_err(|_| format!("{text:?}: not an IP address or network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: a prefix is 0 to {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

/// The client's address for a request that arrived from `peer`: `peer` itself unless `peer`
/// is one of the `trusted` proxies; then the rightmost address of `X-Forwarded-For` (every
/// field of it, in order) that is not trusted, or failing that header, of `Forwarded`'s `for=`
/// parameters. An entry that is not an address (`unknown`, an obfuscated name, garbage) ends
/// the search: the client is then the last trusted hop before it. With no header, or every
/// address trusted, it is the leftmost trusted address (or `peer`).
pub fn client_address(trusted: &[Cidr], peer: IpAddr, request: &Request) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let xff: Vec<&str> = request
        .header_values("x-forwarded-for")
        .filter_map(|value| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let hops: Vec<&str> = if xff.is_empty() {
        request
            .header_values("forwarded")
            .filter_map(|value| std::str::from_utf8(value).ok())
            .flat_map(|value| value.split(','))
            .filter_map(forwarded_for)
            .collect()
    } else {
        xff
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_node(hop) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The `for` parameter of one `Forwarded` element (`for=192.0.2.60;proto=http;by=...`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then(|| value.trim())
    })
}

/// A node as the two headers write it: `192.0.2.60`, `"[2001:db8::1]:4711"`, `[::1]`,
/// `192.0.2.60:8080`, `2001:db8::1` (X-Forwarded-For writes IPv6 bare).
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    // IPv4 with a port.
    node.rsplit_once(':')
        .and_then(|(host, _)| host.parse::<std::net::Ipv4Addr>().ok())
        .map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &str) -> Request {
        let head = format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
        Request::parse(head.as_bytes(), 64).unwrap()
    }

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")) && !net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6");
        assert!(!net.contains(ip("::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.7")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert_eq!("::1".parse::<Cidr>().map(|c| c.contains(ip("::1"))), Ok(true));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("localhost".parse::<Cidr>().is_err());
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
    }

    #[test]
    fn headers_are_ignored_from_anyone_but_a_trusted_proxy() {
        let trusted = nets(&["127.0.0.1"]);
        let forged = request("X-Forwarded-For: 10.9.9.9\r\n");
        assert_eq!(client_address(&trusted, ip("192.0.2.1"), &forged), ip("192.0.2.1"));
        assert_eq!(client_address(&[], ip("127.0.0.1"), &forged), ip("127.0.0.1"));
    }

    #[test]
    fn the_rightmost_address_that_is_not_a_trusted_proxy() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        // What the client wrote itself (1.1.1.1) is left of the address the first proxy saw.
        let r = request("X-Forwarded-For: 1.1.1.1, 203.0.113.5\r\nX-Forwarded-For: 10.0.0.2\r\n");
        assert_eq!(client_address(&trusted, peer, &r), ip("203.0.113.5"));
        let bare_v6 = request("X-Forwarded-For: 2001:db8::7\r\n");
        assert_eq!(client_address(&trusted, peer, &bare_v6), ip("2001:db8::7"));
        // Every hop trusted: the leftmost.
        let inside = request("X-Forwarded-For: 10.0.0.3, 10.0.0.2\r\n");
        assert_eq!(client_address(&trusted, peer, &inside), ip("10.0.0.3"));
        // Garbage ends the search at the last trusted hop.
        let junk = request("X-Forwarded-For: 203.0.113.5, nonsense, 10.0.0.2\r\n");
        assert_eq!(client_address(&trusted, peer, &junk), ip("10.0.0.2"));
        // No header: the proxy itself.
        assert_eq!(client_address(&trusted, peer, &request("")), peer);
    }

    #[test]
    fn rfc_7239_forwarded() {
        let trusted = nets(&["127.0.0.1"]);
        let peer = ip("127.0.0.1");
        // RFC 7239 §4's examples.
        let r =
            request("Forwarded: for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;proto=http\r\n");
        assert_eq!(client_address(&trusted, peer, &r), ip("198.51.100.17"));
        let quoted = request("Forwarded: For=\"[2001:db8:cafe::17]:4711\"\r\n");
        assert_eq!(client_address(&trusted, peer, &quoted), ip("2001:db8:cafe::17"));
        let port = request("Forwarded: for=\"192.0.2.43:47011\"\r\n");
        assert_eq!(client_address(&trusted, peer, &port), ip("192.0.2.43"));
        let unknown = request("Forwarded: for=unknown\r\n");
        assert_eq!(client_address(&trusted, peer, &unknown), peer);
        // X-Forwarded-For, when both are there.
        let both = request("Forwarded: for=192.0.2.43\r\nX-Forwarded-For: 198.51.100.1\r\n");
        assert_eq!(client_address(&trusted, peer, &both), ip("198.51.100.1"));
    }
}
