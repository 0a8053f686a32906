//! Community ID v1 flow hashing (corelight/community-id-spec), so alerts and
//! flow records join with Zeek, Suricata and Elastic data on one string.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::FlowKey;

/// The ICMP/ICMPv6 type that answers `ty`, for the request/reply pairs the
/// spec maps (the reference implementation's table). `None` means the type
/// is one-way.
fn icmp_counterpart(proto: u8, ty: u16) -> Option<u16> {
    match (proto, ty) {
        (1, 8) => Some(0),
        (1, 0) => Some(8),
        (1, 13) => Some(14),
        (1, 14) => Some(13),
        (1, 15) => Some(16),
        (1, 16) => Some(15),
        (1, 10) => Some(9),
        (1, 17) => Some(18),
        (1, 18) => Some(17),
        (58, 128) => Some(129),
        (58, 129) => Some(128),
        (58, 133) => Some(134),
        (58, 134) => Some(133),
        (58, 135) => Some(136),
        (58, 136) => Some(135),
        (58, 130) => Some(131),
        (58, 131) => Some(130),
        (58, 139) => Some(140),
        (58, 140) => Some(139),
        (58, 144) => Some(145),
        (58, 145) => Some(144),
        _ => None,
    }
}

fn octets(ip: &IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            b[..4].copy_from_slice(&v4.octets());
            (b, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

/// Community ID v1 of a flow seen from `src:sport` to `dst:dport`.
///
/// For ICMP and ICMPv6, `sport` is the type and `dport` the paired type of
/// a request/reply (or the code of a one-way message), as the decoder
/// stores them. Protocols without ports (not TCP, UDP, SCTP, ICMP, ICMPv6)
/// hash no ports, whatever is passed.
pub fn community_id_v1(
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    proto: u8,
    seed: u16,
) -> String {
    let (sa, sn) = octets(&src);
    let (da, dn) = octets(&dst);
    let one_way = matches!(proto, 1 | 58) && icmp_counterpart(proto, sport).is_none();
    let ordered = (&sa[..sn], sport) < (&da[..dn], dport);
    let ((a, an, ap), (b, bn, bp)) = if one_way || ordered {
        ((sa, sn, sport), (da, dn, dport))
    } else {
        ((da, dn, dport), (sa, sn, sport))
    };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&a[..an]);
    h.update(&b[..bn]);
    h.update([proto, 0]);
    if matches!(proto, 1 | 6 | 17 | 58 | 132) {
        h.update(ap.to_be_bytes());
        h.update(bp.to_be_bytes());
    }
    let digest = h.finalize();
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Community ID v1 of a canonical flow key. Exact for every flow but
/// one-way ICMP messages, whose spec value depends on who sent them: use
/// [`community_id_v1`] with the sender first for those.
pub fn community_id_of_key(key: &FlowKey, seed: u16) -> String {
    community_id_v1(key.a, key.a_port, key.b, key.b_port, key.proto, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// Vectors from the spec repository's baseline/baseline_deflt.json.
    #[test]
    fn spec_baseline_vectors() {
        let cases: &[(u8, &str, &str, u16, u16, &str)] = &[
            (
                6,
                "128.232.110.120",
                "66.35.250.204",
                34855,
                80,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                6,
                "66.35.250.204",
                "128.232.110.120",
                80,
                34855,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                17,
                "192.168.1.52",
                "8.8.8.8",
                54585,
                53,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                17,
                "8.8.8.8",
                "192.168.1.52",
                53,
                54585,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                6,
                "2001:470:e5bf:dead:4957:2174:e82c:4887",
                "2607:f8b0:400c:c03::1a",
                63943,
                25,
                "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            ),
            (
                132,
                "192.168.170.8",
                "192.168.170.56",
                7,
                7,
                "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            ),
            (
                1,
                "192.168.0.89",
                "192.168.0.1",
                8,
                0,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                1,
                "192.168.0.1",
                "192.168.0.89",
                0,
                8,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                1,
                "10.0.0.1",
                "10.0.0.2",
                11,
                0,
                "1:YHxtAirCG//0OzkcVAukqKQN9xM=",
            ),
            (
                58,
                "fe80::200:86ff:fe05:80da",
                "fe80::260:97ff:fe07:69ea",
                135,
                136,
                "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            ),
            (
                58,
                "fe80::260:97ff:fe07:69ea",
                "fe80::200:86ff:fe05:80da",
                136,
                135,
                "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            ),
            (
                58,
                "3ffe:501:1800:2345::2",
                "3ffe:507:0:1:200:86ff:fe05:80da",
                3,
                0,
                "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=",
            ),
            (
                58,
                "3ffe:501:410:0:2c0:dfff:fe47:33e",
                "3ffe:507:0:1:200:86ff:fe05:80da",
                1,
                4,
                "1:hLZd0XGWojozrvxqE0dWB1iM6R0=",
            ),
            (
                58,
                "3ffe:507:0:1:200:86ff:fe05:80da",
                "3ffe:501:0:1001::2",
                128,
                129,
                "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
            ),
            (
                58,
                "fe80::200:86ff:fe05:80da",
                "ff02::2",
                133,
                134,
                "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=",
            ),
            (
                46,
                "10.1.12.1",
                "10.1.12.2",
                0,
                0,
                "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
            ),
            (
                46,
                "10.1.12.2",
                "10.1.12.1",
                0,
                0,
                "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
            ),
        ];
        for (proto, s, d, sp, dp, want) in cases {
            assert_eq!(
                &community_id_v1(ip(s), *sp, ip(d), *dp, *proto, 0),
                want,
                "{proto} {s} {d}"
            );
        }
    }

    #[test]
    fn key_form_matches_for_two_way_flows() {
        let (k, _) =
            FlowKey::canonical(ip("66.35.250.204"), 80, ip("128.232.110.120"), 34855, 6, 0);
        assert_eq!(community_id_of_key(&k, 0), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    }
}
