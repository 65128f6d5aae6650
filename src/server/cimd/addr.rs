//! Which addresses a Client ID Metadata Document may be fetched from.
//!
//! A `client_id` URL is chosen by whoever sends an authorization request, so
//! without this guard anyone could make Tessera send requests into the
//! network it runs in (SSRF). Only globally routable unicast addresses pass,
//! unless the operator allows private ones (`[clients]
//! allow_private_addresses = true`, meant for tests and closed networks).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is one Tessera may fetch a metadata document from when
/// private addresses are not allowed: not loopback, private, link-local,
/// shared (CGNAT), multicast, broadcast, unspecified, documentation,
/// benchmarking or reserved, and no IPv6 form of any of those (IPv4-mapped,
/// IPv4-compatible, NAT64, 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this network", 0.0.0.0/8
        || a == 10                             // private
        || a == 127                            // loopback
        || (a == 100 && (64..=127).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)              // link-local
        || (a == 172 && (16..=31).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // documentation
        || (a == 192 && b == 88 && c == 99)    // 6to4 relay anycast
        || (a == 192 && b == 168)              // private
        || (a == 198 && (b == 18 || b == 19))  // benchmarking
        || (a == 198 && b == 51 && c == 100)   // documentation
        || (a == 203 && b == 0 && c == 113)    // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // IPv4 inside IPv6: judged by the IPv4 address.
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xff00) == 0xff00           // multicast
        || (s[0] & 0xfe00) == 0xfc00           // unique local
        || (s[0] & 0xffc0) == 0xfe80           // link-local
        || (s[0] & 0xffc0) == 0xfec0           // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8)  // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200)   // IETF protocol assignments (Teredo, ORCHID, ...)
        || s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0 // discard-only
        || (s[0] & 0xe000) != 0x2000) // outside global unicast 2000::/3
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) or 6to4
/// (`2002:ab:cd::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || (s[5] == 0 && (s[6] != 0 || s[7] > 1))) {
        return Some(low(s[6], s[7]));
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(low(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(low(s[1], s[2]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn forbidden_addresses_are_refused() {
        for s in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(!public(s), "{s} must not be fetched from");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.1.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001:81b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(public(s), "{s} is a public address");
        }
    }

    proptest! {
        #[test]
        fn a_mapped_address_is_judged_like_its_ipv4_address(bits in any::<u32>()) {
            let v4 = Ipv4Addr::from(bits);
            prop_assert_eq!(is_public(IpAddr::V6(v4.to_ipv6_mapped())), is_public(IpAddr::V4(v4)));
        }

        #[test]
        fn private_ranges_are_never_public(host in any::<u32>(), range in 0usize..6) {
            let (base, len): (u32, u32) = [
                (0x0a00_0000, 8),  // 10/8
                (0x7f00_0000, 8),  // 127/8
                (0xac10_0000, 12), // 172.16/12
                (0xc0a8_0000, 16), // 192.168/16
                (0xa9fe_0000, 16), // 169.254/16
                (0x6440_0000, 10), // 100.64/10
            ][range];
            let ip = Ipv4Addr::from(base | (host >> len));
            prop_assert!(!is_public(IpAddr::V4(ip)), "{}", ip);
        }

        #[test]
        fn ipv6_link_local_and_unique_local_are_never_public(low in any::<u128>()) {
            let ll = Ipv6Addr::from(0xfe80u128 << 112 | (low >> 10));
            let ula = Ipv6Addr::from(0xfc00u128 << 112 | (low >> 7));
            prop_assert!(!is_public(IpAddr::V6(ll)));
            prop_assert!(!is_public(IpAddr::V6(ula)));
        }
    }
}
