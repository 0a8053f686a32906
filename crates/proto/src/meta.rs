//! Bounded metadata from a flow's first messages: what the analysts read
//! (TLS SNI and ALPN, SSH banners, HTTP host, user agent and server, mail
//! and FTP greetings). Fixed-capacity text, truncated, no allocation.

use crate::bytes::{be16, first_line, starts_with_ci, u8_at};
use crate::matchers;
use crate::{AppProto, Dir};

/// Capacity of one [`MetaText`] in bytes; longer values are truncated.
pub const META_TEXT_MAX: usize = 64;

/// Up to [`META_TEXT_MAX`] bytes of text, held inline. Bytes are kept as
/// they came (they may not be UTF-8); [`MetaText::to_lossy`] escapes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetaText {
    len: u8,
    buf: [u8; META_TEXT_MAX],
}

impl Default for MetaText {
    fn default() -> Self {
        MetaText {
            len: 0,
            buf: [0; META_TEXT_MAX],
        }
    }
}

impl MetaText {
    /// Text from `bytes`, truncated to [`META_TEXT_MAX`].
    pub fn new(bytes: &[u8]) -> Self {
        let mut t = MetaText::default();
        t.push(bytes);
        t
    }

    /// Appends as much of `bytes` as fits; returns true when all of it did.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        let start = usize::from(self.len);
        let room = META_TEXT_MAX.saturating_sub(start);
        let take = bytes.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(start..start + take), bytes.get(..take)) {
            dst.copy_from_slice(src);
            // take <= META_TEXT_MAX - start, so the sum fits the u8 capacity.
            self.len = (start + take) as u8;
        }
        take == bytes.len()
    }

    /// The bytes held.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The text, with bytes outside printable ASCII replaced by `?`.
    pub fn to_lossy(&self) -> String {
        self.as_bytes()
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '?'
                }
            })
            .collect()
    }
}

impl std::fmt::Debug for MetaText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_lossy())
    }
}

/// What one first message says, by protocol:
///
/// | protocol | `host` | `software` | `alpn` |
/// | --- | --- | --- | --- |
/// | tls (ClientHello) | SNI | | offered ALPN ids, comma-separated |
/// | tls (ServerHello) | | | the chosen ALPN id (TLS 1.2; 1.3 hides it) |
/// | ssh | | the identification line | |
/// | http, winrm (request) | `Host` | `User-Agent` | |
/// | http, winrm (response) | | `Server` | |
/// | smtp, ftp, pop3, imap (greeting) | SMTP/FTP: the first word after 220 | the greeting text | |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// A name of the server (see the table).
    pub host: MetaText,
    /// A software banner (see the table).
    pub software: MetaText,
    /// TLS ALPN protocol ids.
    pub alpn: MetaText,
}

impl Meta {
    fn is_empty(&self) -> bool {
        self.host.is_empty() && self.software.is_empty() && self.alpn.is_empty()
    }
}

/// Metadata from the first message `payload` of direction `dir` of a flow
/// identified as `proto`; `None` when the message carries none of it.
/// Reads at most the one payload given; never allocates.
pub fn first_message_meta(proto: AppProto, dir: Dir, payload: &[u8]) -> Option<Meta> {
    let mut meta = Meta::default();
    match proto {
        AppProto::Tls | AppProto::Tor | AppProto::Anydesk => tls_hello_meta(payload, &mut meta),
        AppProto::Ssh if matchers::ssh(payload) => {
            let line = first_line(payload, 255).unwrap_or(payload);
            meta.software = MetaText::new(line);
        }
        AppProto::Http | AppProto::Winrm => http_meta(payload, &mut meta),
        AppProto::Smtp | AppProto::Ftp | AppProto::Pop3 | AppProto::Imap
            if dir == Dir::ToClient =>
        {
            greeting_meta(payload, &mut meta)
        }
        _ => {}
    }
    (!meta.is_empty()).then_some(meta)
}

/// HTTP header fields (RFC 9110, RFC 9112 section 5) of the first message:
/// `Host` and `User-Agent` of a request, `Server` of a response. Looks only
/// at the header lines present in this payload.
fn http_meta(p: &[u8], meta: &mut Meta) {
    let response = matchers::http_response(p);
    let head_end = crate::bytes::find(p, b"\r\n\r\n").unwrap_or(p.len());
    let head = p.get(..head_end).unwrap_or(p);
    for line in head.split(|&b| b == b'\n').skip(1).take(64) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let value = |name: &[u8]| -> Option<&[u8]> {
            if !starts_with_ci(line, name) || u8_at(line, name.len()) != Some(b':') {
                return None;
            }
            Some(trim(line.get(name.len() + 1..).unwrap_or_default()))
        };
        if response {
            if let Some(v) = value(b"Server") {
                meta.software = MetaText::new(v);
            }
        } else if let Some(v) = value(b"Host") {
            meta.host = MetaText::new(v);
        } else if let Some(v) = value(b"User-Agent") {
            meta.software = MetaText::new(v);
        }
    }
}

/// A mail or FTP greeting line; for `220` the first word is the host name
/// (RFC 5321 section 4.2: `220 domain text`).
fn greeting_meta(p: &[u8], meta: &mut Meta) {
    let Some(line) = first_line(p, 512) else {
        return;
    };
    if matchers::greeting(p).is_none() {
        return;
    }
    if let Some(rest) = line.get(4..).filter(|_| line.starts_with(b"220")) {
        let host = rest.split(|&b| b == b' ').next().unwrap_or_default();
        meta.host = MetaText::new(host);
    }
    meta.software = MetaText::new(line);
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

/// SNI and ALPN from a ClientHello, ALPN from a ServerHello (RFC 8446
/// section 4.1.2 and 4.1.3; server_name RFC 6066 section 3; ALPN RFC 7301
/// section 3.1). Reads the extensions present in this one record; a hello
/// split over segments yields what its first segment holds.
fn tls_hello_meta(p: &[u8], meta: &mut Meta) {
    if !matchers::tls_hello(p) {
        return;
    }
    let client = u8_at(p, 5) == Some(1);
    // Record header 5, handshake header 4, version 2, random 32.
    let mut at = 5 + 4 + 2 + 32;
    let Some(sid) = u8_at(p, at) else {
        return;
    };
    at += 1 + usize::from(sid);
    if client {
        let Some(suites) = be16(p, at) else {
            return;
        };
        at += 2 + usize::from(suites);
        let Some(comp) = u8_at(p, at) else {
            return;
        };
        at += 1 + usize::from(comp);
    } else {
        at += 2 + 1; // cipher suite, compression method
    }
    let Some(ext_len) = be16(p, at) else {
        return;
    };
    at += 2;
    let end = (at + usize::from(ext_len)).min(p.len());
    // At most 64 extensions: a hello has a few dozen.
    for _ in 0..64 {
        let (Some(ty), Some(len)) = (be16(p, at), be16(p, at + 2)) else {
            return;
        };
        let body_at = at + 4;
        let body_end = body_at + usize::from(len);
        if body_end > end {
            return;
        }
        let body = p.get(body_at..body_end).unwrap_or_default();
        match ty {
            // server_name_list: list length, then (type 0 = host_name, length, name).
            0 if client && u8_at(body, 2) == Some(0) => {
                let name = be16(body, 3).and_then(|n| body.get(5..5 + usize::from(n)));
                if let Some(name) = name {
                    meta.host = MetaText::new(name);
                }
            }
            16 => {
                // protocol_name_list: list length, then (length, id)*.
                let mut i = 2usize;
                for _ in 0..16 {
                    let Some(l) = u8_at(body, i) else { break };
                    let Some(id) = body.get(i + 1..i + 1 + usize::from(l)) else {
                        break;
                    };
                    if !meta.alpn.is_empty() {
                        meta.alpn.push(b",");
                    }
                    meta.alpn.push(id);
                    i += 1 + usize::from(l);
                }
            }
            _ => {}
        }
        at = body_end;
        if at >= end {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_truncates() {
        let t = MetaText::new(&[b'a'; 100]);
        assert_eq!(t.as_bytes().len(), META_TEXT_MAX);
        let mut t = MetaText::new(b"h2");
        assert!(t.push(b",http/1.1"));
        assert_eq!(t.as_bytes(), b"h2,http/1.1");
    }

    #[test]
    fn http_request_and_response() {
        let req = b"GET / HTTP/1.1\r\nHost: www.google.com\r\nUser-Agent: curl/7.64.0\r\nAccept: */*\r\n\r\n";
        let m = first_message_meta(AppProto::Http, Dir::ToServer, req).unwrap();
        assert_eq!(m.host.as_bytes(), b"www.google.com");
        assert_eq!(m.software.as_bytes(), b"curl/7.64.0");
        let resp = b"HTTP/1.1 200 OK\r\nServer: gws\r\n\r\n";
        let m = first_message_meta(AppProto::Http, Dir::ToClient, resp).unwrap();
        assert_eq!(m.software.as_bytes(), b"gws");
        assert!(m.host.is_empty());
    }

    #[test]
    fn ssh_and_smtp_banners() {
        let m = first_message_meta(
            AppProto::Ssh,
            Dir::ToClient,
            b"SSH-2.0-APACHE-SSHD-2.5.0\r\n",
        )
        .unwrap();
        assert_eq!(m.software.as_bytes(), b"SSH-2.0-APACHE-SSHD-2.5.0");
        let m = first_message_meta(
            AppProto::Smtp,
            Dir::ToClient,
            b"220 mx.example.org ESMTP Postfix\r\n",
        )
        .unwrap();
        assert_eq!(m.host.as_bytes(), b"mx.example.org");
        assert_eq!(m.software.as_bytes(), b"220 mx.example.org ESMTP Postfix");
        assert!(first_message_meta(AppProto::Smtp, Dir::ToServer, b"EHLO x\r\n").is_none());
        assert!(first_message_meta(AppProto::Dns, Dir::ToServer, b"anything").is_none());
    }
}
