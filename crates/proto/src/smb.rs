//! SMB2 messages as far as lateral-movement detection needs them: the
//! NetBIOS session framing on port 445, the SMB2 header, and the few
//! request and response bodies that name a share, a file or a pipe, or
//! carry the data of a pipe or a file ([MS-SMB2] sections 2.2.1 to 2.2.32).
//!
//! Zero-copy and total: every accessor reads with bounds checks and
//! returns `None` (or stops iterating) on anything short or malformed. No
//! reassembly: a segment that does not start a NetBIOS message (the middle
//! of a large READ or WRITE) yields nothing, and a message cut by the end
//! of the bytes kept yields what its first bytes hold.
//!
//! SMB1 (`\xffSMB`) and encrypted SMB3 (`\xfdSMB` transform headers) are
//! recognised and skipped: the first has its own dialect of everything, the
//! second hides everything.
//!
//! [MS-SMB2]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-smb2/

use crate::bytes::{le16, le32};

/// SMB2 command codes ([MS-SMB2] 2.2.1.2).
pub mod cmd {
    /// NEGOTIATE.
    pub const NEGOTIATE: u16 = 0x0000;
    /// SESSION_SETUP.
    pub const SESSION_SETUP: u16 = 0x0001;
    /// TREE_CONNECT.
    pub const TREE_CONNECT: u16 = 0x0003;
    /// CREATE (open a file or a named pipe).
    pub const CREATE: u16 = 0x0005;
    /// CLOSE.
    pub const CLOSE: u16 = 0x0006;
    /// READ.
    pub const READ: u16 = 0x0008;
    /// WRITE.
    pub const WRITE: u16 = 0x0009;
    /// IOCTL (FSCTL_PIPE_TRANSCEIVE carries DCE-RPC).
    pub const IOCTL: u16 = 0x000b;
}

/// FSCTL_PIPE_TRANSCEIVE: a write and a read on a named pipe in one
/// IOCTL ([MS-FSCC] 2.3.49).
pub const FSCTL_PIPE_TRANSCEIVE: u32 = 0x0011_c017;

/// STATUS_ACCESS_DENIED (NTSTATUS).
pub const STATUS_ACCESS_DENIED: u32 = 0xc000_0022;

/// The SMB2 header's size.
const HEADER: usize = 64;
/// Flags: the message is a response.
const FLAG_RESPONSE: u32 = 0x0000_0001;
/// Flags: the async header form (no tree id).
const FLAG_ASYNC: u32 = 0x0000_0002;

/// Iterates the NetBIOS session messages ([RFC 1002] 4.3.1, the direct-TCP
/// form of [MS-SMB2] 2.1) that start at the beginning of `seg`: each item
/// is the message's bytes, cut at the end of `seg` when the message is
/// longer. Stops at the first bytes that are not a session message.
///
/// [RFC 1002]: https://www.rfc-editor.org/rfc/rfc1002
pub fn netbios_messages(seg: &[u8]) -> NetbiosMessages<'_> {
    NetbiosMessages { rest: seg }
}

/// The iterator [`netbios_messages`] returns.
#[derive(Debug, Clone)]
pub struct NetbiosMessages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NetbiosMessages<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let head = self.rest.get(..4)?;
        // Type 0x00 is a session message; the length is 24 bits on direct
        // TCP (the top byte of the old 17-bit form is zero there anyway).
        if head.first() != Some(&0) {
            self.rest = &[];
            return None;
        }
        let [_, a, b, c] = *head else { return None };
        let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        let body = self.rest.get(4..).unwrap_or_default();
        // A keep-alive (length 0) carries nothing; an empty item would end
        // a caller's loop early, so skip to what follows.
        let (msg, rest) = body.split_at(len.min(body.len()));
        self.rest = rest;
        if msg.is_empty() {
            return if len == 0 { self.next() } else { None };
        }
        Some(msg)
    }
}

/// What a NetBIOS message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SMB2 or SMB3 in the clear.
    Smb2,
    /// SMB1.
    Smb1,
    /// An SMB3 transform header: encrypted, nothing to read.
    Encrypted,
    /// Something else.
    Other,
}

/// Which protocol a NetBIOS message's bytes start with.
pub fn dialect(msg: &[u8]) -> Dialect {
    match msg.get(..4) {
        Some(b"\xfeSMB") => Dialect::Smb2,
        Some(b"\xffSMB") => Dialect::Smb1,
        Some(b"\xfdSMB") => Dialect::Encrypted,
        _ => Dialect::Other,
    }
}

/// One SMB2 message (header and body) inside a NetBIOS message.
#[derive(Debug, Clone, Copy)]
pub struct Smb2<'a> {
    /// The message from its header on, cut at the next compounded
    /// message or at the end of the bytes kept.
    bytes: &'a [u8],
}

/// Iterates the SMB2 messages of a NetBIOS message: one, or a compound
/// chain linked by NextCommand ([MS-SMB2] 3.2.4.1.4). At most 32 per
/// message, whatever the chain says.
pub fn smb2_messages(msg: &[u8]) -> Smb2Messages<'_> {
    Smb2Messages {
        rest: msg,
        left: 32,
    }
}

/// The iterator [`smb2_messages`] returns.
#[derive(Debug, Clone)]
pub struct Smb2Messages<'a> {
    rest: &'a [u8],
    left: u8,
}

impl<'a> Iterator for Smb2Messages<'a> {
    type Item = Smb2<'a>;

    fn next(&mut self) -> Option<Smb2<'a>> {
        if self.left == 0 || dialect(self.rest) != Dialect::Smb2 || self.rest.len() < HEADER {
            return None;
        }
        self.left -= 1;
        let next = le32(self.rest, 20).unwrap_or(0) as usize;
        // A next offset inside the header would loop or overlap: the chain
        // ends there. Offsets are 8-aligned by the spec, not checked.
        let (this, rest) = if next >= HEADER {
            self.rest.split_at(next.min(self.rest.len()))
        } else {
            (self.rest, &[][..])
        };
        self.rest = rest;
        Some(Smb2 { bytes: this })
    }
}

impl<'a> Smb2<'a> {
    /// The message parsed from `bytes` (an SMB2 header first), or `None`.
    pub fn parse(bytes: &'a [u8]) -> Option<Smb2<'a>> {
        (dialect(bytes) == Dialect::Smb2 && bytes.len() >= HEADER).then_some(Smb2 { bytes })
    }

    /// The message's bytes from its header on (as far as kept).
    pub fn body_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The command code ([`cmd`]).
    pub fn command(&self) -> u16 {
        le16(self.bytes, 12).unwrap_or(0xffff)
    }

    /// The NTSTATUS of a response (0 in requests).
    pub fn status(&self) -> u32 {
        le32(self.bytes, 8).unwrap_or(0)
    }

    fn flags(&self) -> u32 {
        le32(self.bytes, 16).unwrap_or(0)
    }

    /// True for a response (server to client).
    pub fn is_response(&self) -> bool {
        self.flags() & FLAG_RESPONSE != 0
    }

    /// The message id, which pairs a response with its request.
    pub fn message_id(&self) -> u64 {
        let lo = le32(self.bytes, 24).unwrap_or(0);
        let hi = le32(self.bytes, 28).unwrap_or(0);
        u64::from(hi) << 32 | u64::from(lo)
    }

    /// The tree id of a synchronous message (`None` in the async form).
    pub fn tree_id(&self) -> Option<u32> {
        if self.flags() & FLAG_ASYNC != 0 {
            return None;
        }
        le32(self.bytes, 36)
    }

    /// `len` bytes at `off` from the header's start, cut at the end of the
    /// bytes kept (an empty slice when `off` is past them).
    fn slice(&self, off: usize, len: usize) -> &'a [u8] {
        let start = off.min(self.bytes.len());
        let end = off.saturating_add(len).min(self.bytes.len());
        self.bytes.get(start..end).unwrap_or_default()
    }

    /// A TREE_CONNECT request's path (`\\server\share`, UTF-16LE).
    pub fn tree_connect_path(&self) -> Option<&'a [u8]> {
        if self.command() != cmd::TREE_CONNECT || self.is_response() {
            return None;
        }
        let off = le16(self.bytes, HEADER + 4)?;
        let len = le16(self.bytes, HEADER + 6)?;
        Some(self.slice(usize::from(off), usize::from(len)))
    }

    /// A CREATE request's file or pipe name (UTF-16LE, relative to the
    /// share: `temp\mimikatz.exe`, `svcctl`).
    pub fn create_name(&self) -> Option<&'a [u8]> {
        if self.command() != cmd::CREATE || self.is_response() {
            return None;
        }
        let off = le16(self.bytes, HEADER + 44)?;
        let len = le16(self.bytes, HEADER + 46)?;
        Some(self.slice(usize::from(off), usize::from(len)))
    }

    /// A WRITE request's data (as far as kept).
    pub fn write_data(&self) -> Option<&'a [u8]> {
        if self.command() != cmd::WRITE || self.is_response() {
            return None;
        }
        let off = le16(self.bytes, HEADER + 2)?;
        let len = le32(self.bytes, HEADER + 4)?;
        Some(self.slice(usize::from(off), len as usize))
    }

    /// A successful READ response's data (as far as kept).
    pub fn read_data(&self) -> Option<&'a [u8]> {
        if self.command() != cmd::READ || !self.is_response() || self.status() != 0 {
            return None;
        }
        let off = *self.bytes.get(HEADER + 2)?;
        let len = le32(self.bytes, HEADER + 4)?;
        Some(self.slice(usize::from(off), len as usize))
    }

    /// An FSCTL_PIPE_TRANSCEIVE IOCTL's input (request) or output
    /// (response) buffer: the DCE-RPC PDU it carries.
    pub fn pipe_transceive_data(&self) -> Option<&'a [u8]> {
        if self.command() != cmd::IOCTL || le32(self.bytes, HEADER + 4)? != FSCTL_PIPE_TRANSCEIVE {
            return None;
        }
        // Request: InputOffset, InputCount at 24 and 28 of the body;
        // response: OutputOffset, OutputCount at 32 and 36.
        let at = if self.is_response() { 32 } else { 24 };
        let off = le32(self.bytes, HEADER + at)?;
        let len = le32(self.bytes, HEADER + at + 4)?;
        Some(self.slice(off as usize, len as usize))
    }
}

/// The share name of a TREE_CONNECT path: what follows its last backslash.
pub fn share_of_path(path_utf16: &[u8]) -> &[u8] {
    let mut start = 0;
    let mut i = 0;
    while let Some(pair) = path_utf16.get(i..i + 2) {
        if pair == [b'\\', 0] {
            start = i + 2;
        }
        i += 2;
    }
    path_utf16.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request header for `command` with message id `mid` on tree `tid`.
    fn header(command: u16, response: bool, status: u32, mid: u64, tid: u32) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\xfeSMB");
        h[4] = 64;
        h[8..12].copy_from_slice(&status.to_le_bytes());
        h[12..14].copy_from_slice(&command.to_le_bytes());
        h[16..20].copy_from_slice(&u32::from(response).to_le_bytes());
        h[24..32].copy_from_slice(&mid.to_le_bytes());
        h[36..40].copy_from_slice(&tid.to_le_bytes());
        h
    }

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    fn netbios(msg: &[u8]) -> Vec<u8> {
        let n = msg.len() as u32;
        let mut v = vec![0, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        v.extend_from_slice(msg);
        v
    }

    #[test]
    fn tree_connect_path_and_share() {
        let mut m = header(cmd::TREE_CONNECT, false, 0, 4, 0);
        let path = utf16("\\\\192.168.56.101\\IPC$");
        m.extend_from_slice(&9u16.to_le_bytes());
        m.extend_from_slice(&0u16.to_le_bytes());
        m.extend_from_slice(&72u16.to_le_bytes());
        m.extend_from_slice(&(path.len() as u16).to_le_bytes());
        m.extend_from_slice(&path);
        let seg = netbios(&m);
        let msgs: Vec<_> = netbios_messages(&seg).flat_map(smb2_messages).collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].message_id(), 4);
        let p = msgs[0].tree_connect_path().unwrap();
        assert_eq!(share_of_path(p), utf16("IPC$"));
    }

    /// A compound of three messages (CREATE, QUERY_INFO, CLOSE as in
    /// smb2-delete-file) is walked by NextCommand; a NextCommand pointing
    /// inside the header ends the chain instead of looping.
    #[test]
    fn compound_chain_and_bad_next() {
        let mut a = header(cmd::CREATE, false, 0, 1, 5);
        a.resize(120, 0);
        a[20..24].copy_from_slice(&120u32.to_le_bytes());
        let mut b = header(0x10, false, 0, 2, 5);
        b.resize(80, 0);
        b[20..24].copy_from_slice(&80u32.to_le_bytes());
        let c = header(cmd::CLOSE, false, 0, 3, 5);
        let all = [a, b, c].concat();
        let ids: Vec<u64> = smb2_messages(&all).map(|m| m.message_id()).collect();
        assert_eq!(ids, [1, 2, 3]);

        let mut bad = header(cmd::CREATE, false, 0, 9, 5);
        bad[20..24].copy_from_slice(&8u32.to_le_bytes());
        bad.extend_from_slice(&bad.clone());
        assert_eq!(smb2_messages(&bad).count(), 1);
    }

    #[test]
    fn smb1_and_encrypted_are_not_smb2() {
        assert_eq!(dialect(b"\xffSMBr"), Dialect::Smb1);
        assert_eq!(dialect(b"\xfdSMB...."), Dialect::Encrypted);
        let seg = netbios(b"\xfdSMB-encrypted-bytes-0123456789012345678901234567890123456789012345678901234567890");
        assert_eq!(netbios_messages(&seg).flat_map(smb2_messages).count(), 0);
    }

    /// Every prefix of a well-formed segment parses without panicking and
    /// never yields bytes past the cut.
    #[test]
    fn truncation_never_panics() {
        let mut m = header(cmd::WRITE, false, 0, 8, 1);
        m.extend_from_slice(&49u16.to_le_bytes());
        m.extend_from_slice(&112u16.to_le_bytes());
        m.extend_from_slice(&4u32.to_le_bytes());
        m.resize(112, 0);
        m.extend_from_slice(b"MZ\x90\x00");
        let seg = netbios(&m);
        for cut in 0..=seg.len() {
            for msg in netbios_messages(&seg[..cut]).flat_map(smb2_messages) {
                let d = msg.write_data().unwrap_or_default();
                assert!(d.len() <= 4);
                let _ = (msg.tree_connect_path(), msg.create_name(), msg.read_data());
                let _ = msg.pipe_transceive_data();
            }
        }
        let full: Vec<_> = netbios_messages(&seg).flat_map(smb2_messages).collect();
        assert_eq!(full[0].write_data(), Some(&b"MZ\x90\x00"[..]));
    }

    #[test]
    fn keepalive_then_message() {
        let mut seg = vec![0, 0, 0, 0];
        seg.extend_from_slice(&netbios(&header(cmd::CLOSE, true, 0, 7, 1)));
        let ids: Vec<u64> = netbios_messages(&seg)
            .flat_map(smb2_messages)
            .map(|m| m.message_id())
            .collect();
        assert_eq!(ids, [7]);
    }
}
