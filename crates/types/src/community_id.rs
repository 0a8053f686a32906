//! Community ID v1 flow hashing (corelight/community-id-spec), so alerts and
//! flow records join with Zeek, Suricata and Elastic data on one string.
//!
//! The hash input is `seed (2 bytes) ‖ addr ‖ addr ‖ proto ‖ 0 ‖ port ‖ port`,
//! big-endian, with the endpoints ordered so the lower (address, port) pair
//! comes first. Two spec details matter here:
//!
//! * ICMP and ICMPv6 have no ports; the spec substitutes the message type
//!   and, for request/reply types, the paired type (else the code). Our
//!   decoder already stores ICMP "ports" that way (see [`FlowKey`]), so both
//!   functions below take mapped ports. A one-way ICMP message (an error, a
//!   redirect, ...) is hashed sender first, without reordering.
//! * Protocols other than TCP, UDP, SCTP, ICMP and ICMPv6 hash no port bytes
//!   at all (the spec's "IP src / IP dst / IP proto"; its baseline shows
//!   `null` ports for RSVP). Hashing `0/0` instead would give a different,
//!   non-interoperable value, so whatever ports a key holds are ignored.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::FlowKey;

const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// True for the protocols whose hash input carries the two port fields.
fn has_ports(proto: u8) -> bool {
    matches!(proto, ICMP | 6 | 17 | ICMPV6 | 132)
}

/// The ICMP/ICMPv6 type that answers `ty`, for the request/reply pairs the
/// spec maps (its reference implementation's table, itself from Zeek).
/// `None` means the type is one-way. Note the table is not symmetric:
/// ICMPv4 router solicitation (10) pairs with advertisement (9), but an
/// advertisement on its own is one-way.
fn icmp_counterpart(proto: u8, ty: u16) -> Option<u16> {
    match (proto, ty) {
        (ICMP, 8) => Some(0),
        (ICMP, 0) => Some(8),
        (ICMP, 13) => Some(14),
        (ICMP, 14) => Some(13),
        (ICMP, 15) => Some(16),
        (ICMP, 16) => Some(15),
        (ICMP, 10) => Some(9),
        (ICMP, 17) => Some(18),
        (ICMP, 18) => Some(17),
        (ICMPV6, 128) => Some(129),
        (ICMPV6, 129) => Some(128),
        (ICMPV6, 133) => Some(134),
        (ICMPV6, 134) => Some(133),
        (ICMPV6, 135) => Some(136),
        (ICMPV6, 136) => Some(135),
        (ICMPV6, 130) => Some(131),
        (ICMPV6, 131) => Some(130),
        (ICMPV6, 139) => Some(140),
        (ICMPV6, 140) => Some(139),
        (ICMPV6, 144) => Some(145),
        (ICMPV6, 145) => Some(144),
        _ => None,
    }
}

/// True when `(sport, dport)` of an ICMP/ICMPv6 flow is a one-way message
/// sent by the `sport` side.
fn is_one_way(proto: u8, sport: u16) -> bool {
    matches!(proto, ICMP | ICMPV6) && icmp_counterpart(proto, sport).is_none()
}

/// How plausible it is that a one-way ICMP message had type `ty` and code
/// `code`: 0 impossible (not a byte, or a request/reply type, which would
/// have been stored with its paired type), 1 possible (unknown type, or a
/// code outside the type's registered range), 2 and up a registered
/// (type, code) pair, higher for messages that are more common on real
/// networks. Used only to recover the sender of a one-way message from a
/// canonical key, where the direction is no longer recorded.
fn one_way_plausibility(proto: u8, ty: u16, code: u16) -> u8 {
    if ty > 255 || code > 255 || icmp_counterpart(proto, ty).is_some() {
        return 0;
    }
    // (highest registered code, commonness bonus) per IANA registry.
    let known: Option<(u16, u8)> = match (proto, ty) {
        (ICMP, 3) => Some((15, 4)),    // destination unreachable
        (ICMP, 11) => Some((1, 3)),    // time exceeded
        (ICMP, 5) => Some((3, 2)),     // redirect
        (ICMP, 12) => Some((2, 1)),    // parameter problem
        (ICMP, 4) => Some((0, 0)),     // source quench
        (ICMP, 9) => Some((16, 0)),    // router advertisement (codes 0, 16)
        (ICMPV6, 1) => Some((8, 4)),   // destination unreachable
        (ICMPV6, 2) => Some((0, 3)),   // packet too big
        (ICMPV6, 3) => Some((1, 2)),   // time exceeded
        (ICMPV6, 4) => Some((10, 1)),  // parameter problem
        (ICMPV6, 137) => Some((0, 0)), // redirect
        (ICMPV6, 143) => Some((0, 0)), // MLDv2 report
        _ => None,
    };
    match known {
        Some((max_code, bonus)) if code <= max_code => 2 + bonus,
        _ => 1,
    }
}

fn addr_bytes(ip: &IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            b[..4].copy_from_slice(&v4.octets());
            (b, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

/// Hashes endpoints already in the order the spec wants.
fn hash_ordered(first: (IpAddr, u16), second: (IpAddr, u16), proto: u8, seed: u16) -> String {
    let (a, an) = addr_bytes(&first.0);
    let (b, bn) = addr_bytes(&second.0);
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&a[..an]);
    h.update(&b[..bn]);
    h.update([proto, 0]);
    if has_ports(proto) {
        h.update(first.1.to_be_bytes());
        h.update(second.1.to_be_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(digest, &mut out);
    out
}

/// The spec's endpoint order: lower address first, equal addresses ordered
/// by port. Addresses compare as bytes, as the spec does.
fn lower_first(x: (IpAddr, u16), y: (IpAddr, u16)) -> ((IpAddr, u16), (IpAddr, u16)) {
    let (xa, xn) = addr_bytes(&x.0);
    let (ya, yn) = addr_bytes(&y.0);
    if (&xa[..xn], x.1) <= (&ya[..yn], y.1) {
        (x, y)
    } else {
        (y, x)
    }
}

/// Community ID v1 of a flow seen from `src:sport` to `dst:dport`, when the
/// direction is known (a packet, or a [`crate::FlowRecord`]'s client and
/// server). Exact for every protocol.
///
/// For ICMP and ICMPv6, `sport` is the type and `dport` the paired type of
/// a request/reply (or the code of a one-way message), as the decoder
/// stores them. Protocols without ports (not TCP, UDP, SCTP, ICMP, ICMPv6)
/// hash no ports, whatever is passed.
///
/// ```
/// use tapsentry_types::community_id_v1;
/// let src = "128.232.110.120".parse().unwrap();
/// let dst = "66.35.250.204".parse().unwrap();
/// assert_eq!(community_id_v1(src, 34855, dst, 80, 6, 0), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
/// ```
pub fn community_id_v1(
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    proto: u8,
    seed: u16,
) -> String {
    let (s, d) = ((src, sport), (dst, dport));
    // A one-way ICMP message keeps its sender first; everything else is
    // ordered so both directions give one id.
    let (first, second) = if is_one_way(proto, sport) {
        (s, d)
    } else {
        lower_first(s, d)
    };
    hash_ordered(first, second, proto, seed)
}

/// Community ID v1 of a canonical flow key (VLAN is not part of the id).
///
/// Exact for TCP, UDP, SCTP, other protocols, and ICMP request/reply pairs,
/// whose spec order is the key's canonical order. A one-way ICMP message is
/// hashed sender first, but a key does not record who sent: the sender is
/// taken to be the side whose port reads as a registered one-way
/// (type, code) pair, the more common message winning when both sides do
/// (e.g. ICMPv6 1/4 "port unreachable" over 4/1), else the key's `a` side.
/// That fallback is wrong only when the sender has the higher address and
/// the sides cannot be told apart, notably when type equals code (ICMPv4
/// 3/3, port unreachable).
/// When the direction is known, prefer [`community_id_v1`] with the sender
/// first, which is always exact.
///
/// ```
/// use tapsentry_types::{community_id_of_key, FlowKey};
/// let a = "192.168.0.89".parse().unwrap();
/// let b = "192.168.0.1".parse().unwrap();
/// // Echo request and its reply share one key and one id.
/// let (k, _) = FlowKey::canonical(a, 8, b, 0, 1, 0);
/// assert_eq!(community_id_of_key(&k, 0), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=");
/// ```
pub fn community_id_of_key(key: &FlowKey, seed: u16) -> String {
    let a = (key.a, key.a_port);
    let b = (key.b, key.b_port);
    if !matches!(key.proto, ICMP | ICMPV6) {
        // The key is already in this order for one address family; this
        // keeps even a mixed-family key equal to the directed form.
        let (first, second) = lower_first(a, b);
        return hash_ordered(first, second, key.proto, seed);
    }
    let p = key.proto;
    let two_way = icmp_counterpart(p, key.a_port) == Some(key.b_port)
        || icmp_counterpart(p, key.b_port) == Some(key.a_port);
    if two_way {
        let (first, second) = lower_first(a, b);
        return hash_ordered(first, second, p, seed);
    }
    let a_sent = one_way_plausibility(p, key.a_port, key.b_port);
    let b_sent = one_way_plausibility(p, key.b_port, key.a_port);
    if b_sent > a_sent {
        hash_ordered(b, a, p, seed)
    } else {
        hash_ordered(a, b, p, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// (proto, saddr, daddr, sport, dport, id with seed 0, id with seed 1):
    /// every record of the spec repository's baseline/baseline_deflt.json
    /// and baseline/baseline_seed1.json (tcp, udp, sctp, icmp, icmp6, ipv6
    /// and rsvp captures). The RSVP records have `null` ports there.
    const BASELINE: &[(u8, &str, &str, u16, u16, &str, &str)] = &[
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "fe80::260:97ff:fe07:69ea",
            135,
            136,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "fe80::200:86ff:fe05:80da",
            136,
            135,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "fe80::200:86ff:fe05:80da",
            135,
            136,
            "1:zavyT/cezQr1fmImYCwYnMXbgck=",
            "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
        ),
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "fe80::260:97ff:fe07:69ea",
            136,
            135,
            "1:zavyT/cezQr1fmImYCwYnMXbgck=",
            "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
        ),
        (
            58,
            "3ffe:501:1800:2345::2",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            3,
            0,
            "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=",
            "1:lVEtCZpYu84Xqaa++3lXFyuu2n4=",
        ),
        (
            58,
            "3ffe:501:410:0:2c0:dfff:fe47:33e",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            1,
            4,
            "1:hLZd0XGWojozrvxqE0dWB1iM6R0=",
            "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8=",
        ),
        (
            58,
            "3ffe:507:0:1:200:86ff:fe05:80da",
            "3ffe:501:0:1001::2",
            128,
            129,
            "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
            "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
        ),
        (
            58,
            "3ffe:501:0:1001::2",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            129,
            128,
            "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
            "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
        ),
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "ff02::2",
            133,
            134,
            "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=",
            "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "ff02::1",
            134,
            133,
            "1:pkvHqCL88/tg1k4cPigmZXUtL00=",
            "1:K/ee5UCqAMAQXDorP5nSa2CGLjc=",
        ),
        (
            1,
            "192.168.0.89",
            "192.168.0.1",
            8,
            0,
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
        ),
        (
            1,
            "192.168.0.1",
            "192.168.0.89",
            0,
            8,
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
        ),
        (
            1,
            "10.0.0.1",
            "10.0.0.2",
            11,
            0,
            "1:YHxtAirCG//0OzkcVAukqKQN9xM=",
            "1:XjUibYHaafLQ3pxQeiMI8g25q20=",
        ),
        (
            6,
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            "2607:f8b0:400c:c03::1a",
            63943,
            25,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
        ),
        (
            6,
            "2607:f8b0:400c:c03::1a",
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            25,
            63943,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
        ),
        (
            132,
            "192.168.170.8",
            "192.168.170.56",
            7,
            7,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
        ),
        (
            132,
            "192.168.170.56",
            "192.168.170.8",
            7,
            7,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
        ),
        (
            6,
            "128.232.110.120",
            "66.35.250.204",
            34855,
            80,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
        (
            6,
            "66.35.250.204",
            "128.232.110.120",
            80,
            34855,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
        (
            17,
            "192.168.1.52",
            "8.8.8.8",
            54585,
            53,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
        ),
        (
            17,
            "8.8.8.8",
            "192.168.1.52",
            53,
            54585,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
        ),
        (
            46,
            "10.1.12.1",
            "10.1.12.2",
            0,
            0,
            "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
            "1:rYir8gphR31noO9iDRQmF/BteEI=",
        ),
        (
            46,
            "10.1.12.2",
            "10.1.12.1",
            0,
            0,
            "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
            "1:rYir8gphR31noO9iDRQmF/BteEI=",
        ),
    ];

    #[test]
    fn directed_form_matches_the_spec_baseline() {
        for (proto, s, d, sp, dp, seed0, seed1) in BASELINE {
            let got0 = community_id_v1(ip(s), *sp, ip(d), *dp, *proto, 0);
            let got1 = community_id_v1(ip(s), *sp, ip(d), *dp, *proto, 1);
            assert_eq!(
                (got0.as_str(), got1.as_str()),
                (*seed0, *seed1),
                "{proto} {s} {d}"
            );
        }
    }

    /// Every baseline record, turned into the canonical key the flow table
    /// builds, hashes to the spec's value (VLAN does not matter).
    #[test]
    fn key_form_matches_the_spec_baseline() {
        for (proto, s, d, sp, dp, seed0, seed1) in BASELINE {
            let (k, _) = FlowKey::canonical(ip(s), *sp, ip(d), *dp, *proto, 42);
            assert_eq!(&community_id_of_key(&k, 0), seed0, "{proto} {s} {d}");
            assert_eq!(&community_id_of_key(&k, 1), seed1, "{proto} {s} {d}");
        }
    }

    #[test]
    fn named_cases() {
        let tcp4 = community_id_v1(ip("128.232.110.120"), 34855, ip("66.35.250.204"), 80, 6, 0);
        assert_eq!(tcp4, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        let udp4 = community_id_v1(ip("8.8.8.8"), 53, ip("192.168.1.52"), 54585, 17, 0);
        assert_eq!(udp4, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=");
        let request = community_id_v1(ip("192.168.0.89"), 8, ip("192.168.0.1"), 0, 1, 0);
        let reply = community_id_v1(ip("192.168.0.1"), 0, ip("192.168.0.89"), 8, 1, 0);
        assert_eq!(request, reply);
        let tcp6 = community_id_v1(
            ip("2607:f8b0:400c:c03::1a"),
            25,
            ip("2001:470:e5bf:dead:4957:2174:e82c:4887"),
            63943,
            6,
            0,
        );
        assert_eq!(tcp6, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=");
    }

    #[test]
    fn non_port_protocols_ignore_ports() {
        let want = "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=";
        assert_eq!(
            community_id_v1(ip("10.1.12.2"), 7, ip("10.1.12.1"), 9, 46, 0),
            want
        );
        let (k, _) = FlowKey::canonical(ip("10.1.12.2"), 7, ip("10.1.12.1"), 9, 46, 0);
        assert_eq!(community_id_of_key(&k, 0), want);
    }

    /// One-way messages sent by the higher address: the canonical key puts
    /// the receiver first, and the key form must still hash sender first.
    #[test]
    fn key_form_recovers_the_sender_of_one_way_icmp() {
        let cases: &[(u8, &str, &str, u16, u16)] = &[
            (1, "10.0.0.2", "10.0.0.1", 11, 0),       // time exceeded
            (1, "10.0.0.9", "10.0.0.1", 3, 1),        // host unreachable
            (1, "10.0.0.9", "10.0.0.1", 3, 4),        // fragmentation needed
            (1, "10.0.0.9", "10.0.0.1", 3, 13),       // administratively prohibited
            (1, "10.0.0.9", "10.0.0.1", 9, 0),        // router advertisement
            (58, "2001:db8::9", "2001:db8::1", 1, 4), // port unreachable (vs 4/1)
            (58, "2001:db8::9", "2001:db8::1", 1, 3), // address unreachable (vs 3/1)
            (58, "2001:db8::9", "2001:db8::1", 2, 0), // packet too big
            (58, "2001:db8::9", "2001:db8::1", 3, 0), // hop limit exceeded
        ];
        for (proto, s, d, ty, code) in cases {
            let want = community_id_v1(ip(s), *ty, ip(d), *code, *proto, 0);
            // Sender first: the spec does not reorder one-way messages.
            let swapped = community_id_v1(ip(d), *code, ip(s), *ty, *proto, 0);
            assert_ne!(want, swapped, "{proto} {ty}/{code}");
            let (k, side) = FlowKey::canonical(ip(s), *ty, ip(d), *code, *proto, 0);
            assert_eq!(side, crate::Side::B, "the sender is the higher address");
            assert_eq!(community_id_of_key(&k, 0), want, "{proto} {ty}/{code}");
        }
    }

    /// The known limit: when type equals code (ICMPv4 3/3, port
    /// unreachable) both sides carry the same "port" and the key cannot
    /// tell the sender; it hashes `a` first, right when the sender has the
    /// lower address.
    #[test]
    fn key_form_type_equal_to_code_is_a_first() {
        let (lo, hi) = (ip("10.0.0.1"), ip("10.0.0.9"));
        let (k, _) = FlowKey::canonical(hi, 3, lo, 3, 1, 0);
        assert_eq!(
            community_id_of_key(&k, 0),
            community_id_v1(lo, 3, hi, 3, 1, 0)
        );
    }

    #[test]
    fn key_form_is_total_on_odd_keys() {
        // Ports that no decoder would produce, and mixed address families,
        // still give an id without panicking.
        for proto in [1u8, 58, 6, 0, 255] {
            for (pa, pb) in [(0u16, 0u16), (65535, 65535), (300, 3), (3, 300), (8, 8)] {
                let (k, _) = FlowKey::canonical(ip("10.0.0.1"), pa, ip("::1"), pb, proto, 0);
                let id = community_id_of_key(&k, 0);
                assert!(id.starts_with("1:") && id.len() == 30, "{id}");
            }
        }
    }
}
