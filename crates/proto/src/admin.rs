//! The administration inspector: follows one SMB2 or DCE-RPC flow past its
//! first messages and reports what a lateral-movement detector judges
//! ([`AdminAction`]): tree connects to `IPC$`, `ADMIN$` and drive shares,
//! executables written to or read from administrative shares, DCE-RPC
//! calls on the interfaces it names (over SMB named pipes or plain TCP),
//! and the outcome of the calls worth following.
//!
//! Its state is fixed-size (no heap, 600 bytes) and every table in
//! it is a small ring: at its bound the oldest entry goes, so a hostile
//! flow can make the inspector forget, never grow. It sees one segment at
//! a time, as the reader kept it (the first bytes of each packet), and
//! reads only what starts a NetBIOS message or a DCE-RPC PDU.

use tapsentry_types::{AdminAction, AdminText, RpcInterface, RpcOutcome, ShareKind};

use crate::bytes::le32;
use crate::dcerpc::{self, ptype, Pdu};
use crate::smb::{self, cmd, Smb2};

/// Trees remembered per flow (tree id → share).
const TREES: usize = 4;
/// TREE_CONNECT requests waiting for their response.
const PENDING_TREES: usize = 2;
/// DCE-RPC presentation contexts remembered per flow (over all pipes).
const CONTEXTS: usize = 8;
/// Calls whose outcome is followed.
const FOLLOWED: usize = 4;

/// PFC_FIRST_FRAG / PFC_LAST_FRAG.
const FIRST_FRAG: u8 = 0x01;
const LAST_FRAG: u8 = 0x02;

#[derive(Debug, Clone, Copy, Default)]
struct Tree {
    id: u32,
    kind: ShareKind,
    share: AdminText,
}

#[derive(Debug, Clone, Copy, Default)]
struct PendingTree {
    mid: u64,
    kind: ShareKind,
    share: AdminText,
}

#[derive(Debug, Clone, Copy, Default)]
struct Context {
    /// Which pipe (a digest of the SMB2 FileId; 0 on plain TCP).
    file: u64,
    id: u16,
    iface: RpcInterface,
}

#[derive(Debug, Clone, Copy, Default)]
struct Followed {
    call_id: u32,
    iface: RpcInterface,
    opnum: u16,
}

/// A fixed-size ring: pushing past `N` overwrites the oldest slot.
#[derive(Debug, Clone, Copy)]
struct Ring<T: Copy + Default, const N: usize> {
    slots: [Option<T>; N],
    next: usize,
}

impl<T: Copy + Default, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Ring {
            slots: [None; N],
            next: 0,
        }
    }
}

impl<T: Copy + Default, const N: usize> Ring<T, N> {
    fn push(&mut self, v: T) {
        if let Some(s) = self.slots.get_mut(self.next % N) {
            *s = Some(v);
        }
        self.next = (self.next + 1) % N;
    }

    fn find(&self, f: impl Fn(&T) -> bool) -> Option<T> {
        self.slots.iter().flatten().find(|v| f(v)).copied()
    }

    /// Takes out the first entry matching `f`.
    fn take(&mut self, f: impl Fn(&T) -> bool) -> Option<T> {
        let slot = self.slots.iter_mut().find(|s| s.is_some_and(|v| f(&v)))?;
        slot.take()
    }

    /// Replaces the entry matching `f`, or pushes.
    fn upsert(&mut self, v: T, f: impl Fn(&T) -> bool) {
        match self.slots.iter_mut().find(|s| s.is_some_and(|v| f(&v))) {
            Some(s) => *s = Some(v),
            None => self.push(v),
        }
    }
}

/// What one flow's inspector remembers between segments.
#[derive(Debug, Clone, Copy)]
pub struct AdminInspector {
    smb: bool,
    packets: u32,
    trees: Ring<Tree, TREES>,
    pending_trees: Ring<PendingTree, PENDING_TREES>,
    contexts: Ring<Context, CONTEXTS>,
    followed: Ring<Followed, FOLLOWED>,
    /// The last file the client opened on an administrative share.
    last_file: AdminText,
}

impl AdminInspector {
    /// An inspector for an SMB flow (`smb`) or a DCE-RPC flow on plain TCP.
    pub fn new(smb: bool) -> AdminInspector {
        AdminInspector {
            smb,
            packets: 0,
            trees: Ring::default(),
            pending_trees: Ring::default(),
            contexts: Ring::default(),
            followed: Ring::default(),
            last_file: AdminText::EMPTY,
        }
    }

    /// Payload packets inspected so far.
    pub fn packets(&self) -> u32 {
        self.packets
    }

    /// Reads one segment (`to_server`: from the flow's client) and reports
    /// each action it completes to `out`.
    pub fn on_payload(
        &mut self,
        to_server: bool,
        payload: &[u8],
        out: &mut impl FnMut(AdminAction),
    ) {
        self.packets = self.packets.saturating_add(1);
        if self.smb {
            for msg in smb::netbios_messages(payload) {
                for m in smb::smb2_messages(msg) {
                    // The response bit decides, not the direction: a
                    // capture may have the flow's sides the wrong way round.
                    let _ = to_server;
                    self.on_smb2(&m, out);
                }
            }
        } else {
            self.on_rpc(0, payload, false, out);
        }
    }

    fn tree(&self, m: &Smb2<'_>) -> Option<Tree> {
        let id = m.tree_id()?;
        self.trees.find(|t| t.id == id)
    }

    fn on_smb2(&mut self, m: &Smb2<'_>, out: &mut impl FnMut(AdminAction)) {
        match (m.command(), m.is_response()) {
            (cmd::TREE_CONNECT, false) => {
                if let Some(path) = m.tree_connect_path() {
                    let raw = smb::share_of_path(path);
                    let share = AdminText::from_utf16le(raw);
                    self.pending_trees.push(PendingTree {
                        mid: m.message_id(),
                        kind: share_kind(share.as_str()),
                        share,
                    });
                }
            }
            (cmd::TREE_CONNECT, true) => {
                let mid = m.message_id();
                let Some(p) = self.pending_trees.take(|p| p.mid == mid) else {
                    return;
                };
                let status = m.status();
                if status == 0 {
                    if let Some(id) = m.tree_id() {
                        self.trees.upsert(
                            Tree {
                                id,
                                kind: p.kind,
                                share: p.share,
                            },
                            |t| t.id == id,
                        );
                    }
                }
                if p.kind != ShareKind::Other {
                    out(AdminAction::TreeConnect {
                        share: p.share,
                        kind: p.kind,
                        status,
                    });
                }
            }
            (cmd::CREATE, false) => {
                if let (Some(t), Some(name)) = (self.tree(m), m.create_name()) {
                    if t.kind.is_administrative() {
                        self.last_file = AdminText::from_utf16le(name);
                    }
                }
            }
            (cmd::WRITE, false) => {
                let Some(data) = m.write_data() else { return };
                match self.tree(m) {
                    Some(t) if t.kind.is_administrative() => self.transfer(t, data, true, out),
                    _ => {
                        let file = file_key(m, 64 + 16);
                        self.on_rpc(file, data, true, out);
                    }
                }
            }
            (cmd::READ, true) => {
                let Some(data) = m.read_data() else { return };
                match self.tree(m) {
                    Some(t) if t.kind.is_administrative() => self.transfer(t, data, false, out),
                    _ => self.on_rpc(0, data, true, out),
                }
            }
            (cmd::IOCTL, resp) => {
                if let Some(data) = m.pipe_transceive_data() {
                    let file = if resp { 0 } else { file_key(m, 64 + 8) };
                    self.on_rpc(file, data, true, out);
                }
            }
            _ => {}
        }
    }

    /// An executable's first bytes (the DOS header's `MZ`) moving over an
    /// administrative share.
    fn transfer(&self, t: Tree, data: &[u8], write: bool, out: &mut impl FnMut(AdminAction)) {
        if data.starts_with(b"MZ") {
            out(AdminAction::FileTransfer {
                share: t.share,
                kind: t.kind,
                file: self.last_file,
                write,
            });
        }
    }

    fn on_rpc(
        &mut self,
        file: u64,
        data: &[u8],
        over_smb: bool,
        out: &mut impl FnMut(AdminAction),
    ) {
        for pdu in dcerpc::pdus(data) {
            self.on_pdu(file, &pdu, over_smb, out);
        }
    }

    fn on_pdu(
        &mut self,
        file: u64,
        pdu: &Pdu<'_>,
        over_smb: bool,
        out: &mut impl FnMut(AdminAction),
    ) {
        let h = pdu.header;
        match h.ptype {
            ptype::BIND | ptype::ALTER_CONTEXT => {
                for (id, iface) in pdu.contexts() {
                    self.contexts.upsert(Context { file, id, iface }, |c| {
                        c.file == file && c.id == id
                    });
                }
            }
            ptype::REQUEST if h.flags & FIRST_FRAG != 0 => {
                let Some((ctx, opnum)) = pdu.request() else {
                    return;
                };
                let Some(c) = self.contexts.find(|c| c.file == file && c.id == ctx) else {
                    return;
                };
                if c.iface == RpcInterface::Other {
                    return;
                }
                if followed(c.iface) {
                    self.followed.upsert(
                        Followed {
                            call_id: h.call_id,
                            iface: c.iface,
                            opnum,
                        },
                        |f| f.call_id == h.call_id,
                    );
                }
                out(AdminAction::RpcCall {
                    iface: c.iface,
                    opnum,
                    call_id: h.call_id,
                    over_smb,
                });
            }
            ptype::RESPONSE if h.flags & LAST_FRAG != 0 => {
                let Some(f) = self.followed.take(|f| f.call_id == h.call_id) else {
                    return;
                };
                let outcome = match pdu.response_code() {
                    None => RpcOutcome::Unknown,
                    Some(0) => RpcOutcome::Ok,
                    Some(c) if dcerpc::is_access_denied(c) => RpcOutcome::Denied,
                    Some(c) => RpcOutcome::Failed(c),
                };
                out(result(f, outcome));
            }
            ptype::FAULT => {
                let Some(f) = self.followed.take(|f| f.call_id == h.call_id) else {
                    return;
                };
                let outcome = match pdu.fault_status() {
                    Some(c) if dcerpc::is_access_denied(c) => RpcOutcome::Denied,
                    Some(c) => RpcOutcome::Failed(c),
                    None => RpcOutcome::Unknown,
                };
                out(result(f, outcome));
            }
            _ => {}
        }
    }
}

fn result(f: Followed, outcome: RpcOutcome) -> AdminAction {
    AdminAction::RpcResult {
        iface: f.iface,
        opnum: f.opnum,
        call_id: f.call_id,
        outcome,
    }
}

/// Interfaces whose calls' outcomes matter to the detector: execution,
/// and Netlogon authentication (Zerologon).
fn followed(i: RpcInterface) -> bool {
    matches!(
        i,
        RpcInterface::Svcctl
            | RpcInterface::Atsvc
            | RpcInterface::TaskScheduler
            | RpcInterface::WbemServices
            | RpcInterface::Netlogon
    )
}

/// A digest of the 16-byte SMB2 FileId at `at` (persistent and volatile
/// halves folded), telling the pipes of one session apart.
fn file_key(m: &Smb2<'_>, at: usize) -> u64 {
    let b = m.body_bytes();
    let w = |i| u64::from(le32(b, at + i).unwrap_or(0));
    (w(0) | w(4) << 32) ^ (w(8) | w(12) << 32).rotate_left(17)
}

/// The kind of share a name is: `IPC$`, `ADMIN$`, a drive letter and `$`.
pub fn share_kind(name: &str) -> ShareKind {
    if name.eq_ignore_ascii_case("IPC$") {
        ShareKind::Ipc
    } else if name.eq_ignore_ascii_case("ADMIN$") {
        ShareKind::Admin
    } else if matches!(name.as_bytes(), [d, b'$'] if d.is_ascii_alphabetic()) {
        ShareKind::Drive
    } else {
        ShareKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_kinds() {
        assert_eq!(share_kind("IPC$"), ShareKind::Ipc);
        assert_eq!(share_kind("admin$"), ShareKind::Admin);
        assert_eq!(share_kind("c$"), ShareKind::Drive);
        assert_eq!(share_kind("SYSVOL"), ShareKind::Other);
        assert_eq!(share_kind("print$"), ShareKind::Other);
        assert_eq!(share_kind("$"), ShareKind::Other);
    }

    #[test]
    fn ring_forgets_the_oldest() {
        let mut r: Ring<u32, 2> = Ring::default();
        r.push(1);
        r.push(2);
        r.push(3);
        assert_eq!(r.find(|v| *v == 1), None);
        assert_eq!(r.take(|v| *v == 3), Some(3));
        assert_eq!(r.find(|v| *v == 3), None);
    }

    #[test]
    fn inspector_state_is_small() {
        let size = std::mem::size_of::<AdminInspector>();
        eprintln!("AdminInspector: {size} bytes");
        assert!(size <= 768, "{size}");
    }
}
