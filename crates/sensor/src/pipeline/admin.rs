//! The administration side table of the ingest thread: one
//! [`AdminInspector`] per SMB or DCE-RPC flow, outside the 128-byte flow
//! slot, fed the payload prefix the reader kept of each packet.
//!
//! Only flows the classifier named `smb` or `dcerpc` reach it: for every
//! other packet the cost is the verdict compare in
//! [`IngestStep::on_batch`](super::ingest::IngestStep::on_batch).
//!
//! Bounds: at most `pipeline.max_admin_flows` flows (a 600-byte
//! inspector, its key and time each: at most 1.5 KB with the map's slack). A flow leaves at its FIN or RST, or after [`ADMIN_IDLE_SECS`] of
//! capture time without a packet (checked at each sweep tick); at the cap
//! a new flow first makes idle flows leave, and when none is idle its
//! packets are not inspected, counted as `admin_table_full`. A flow is
//! read for its first `pipeline.admin_packet_budget` payload packets.
//! Capture order and capture time only: the events are the same at any
//! speed and worker count.

use std::collections::HashMap;

use tapsentry_proto::AdminInspector;
use tapsentry_types::{AdminEvent, AppProto, FlowKey, PacketMeta, TcpFlags, Timestamp};

/// Capture-time seconds without a packet after which a followed flow is
/// forgotten (a flow the sweep would have ended by then anyway, or one
/// whose FIN the capture missed).
pub const ADMIN_IDLE_SECS: u64 = 300;

struct Followed {
    last: Timestamp,
    insp: AdminInspector,
}

/// The followed flows and what they cost.
#[doc(hidden)]
pub struct AdminTable {
    cap: usize,
    budget: u32,
    flows: HashMap<FlowKey, Followed>,
    /// Packets of flows not followed because the table was full.
    refused: u64,
    /// Events not kept because the tick's buffer was full.
    dropped: u64,
}

impl AdminTable {
    /// A table following at most `cap` flows, `budget` payload packets each.
    pub fn new(cap: usize, budget: u32) -> AdminTable {
        AdminTable {
            cap,
            budget,
            flows: HashMap::new(),
            refused: 0,
            dropped: 0,
        }
    }

    /// True when the table follows nothing at all (`max_admin_flows = 0`).
    #[inline]
    pub fn is_off(&self) -> bool {
        self.cap == 0
    }

    /// Reads one packet of a flow the classifier named `verdict` (the
    /// caller checked it is SMB or DCE-RPC); `from_server` says which side
    /// sent it. Events go to `out` while it holds fewer than `max_out`.
    pub fn on_packet(
        &mut self,
        m: &PacketMeta<'_>,
        payload: &[u8],
        verdict: AppProto,
        from_server: bool,
        out: &mut Vec<AdminEvent>,
        max_out: usize,
    ) {
        let (key, _) = FlowKey::canonical(m.src, m.src_port, m.dst, m.dst_port, m.proto, m.vlan);
        let closing = m.tcp_flags.has(TcpFlags::FIN) || m.tcp_flags.has(TcpFlags::RST);
        if payload.is_empty() {
            if closing {
                self.flows.remove(&key);
            }
            return;
        }
        if !self.flows.contains_key(&key) {
            if self.flows.len() >= self.cap {
                self.expire(m.ts);
            }
            if self.flows.len() >= self.cap {
                self.refused += 1;
                return;
            }
            self.flows.insert(
                key,
                Followed {
                    last: m.ts,
                    insp: AdminInspector::new(verdict == AppProto::Smb),
                },
            );
        }
        let Some(f) = self.flows.get_mut(&key) else {
            return;
        };
        f.last = m.ts;
        if f.insp.packets() < self.budget {
            let (client, server, client_port, server_port) = if from_server {
                (m.dst, m.src, m.dst_port, m.src_port)
            } else {
                (m.src, m.dst, m.src_port, m.dst_port)
            };
            let dropped = &mut self.dropped;
            f.insp.on_payload(!from_server, payload, &mut |action| {
                if out.len() < max_out {
                    out.push(AdminEvent {
                        ts: m.ts,
                        client,
                        server,
                        client_port,
                        server_port,
                        action,
                    });
                } else {
                    *dropped += 1;
                }
            });
        }
        if closing {
            self.flows.remove(&key);
        }
    }

    /// Forgets the flows idle for [`ADMIN_IDLE_SECS`] at capture time `now`.
    pub fn expire(&mut self, now: Timestamp) {
        let idle_us = (ADMIN_IDLE_SECS * 1_000_000) as i64;
        self.flows
            .retain(|_, f| now.micros().saturating_sub(f.last.micros()) < idle_us);
    }

    /// Flows followed now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when no flow is followed.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Takes the (refused packets, dropped events) counted since the last call.
    pub fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.refused),
            std::mem::take(&mut self.dropped),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapsentry_testkit::PacketMetaBuilder;

    fn pkt(sport: u16, flags: u8, us: i64) -> PacketMeta<'static> {
        PacketMetaBuilder::tcp([10, 0, 0, 1], sport, [10, 0, 0, 2], 135, flags)
            .at_micros(us)
            .build()
    }

    /// A DCE-RPC BIND to svcctl then a REQUEST on its context: one event;
    /// the cap refuses a second flow until the first is idle; FIN removes.
    #[test]
    fn follows_binds_and_requests_within_the_cap() {
        let mut bind = vec![5, 0, 11, 3, 0x10, 0, 0, 0, 72, 0, 0, 0, 1, 0, 0, 0];
        bind.extend_from_slice(&[0xb8, 0x10, 0xb8, 0x10, 0, 0, 0, 0, 1, 0, 0, 0]);
        bind.extend_from_slice(&[0, 0, 1, 0]);
        bind.extend_from_slice(&tapsentry_proto::dcerpc::INTERFACES[0].1);
        bind.extend_from_slice(&[2, 0, 0, 0]);
        bind.extend_from_slice(&[0u8; 20]);
        let mut req = vec![5, 0, 0, 3, 0x10, 0, 0, 0, 28, 0, 0, 0, 2, 0, 0, 0];
        req.extend_from_slice(&[4, 0, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0]);

        let mut t = AdminTable::new(1, 100);
        let mut out = Vec::new();
        t.on_packet(
            &pkt(1000, 0x18, 0),
            &bind,
            AppProto::Dcerpc,
            false,
            &mut out,
            10,
        );
        t.on_packet(
            &pkt(1000, 0x18, 1),
            &req,
            AppProto::Dcerpc,
            false,
            &mut out,
            10,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(
            out[0].action,
            tapsentry_types::AdminAction::RpcCall { opnum: 12, .. }
        ));
        assert_eq!(out[0].client, std::net::IpAddr::from([10, 0, 0, 1]));

        t.on_packet(
            &pkt(1001, 0x18, 2),
            &bind,
            AppProto::Dcerpc,
            false,
            &mut out,
            10,
        );
        assert_eq!((t.len(), t.take_counts()), (1, (1, 0)));
        let later = (ADMIN_IDLE_SECS as i64 + 1) * 1_000_000;
        t.on_packet(
            &pkt(1001, 0x18, later),
            &bind,
            AppProto::Dcerpc,
            false,
            &mut out,
            10,
        );
        assert_eq!(
            (t.len(), t.take_counts()),
            (1, (0, 0)),
            "the idle flow made room"
        );
        t.on_packet(
            &pkt(1001, 0x11, later + 1),
            &[],
            AppProto::Dcerpc,
            false,
            &mut out,
            10,
        );
        assert!(t.is_empty(), "FIN forgets the flow");
    }
}
