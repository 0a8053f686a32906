//! Properties of the classifier over arbitrary input: no panic, a verdict
//! never changes once made (but for following an HTTP CONNECT tunnel), and
//! inspection stops after the packet budget.

use proptest::prelude::*;
use tapsentry_proto::{first_message_meta, Dir, ProtoState, PACKET_BUDGET};
use tapsentry_types::AppProto;

/// Prefixes that lead matchers past their first checks, so random tails
/// exercise the deep, length-driven paths too.
const PREFIXES: &[&[u8]] = &[
    b"",
    b"SSH-2.0-",
    &[0x16, 3, 1, 0x02, 0x00, 1, 0, 1],
    b"GET / HTTP/1.1\r\n",
    b"CONNECT a:25 HTTP/1.1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n",
    &[3, 0, 0, 0x13, 0x0e, 0xe0],
    &[5, 0, 11, 3, 0x10, 0, 0, 0],
    &[0, 0, 0, 0x40, 0xfe, b'S', b'M', b'B'],
    &[0x81, 0, 0, 68, 0x20],
    &[0x30, 0x82],
    &[0x30, 0x29, 2, 1, 0, 4],
    &[0x6a, 0x81],
    &[0, 0, 1, 0, 0x6c, 0x82],
    b"220 ",
    b"220 x ESMTP\r\n",
    b"+OK ready\r\n",
    b"* OK\r\n",
    b"RFB 003.",
    &[0xff, 0xfb, 0x01, 0xff, 0xfa],
    b"*2\r\n$",
    &[0x17, 0x24],
    &[0x11, 0x30],
    b"d1:ad2:id20:",
    &[0xc3, 0, 0, 0, 1, 8],
    b"\x13BitTorrent protocol",
    &[1, 0, 0, 0],
    &[0, 0x2a, 0x38],
    &[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
    &[0x23, 0, 6, 0xea],
    &[0x0a, 0, 0, 0, 0x0a],
    &[0, 0, 0, 8, 4, 0xd2, 0x16],
    &[0x12, 1, 0, 0x2f, 0, 0, 1, 0, 0],
    &[3, 9, 0, 0xb9, 0, 0, 1, 0, 0x0e, 0],
    &[0xff, 0xff, 0xff, 0xff, 0, 0x40, 0x18, 0x01],
    &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0x17, 0x24],
    b"PING\r\n",
];

#[derive(Debug, Clone)]
struct Packet {
    dir: Dir,
    transport: u8,
    payload: Vec<u8>,
    ports: (u16, u16),
}

fn packet() -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        prop_oneof![
            Just(6u8),
            Just(17u8),
            Just(6u8),
            Just(17u8),
            Just(50u8),
            any::<u8>()
        ],
        0..PREFIXES.len(),
        proptest::collection::vec(any::<u8>(), 0..160),
        prop_oneof![
            Just((25u16, 40000u16)),
            Just((21, 40000)),
            any::<(u16, u16)>()
        ],
    )
        .prop_map(|(to_server, transport, prefix, tail, ports)| {
            let mut payload = PREFIXES[prefix].to_vec();
            payload.extend_from_slice(&tail);
            Packet {
                dir: if to_server {
                    Dir::ToServer
                } else {
                    Dir::ToClient
                },
                transport,
                payload,
                ports,
            }
        })
}

/// A flow keeps one transport: the flow table keys on it.
fn flow() -> impl Strategy<Value = Vec<Packet>> {
    (
        prop_oneof![Just(6u8), Just(17u8)],
        proptest::collection::vec(packet(), 0..24),
    )
        .prop_map(|(transport, mut pkts)| {
            for p in &mut pkts {
                if p.transport == 6 || p.transport == 17 {
                    p.transport = transport;
                }
            }
            pkts
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn verdicts_are_stable_and_inspection_is_bounded(pkts in flow()) {
        let mut st = ProtoState::new();
        let mut payloads = [0u32; 2];
        for p in &pkts {
            let before = st;
            let was_done = st.is_done();
            let got = st.observe(p.dir, p.transport, &p.payload, p.ports);
            // Whatever the bytes, the extractor stays bounded and total.
            let _ = first_message_meta(st.verdict(), p.dir, &p.payload);
            if was_done {
                prop_assert_eq!(st.verdict(), before.verdict(), "a done state changed its verdict");
                prop_assert!(st.is_done());
                prop_assert_eq!(got, None);
            }
            // observe returns exactly the verdicts it makes.
            match got {
                Some(v) => prop_assert_eq!(v, st.verdict()),
                None => prop_assert_eq!(st.verdict(), before.verdict()),
            }
            // Made once, a verdict changes only from http (a CONNECT tunnel).
            if !before.verdict().is_unknown() && st.verdict() != before.verdict() {
                prop_assert_eq!(before.verdict(), AppProto::Http);
            }
            let side = usize::from(p.dir == Dir::ToClient);
            if !p.payload.is_empty() && matches!(p.transport, 6 | 17) && !was_done {
                payloads[side] += 1;
                // Past the budget of its direction, a packet changes no verdict.
                if payloads[side] > u32::from(PACKET_BUDGET) {
                    prop_assert_eq!(got, None);
                }
            }
        }
        if payloads.iter().all(|&n| n >= u32::from(PACKET_BUDGET)) {
            prop_assert!(st.is_done());
        }
    }

    #[test]
    fn any_truncation_of_any_prefix_is_total(prefix in 0..PREFIXES.len(), tail in proptest::collection::vec(any::<u8>(), 0..64), transport in prop_oneof![Just(6u8), Just(17u8)]) {
        let mut full = PREFIXES[prefix].to_vec();
        full.extend_from_slice(&tail);
        for cut in 0..=full.len() {
            for dir in [Dir::ToServer, Dir::ToClient] {
                let mut st = ProtoState::new();
                st.observe(dir, transport, &full[..cut], (1, 2));
                for proto in AppProto::ALL {
                    let _ = first_message_meta(proto, dir, &full[..cut]);
                }
            }
        }
    }
}

/// Starts of SMB2 and DCE-RPC messages (NetBIOS and SMB2 headers of the
/// commands the inspector reads, request and response; DCE-RPC BIND,
/// REQUEST, RESPONSE and FAULT headers), so random tails reach the
/// inspector's deep paths.
fn admin_prefix() -> impl Strategy<Value = Vec<u8>> {
    let smb = (
        any::<u8>(),
        prop::sample::select(vec![3u8, 5, 8, 9, 11]),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(len_hi, cmd, resp, tree)| {
            let mut v = vec![0, 0, len_hi, 0xff, 0xfe, b'S', b'M', b'B', 64, 0, 0, 0];
            v.extend_from_slice(&[0, 0, 0, 0, cmd, 0, 0, 0, u8::from(resp), 0, 0, 0]);
            v.extend_from_slice(&[0; 16]);
            v.extend_from_slice(&[0, 0, 0, 0, tree, 0, 0, 0]);
            v.extend_from_slice(&[0; 24]);
            v
        });
    let rpc = (
        prop::sample::select(vec![0u8, 2, 3, 11, 12, 14]),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(|(ptype, flags, len)| {
            vec![5, 0, ptype, flags, 0x10, 0, 0, 0, len, 0, 0, 0, 1, 0, 0, 0]
        });
    prop_oneof![smb, rpc, Just(Vec::new())]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The administration inspector over arbitrary segments, after a
    /// plausible header or none: no panic, and a bounded number of actions
    /// per segment (at most 32 SMB2 messages of 16 PDUs each).
    #[test]
    fn admin_inspector_is_total_and_bounded(
        smb in any::<bool>(),
        segs in proptest::collection::vec(
            (any::<bool>(), admin_prefix(), proptest::collection::vec(any::<u8>(), 0..600)),
            1..12,
        ),
    ) {
        let mut insp = tapsentry_proto::AdminInspector::new(smb);
        for (to_server, prefix, tail) in &segs {
            let seg: Vec<u8> = prefix.iter().chain(tail).copied().collect();
            let mut n = 0usize;
            insp.on_payload(*to_server, &seg, &mut |_| n += 1);
            prop_assert!(n <= 32 * 16, "{n} actions from one segment");
        }
        prop_assert_eq!(insp.packets() as usize, segs.len());
    }
}
