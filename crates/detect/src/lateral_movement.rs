//! `lateral_movement`: an inside host executing code on, or moving tools
//! to, another inside host over the protocols administrators use (ATT&CK
//! TA0008), read from the administration events of the SMB2 and DCE-RPC
//! inspector (`tapsentry_proto::admin`).
//!
//! Judged at once, without learning (these operations are rare and their
//! meaning does not depend on habit):
//! * remote service creation or start over svcctl (PsExec and its kin,
//!   T1569.002), a remote scheduled task over atsvc or
//!   ITaskSchedulerService (T1053), WMI method execution over
//!   IWbemServices (T1047): held for `outcome_wait_secs` (or until the
//!   flow ends) to read the server's answer, then raised at severity 1, or
//!   2 when every answered call was denied;
//! * an executable written to or read from an administrative share
//!   (`ADMIN$`, `C$`, ...): lateral tool transfer (T1570), at once;
//! * many Netlogon authentications from one client to one server in a
//!   window (Zerologon, CVE-2020-1472: T1210), at once.
//!
//! After `learning_secs`, the learned graph of administration: a host
//! that administered no one while learning (no admin-share tree connect,
//! no call on the execution or registry interfaces, no RDP, SSH, WinRM or
//! VNC session to an inside host) opening such an edge is
//! `lateral_movement.new_admin_source` (severity 2). The hosts that did,
//! and the servers they reached, persist with the state file.
//!
//! Discovery (SAMR, LSARPC enumeration) and credential access
//! (Kerberoasting) are other tactics: they raise nothing here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{
    AdminAction, AdminEvent, AppProto, Category, FlowRecord, Mitre, Problem, RecordKind,
    RpcInterface as I, RpcOutcome, SectionProblems, Timestamp,
};

use crate::common::{Finding, HostTable};
use crate::state::{entry_value, parse_entry};
use crate::{Bound, DetectCx, Detector, StateError};

/// Servers remembered per administering host (learned edges); past it the
/// host still counts as administering, its further servers are not kept.
const MAX_LEARNED_SERVERS: usize = 256;

/// What a host administered while learning: the servers it reached.
#[derive(Debug, Clone, Default)]
struct Administers {
    servers: BTreeSet<IpAddr>,
}

/// A state-file entry: the servers one host administered while learning.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdministersEntry {
    servers: Vec<IpAddr>,
    last_seen_us: i64,
}

/// The `[detect.lateral_movement]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LateralMovementConfig {
    /// Run this detector. Default true.
    pub enabled: bool,
    /// Seconds of capture time a remote-execution finding waits for the
    /// server's answer (to tell a denied attempt from a successful one)
    /// before it is raised; the end of the flow raises it earlier.
    /// Default 5.
    pub outcome_wait_secs: u64,
    /// Netlogon authentications (NetrServerAuthenticate, 2 and 3) from one
    /// client to one server within `window_secs` that make a Zerologon
    /// attempt. A machine authenticates once per secure channel; the
    /// exploit needs hundreds of tries on average. Default 10.
    pub netlogon_auth_attempts: u32,
    /// The window for Netlogon counts and for repeating an alert about the
    /// same client, server and technique, in seconds. Default 600.
    pub window_secs: u64,
    /// (client, server) pairs tracked per worker, for pending findings,
    /// Netlogon counts and repeats each (least recently seen dropped).
    /// Default 10000. Also caps the hosts whose administration edges are
    /// learned.
    pub max_tracked: usize,
    /// Seconds of capture time from the start during which the hosts that
    /// administer others are learned: their (client, server, protocol)
    /// edges (admin-share tree connects, calls on the execution and
    /// registry interfaces, RDP, SSH, WinRM and VNC sessions between inside
    /// hosts), kept across restarts with the state file. After it, a host
    /// that administered no one opening such an edge is
    /// `lateral_movement.new_admin_source`. Default 86400.
    pub learning_secs: u64,
}

impl Default for LateralMovementConfig {
    fn default() -> Self {
        LateralMovementConfig {
            enabled: true,
            outcome_wait_secs: 5,
            netlogon_auth_attempts: 10,
            window_secs: 600,
            max_tracked: 10_000,
            learning_secs: 86_400,
        }
    }
}

impl LateralMovementConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        // One authentication is every domain member's morning.
        p.at_least(
            "netlogon_auth_attempts",
            u64::from(self.netlogon_auth_attempts),
            3,
        );
        p.at_least("window_secs", self.window_secs, 1);
        p.at_least("max_tracked", self.max_tracked, 1);
        if self.learning_secs > 90 * 86_400 {
            p.push("learning_secs", "must be at most 7776000 (90 days)");
        }
        p.into_vec()
    }
}

/// Operation names kept as evidence of one pending finding.
const MAX_OPS: usize = 12;

/// What a remote-execution operation means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Technique {
    signature: &'static str,
    technique: &'static str,
    what: &'static str,
}

const SERVICE: Technique = Technique {
    signature: "lateral_movement.remote_service",
    technique: "T1569.002",
    what: "a remote service (svcctl)",
};
const AT_JOB: Technique = Technique {
    signature: "lateral_movement.scheduled_task",
    technique: "T1053.002",
    what: "a remote AT job (atsvc)",
};
const TASK: Technique = Technique {
    signature: "lateral_movement.scheduled_task",
    technique: "T1053.005",
    what: "a remote scheduled task (ITaskSchedulerService)",
};
const WMI: Technique = Technique {
    signature: "lateral_movement.wmi_exec",
    technique: "T1047",
    what: "a WMI method (IWbemServices ExecMethod)",
};

/// The technique an RPC call carries out, if it executes something.
fn execution(iface: I, opnum: u16) -> Option<Technique> {
    match (iface, opnum) {
        // [MS-SCMR] 3.1.4: RChangeServiceConfigW/A, RCreateServiceW/A,
        // RStartServiceW/A, RCreateServiceWOW64A/W, RCreateWowService.
        (I::Svcctl, 11 | 12 | 19 | 23 | 24 | 31 | 44 | 45 | 60) => Some(SERVICE),
        // [MS-TSCH] 3.2.5.2.1 JobAdd.
        (I::Atsvc, 0) => Some(AT_JOB),
        // [MS-TSCH] 3.2.5.4: SchRpcRegisterTask, SchRpcRun.
        (I::TaskScheduler, 1 | 12) => Some(TASK),
        // [MS-WMI] 3.1.4.3: ExecMethod, ExecMethodAsync.
        (I::WbemServices, 24 | 25) => Some(WMI),
        _ => None,
    }
}

/// The interfaces whose calls are kept as evidence of a finding.
fn admin_interface(iface: I) -> bool {
    matches!(
        iface,
        I::Svcctl
            | I::Atsvc
            | I::TaskScheduler
            | I::SystemActivator
            | I::WbemLevel1Login
            | I::WbemServices
            | I::Winreg
    )
}

/// An operation's name from its specification, else `opnum N`.
fn op_name(iface: I, opnum: u16) -> String {
    let name = match (iface, opnum) {
        (I::Svcctl, 0) => "RCloseServiceHandle",
        (I::Svcctl, 1) => "RControlService",
        (I::Svcctl, 2) => "RDeleteService",
        (I::Svcctl, 6) => "RQueryServiceStatus",
        (I::Svcctl, 11) => "RChangeServiceConfigW",
        (I::Svcctl, 12) => "RCreateServiceW",
        (I::Svcctl, 15) => "ROpenSCManagerW",
        (I::Svcctl, 16) => "ROpenServiceW",
        (I::Svcctl, 19) => "RStartServiceW",
        (I::Svcctl, 23) => "RChangeServiceConfigA",
        (I::Svcctl, 24) => "RCreateServiceA",
        (I::Svcctl, 27) => "ROpenSCManagerA",
        (I::Svcctl, 28) => "ROpenServiceA",
        (I::Svcctl, 31) => "RStartServiceA",
        (I::Svcctl, 44) => "RCreateServiceWOW64A",
        (I::Svcctl, 45) => "RCreateServiceWOW64W",
        (I::Svcctl, 60) => "RCreateWowService",
        (I::Atsvc, 0) => "JobAdd",
        (I::Atsvc, 1) => "JobDel",
        (I::Atsvc, 2) => "JobEnum",
        (I::Atsvc, 3) => "JobGetInfo",
        (I::TaskScheduler, 1) => "SchRpcRegisterTask",
        (I::TaskScheduler, 12) => "SchRpcRun",
        (I::SystemActivator, 3) => "RemoteGetClassObject",
        (I::SystemActivator, 4) => "RemoteCreateInstance",
        (I::WbemLevel1Login, 6) => "NTLMLogin",
        (I::WbemServices, 6) => "GetObject",
        (I::WbemServices, 20) => "ExecQuery",
        (I::WbemServices, 24) => "ExecMethod",
        (I::WbemServices, 25) => "ExecMethodAsync",
        (I::Netlogon, 4) => "NetrServerReqChallenge",
        (I::Netlogon, 5) => "NetrServerAuthenticate",
        (I::Netlogon, 6) => "NetrServerPasswordSet",
        (I::Netlogon, 15) => "NetrServerAuthenticate2",
        (I::Netlogon, 26) => "NetrServerAuthenticate3",
        (I::Netlogon, 30) => "NetrServerPasswordSet2",
        _ => return format!("{} opnum {opnum}", iface.name()),
    };
    format!("{} {name}", iface.name())
}

/// A remote-execution finding waiting for the server's answer.
#[derive(Debug, Clone)]
struct Pending {
    /// The first call that executes, and its flow's ports.
    ts: Timestamp,
    ports: (u16, u16),
    technique: Technique,
    over_smb: bool,
    /// Calls that execute (their answers decide the severity).
    calls: Vec<u32>,
    ops: Vec<String>,
    answered_ok: u32,
    answered_denied: u32,
    answered_failed: u32,
}

/// What one (client, server) pair did lately.
#[derive(Debug, Clone, Default)]
struct Pair {
    /// Administration calls seen before a finding started (evidence), and
    /// when the last was.
    ops: Vec<String>,
    ops_seen: Timestamp,
    pending: Option<Pending>,
    /// Netlogon: the window's start, authentications, denials, password sets.
    netlogon_start: Timestamp,
    netlogon_auths: u32,
    netlogon_denied: u32,
    netlogon_password_set: bool,
    /// Last alert per signature, for repeats within the window.
    alerted: BTreeMap<&'static str, Timestamp>,
}

/// The detector.
pub struct LateralMovementDetector {
    cfg: LateralMovementConfig,
    pairs: HostTable<(IpAddr, IpAddr), Pair>,
    /// The pairs with a pending finding (at most `max_tracked`), so a tick
    /// looks at those only.
    waiting: BTreeSet<(IpAddr, IpAddr)>,
    /// The hosts that administered others while learning (the learned
    /// graph of administration, by client).
    admins: HostTable<IpAddr, Administers>,
}

impl LateralMovementDetector {
    /// A detector with the given settings.
    pub fn new(cfg: LateralMovementConfig) -> Self {
        LateralMovementDetector {
            pairs: HostTable::new(cfg.max_tracked),
            waiting: BTreeSet::new(),
            admins: HostTable::new(cfg.max_tracked),
            cfg,
        }
    }

    fn window_us(&self) -> i64 {
        i64::try_from(self.cfg.window_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
    }
}

/// Pushes `op` to a bounded evidence list, once.
fn note(ops: &mut Vec<String>, op: String) {
    if ops.len() < MAX_OPS && !ops.contains(&op) {
        ops.push(op);
    }
}

/// Notes an operation seen before any finding of the pair; what is older
/// than the window is forgotten first, so evidence stays about the session.
fn note_before(pair: &mut Pair, ts: Timestamp, op: String, window_us: i64) {
    if ts.micros().saturating_sub(pair.ops_seen.micros()) >= window_us {
        pair.ops.clear();
    }
    pair.ops_seen = ts;
    note(&mut pair.ops, op);
}

/// True (and noted) when `sig` was not raised for the pair within the window.
fn fresh(pair: &mut Pair, sig: &'static str, ts: Timestamp, window_us: i64) -> bool {
    if let Some(last) = pair.alerted.get(sig) {
        if ts.micros().saturating_sub(last.micros()) < window_us {
            return false;
        }
    }
    pair.alerted.insert(sig, ts);
    true
}

#[allow(clippy::too_many_arguments)]
fn finding(
    ts: Timestamp,
    client: IpAddr,
    server: IpAddr,
    ports: (u16, u16),
    app_proto: AppProto,
    signature: &'static str,
    severity: u8,
    technique: &'static str,
    description: String,
    evidence: BTreeMap<&'static str, serde_json::Value>,
) -> Finding {
    Finding {
        ts,
        category: Category::LATERAL_MOVEMENT,
        signature,
        severity,
        description,
        mitre: Mitre {
            tactic: "TA0008",
            technique,
        },
        src: client,
        dest: Some(server),
        ports: Some(ports),
        proto: Some(6),
        evidence,
        community_id: Some(tapsentry_types::community_id_v1(
            client, ports.0, server, ports.1, 6, 0,
        )),
        app_proto: Some(app_proto),
        outside: None,
    }
}

impl LateralMovementDetector {
    /// An administration edge `client` → `server` over `what` (a protocol
    /// and share, interface or service). While learning: learned. After:
    /// from a host that administered no one, `new_admin_source`, once per
    /// pair and window.
    #[allow(clippy::too_many_arguments)]
    fn edge(
        &mut self,
        ts: Timestamp,
        client: IpAddr,
        server: IpAddr,
        ports: (u16, u16),
        app: AppProto,
        technique: &'static str,
        what: String,
        cx: &mut DetectCx<'_>,
    ) {
        // A host reaching itself (loopback included) moves nowhere.
        if client == server || client.is_loopback() || server.is_loopback() {
            return;
        }
        if cx.learning(self.cfg.learning_secs) {
            let a = self.admins.touch(client, ts, Administers::default);
            if a.servers.len() < MAX_LEARNED_SERVERS {
                a.servers.insert(server);
            }
            return;
        }
        if self.admins.get(&client).is_some() {
            // A known administrator reaching a host it did not reach while
            // learning: its habit (a new machine in the fleet).
            return;
        }
        let window_us = self.window_us();
        let pair = self.pairs.touch((client, server), ts, Pair::default);
        if !fresh(pair, "lateral_movement.new_admin_source", ts, window_us) {
            return;
        }
        let mut ev = BTreeMap::new();
        ev.insert("edge", json!(what));
        ev.insert("learned_edges_of_source", json!(0));
        ev.insert("learning_secs", json!(self.cfg.learning_secs));
        ev.insert("window_secs", json!(self.cfg.window_secs));
        let description = format!(
            "{client}, which administered no host while learning, opened {what} to {server}"
        );
        let f = finding(
            ts,
            client,
            server,
            ports,
            app,
            "lateral_movement.new_admin_source",
            2,
            technique,
            description,
            ev,
        );
        let a = f.into_alert(cx);
        cx.raise(a);
    }

    /// Raises a pending remote-execution finding of `(client, server)`.
    fn raise_pending(&mut self, client: IpAddr, server: IpAddr, p: Pending, cx: &mut DetectCx<'_>) {
        let window_us = self.window_us();
        let Some(pair) = self.pairs.get_mut(&(client, server)) else {
            return;
        };
        if !fresh(pair, p.technique.signature, p.ts, window_us) {
            return;
        }
        let denied = p.answered_denied > 0 && p.answered_ok == 0;
        let outcome = if denied {
            "denied"
        } else if p.answered_ok > 0 {
            "accepted"
        } else if p.answered_failed > 0 {
            "failed"
        } else {
            "unanswered or unreadable"
        };
        let mut ops = std::mem::take(&mut pair.ops);
        for op in p.ops {
            note(&mut ops, op);
        }
        let transport = if p.over_smb {
            "DCE-RPC over an SMB named pipe"
        } else {
            "DCE-RPC over TCP"
        };
        let mut ev = BTreeMap::new();
        ev.insert("protocol", json!(transport));
        ev.insert("operations", json!(ops));
        ev.insert("outcome", json!(outcome));
        ev.insert(
            "answers",
            json!({"accepted": p.answered_ok, "denied": p.answered_denied, "failed": p.answered_failed}),
        );
        ev.insert("window_secs", json!(self.cfg.outcome_wait_secs));
        let description = format!(
            "{client} {} {} on {server} ({transport}){}",
            if denied { "tried to run" } else { "ran" },
            p.technique.what,
            if denied { ", denied by the server" } else { "" }
        );
        let app = if p.over_smb {
            AppProto::Smb
        } else {
            AppProto::Dcerpc
        };
        let f = finding(
            p.ts,
            client,
            server,
            p.ports,
            app,
            p.technique.signature,
            if denied { 2 } else { 1 },
            p.technique.technique,
            description,
            ev,
        );
        let a = f.into_alert(cx);
        cx.raise(a);
    }

    fn on_rpc_call(
        &mut self,
        ev: &AdminEvent,
        iface: I,
        opnum: u16,
        call_id: u32,
        over_smb: bool,
        cx: &mut DetectCx<'_>,
    ) {
        let (client, server) = (ev.client, ev.server);
        let window_us = self.window_us();
        let threshold = self.cfg.netlogon_auth_attempts;
        let pair = self.pairs.touch((client, server), ev.ts, Pair::default);
        if iface == I::Netlogon {
            if ev.ts.micros().saturating_sub(pair.netlogon_start.micros()) >= window_us {
                pair.netlogon_start = ev.ts;
                pair.netlogon_auths = 0;
                pair.netlogon_denied = 0;
                pair.netlogon_password_set = false;
            }
            match opnum {
                5 | 15 | 26 => pair.netlogon_auths = pair.netlogon_auths.saturating_add(1),
                6 | 30 => pair.netlogon_password_set = true,
                _ => return,
            }
            if pair.netlogon_auths >= threshold
                && fresh(pair, "lateral_movement.netlogon_exploit", ev.ts, window_us)
            {
                let mut e = BTreeMap::new();
                e.insert("protocol", json!("DCE-RPC netlogon (MS-NRPC)"));
                e.insert("authentications", json!(pair.netlogon_auths));
                e.insert("denied", json!(pair.netlogon_denied));
                e.insert("password_set", json!(pair.netlogon_password_set));
                e.insert("window_secs", json!(self.cfg.window_secs));
                e.insert("cve", json!("CVE-2020-1472"));
                let description = format!(
                    "{client} sent {} Netlogon authentications to {server} within {} s (Zerologon)",
                    pair.netlogon_auths, self.cfg.window_secs
                );
                let f = finding(
                    ev.ts,
                    client,
                    server,
                    (ev.client_port, ev.server_port),
                    AppProto::Dcerpc,
                    "lateral_movement.netlogon_exploit",
                    1,
                    "T1210",
                    description,
                    e,
                );
                let a = f.into_alert(cx);
                cx.raise(a);
            }
            return;
        }
        if !admin_interface(iface) {
            return;
        }
        let op = op_name(iface, opnum);
        let mut started = false;
        match (&mut pair.pending, execution(iface, opnum)) {
            (Some(p), exec) => {
                note(&mut p.ops, op);
                if exec.is_some() && p.calls.len() < MAX_OPS {
                    p.calls.push(call_id);
                }
            }
            (None, Some(technique)) => {
                started = true;
                pair.pending = Some(Pending {
                    ts: ev.ts,
                    ports: (ev.client_port, ev.server_port),
                    technique,
                    over_smb,
                    calls: vec![call_id],
                    ops: vec![op],
                    answered_ok: 0,
                    answered_denied: 0,
                    answered_failed: 0,
                });
            }
            (None, None) => note_before(pair, ev.ts, op, window_us),
        }
        if started {
            // Keys of pairs the table dropped leave first, so the set
            // never holds more than the table.
            if self.waiting.len() >= self.cfg.max_tracked {
                let pairs = &self.pairs;
                self.waiting
                    .retain(|k| pairs.get(k).is_some_and(|p| p.pending.is_some()));
            }
            self.waiting.insert((client, server));
        }
    }
}

impl Detector for LateralMovementDetector {
    fn name(&self) -> &'static str {
        "lateral_movement"
    }

    /// A remote-access session between inside hosts is an administration
    /// edge; a flow's end raises what its calls left pending (no answer
    /// will come).
    fn on_flow(&mut self, _host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        let remote = match rec.app_proto {
            AppProto::Rdp => Some(("RDP", "T1021.001")),
            AppProto::Ssh => Some(("SSH", "T1021.004")),
            AppProto::Winrm => Some(("WinRM", "T1021.006")),
            AppProto::Vnc => Some(("VNC", "T1021.005")),
            _ => None,
        };
        if let Some((name, technique)) = remote {
            if rec.proto == 6 && cx.home.contains(rec.server) && rec.responder_answered {
                self.edge(
                    rec.last_seen,
                    rec.client,
                    rec.server,
                    (rec.client_port, rec.server_port),
                    rec.app_proto,
                    technique,
                    format!("a {name} session"),
                    cx,
                );
            }
        }
        if !matches!(rec.kind, RecordKind::End(_)) {
            return;
        }
        let key = (rec.client, rec.server);
        let ports = (rec.client_port, rec.server_port);
        let Some(pair) = self.pairs.get_mut(&key) else {
            return;
        };
        if pair.pending.as_ref().is_some_and(|p| p.ports == ports) {
            self.waiting.remove(&key);
            if let Some(p) = pair.pending.take() {
                self.raise_pending(rec.client, rec.server, p, cx);
            }
        }
    }

    fn on_admin(&mut self, ev: &AdminEvent, cx: &mut DetectCx<'_>) {
        // The contract's lateral movement is between inside hosts, and a
        // host administering itself moves nowhere.
        if !cx.home.contains(ev.client) || !cx.home.contains(ev.server) || ev.client == ev.server {
            return;
        }
        let ports = (ev.client_port, ev.server_port);
        match ev.action {
            AdminAction::RpcCall { iface, opnum, .. } if admin_interface(iface) => {
                let app = if matches!(ev.action, AdminAction::RpcCall { over_smb: true, .. }) {
                    AppProto::Smb
                } else {
                    AppProto::Dcerpc
                };
                let what = format!("DCE-RPC {}", op_name(iface, opnum));
                self.edge(
                    ev.ts,
                    ev.client,
                    ev.server,
                    ports,
                    app,
                    "T1021.003",
                    what,
                    cx,
                );
            }
            AdminAction::TreeConnect {
                share,
                kind,
                status: 0,
            } if kind.is_administrative() => {
                let what = format!("SMB2 TREE_CONNECT {}", share.as_str());
                self.edge(
                    ev.ts,
                    ev.client,
                    ev.server,
                    ports,
                    AppProto::Smb,
                    "T1021.002",
                    what,
                    cx,
                );
            }
            _ => {}
        }
        match ev.action {
            AdminAction::RpcCall {
                iface,
                opnum,
                call_id,
                over_smb,
            } => self.on_rpc_call(ev, iface, opnum, call_id, over_smb, cx),
            AdminAction::RpcResult {
                iface,
                call_id,
                outcome,
                ..
            } => {
                let Some(pair) = self.pairs.get_mut(&(ev.client, ev.server)) else {
                    return;
                };
                if iface == I::Netlogon {
                    if outcome == RpcOutcome::Denied {
                        pair.netlogon_denied = pair.netlogon_denied.saturating_add(1);
                    }
                    return;
                }
                if let Some(p) = pair.pending.as_mut() {
                    if p.calls.contains(&call_id) {
                        match outcome {
                            RpcOutcome::Ok => p.answered_ok += 1,
                            RpcOutcome::Denied => p.answered_denied += 1,
                            RpcOutcome::Failed(_) => p.answered_failed += 1,
                            RpcOutcome::Unknown => {}
                        }
                    }
                }
            }
            AdminAction::FileTransfer {
                share,
                kind: _,
                file,
                write,
            } => {
                let window_us = self.window_us();
                let pair = self
                    .pairs
                    .touch((ev.client, ev.server), ev.ts, Pair::default);
                if !fresh(pair, "lateral_movement.tool_transfer", ev.ts, window_us) {
                    return;
                }
                let mut e = BTreeMap::new();
                e.insert("protocol", json!("SMB2"));
                e.insert("share", json!(share.as_str()));
                e.insert("file", json!(file.as_str()));
                e.insert("direction", json!(if write { "write" } else { "read" }));
                e.insert("content", json!("executable (MZ header)"));
                let description = format!(
                    "{} {} an executable{}{} {} the administrative share {} of {}",
                    ev.client,
                    if write { "wrote" } else { "read" },
                    if file.is_empty() { "" } else { " " },
                    file.as_str(),
                    if write { "to" } else { "from" },
                    share.as_str(),
                    ev.server
                );
                let f = finding(
                    ev.ts,
                    ev.client,
                    ev.server,
                    (ev.client_port, ev.server_port),
                    AppProto::Smb,
                    "lateral_movement.tool_transfer",
                    1,
                    "T1570",
                    description,
                    e,
                );
                let a = f.into_alert(cx);
                cx.raise(a);
            }
            AdminAction::TreeConnect { share, status, .. } => {
                let window_us = self.window_us();
                let pair = self
                    .pairs
                    .touch((ev.client, ev.server), ev.ts, Pair::default);
                let what = if status == 0 {
                    format!("SMB2 TREE_CONNECT {}", share.as_str())
                } else {
                    format!(
                        "SMB2 TREE_CONNECT {} (status {status:#010x})",
                        share.as_str()
                    )
                };
                match pair.pending.as_mut() {
                    Some(p) => note(&mut p.ops, what),
                    None => note_before(pair, ev.ts, what, window_us),
                }
            }
        }
    }

    /// Raises the findings whose wait for an answer is over.
    fn on_tick(&mut self, now: Timestamp, cx: &mut DetectCx<'_>) {
        let wait_us =
            i64::try_from(self.cfg.outcome_wait_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        if self.waiting.is_empty() {
            return;
        }
        let pairs = &self.pairs;
        // In address order (the set's): the same alerts in the same order
        // at any worker count. A pair the table dropped leaves the set.
        let due: Vec<(IpAddr, IpAddr)> = self
            .waiting
            .iter()
            .filter(|k| {
                pairs
                    .get(k)
                    .and_then(|p| p.pending.as_ref())
                    .is_none_or(|p| now.micros().saturating_sub(p.ts.micros()) >= wait_us)
            })
            .copied()
            .collect();
        for (client, server) in due {
            self.waiting.remove(&(client, server));
            let p = self
                .pairs
                .get_mut(&(client, server))
                .and_then(|pair| pair.pending.take());
            if let Some(p) = p {
                self.raise_pending(client, server, p, cx);
            }
        }
    }

    fn persists_state(&self) -> bool {
        true
    }

    fn export_state(&self, out: &mut dyn FnMut(IpAddr, serde_json::Value)) {
        for (&host, seen, a) in self.admins.iter_seen() {
            let e = AdministersEntry {
                servers: a.servers.iter().copied().collect(),
                last_seen_us: seen.micros(),
            };
            out(host, entry_value(&e));
        }
    }

    fn import_state(&mut self, host: IpAddr, entry: serde_json::Value) -> Result<(), StateError> {
        let e: AdministersEntry = parse_entry(entry)?;
        if e.servers.len() > MAX_LEARNED_SERVERS {
            return Err(StateError::Invalid(format!(
                "{} servers, at most {MAX_LEARNED_SERVERS} are written",
                e.servers.len()
            )));
        }
        let a = Administers {
            servers: e.servers.into_iter().collect(),
        };
        // Through the bounded table: at max_tracked the most recent stay.
        self.admins
            .restore(host, Timestamp::from_micros(e.last_seen_us), a);
        Ok(())
    }

    fn bounds(&self, out: &mut dyn FnMut(Bound)) {
        out(self.pairs.bound("host pairs", "max_tracked"));
        out(self.admins.bound("administering hosts", "max_tracked"));
        out(Bound {
            map: "servers per administering host",
            key: "",
            len: self
                .admins
                .iter()
                .map(|(_, a)| a.servers.len())
                .max()
                .unwrap_or(0),
            cap: MAX_LEARNED_SERVERS,
        });
        out(Bound {
            map: "pairs waiting for an answer",
            key: "max_tracked",
            len: self.waiting.len(),
            cap: self.cfg.max_tracked.max(1),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::START;
    use crate::HomeNet;
    use tapsentry_intel::IntelSnapshot;
    use tapsentry_types::{AdminText, Alert, ShareKind};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_micros((START + secs) * 1_000_000)
    }

    fn event(client: &str, server: &str, secs: i64, action: AdminAction) -> AdminEvent {
        AdminEvent {
            ts: at(secs),
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            client_port: 50000,
            server_port: 445,
            action,
        }
    }

    fn call(iface: I, opnum: u16, call_id: u32) -> AdminAction {
        AdminAction::RpcCall {
            iface,
            opnum,
            call_id,
            over_smb: true,
        }
    }

    fn result(iface: I, opnum: u16, call_id: u32, outcome: RpcOutcome) -> AdminAction {
        AdminAction::RpcResult {
            iface,
            opnum,
            call_id,
            outcome,
        }
    }

    /// Feeds `events` (one batch) then ticks at `tick` seconds; home net
    /// 10.0.0.0/8.
    fn run(d: &mut LateralMovementDetector, events: &[AdminEvent], tick: i64) -> Vec<Alert> {
        let home = HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap();
        let intel = IntelSnapshot::empty();
        let mut out = Vec::new();
        let mut cx = DetectCx::new(&home, &intel, &mut out).at(at(tick), at(0));
        for ev in events {
            d.on_admin(ev, &mut cx);
        }
        d.on_tick(at(tick), &mut cx);
        out
    }

    fn detector() -> LateralMovementDetector {
        LateralMovementDetector::new(LateralMovementConfig::default())
    }

    /// A service created and started: held for the answer, then one alert
    /// at severity 1 naming the operations; the same again within the
    /// window is not repeated.
    #[test]
    fn service_creation_alerts_after_the_wait_once_per_window() {
        let mut d = detector();
        let evs = [
            event("10.0.0.5", "10.0.0.9", 1, call(I::Svcctl, 15, 1)),
            event("10.0.0.5", "10.0.0.9", 1, call(I::Svcctl, 12, 2)),
            event(
                "10.0.0.5",
                "10.0.0.9",
                1,
                result(I::Svcctl, 12, 2, RpcOutcome::Ok),
            ),
            event("10.0.0.5", "10.0.0.9", 2, call(I::Svcctl, 19, 3)),
        ];
        assert!(run(&mut d, &evs, 2).is_empty(), "still waiting for answers");
        let a = run(&mut d, &[], 6);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "lateral_movement.remote_service");
        assert_eq!(a[0].alert.severity, 1);
        assert_eq!(a[0].alert.mitre.technique, "T1569.002");
        assert_eq!(a[0].src_ip.to_string(), "10.0.0.5");
        assert_eq!(a[0].dest_ip.unwrap().to_string(), "10.0.0.9");
        let ops = a[0].evidence["operations"].to_string();
        assert!(
            ops.contains("RCreateServiceW") && ops.contains("ROpenSCManagerW"),
            "{ops}"
        );
        assert!(run(&mut d, &evs, 30).is_empty());
        assert!(run(&mut d, &[], 40).is_empty(), "repeat within the window");
    }

    /// Every answer denied: severity 2 and the outcome says so.
    #[test]
    fn a_denied_attempt_is_lower_severity() {
        let mut d = detector();
        let evs = [
            event("10.0.0.5", "10.0.0.9", 1, call(I::Atsvc, 0, 7)),
            event(
                "10.0.0.5",
                "10.0.0.9",
                1,
                result(I::Atsvc, 0, 7, RpcOutcome::Denied),
            ),
        ];
        let a = run(&mut d, &evs, 10);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "lateral_movement.scheduled_task");
        assert_eq!(a[0].alert.severity, 2);
        assert_eq!(a[0].evidence["outcome"], "denied");
    }

    /// The flow's end raises a pending finding before the wait is over.
    #[test]
    fn the_flow_end_cuts_the_wait_short() {
        let mut d = detector();
        let ev = event("10.0.0.5", "10.0.0.9", 1, call(I::WbemServices, 24, 3));
        assert!(run(&mut d, &[ev], 1).is_empty());
        let rec = tapsentry_testkit::FlowRecordBuilder::tcp("10.0.0.5", 50000, "10.0.0.9", 445)
            .at(2)
            .build();
        assert!(matches!(rec.kind, RecordKind::End(_)));
        let a = crate::testutil::run_at(&mut d, "10.0.0.5", &rec, 2);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "lateral_movement.wmi_exec");
    }

    /// Discovery (SAMR, LSARPC), a service query, a tree connect to IPC$
    /// and outside parties raise nothing.
    #[test]
    fn discovery_and_outside_parties_are_not_movement() {
        let mut d = detector();
        let ipc = AdminAction::TreeConnect {
            share: AdminText::from_ascii("IPC$"),
            kind: ShareKind::Ipc,
            status: 0,
        };
        let evs = [
            event("10.0.0.5", "10.0.0.9", 1, ipc),
            event("10.0.0.5", "10.0.0.9", 1, call(I::Samr, 64, 1)),
            event("10.0.0.5", "10.0.0.9", 1, call(I::Lsarpc, 44, 2)),
            event("10.0.0.5", "10.0.0.9", 1, call(I::Svcctl, 15, 3)),
            event("10.0.0.5", "10.0.0.9", 1, call(I::Svcctl, 6, 4)),
            event("203.0.113.7", "10.0.0.9", 1, call(I::Svcctl, 12, 5)),
        ];
        assert!(run(&mut d, &evs, 60).is_empty());
    }

    /// An executable read from C$ alerts at once (T1570).
    #[test]
    fn an_executable_over_an_admin_share_alerts_at_once() {
        let mut d = detector();
        let ev = event(
            "10.0.0.5",
            "10.0.0.9",
            1,
            AdminAction::FileTransfer {
                share: AdminText::from_ascii("C$"),
                kind: ShareKind::Drive,
                file: AdminText::from_ascii("temp\\tool.exe"),
                write: true,
            },
        );
        let a = run(&mut d, &[ev], 1);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.mitre.technique, "T1570");
        assert_eq!(a[0].evidence["file"], "temp\\tool.exe");
    }

    /// Netlogon: a machine's one authentication is quiet; the threshold
    /// within the window is Zerologon.
    #[test]
    fn many_netlogon_authentications_are_zerologon() {
        let mut d = detector();
        let one = [
            event("10.0.0.5", "10.0.0.1", 1, call(I::Netlogon, 4, 1)),
            event("10.0.0.5", "10.0.0.1", 1, call(I::Netlogon, 26, 2)),
            event("10.0.0.5", "10.0.0.1", 1, call(I::Netlogon, 30, 3)),
        ];
        assert!(run(&mut d, &one, 2).is_empty());
        let many: Vec<AdminEvent> = (0..9)
            .map(|i| {
                event(
                    "10.0.0.5",
                    "10.0.0.1",
                    3 + i,
                    call(I::Netlogon, 26, 10 + i as u32),
                )
            })
            .collect();
        let a = run(&mut d, &many, 20);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "lateral_movement.netlogon_exploit");
        assert_eq!(a[0].evidence["authentications"], 10);
    }
}

#[cfg(test)]
mod graph_tests {
    use super::*;
    use crate::testutil::{export, run_at, transfer, START};
    use crate::HomeNet;
    use tapsentry_intel::IntelSnapshot;
    use tapsentry_types::{AdminText, Alert, ShareKind};

    const DAY: i64 = 86_400;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_micros((START + secs) * 1_000_000)
    }

    fn admin_share(client: &str, server: &str, secs: i64) -> AdminEvent {
        AdminEvent {
            ts: at(secs),
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            client_port: 50000,
            server_port: 445,
            action: AdminAction::TreeConnect {
                share: AdminText::from_ascii("ADMIN$"),
                kind: ShareKind::Admin,
                status: 0,
            },
        }
    }

    fn feed(d: &mut LateralMovementDetector, ev: AdminEvent, secs: i64) -> Vec<Alert> {
        let home = HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap();
        let intel = IntelSnapshot::empty();
        let mut out = Vec::new();
        let mut cx = DetectCx::new(&home, &intel, &mut out).at(at(secs), at(0));
        d.on_admin(&ev, &mut cx);
        out
    }

    /// The management server that administered hosts while learning stays
    /// quiet on a new host after it; a workstation that administered no
    /// one is a new admin source (severity 2), once per pair and window.
    #[test]
    fn a_new_admin_source_after_learning() {
        let mut d = LateralMovementDetector::new(LateralMovementConfig::default());
        assert!(feed(&mut d, admin_share("10.0.0.2", "10.0.0.9", 100), 100).is_empty());
        let later = DAY + 100;
        assert!(feed(&mut d, admin_share("10.0.0.2", "10.0.0.50", later), later).is_empty());
        let a = feed(&mut d, admin_share("10.0.0.7", "10.0.0.9", later), later);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "lateral_movement.new_admin_source");
        assert_eq!(a[0].alert.severity, 2);
        assert_eq!(a[0].alert.mitre.technique, "T1021.002");
        assert_eq!(a[0].evidence["edge"], "SMB2 TREE_CONNECT ADMIN$");
        assert!(feed(
            &mut d,
            admin_share("10.0.0.7", "10.0.0.9", later + 5),
            later + 5
        )
        .is_empty());
    }

    /// An RDP session between inside hosts is an edge: learned while
    /// learning, a new source after.
    #[test]
    fn an_rdp_hop_from_a_host_that_administers_no_one() {
        let mut d = LateralMovementDetector::new(LateralMovementConfig::default());
        let rdp = |c: &str, secs: i64| {
            tapsentry_testkit::FlowRecordBuilder::tcp(c, 49206, "10.0.0.20", 3389)
                .app_proto(AppProto::Rdp)
                .at(secs)
                .build()
        };
        assert!(run_at(&mut d, "10.0.0.3", &rdp("10.0.0.3", 10), 10).is_empty());
        assert!(run_at(&mut d, "10.0.0.3", &rdp("10.0.0.3", DAY + 10), DAY + 10).is_empty());
        let a = run_at(&mut d, "10.0.0.4", &rdp("10.0.0.4", DAY + 20), DAY + 20);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].alert.mitre.technique, "T1021.001");
    }

    /// The learned administrators survive a restart through the state.
    #[test]
    fn learned_administrators_persist() {
        let mut d = LateralMovementDetector::new(LateralMovementConfig::default());
        feed(&mut d, admin_share("10.0.0.2", "10.0.0.9", 100), 100);
        assert_eq!(export(&d).len(), 1);
        let mut fresh = LateralMovementDetector::new(LateralMovementConfig::default());
        transfer(&d, &mut fresh);
        let later = DAY + 100;
        assert!(feed(
            &mut fresh,
            admin_share("10.0.0.2", "10.0.0.51", later),
            later
        )
        .is_empty());
        let too_many = serde_json::json!({"servers": vec!["10.0.0.1"; 300], "last_seen_us": 0});
        assert!(fresh
            .import_state("10.0.0.8".parse().unwrap(), too_many)
            .is_err());
    }
}
