//! First-message metadata on its way to the flow log: what the flow table
//! read from the first message of each direction of a flow (TLS SNI and
//! ALPN, SSH and HTTP software, the HTTP host, mail and FTP greetings)
//! travels with the sweep ticks, beside the DNS events, and waits here, in
//! the sweeper, until the flow's end record is logged. It never sits in
//! the flow slot: most flows have none, and the slot stays 128 bytes.
//!
//! Bound: [`FLOW_META_MAX`] flows. At the bound, metadata of further flows
//! is not kept (counted as `flow_meta_table_full`); their flow-log records
//! go out without it. A flow whose end record never reaches the flow log
//! (live drops) leaves its entry until the table is full; then, so that an
//! old leak cannot starve new flows for ever, the table is emptied once
//! and the flows it held are logged without metadata (counted the same).

use std::collections::HashMap;

use serde::Serialize;
use tapsentry_flow::FirstMessage;
use tapsentry_proto::{Meta, MetaText};
use tapsentry_types::{AppProto, FlowKey, FlowRecord};

/// Flows whose metadata the sweeper holds at most: about 27 MB at 400
/// bytes each. A flow's entry lives from its first message to its end
/// record, so this bounds flows *with metadata* alive at once.
pub const FLOW_META_MAX: usize = 65_536;

/// The metadata of the two directions of one flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowAppMeta {
    /// The flow's protocol when the metadata was read.
    pub app_proto: AppProto,
    /// From the client's first message.
    pub client: Option<Meta>,
    /// From the server's first message.
    pub server: Option<Meta>,
}

/// The metadata of live flows, by flow key. See the module documentation.
#[derive(Default)]
pub struct FlowMetaTable {
    flows: HashMap<FlowKey, Box<FlowAppMeta>>,
    /// Metadata not kept, for the stats (taken by [`FlowMetaTable::take_dropped`]).
    dropped: u64,
}

impl FlowMetaTable {
    /// Files the first messages of a tick.
    pub fn add(&mut self, first: &[FirstMessage]) {
        for f in first {
            if self.flows.len() >= FLOW_META_MAX && !self.flows.contains_key(&f.key) {
                self.dropped += self.flows.len() as u64 + 1;
                self.flows.clear();
                continue;
            }
            let e = self.flows.entry(f.key).or_default();
            e.app_proto = f.app_proto;
            if f.to_server {
                e.client = Some(f.meta);
            } else {
                e.server = Some(f.meta);
            }
        }
    }

    /// The metadata of an ended flow, removed from the table.
    pub fn take(&mut self, rec: &FlowRecord) -> Option<Box<FlowAppMeta>> {
        self.flows.remove(&rec.key)
    }

    /// Flows held.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when no flow's metadata is held.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Metadata not kept since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

/// An ended flow for the flow log, with its first-message metadata.
pub struct LoggedFlow {
    /// The flow's end record.
    pub rec: FlowRecord,
    /// What its first messages revealed, if anything.
    pub meta: Option<Box<FlowAppMeta>>,
}

/// The metadata fields of a flow-log record, named as Suricata's EVE
/// records name them where Suricata has them (`tls.sni`,
/// `http.hostname`, `http.http_user_agent`, `ssh.client.software_version`).
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct AppMetaLog {
    /// TLS (and Tor and AnyDesk, which speak TLS): SNI and ALPN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsLog>,
    /// SSH: both identification strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshLog>,
    /// HTTP and WinRM: host, user agent and server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpLog>,
    /// SMTP, FTP, POP3, IMAP: the server's greeting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greeting: Option<GreetingLog>,
}

/// `tls` of a flow-log record.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct TlsLog {
    /// Server Name Indication from the ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// ALPN ids the client offered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_alpns: Vec<String>,
    /// The ALPN id the server chose (visible up to TLS 1.2).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_alpns: Vec<String>,
}

/// `ssh` of a flow-log record.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SshLog {
    /// The client's identification string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<SshSide>,
    /// The server's identification string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<SshSide>,
}

/// One side's SSH identification string, `SSH-protoversion-softwareversion`.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SshSide {
    /// `2.0`, `1.99`, `1.5`.
    pub proto_version: String,
    /// The rest of the line (software and comments).
    pub software_version: String,
}

/// `http` of a flow-log record.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct HttpLog {
    /// The request's `Host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The request's `User-Agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_user_agent: Option<String>,
    /// The response's `Server`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

/// `greeting` of a flow-log record.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct GreetingLog {
    /// The greeting line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The host name the server gave (SMTP and FTP `220`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

fn text(t: &MetaText) -> Option<String> {
    (!t.is_empty()).then(|| t.to_lossy())
}

fn list(t: &MetaText) -> Vec<String> {
    t.to_lossy()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn ssh_side(m: &Meta) -> Option<SshSide> {
    let line = m.software.to_lossy();
    let rest = line.strip_prefix("SSH-")?;
    let (proto, software) = rest.split_once('-')?;
    Some(SshSide {
        proto_version: proto.to_owned(),
        software_version: software.to_owned(),
    })
}

impl AppMetaLog {
    /// The fields for a flow, by the protocol its first messages were read
    /// as (an HTTP CONNECT tunnel's content may have replaced `http` in the
    /// record since; the request's metadata still describes its start).
    pub fn new(m: &FlowAppMeta) -> AppMetaLog {
        let mut log = AppMetaLog::default();
        let (c, s) = (m.client.as_ref(), m.server.as_ref());
        match m.app_proto {
            AppProto::Tls | AppProto::Tor | AppProto::Anydesk => {
                let tls = TlsLog {
                    sni: c.and_then(|c| text(&c.host)),
                    client_alpns: c.map(|c| list(&c.alpn)).unwrap_or_default(),
                    server_alpns: s.map(|s| list(&s.alpn)).unwrap_or_default(),
                };
                if tls != TlsLog::default() {
                    log.tls = Some(tls);
                }
            }
            AppProto::Ssh => {
                let ssh = SshLog {
                    client: c.and_then(ssh_side),
                    server: s.and_then(ssh_side),
                };
                if ssh != SshLog::default() {
                    log.ssh = Some(ssh);
                }
            }
            AppProto::Http | AppProto::Winrm => {
                let http = HttpLog {
                    hostname: c.and_then(|c| text(&c.host)),
                    http_user_agent: c.and_then(|c| text(&c.software)),
                    server: s.and_then(|s| text(&s.software)),
                };
                if http != HttpLog::default() {
                    log.http = Some(http);
                }
            }
            AppProto::Smtp | AppProto::Ftp | AppProto::Pop3 | AppProto::Imap => {
                let g = GreetingLog {
                    text: s.and_then(|s| text(&s.software)),
                    host: s.and_then(|s| text(&s.host)),
                };
                if g != GreetingLog::default() {
                    log.greeting = Some(g);
                }
            }
            _ => {}
        }
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapsentry_proto::{first_message_meta, Dir};
    use tapsentry_testkit::hello;

    fn meta(p: AppProto, dir: Dir, payload: &[u8]) -> Option<Meta> {
        first_message_meta(p, dir, payload)
    }

    /// A TLS ClientHello's SNI and ALPN and an SSH exchange's two banners
    /// come out under Suricata's names.
    #[test]
    fn tls_and_ssh_metadata_log_under_suricata_names() {
        let hello = hello::tls_client_hello("files.example.org", 7);
        let m = FlowAppMeta {
            app_proto: AppProto::Tls,
            client: meta(AppProto::Tls, Dir::ToServer, &hello),
            server: None,
        };
        let v = serde_json::to_value(AppMetaLog::new(&m)).unwrap();
        assert_eq!(v["tls"]["sni"], "files.example.org");
        assert_eq!(
            v["tls"]["client_alpns"],
            serde_json::json!(["h2", "http/1.1"])
        );

        let m = FlowAppMeta {
            app_proto: AppProto::Ssh,
            client: meta(AppProto::Ssh, Dir::ToServer, b"SSH-2.0-Go\r\n"),
            server: meta(
                AppProto::Ssh,
                Dir::ToClient,
                b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
            ),
        };
        let v = serde_json::to_value(AppMetaLog::new(&m)).unwrap();
        assert_eq!(v["ssh"]["client"]["software_version"], "Go");
        assert_eq!(v["ssh"]["server"]["proto_version"], "2.0");
        assert_eq!(
            v["ssh"]["server"]["software_version"],
            "OpenSSH_9.2p1 Debian-2"
        );
        assert!(v.get("tls").is_none());
    }

    /// At the bound the table empties once and counts what it let go.
    #[test]
    fn the_table_is_bounded() {
        let mut t = FlowMetaTable::default();
        let msg = |i: u32| {
            let (key, _) = FlowKey::canonical(
                std::net::Ipv4Addr::from(0x0a00_0000 + i).into(),
                40_000,
                std::net::Ipv4Addr::new(192, 0, 2, 1).into(),
                443,
                6,
                0,
            );
            FirstMessage {
                key,
                ts: tapsentry_types::Timestamp::ZERO,
                to_server: true,
                app_proto: AppProto::Tls,
                meta: Meta::default(),
            }
        };
        let batch: Vec<FirstMessage> = (0..FLOW_META_MAX as u32).map(msg).collect();
        t.add(&batch);
        assert_eq!((t.len(), t.take_dropped()), (FLOW_META_MAX, 0));
        t.add(&[msg(FLOW_META_MAX as u32)]);
        assert_eq!(t.len(), 0);
        assert_eq!(t.take_dropped(), FLOW_META_MAX as u64 + 1);
    }
}
