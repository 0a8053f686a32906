use std::collections::HashMap;
use std::net::IpAddr;

use tapsentry_types::{Fragment, PacketMeta, Timestamp};

/// How long a first fragment's ports are remembered (capture time). Matches
/// the usual reassembly timeouts (Linux `ipfrag_time` is 30 s).
const FRAGMENT_TIMEOUT_SECS: u64 = 30;

/// `(src, dst, proto, IP id)`: what identifies one datagram's fragments.
type DatagramId = (IpAddr, IpAddr, u8, u32);
/// Ports from the first fragment, and when it was seen.
type FirstFragment = (u16, u16, Timestamp);

/// Attributes non-first IP fragments to the 5-tuple of their datagram.
///
/// Only the first fragment carries the transport header. The tracker
/// remembers `(src, dst, proto, id) -> ports` from first fragments, so later
/// fragments of the same datagram count on the right flow. A later fragment
/// whose first fragment was never seen (lost, out of order, or a crafted
/// fragment) counts on the port-0 flow of `(src, dst, proto)` and is counted
/// as unattributed. The map is bounded: at the cap, expired entries are
/// dropped first; if none, the new first fragment is not remembered.
///
/// No reassembly is done: volumes are counted per fragment from the IP
/// header, which is what the wire carried.
pub struct FragmentTracker {
    map: HashMap<DatagramId, FirstFragment>,
    cap: usize,
    unattributed: u64,
    not_remembered: u64,
}

impl FragmentTracker {
    /// A tracker remembering at most `cap` datagrams. The map is allocated
    /// up front so tracking never allocates per packet.
    pub fn new(cap: usize) -> FragmentTracker {
        let cap = cap.max(1);
        FragmentTracker {
            map: HashMap::with_capacity(cap),
            cap,
            unattributed: 0,
            not_remembered: 0,
        }
    }

    /// Fills in the ports of a non-first fragment, and remembers those of a
    /// first fragment.
    pub fn resolve(&mut self, m: &mut PacketMeta<'_>) {
        match m.fragment {
            Fragment::None => {}
            Fragment::First { id } => {
                let k = (m.src, m.dst, m.proto, id);
                if !self.map.contains_key(&k) && self.map.len() >= self.cap {
                    let now = m.ts;
                    self.map
                        .retain(|_, v| now.micros_since(v.2) < FRAGMENT_TIMEOUT_SECS * 1_000_000);
                    if self.map.len() >= self.cap {
                        self.not_remembered += 1;
                        return;
                    }
                }
                self.map.insert(k, (m.src_port, m.dst_port, m.ts));
            }
            Fragment::NonFirst { id } => match self.map.get(&(m.src, m.dst, m.proto, id)) {
                Some(&(sp, dp, _)) => {
                    m.src_port = sp;
                    m.dst_port = dp;
                }
                None => self.unattributed += 1,
            },
        }
    }

    /// Later fragments whose first fragment was not known.
    pub fn unattributed(&self) -> u64 {
        self.unattributed
    }

    /// First fragments not remembered because the tracker was full.
    pub fn not_remembered(&self) -> u64 {
        self.not_remembered
    }

    /// Datagrams currently remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
