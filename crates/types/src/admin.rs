//! What the SMB2 and DCE-RPC inspectors saw of an administration session:
//! one [`AdminEvent`] per operation a lateral-movement detector judges.
//!
//! Everything here is `Copy` and fixed-size, so events travel in the same
//! reusable buffers as DNS events and never allocate.

use std::fmt;
use std::net::IpAddr;

use crate::Timestamp;

/// Bytes an [`AdminText`] keeps: a share name (`ADMIN$`) or the tail of a
/// file path (`temp\mimikatz.exe`). Longer names keep their last bytes, the
/// file name being what an analyst reads.
pub const ADMIN_TEXT_MAX: usize = 48;

/// A short printable name read off the wire (UTF-16LE in SMB2): ASCII
/// kept, anything else replaced by `?`, at most [`ADMIN_TEXT_MAX`] bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdminText {
    len: u8,
    buf: [u8; ADMIN_TEXT_MAX],
}

impl AdminText {
    /// The empty name.
    pub const EMPTY: AdminText = AdminText {
        len: 0,
        buf: [0; ADMIN_TEXT_MAX],
    };

    /// From UTF-16LE code units; an odd trailing byte is ignored. Keeps the
    /// last [`ADMIN_TEXT_MAX`] characters.
    pub fn from_utf16le(raw: &[u8]) -> AdminText {
        let units = raw.len() / 2;
        let skip = units.saturating_sub(ADMIN_TEXT_MAX);
        let mut t = AdminText::EMPTY;
        for pair in raw.chunks_exact(2).skip(skip) {
            let u = u16::from_le_bytes([pair[0], pair[1]]);
            let c = match u8::try_from(u) {
                Ok(b) if (0x20..0x7f).contains(&b) => b,
                _ => b'?',
            };
            t.push(c);
        }
        t
    }

    /// From ASCII text (test fixtures and constants); other bytes become `?`.
    pub fn from_ascii(s: &str) -> AdminText {
        let mut t = AdminText::EMPTY;
        for &b in s.as_bytes().iter().take(ADMIN_TEXT_MAX) {
            t.push(if (0x20..0x7f).contains(&b) { b } else { b'?' });
        }
        t
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        let bytes = self.buf.get(..usize::from(self.len)).unwrap_or_default();
        // Only printable ASCII is ever stored.
        std::str::from_utf8(bytes).unwrap_or("")
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for AdminText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Default for AdminText {
    fn default() -> Self {
        AdminText::EMPTY
    }
}

/// What kind of SMB share a tree connect reached, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ShareKind {
    /// `IPC$`: named pipes (DCE-RPC).
    Ipc,
    /// `ADMIN$`: the Windows directory, for administrators only.
    Admin,
    /// A drive's administrative share: `C$`, `D$`, ...
    Drive,
    /// Any other share (`SYSVOL`, `NETLOGON`, a user share).
    #[default]
    Other,
}

impl ShareKind {
    /// True for the shares only administrators may open (`ADMIN$`, `C$`, ...).
    pub fn is_administrative(self) -> bool {
        matches!(self, ShareKind::Admin | ShareKind::Drive)
    }
}

/// The DCE-RPC interfaces the inspector names: those used for remote
/// execution, for discovery, for authentication to a domain controller.
/// Their UUIDs are in `tapsentry_proto::dcerpc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum RpcInterface {
    /// Service Control Manager (MS-SCMR): PsExec-style service creation.
    Svcctl,
    /// AT scheduler (MS-TSCH ATSvc).
    Atsvc,
    /// Task Scheduler 2.0 (MS-TSCH ITaskSchedulerService).
    TaskScheduler,
    /// DCOM activation (MS-DCOM ISystemActivator / IRemoteSCMActivator).
    SystemActivator,
    /// WMI login (MS-WMI IWbemLevel1Login).
    WbemLevel1Login,
    /// WMI services (MS-WMI IWbemServices).
    WbemServices,
    /// Remote registry (MS-RRP).
    Winreg,
    /// Netlogon (MS-NRPC).
    Netlogon,
    /// Security Account Manager (MS-SAMR).
    Samr,
    /// Local Security Authority (MS-LSAD/MS-LSAT).
    Lsarpc,
    /// Endpoint mapper (C706 / MS-RPCE).
    Epmapper,
    /// Directory replication (MS-DRSR).
    Drsuapi,
    /// An interface not in the table.
    #[default]
    Other,
}

impl RpcInterface {
    /// The short name analysts know it by.
    pub fn name(self) -> &'static str {
        match self {
            RpcInterface::Svcctl => "svcctl",
            RpcInterface::Atsvc => "atsvc",
            RpcInterface::TaskScheduler => "ITaskSchedulerService",
            RpcInterface::SystemActivator => "ISystemActivator",
            RpcInterface::WbemLevel1Login => "IWbemLevel1Login",
            RpcInterface::WbemServices => "IWbemServices",
            RpcInterface::Winreg => "winreg",
            RpcInterface::Netlogon => "netlogon",
            RpcInterface::Samr => "samr",
            RpcInterface::Lsarpc => "lsarpc",
            RpcInterface::Epmapper => "epmapper",
            RpcInterface::Drsuapi => "drsuapi",
            RpcInterface::Other => "other",
        }
    }
}

/// The outcome of a DCE-RPC call, as far as the cleartext shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcOutcome {
    /// A response whose return code (the stub's last four bytes) is 0.
    Ok,
    /// Access denied: a fault, or a return code of `ERROR_ACCESS_DENIED`,
    /// `STATUS_ACCESS_DENIED`, `E_ACCESSDENIED` or `WBEM_E_ACCESS_DENIED`.
    Denied,
    /// Another fault or non-zero return code.
    Failed(u32),
    /// A response whose return code the inspector could not read (the
    /// stub is encrypted, or past the bytes kept of the packet).
    Unknown,
}

/// One thing an administration session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// An SMB2 TREE_CONNECT answered by the server (`status` is its NTSTATUS).
    TreeConnect {
        /// The share's name (`IPC$`, `ADMIN$`, `C$`, ...).
        share: AdminText,
        /// What kind of share it is.
        kind: ShareKind,
        /// The response's NTSTATUS (0 success, 0xC0000022 access denied).
        status: u32,
    },
    /// A DCE-RPC request on a bound interface.
    RpcCall {
        /// The interface its context was bound to.
        iface: RpcInterface,
        /// The operation number.
        opnum: u16,
        /// The call id (matches the [`AdminAction::RpcResult`]).
        call_id: u32,
        /// True when it came over an SMB named pipe, false on plain TCP.
        over_smb: bool,
    },
    /// The answer to an [`AdminAction::RpcCall`] the inspector marked
    /// worth following (only calls on the execution and authentication
    /// interfaces are followed).
    RpcResult {
        /// The call's interface.
        iface: RpcInterface,
        /// The call's operation number.
        opnum: u16,
        /// The call id.
        call_id: u32,
        /// What the server answered.
        outcome: RpcOutcome,
    },
    /// An executable (a payload starting with `MZ`) written to or read
    /// from an administrative share.
    FileTransfer {
        /// The share.
        share: AdminText,
        /// Its kind (always administrative).
        kind: ShareKind,
        /// The last file name the client opened on that share.
        file: AdminText,
        /// True for a write to the server, false for a read from it.
        write: bool,
    },
}

/// One [`AdminAction`] with its flow and capture time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminEvent {
    /// Capture time of the packet that completed it.
    pub ts: Timestamp,
    /// The side that opened the flow (the host administering).
    pub client: IpAddr,
    /// The side administered.
    pub server: IpAddr,
    /// Client port.
    pub client_port: u16,
    /// Server port (445, 135, a dynamic RPC port).
    pub server_port: u16,
    /// What happened.
    pub action: AdminAction,
}
