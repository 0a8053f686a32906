//! The per-flow classifier state and the order in which matchers are tried.

use crate::matchers::{self as m, Greeting, HttpRequest, MailOrFtp, TvSide};
use crate::{AppProto, AH, ESP, TCP, UDP};

/// Payload packets inspected per direction before the classifier gives up.
/// Four covers every first message the matchers need, with room for a
/// capture that starts mid-flow, a CONNECT tunnel or a STARTTLS exchange.
pub const PACKET_BUDGET: u8 = 4;

/// Which way a packet goes, from the flow's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the side that opened the flow (the client) to the other.
    ToServer,
    /// From the responder back to the side that opened the flow.
    ToClient,
}

impl Dir {
    fn other(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
}

/// A half-made verdict waiting for the other direction (one byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
enum Pending {
    #[default]
    None,
    /// A `220` greeting that named neither SMTP nor FTP: the client's first
    /// command decides.
    Greeting220,
    /// A Redis inline command: a RESP reply confirms it.
    RedisInline,
    /// TeamViewer's client magic: the server's magic confirms it.
    TeamviewerClient,
    /// TeamViewer's server magic: the client's magic confirms it.
    TeamviewerServer,
    /// A WireGuard data message went to the server; one back names it.
    WireguardToServer,
    /// A WireGuard data message went to the client; one back names it.
    WireguardToClient,
}

/// `flags` bits.
const CONNECT_SENT: u8 = 1 << 0;
const TUNNEL_OPEN: u8 = 1 << 1;
const STARTTLS_ASKED: u8 = 1 << 2;
const TLS_INSIDE: u8 = 1 << 3;
/// Not TCP or UDP (or ESP/AH, decided at once): nothing to inspect.
const NOT_INSPECTED: u8 = 1 << 4;

/// The classifier's state for one flow: 4 bytes, `Copy`, no heap.
///
/// Feed it every packet of the flow (or only those with payload) with
/// [`observe`](Self::observe) until [`is_done`](Self::is_done); read the
/// verdict with [`verdict`](Self::verdict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProtoState {
    verdict: AppProto,
    pending: Pending,
    /// Payload packets seen: to the server in the low nibble, to the client
    /// in the high one (each saturates at 15).
    seen: u8,
    flags: u8,
}

impl ProtoState {
    /// A flow with nothing seen yet.
    pub const fn new() -> Self {
        ProtoState {
            verdict: AppProto::Unknown,
            pending: Pending::None,
            seen: 0,
            flags: 0,
        }
    }

    /// The verdict so far ([`AppProto::Unknown`] until a matcher fires).
    #[inline]
    pub fn verdict(&self) -> AppProto {
        self.verdict
    }

    /// True once the verdict can no longer change: a final verdict, or the
    /// packet budget of both directions spent. [`observe`](Self::observe)
    /// then returns at once.
    #[inline]
    pub fn is_done(&self) -> bool {
        if self.flags & NOT_INSPECTED != 0 {
            return true;
        }
        let spent =
            self.seen(Dir::ToServer) >= PACKET_BUDGET && self.seen(Dir::ToClient) >= PACKET_BUDGET;
        spent || (!self.verdict.is_unknown() && !self.may_change())
    }

    /// Payload packets seen in `dir` (inspected or not), saturating at 15.
    /// A caller that wants the metadata of a direction's first message runs
    /// [`first_message_meta`](crate::first_message_meta) on the payload that
    /// took this from 0 to 1 (after the [`observe`](Self::observe) call, with
    /// the verdict as it then stands).
    #[inline]
    pub fn seen(&self, dir: Dir) -> u8 {
        match dir {
            Dir::ToServer => self.seen & 0x0f,
            Dir::ToClient => self.seen >> 4,
        }
    }

    /// Names the flow from outside its own bytes and ends inspection: an
    /// FTP data connection that its control connection announced
    /// ([`ftp_data_endpoint`](crate::ftp_data_endpoint)). Only an unknown
    /// verdict is replaced, so a verdict still never changes once made.
    pub fn assign(&mut self, p: AppProto) {
        if self.verdict.is_unknown() {
            self.verdict = p;
            self.pending = Pending::None;
            self.flags |= NOT_INSPECTED;
        }
    }

    /// True when a cleartext protocol (SMTP, IMAP, POP3, FTP) was seen
    /// switching to TLS (a STARTTLS request, then a TLS hello).
    pub fn tls_inside(&self) -> bool {
        self.flags & TLS_INSIDE != 0
    }

    /// Looks at one packet of the flow and returns the verdict when this
    /// packet made it (or upgraded it: an HTTP CONNECT tunnel's content);
    /// `None` otherwise, including when the verdict was already known.
    ///
    /// `transport` is the IP protocol number; ESP and AH flows are
    /// [`AppProto::Ipsec`] at once, protocols other than TCP and UDP are
    /// never inspected. `ports` are the packet's (source, destination) ports,
    /// used only to break a tie between protocols whose bytes both match.
    /// Packets without payload cost nothing and do not count against the
    /// budget.
    pub fn observe(
        &mut self,
        dir: Dir,
        transport: u8,
        payload: &[u8],
        ports: (u16, u16),
    ) -> Option<AppProto> {
        if self.is_done() {
            // Still counted, so `seen` tells the caller which payload is the
            // first of its direction (the one to extract metadata from).
            if !payload.is_empty() {
                self.bump(dir);
            }
            return None;
        }
        match transport {
            TCP | UDP => {}
            // A flow's transport does not change (it is part of the flow
            // key); a caller that mixes them still never sees a verdict change.
            ESP | AH if !self.verdict.is_unknown() => {
                self.flags |= NOT_INSPECTED;
                return None;
            }
            ESP | AH => {
                self.flags |= NOT_INSPECTED;
                self.verdict = AppProto::Ipsec;
                return Some(AppProto::Ipsec);
            }
            _ => {
                self.flags |= NOT_INSPECTED;
                return None;
            }
        }
        if payload.is_empty() {
            return None;
        }
        let n = self.seen(dir);
        self.bump(dir);
        if n >= PACKET_BUDGET {
            return None;
        }
        let tcp = transport == TCP;
        if self.verdict.is_unknown() {
            let found = if tcp {
                self.classify_tcp(dir, payload, ports)
            } else {
                self.classify_udp(dir, payload)
            };
            if let Some(p) = found {
                self.verdict = p;
                self.pending = Pending::None;
            }
            return found;
        }
        self.follow(dir, payload, ports)
    }

    /// After a verdict that may still change: watch a CONNECT tunnel open and
    /// classify its content, or note a STARTTLS.
    fn follow(&mut self, dir: Dir, payload: &[u8], ports: (u16, u16)) -> Option<AppProto> {
        if self.flags & CONNECT_SENT != 0 {
            if self.flags & TUNNEL_OPEN == 0 {
                if dir == Dir::ToClient {
                    if m::http_2xx(payload) {
                        self.flags |= TUNNEL_OPEN;
                    } else {
                        // Refused or not a proxy: the flow is plain HTTP.
                        self.flags &= !CONNECT_SENT;
                    }
                }
                return None;
            }
            let found = self.classify_tcp(dir, payload, ports);
            if let Some(p) = found {
                self.flags &= !(CONNECT_SENT | TUNNEL_OPEN);
                self.pending = Pending::None;
                self.verdict = p;
            }
            return found;
        }
        if dir == Dir::ToServer {
            if m::starttls(payload) {
                self.flags |= STARTTLS_ASKED;
            } else if self.flags & STARTTLS_ASKED != 0 && m::tls_hello(payload) {
                self.flags |= TLS_INSIDE;
            }
        }
        None
    }

    /// True while a made verdict may still change or gain a note.
    fn may_change(&self) -> bool {
        if self.flags & CONNECT_SENT != 0 {
            return true;
        }
        matches!(
            self.verdict,
            AppProto::Smtp | AppProto::Imap | AppProto::Pop3 | AppProto::Ftp
        ) && self.flags & TLS_INSIDE == 0
    }

    fn bump(&mut self, dir: Dir) {
        let n = self.seen(dir);
        if n < 15 {
            self.seen += match dir {
                Dir::ToServer => 1,
                Dir::ToClient => 0x10,
            };
        }
    }

    /// TCP matchers, strongest structure first. The first message of either
    /// side may come first in the capture (server-first protocols, captures
    /// without a handshake), so most matchers ignore `dir`.
    fn classify_tcp(&mut self, dir: Dir, p: &[u8], ports: (u16, u16)) -> Option<AppProto> {
        let other_spoke = self.seen(dir.other()) > 0;
        // The line-based matchers (SSH, HTTP, greetings, commands) need a
        // payload that starts as text: random or binary payloads, most of
        // what stays unknown, skip them on a look at eight bytes.
        let text = m::starts_as_text(p);
        if text && m::ssh(p) {
            return Some(AppProto::Ssh);
        }
        if m::tls_hello(p) {
            return Some(AppProto::Tls);
        }
        if let Some(req) = text.then(|| m::http_request(p)).flatten() {
            return Some(match req {
                HttpRequest::Plain => AppProto::Http,
                HttpRequest::Wsman => AppProto::Winrm,
                HttpRequest::Connect => {
                    self.flags |= CONNECT_SENT;
                    AppProto::Http
                }
            });
        }
        if text && m::http_response(p) {
            return Some(AppProto::Http);
        }
        if let Some(proto) = first_hit(&TCP_STRUCTURAL, p) {
            return Some(proto);
        }
        // Confirmations of a candidate from the other direction.
        match self.pending {
            Pending::Greeting220 => {
                return m::command_after_220(p).filter(|_| text).map(|c| match c {
                    MailOrFtp::Smtp => AppProto::Smtp,
                    MailOrFtp::Ftp => AppProto::Ftp,
                });
            }
            Pending::RedisInline if m::resp_reply(p) => return Some(AppProto::Redis),
            _ => {}
        }
        if let Some(side) = m::teamviewer_tcp(p) {
            match (side, self.pending) {
                (TvSide::Client, Pending::TeamviewerServer)
                | (TvSide::Server, Pending::TeamviewerClient) => return Some(AppProto::Teamviewer),
                (TvSide::Client, _) => self.pending = Pending::TeamviewerClient,
                (TvSide::Server, _) => self.pending = Pending::TeamviewerServer,
            }
            return None;
        }
        if !text {
            return None;
        }
        match m::greeting(p) {
            Some(Greeting::Code220 {
                says_smtp,
                says_ftp,
            }) => {
                if says_smtp {
                    return Some(AppProto::Smtp);
                }
                if says_ftp {
                    return Some(AppProto::Ftp);
                }
                // Both SMTP and FTP open with 220: the well-known port may
                // break the tie; otherwise the client's first command will.
                let has = |port: u16| ports.0 == port || ports.1 == port;
                if [25, 465, 587, 2525].into_iter().any(has) {
                    return Some(AppProto::Smtp);
                }
                if [21, 990].into_iter().any(has) {
                    return Some(AppProto::Ftp);
                }
                self.pending = Pending::Greeting220;
                return None;
            }
            // "+OK" is also a Redis reply: only a greeting when it comes
            // before anything from the other side.
            Some(Greeting::PopOk) if !other_spoke => return Some(AppProto::Pop3),
            Some(Greeting::ImapOk) => return Some(AppProto::Imap),
            _ => {}
        }
        // A client whose greeting was not captured: EHLO/HELO is SMTP alone.
        if m::command_after_220(p) == Some(MailOrFtp::Smtp) {
            return Some(AppProto::Smtp);
        }
        if m::redis_inline(p) {
            self.pending = Pending::RedisInline;
        }
        None
    }
}

impl ProtoState {
    /// UDP matchers, in [`UDP_MATCHERS`] order, then the mid-session shapes
    /// that need both directions.
    fn classify_udp(&mut self, dir: Dir, p: &[u8]) -> Option<AppProto> {
        if let Some(proto) = first_hit(&UDP_MATCHERS, p) {
            return Some(proto);
        }
        if m::wireguard_data(p) {
            let (mine, theirs) = match dir {
                Dir::ToServer => (Pending::WireguardToServer, Pending::WireguardToClient),
                Dir::ToClient => (Pending::WireguardToClient, Pending::WireguardToServer),
            };
            if self.pending == theirs {
                return Some(AppProto::Wireguard);
            }
            self.pending = mine;
        }
        None
    }
}

/// A matcher and the verdict it gives.
type Matcher = (fn(&[u8]) -> bool, AppProto);

/// The first matcher that accepts `p`; later ones are not run.
fn first_hit(matchers: &[Matcher], p: &[u8]) -> Option<AppProto> {
    matchers
        .iter()
        .find(|(hit, _)| hit(p))
        .map(|&(_, proto)| proto)
}

/// TCP matchers with fixed structure, tried after SSH, TLS and HTTP and
/// before the text protocols whose verdict may need the other direction.
/// The order only matters for speed: the tests check that every real first
/// message in the corpus is accepted by one matcher alone.
const TCP_STRUCTURAL: [Matcher; 14] = [
    (m::rfb, AppProto::Vnc),
    (m::rdp_tcp, AppProto::Rdp),
    (m::smb, AppProto::Smb),
    (m::dcerpc, AppProto::Dcerpc),
    (|p| m::kerberos(p, true), AppProto::Kerberos),
    (m::ldap, AppProto::Ldap),
    (|p| m::openvpn(p, true), AppProto::Openvpn),
    (|p| m::dns(p, true), AppProto::Dns),
    (m::tds, AppProto::Mssql),
    (m::mysql_greeting, AppProto::Mysql),
    (
        |p| m::postgres_startup(p) || m::postgres_auth(p),
        AppProto::Postgresql,
    ),
    (
        |p| m::bittorrent(p) || m::bittorrent_extended(p),
        AppProto::Bittorrent,
    ),
    (m::telnet, AppProto::Telnet),
    (m::resp_array, AppProto::Redis),
];

/// UDP matchers: each datagram is a whole message, so every matcher checks
/// lengths against the datagram.
const UDP_MATCHERS: [Matcher; 13] = [
    (|p| m::dns(p, false), AppProto::Dns),
    (m::ntp, AppProto::Ntp),
    (m::snmp, AppProto::Snmp),
    (|p| m::kerberos(p, false), AppProto::Kerberos),
    (m::ldap, AppProto::Ldap),
    (m::ike, AppProto::Ike),
    (m::quic, AppProto::Quic),
    (m::wireguard, AppProto::Wireguard),
    (|p| m::openvpn(p, false), AppProto::Openvpn),
    (m::rdp_udp, AppProto::Rdp),
    (m::rdp_udp_data, AppProto::Rdp),
    (m::bittorrent_dht, AppProto::BittorrentDht),
    (m::teamviewer_udp, AppProto::Teamviewer),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wireguard_data_needs_both_directions() {
        // Type 4, reserved zero, receiver index, counter 7, 16 bytes sealed.
        let mut data = [0u8; 32];
        data[0] = 4;
        data[4] = 0x2a;
        data[8] = 7;
        let mut st = ProtoState::new();
        assert_eq!(st.observe(Dir::ToServer, UDP, &data, (40000, 51820)), None);
        assert_eq!(st.observe(Dir::ToServer, UDP, &data, (40000, 51820)), None);
        assert_eq!(
            st.observe(Dir::ToClient, UDP, &data, (51820, 40000)),
            Some(AppProto::Wireguard)
        );
    }

    #[test]
    fn four_bytes() {
        assert_eq!(std::mem::size_of::<ProtoState>(), 4);
    }

    #[test]
    fn smtp_and_ftp_share_220_and_the_client_decides() {
        let mut st = ProtoState::new();
        assert_eq!(
            st.observe(Dir::ToClient, TCP, b"220 host ready\r\n", (2121, 40000)),
            None
        );
        assert_eq!(
            st.observe(Dir::ToServer, TCP, b"EHLO me\r\n", (40000, 2121)),
            Some(AppProto::Smtp)
        );
        let mut st = ProtoState::new();
        assert_eq!(
            st.observe(Dir::ToClient, TCP, b"220 host ready\r\n", (2121, 40000)),
            None
        );
        assert_eq!(
            st.observe(Dir::ToServer, TCP, b"USER anonymous\r\n", (40000, 2121)),
            Some(AppProto::Ftp)
        );
        // The port breaks the tie when the text does not.
        let mut st = ProtoState::new();
        assert_eq!(
            st.observe(Dir::ToClient, TCP, b"220 host ready\r\n", (21, 40000)),
            Some(AppProto::Ftp)
        );
    }

    #[test]
    fn connect_tunnel_is_followed_and_starttls_is_noted() {
        let mut st = ProtoState::new();
        let c = b"CONNECT mail.example:25 HTTP/1.1\r\nHost: mail.example:25\r\n\r\n";
        assert_eq!(
            st.observe(Dir::ToServer, TCP, c, (5000, 8240)),
            Some(AppProto::Http)
        );
        assert!(!st.is_done());
        assert_eq!(
            st.observe(
                Dir::ToClient,
                TCP,
                b"HTTP/1.0 200 Connection established\r\n\r\n",
                (8240, 5000)
            ),
            None
        );
        assert_eq!(
            st.observe(
                Dir::ToClient,
                TCP,
                b"220 mx.example ESMTP\r\n",
                (8240, 5000)
            ),
            Some(AppProto::Smtp)
        );
        assert_eq!(
            st.observe(Dir::ToServer, TCP, b"STARTTLS\r\n", (5000, 8240)),
            None
        );
        let hello = [0x16, 3, 1, 0, 0x40, 1, 0, 0, 0x3c, 3, 3, 0, 0];
        assert_eq!(st.observe(Dir::ToServer, TCP, &hello, (5000, 8240)), None);
        assert_eq!(st.verdict(), AppProto::Smtp);
        assert!(st.tls_inside());
        assert!(st.is_done());
    }

    #[test]
    fn budget_ends_inspection() {
        let mut st = ProtoState::new();
        for _ in 0..PACKET_BUDGET {
            st.observe(Dir::ToServer, TCP, b"noise", (1, 2));
            st.observe(Dir::ToClient, TCP, b"noise", (2, 1));
        }
        assert!(st.is_done());
        assert_eq!(
            st.observe(Dir::ToServer, TCP, b"SSH-2.0-x\r\n", (1, 2)),
            None
        );
        assert_eq!(st.verdict(), AppProto::Unknown);
    }

    #[test]
    fn esp_is_ipsec_and_icmp_is_never_inspected() {
        let mut st = ProtoState::new();
        assert_eq!(
            st.observe(Dir::ToServer, crate::ESP, &[0; 16], (0, 0)),
            Some(AppProto::Ipsec)
        );
        assert!(st.is_done());
        let mut st = ProtoState::new();
        assert_eq!(st.observe(Dir::ToServer, 1, b"SSH-2.0-x\r\n", (0, 0)), None);
        assert!(st.is_done());
    }

    #[test]
    fn two_sided_candidates_need_the_other_side() {
        // A Redis inline command is confirmed by a RESP reply, not alone.
        let mut st = ProtoState::new();
        let cmd = b"SET sanity_check you_are_sane\r\n";
        assert_eq!(st.observe(Dir::ToServer, TCP, cmd, (60838, 6379)), None);
        assert_eq!(
            st.observe(Dir::ToClient, TCP, b"+OK\r\n", (6379, 60838)),
            Some(AppProto::Redis)
        );
        // "+OK" after the client spoke is not a POP3 greeting.
        let mut st = ProtoState::new();
        assert_eq!(st.observe(Dir::ToServer, TCP, b"hello\r\n", (1, 2)), None);
        assert_eq!(st.observe(Dir::ToClient, TCP, b"+OK\r\n", (2, 1)), None);
        // TeamViewer needs both magics.
        let mut st = ProtoState::new();
        assert_eq!(
            st.observe(Dir::ToServer, TCP, &[0x17, 0x24, 0x0a, 0x20], (35732, 5938)),
            None
        );
        assert_eq!(
            st.observe(Dir::ToClient, TCP, &[0x11, 0x30, 0x36, 0x00], (5938, 35732)),
            Some(AppProto::Teamviewer)
        );
    }

    #[test]
    fn winrm_is_http_to_wsman_and_ports_alone_name_nothing() {
        let mut st = ProtoState::new();
        let req = b"POST /wsman HTTP/1.1\r\nHost: dc:5985\r\n\r\n";
        assert_eq!(
            st.observe(Dir::ToServer, TCP, req, (50000, 5985)),
            Some(AppProto::Winrm)
        );
        // Noise on well-known ports stays unknown.
        for port in [22, 25, 53, 80, 88, 389, 443, 445, 3389, 5900] {
            let mut st = ProtoState::new();
            st.observe(Dir::ToServer, TCP, b"\x01\x02\x03 noise", (50000, port));
            st.observe(Dir::ToClient, UDP, b"\x01\x02\x03 noise", (port, 50000));
            assert_eq!(st.verdict(), AppProto::Unknown, "port {port}");
        }
    }
}
