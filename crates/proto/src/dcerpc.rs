//! Connection-oriented DCE-RPC v5 PDUs, as far as lateral-movement
//! detection needs them ([C706] chapter 12, [MS-RPCE] 2.2.2): the common
//! header, the presentation contexts of BIND and ALTER_CONTEXT with their
//! abstract syntax UUIDs, BIND_ACK results, REQUEST context and opnum,
//! RESPONSE return code and FAULT status.
//!
//! Zero-copy and total: a PDU cut by the end of the bytes kept yields what
//! its first bytes hold; a malformed header ends the walk. Stub data is
//! never decoded beyond a response's trailing return code, and not at all
//! when the PDU carries an authentication verifier (signed or sealed
//! stubs: packet-integrity and packet-privacy).
//!
//! [C706]: https://pubs.opengroup.org/onlinepubs/9629399/chap12.htm
//! [MS-RPCE]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rpce/

use crate::bytes::{be16, be32, le16, le32};
use tapsentry_types::RpcInterface;

/// PDU types (C706 12.6.4).
pub mod ptype {
    /// REQUEST.
    pub const REQUEST: u8 = 0;
    /// RESPONSE.
    pub const RESPONSE: u8 = 2;
    /// FAULT.
    pub const FAULT: u8 = 3;
    /// BIND.
    pub const BIND: u8 = 11;
    /// BIND_ACK.
    pub const BIND_ACK: u8 = 12;
    /// BIND_NAK.
    pub const BIND_NAK: u8 = 13;
    /// ALTER_CONTEXT.
    pub const ALTER_CONTEXT: u8 = 14;
    /// ALTER_CONTEXT_RESP.
    pub const ALTER_CONTEXT_RESP: u8 = 15;
}

/// The common header's size.
const HEADER: usize = 16;
/// pfc_flags: an object UUID follows a REQUEST's opnum.
const PFC_OBJECT_UUID: u8 = 0x80;

/// A UUID as it travels in NDR with little-endian data representation
/// (the first three fields byte-swapped), from its textual fields.
const fn wire_uuid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// The interfaces named, with their abstract syntax UUIDs, each from its
/// public specification.
pub const INTERFACES: [(RpcInterface, [u8; 16]); 12] = [
    // [MS-SCMR] 1.9: 367ABB81-9844-35F1-AD32-98F038001003.
    (
        RpcInterface::Svcctl,
        wire_uuid(
            0x367abb81,
            0x9844,
            0x35f1,
            [0xad, 0x32, 0x98, 0xf0, 0x38, 0x00, 0x10, 0x03],
        ),
    ),
    // [MS-TSCH] 1.9 ATSvc: 1FF70682-0A51-30E8-076D-740BE8CEE98B.
    (
        RpcInterface::Atsvc,
        wire_uuid(
            0x1ff70682,
            0x0a51,
            0x30e8,
            [0x07, 0x6d, 0x74, 0x0b, 0xe8, 0xce, 0xe9, 0x8b],
        ),
    ),
    // [MS-TSCH] 1.9 ITaskSchedulerService: 86D35949-83C9-4044-B424-DB363231FD0C.
    (
        RpcInterface::TaskScheduler,
        wire_uuid(
            0x86d35949,
            0x83c9,
            0x4044,
            [0xb4, 0x24, 0xdb, 0x36, 0x32, 0x31, 0xfd, 0x0c],
        ),
    ),
    // [MS-DCOM] 1.9 ISystemActivator / IRemoteSCMActivator:
    // 000001A0-0000-0000-C000-000000000046.
    (
        RpcInterface::SystemActivator,
        wire_uuid(0x000001a0, 0, 0, [0xc0, 0, 0, 0, 0, 0, 0, 0x46]),
    ),
    // [MS-WMI] 1.9 IWbemLevel1Login: F309AD18-D86A-11d0-A075-00C04FB68820.
    (
        RpcInterface::WbemLevel1Login,
        wire_uuid(
            0xf309ad18,
            0xd86a,
            0x11d0,
            [0xa0, 0x75, 0x00, 0xc0, 0x4f, 0xb6, 0x88, 0x20],
        ),
    ),
    // [MS-WMI] 1.9 IWbemServices: 9556DC99-828C-11CF-A37E-00AA003240C7.
    (
        RpcInterface::WbemServices,
        wire_uuid(
            0x9556dc99,
            0x828c,
            0x11cf,
            [0xa3, 0x7e, 0x00, 0xaa, 0x00, 0x32, 0x40, 0xc7],
        ),
    ),
    // [MS-RRP] 1.9: 338CD001-2244-31F1-AAAA-900038001003.
    (
        RpcInterface::Winreg,
        wire_uuid(
            0x338cd001,
            0x2244,
            0x31f1,
            [0xaa, 0xaa, 0x90, 0x00, 0x38, 0x00, 0x10, 0x03],
        ),
    ),
    // [MS-NRPC] 1.9: 12345678-1234-ABCD-EF00-01234567CFFB.
    (
        RpcInterface::Netlogon,
        wire_uuid(
            0x12345678,
            0x1234,
            0xabcd,
            [0xef, 0x00, 0x01, 0x23, 0x45, 0x67, 0xcf, 0xfb],
        ),
    ),
    // [MS-SAMR] 1.9: 12345778-1234-ABCD-EF00-0123456789AC.
    (
        RpcInterface::Samr,
        wire_uuid(
            0x12345778,
            0x1234,
            0xabcd,
            [0xef, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xac],
        ),
    ),
    // [MS-LSAD] 1.9: 12345778-1234-ABCD-EF00-0123456789AB.
    (
        RpcInterface::Lsarpc,
        wire_uuid(
            0x12345778,
            0x1234,
            0xabcd,
            [0xef, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab],
        ),
    ),
    // [C706] appendix O / [MS-RPCE] 2.2.1.2.5: E1AF8308-5D1F-11C9-91A4-08002B14A0FA.
    (
        RpcInterface::Epmapper,
        wire_uuid(
            0xe1af8308,
            0x5d1f,
            0x11c9,
            [0x91, 0xa4, 0x08, 0x00, 0x2b, 0x14, 0xa0, 0xfa],
        ),
    ),
    // [MS-DRSR] 1.9: E3514235-4B06-11D1-AB04-00C04FC2DCD2.
    (
        RpcInterface::Drsuapi,
        wire_uuid(
            0xe3514235,
            0x4b06,
            0x11d1,
            [0xab, 0x04, 0x00, 0xc0, 0x4f, 0xc2, 0xdc, 0xd2],
        ),
    ),
];

/// The interface of an abstract syntax UUID in little-endian wire order.
pub fn interface_of(uuid: &[u8]) -> RpcInterface {
    INTERFACES
        .iter()
        .find(|(_, u)| u[..] == *uuid)
        .map_or(RpcInterface::Other, |(i, _)| *i)
}

/// One PDU's common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The PDU type ([`ptype`]).
    pub ptype: u8,
    /// pfc_flags.
    pub flags: u8,
    /// True for little-endian integers (drep byte 0, bit 4).
    pub little_endian: bool,
    /// The whole fragment's length.
    pub frag_len: u16,
    /// The authentication verifier's length (0: none).
    pub auth_len: u16,
    /// The call id, pairing a response with its request.
    pub call_id: u32,
}

/// One PDU: its header and its bytes (cut at the end of the bytes kept).
#[derive(Debug, Clone, Copy)]
pub struct Pdu<'a> {
    /// The common header.
    pub header: Header,
    bytes: &'a [u8],
}

/// Iterates the PDUs of `data`, back to back (a segment may carry several;
/// at most 16 are read). Stops at the first bytes that are not a v5.0/5.1
/// connection-oriented PDU header.
pub fn pdus(data: &[u8]) -> Pdus<'_> {
    Pdus {
        rest: data,
        left: 16,
    }
}

/// The iterator [`pdus`] returns.
#[derive(Debug, Clone)]
pub struct Pdus<'a> {
    rest: &'a [u8],
    left: u8,
}

impl<'a> Iterator for Pdus<'a> {
    type Item = Pdu<'a>;

    fn next(&mut self) -> Option<Pdu<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let pdu = Pdu::parse(self.rest)?;
        let len = usize::from(pdu.header.frag_len);
        self.rest = self.rest.get(len..).unwrap_or_default();
        Some(pdu)
    }
}

impl<'a> Pdu<'a> {
    /// The PDU at the start of `data`, or `None` when the bytes are not a
    /// connection-oriented DCE-RPC header.
    pub fn parse(data: &'a [u8]) -> Option<Pdu<'a>> {
        let h = data.get(..HEADER)?;
        // rpc_vers 5, rpc_vers_minor 0 or 1.
        if h.first() != Some(&5) || !matches!(h.get(1), Some(0 | 1)) {
            return None;
        }
        let ptype = *h.get(2)?;
        if ptype > 20 {
            return None;
        }
        let little_endian = h.get(4)? & 0x10 != 0;
        let r16 = |at| {
            if little_endian {
                le16(h, at)
            } else {
                be16(h, at)
            }
        };
        let r32 = |at| {
            if little_endian {
                le32(h, at)
            } else {
                be32(h, at)
            }
        };
        let frag_len = r16(8)?;
        if usize::from(frag_len) < HEADER {
            return None;
        }
        let header = Header {
            ptype,
            flags: *h.get(3)?,
            little_endian,
            frag_len,
            auth_len: r16(10)?,
            call_id: r32(12)?,
        };
        let end = usize::from(frag_len).min(data.len());
        Some(Pdu {
            header,
            bytes: data.get(..end)?,
        })
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        if self.header.little_endian {
            le16(self.bytes, at)
        } else {
            be16(self.bytes, at)
        }
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        if self.header.little_endian {
            le32(self.bytes, at)
        } else {
            be32(self.bytes, at)
        }
    }

    /// A BIND's or ALTER_CONTEXT's presentation contexts: (context id,
    /// interface), at most 8, as far as the bytes kept reach.
    pub fn contexts(&self) -> Contexts<'a> {
        let bind = matches!(self.header.ptype, ptype::BIND | ptype::ALTER_CONTEXT);
        // max_xmit_frag, max_recv_frag, assoc_group_id, then n_context_elem
        // and three bytes of padding.
        let n = if bind {
            self.bytes.get(HEADER + 8).copied().unwrap_or(0)
        } else {
            0
        };
        Contexts {
            bytes: self.bytes,
            at: HEADER + 12,
            left: n.min(8),
            little_endian: self.header.little_endian,
        }
    }

    /// A BIND_ACK's or ALTER_CONTEXT_RESP's results, in context order:
    /// true for each context accepted, at most 8.
    pub fn bind_results(&self) -> impl Iterator<Item = bool> + 'a {
        let mut at = None;
        if matches!(
            self.header.ptype,
            ptype::BIND_ACK | ptype::ALTER_CONTEXT_RESP
        ) {
            // After max_xmit, max_recv, assoc_group: the secondary address
            // (a length-prefixed string), padded to 4.
            if let Some(sec_len) = self.u16_at(HEADER + 8) {
                let after = HEADER + 10 + usize::from(sec_len);
                at = Some((after + 3) & !3);
            }
        }
        let bytes = self.bytes;
        let le = self.header.little_endian;
        let n = at.and_then(|a| bytes.get(a).copied()).unwrap_or(0).min(8);
        let base = at.unwrap_or(0) + 4;
        (0..usize::from(n)).map_while(move |i| {
            let off = base + i * 24;
            let r = if le {
                le16(bytes, off)
            } else {
                be16(bytes, off)
            }?;
            Some(r == 0)
        })
    }

    /// A REQUEST's (context id, opnum).
    pub fn request(&self) -> Option<(u16, u16)> {
        if self.header.ptype != ptype::REQUEST {
            return None;
        }
        // alloc_hint, then p_cont_id and opnum.
        Some((self.u16_at(HEADER + 4)?, self.u16_at(HEADER + 6)?))
    }

    /// True when a REQUEST carries an object UUID (DCOM calls do).
    pub fn has_object(&self) -> bool {
        self.header.flags & PFC_OBJECT_UUID != 0
    }

    /// A FAULT's status.
    pub fn fault_status(&self) -> Option<u32> {
        if self.header.ptype != ptype::FAULT {
            return None;
        }
        // alloc_hint, p_cont_id, cancel_count, reserved, then status.
        self.u32_at(HEADER + 8)
    }

    /// A RESPONSE's return code: the last four bytes of its stub, read
    /// only when the whole PDU was kept and carries no authentication
    /// verifier (the stub is then neither sealed nor followed by one).
    pub fn response_code(&self) -> Option<u32> {
        if self.header.ptype != ptype::RESPONSE || self.header.auth_len != 0 {
            return None;
        }
        let len = usize::from(self.header.frag_len);
        // Header, alloc_hint, p_cont_id, cancel_count, reserved: 24 bytes.
        if len < HEADER + 8 + 4 || self.bytes.len() < len {
            return None;
        }
        self.u32_at(len - 4)
    }
}

/// The iterator [`Pdu::contexts`] returns.
#[derive(Debug, Clone)]
pub struct Contexts<'a> {
    bytes: &'a [u8],
    at: usize,
    left: u8,
    little_endian: bool,
}

impl Iterator for Contexts<'_> {
    type Item = (u16, RpcInterface);

    fn next(&mut self) -> Option<(u16, RpcInterface)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let at = self.at;
        let ctx = if self.little_endian {
            le16(self.bytes, at)
        } else {
            be16(self.bytes, at)
        }?;
        let n_transfer = usize::from(*self.bytes.get(at + 2)?);
        let uuid = self.bytes.get(at + 4..at + 20)?;
        // A big-endian peer sends the UUID's first fields big-endian:
        // compare in little-endian order.
        let iface = if self.little_endian {
            interface_of(uuid)
        } else {
            let mut u = [0u8; 16];
            u.copy_from_slice(uuid);
            u[..4].reverse();
            u[4..6].reverse();
            u[6..8].reverse();
            interface_of(&u)
        };
        // ctx id, n_transfer, reserved, abstract syntax (UUID + version),
        // then n_transfer transfer syntaxes of 20 bytes.
        self.at = at + 4 + 20 + 20 * n_transfer;
        Some((ctx, iface))
    }
}

/// True when a return code or fault status means access denied:
/// ERROR_ACCESS_DENIED (5, also the status Windows puts in the FAULT of an
/// unauthorised call), STATUS_ACCESS_DENIED, E_ACCESSDENIED,
/// WBEM_E_ACCESS_DENIED.
pub fn is_access_denied(code: u32) -> bool {
    matches!(code, 5 | 0xc000_0022 | 0x8007_0005 | 0x8004_1003)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 116 bytes of the BIND to svcctl in the PsExec capture
    /// (lm-psexec-svcctl-over-tcp.pcap, frame 4): two contexts (NDR, and
    /// bind-time feature negotiation), then an NTLM verifier not kept here,
    /// so the PDU is cut as the reader may cut it.
    const BIND_SVCCTL: [u8; 116] = [
        0x05, 0x00, 0x0b, 0x07, 0x10, 0x00, 0x00, 0x00, 0xbc, 0x06, 0x40, 0x06, 0x02, 0x00, 0x00,
        0x00, 0xd0, 0x16, 0xd0, 0x16, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x81, 0xbb, 0x7a, 0x36, 0x44, 0x98, 0xf1, 0x35, 0xad, 0x32, 0x98, 0xf0, 0x38,
        0x00, 0x10, 0x03, 0x02, 0x00, 0x00, 0x00, 0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11,
        0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01,
        0x00, 0x81, 0xbb, 0x7a, 0x36, 0x44, 0x98, 0xf1, 0x35, 0xad, 0x32, 0x98, 0xf0, 0x38, 0x00,
        0x10, 0x03, 0x02, 0x00, 0x00, 0x00, 0x2c, 0x1c, 0xb7, 0x6c, 0x12, 0x98, 0x40, 0x45, 0x03,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn bind_names_svcctl() {
        let pdus: Vec<_> = pdus(&BIND_SVCCTL).collect();
        assert_eq!(pdus.len(), 1);
        assert_eq!(pdus[0].header.ptype, ptype::BIND);
        assert_eq!(pdus[0].header.call_id, 2);
        assert_eq!(pdus[0].header.auth_len, 0x0640);
        let ctx: Vec<_> = pdus[0].contexts().collect();
        assert_eq!(ctx, [(0, RpcInterface::Svcctl), (1, RpcInterface::Svcctl)]);
    }

    #[test]
    fn every_uuid_maps_back() {
        for (iface, uuid) in INTERFACES {
            assert_eq!(interface_of(&uuid), iface);
        }
        assert_eq!(interface_of(&[0; 16]), RpcInterface::Other);
        // Spelled as the spec spells it: svcctl's first field reversed.
        assert_eq!(INTERFACES[0].1[..4], [0x81, 0xbb, 0x7a, 0x36]);
    }

    #[test]
    fn request_response_fault() {
        let mut req = vec![5, 0, 0, 3, 0x10, 0, 0, 0, 28, 0, 0, 0, 7, 0, 0, 0];
        req.extend_from_slice(&[4, 0, 0, 0, 1, 0, 45, 0, 0xaa, 0xbb, 0xcc, 0xdd]);
        let p = Pdu::parse(&req).unwrap();
        assert_eq!(p.request(), Some((1, 45)));
        assert_eq!(p.header.call_id, 7);

        let mut resp = vec![5, 0, 2, 3, 0x10, 0, 0, 0, 32, 0, 0, 0, 7, 0, 0, 0];
        resp.extend_from_slice(&[8, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0]);
        let p = Pdu::parse(&resp).unwrap();
        assert_eq!(p.response_code(), Some(5));
        assert!(is_access_denied(5));
        // Cut: the return code is past the bytes kept.
        assert_eq!(Pdu::parse(&resp[..28]).unwrap().response_code(), None);

        let mut fault = vec![5, 0, 3, 3, 0x10, 0, 0, 0, 32, 0, 0, 0, 7, 0, 0, 0];
        fault.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Pdu::parse(&fault).unwrap().fault_status(), Some(5));
    }

    #[test]
    fn truncation_never_panics() {
        for cut in 0..=BIND_SVCCTL.len() {
            for p in pdus(&BIND_SVCCTL[..cut]) {
                let _ = p.contexts().count();
                let _ = p.bind_results().count();
                let _ = (p.request(), p.fault_status(), p.response_code());
            }
        }
        assert!(Pdu::parse(b"\x05\x00\x0b\x03\x10\x00\x00\x00\x04\x00").is_none());
        // A frag_len below the header's size is not a PDU (and cannot loop).
        let mut tiny = BIND_SVCCTL;
        tiny[8] = 4;
        tiny[9] = 0;
        assert_eq!(pdus(&tiny).count(), 0);
    }
}
