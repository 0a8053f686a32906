//! The application protocol a flow speaks, as identified from its payload.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The application protocol of a flow (the contract's `app_proto` field).
///
/// One byte (`repr(u8)`), `Copy`, so it fits in a flow slot. The spelling
/// ([`AppProto::as_str`]) is Suricata's `app_proto` where Suricata has the
/// protocol (`rfb`, `krb5`, `pgsql`, `ike`, `bittorrent-dht`), otherwise the
/// word of `pcaps/protocols/TRUTH.json`'s vocabulary; [`AppProto::vocabulary_word`]
/// maps Suricata's spellings back to that vocabulary (its `aliases`).
///
/// Choices the contract leaves open, decided here:
/// * IKE (UDP 500/4500) is `ike`, Suricata's word; ESP and AH flows are
///   `ipsec`. Both are the vocabulary word `ipsec`.
/// * MS SQL is `mssql`, not `tds`: Suricata has no TDS parser, so the
///   vocabulary word is used (`tds` is still accepted when parsing).
/// * BitTorrent's DHT over UDP is `bittorrent-dht` (Suricata's), the peer
///   wire protocol `bittorrent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum AppProto {
    /// Nothing matched (yet).
    #[default]
    Unknown = 0,
    /// SSH (RFC 4253 identification string).
    Ssh,
    /// RDP (TPKT + X.224 over TCP, MS-RDPEUDP over UDP).
    Rdp,
    /// VNC's Remote Framebuffer protocol (RFC 6143); Suricata's `rfb`.
    Vnc,
    /// Telnet (RFC 854 option negotiation).
    Telnet,
    /// SMB1/2/3.
    Smb,
    /// DCE-RPC connection-oriented over TCP.
    Dcerpc,
    /// Kerberos v5 (RFC 4120); Suricata's `krb5`.
    Kerberos,
    /// LDAP (RFC 4511).
    Ldap,
    /// WinRM: HTTP to `/wsman`.
    Winrm,
    /// TLS or SSL.
    Tls,
    /// QUIC (IETF or gQUIC).
    Quic,
    /// HTTP/1.x.
    Http,
    /// SMTP.
    Smtp,
    /// IMAP.
    Imap,
    /// POP3.
    Pop3,
    /// FTP control connection.
    Ftp,
    /// FTP data connection (needs the control connection to be known).
    FtpData,
    /// DNS over UDP or TCP.
    Dns,
    /// NTP.
    Ntp,
    /// SNMP v1/v2c/v3.
    Snmp,
    /// MySQL client/server protocol.
    Mysql,
    /// PostgreSQL frontend/backend protocol; Suricata's `pgsql`.
    Postgresql,
    /// Microsoft SQL Server TDS.
    Mssql,
    /// Redis RESP.
    Redis,
    /// Tor OR connection (needs more than the first bytes: it looks like TLS).
    Tor,
    /// OpenVPN.
    Openvpn,
    /// WireGuard.
    Wireguard,
    /// IKE (ISAKMP, RFC 7296) on UDP; Suricata's `ike`.
    Ike,
    /// ESP or AH (IP protocols 50 and 51).
    Ipsec,
    /// BitTorrent peer wire protocol.
    Bittorrent,
    /// BitTorrent DHT (BEP 5, bencoded KRPC over UDP).
    BittorrentDht,
    /// AnyDesk.
    Anydesk,
    /// TeamViewer.
    Teamviewer,
}

impl AppProto {
    /// Every value, `Unknown` first.
    pub const ALL: [AppProto; 34] = [
        AppProto::Unknown,
        AppProto::Ssh,
        AppProto::Rdp,
        AppProto::Vnc,
        AppProto::Telnet,
        AppProto::Smb,
        AppProto::Dcerpc,
        AppProto::Kerberos,
        AppProto::Ldap,
        AppProto::Winrm,
        AppProto::Tls,
        AppProto::Quic,
        AppProto::Http,
        AppProto::Smtp,
        AppProto::Imap,
        AppProto::Pop3,
        AppProto::Ftp,
        AppProto::FtpData,
        AppProto::Dns,
        AppProto::Ntp,
        AppProto::Snmp,
        AppProto::Mysql,
        AppProto::Postgresql,
        AppProto::Mssql,
        AppProto::Redis,
        AppProto::Tor,
        AppProto::Openvpn,
        AppProto::Wireguard,
        AppProto::Ike,
        AppProto::Ipsec,
        AppProto::Bittorrent,
        AppProto::BittorrentDht,
        AppProto::Anydesk,
        AppProto::Teamviewer,
    ];

    /// The contract's spelling (Suricata's where Suricata has the protocol).
    pub const fn as_str(self) -> &'static str {
        match self {
            AppProto::Unknown => "unknown",
            AppProto::Ssh => "ssh",
            AppProto::Rdp => "rdp",
            AppProto::Vnc => "rfb",
            AppProto::Telnet => "telnet",
            AppProto::Smb => "smb",
            AppProto::Dcerpc => "dcerpc",
            AppProto::Kerberos => "krb5",
            AppProto::Ldap => "ldap",
            AppProto::Winrm => "winrm",
            AppProto::Tls => "tls",
            AppProto::Quic => "quic",
            AppProto::Http => "http",
            AppProto::Smtp => "smtp",
            AppProto::Imap => "imap",
            AppProto::Pop3 => "pop3",
            AppProto::Ftp => "ftp",
            AppProto::FtpData => "ftp-data",
            AppProto::Dns => "dns",
            AppProto::Ntp => "ntp",
            AppProto::Snmp => "snmp",
            AppProto::Mysql => "mysql",
            AppProto::Postgresql => "pgsql",
            AppProto::Mssql => "mssql",
            AppProto::Redis => "redis",
            AppProto::Tor => "tor",
            AppProto::Openvpn => "openvpn",
            AppProto::Wireguard => "wireguard",
            AppProto::Ike => "ike",
            AppProto::Ipsec => "ipsec",
            AppProto::Bittorrent => "bittorrent",
            AppProto::BittorrentDht => "bittorrent-dht",
            AppProto::Anydesk => "anydesk",
            AppProto::Teamviewer => "teamviewer",
        }
    }

    /// The word of `TRUTH.json`'s vocabulary this value stands for (its
    /// `aliases` applied: `rfb` is `vnc`, `krb5` is `kerberos`, `pgsql` is
    /// `postgresql`, `ike` is `ipsec`, `bittorrent-dht` is `bittorrent`).
    pub const fn vocabulary_word(self) -> &'static str {
        match self {
            AppProto::Vnc => "vnc",
            AppProto::Kerberos => "kerberos",
            AppProto::Postgresql => "postgresql",
            AppProto::Ike => "ipsec",
            AppProto::BittorrentDht => "bittorrent",
            other => other.as_str(),
        }
    }

    /// Parses the contract's spelling, a vocabulary word or an alias
    /// (`tds` included); `None` for anything else.
    pub fn parse(s: &str) -> Option<AppProto> {
        match s {
            "vnc" => Some(AppProto::Vnc),
            "kerberos" => Some(AppProto::Kerberos),
            "postgresql" => Some(AppProto::Postgresql),
            "tds" => Some(AppProto::Mssql),
            _ => AppProto::ALL.into_iter().find(|p| p.as_str() == s),
        }
    }

    /// True when nothing matched.
    pub const fn is_unknown(self) -> bool {
        matches!(self, AppProto::Unknown)
    }
}

impl std::fmt::Display for AppProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AppProto {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AppProto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        AppProto::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown app_proto {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_and_spellings_round_trip() {
        assert_eq!(std::mem::size_of::<AppProto>(), 1);
        assert_eq!(std::mem::size_of::<Option<AppProto>>(), 1);
        for p in AppProto::ALL {
            assert_eq!(AppProto::parse(p.as_str()), Some(p));
            assert_eq!(
                AppProto::parse(p.vocabulary_word()).map(|q| q.vocabulary_word()),
                Some(p.vocabulary_word())
            );
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<AppProto>(&json).unwrap(), p);
        }
        assert_eq!(AppProto::Vnc.as_str(), "rfb");
        assert_eq!(AppProto::Ike.vocabulary_word(), "ipsec");
        assert_eq!(AppProto::parse("tds"), Some(AppProto::Mssql));
        assert!(serde_json::from_str::<AppProto>("\"gopher\"").is_err());
    }
}
