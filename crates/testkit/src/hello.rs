//! First messages of application protocols, byte for byte as real clients
//! and servers send them, so generated sessions can be recognised by their
//! opening bytes (protocol identification) and not only by their ports.
//!
//! Each builder returns the TCP (or UDP) payload of one message. Random
//! fields (TLS randoms, GUIDs) come from a caller's `seed` so the bytes stay
//! reproducible. The messages are well formed but minimal: enough fields for
//! a parser to identify the protocol and read its names (SNI, Host, banner
//! software, SMB dialects), not a full implementation of any of them.

/// Sixteen or more deterministic pseudo-random bytes from `seed` (used for
/// TLS randoms, session ids and GUIDs; SplitMix64 steps, so no state).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    out.truncate(n);
    out
}

fn u16be(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&(x as u16).to_be_bytes());
}

fn u24be(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&(x as u32).to_be_bytes()[1..]);
}

/// One TLS extension: type, length, body.
fn tls_ext(out: &mut Vec<u8>, ty: u16, body: &[u8]) {
    out.extend_from_slice(&ty.to_be_bytes());
    u16be(out, body.len());
    out.extend_from_slice(body);
}

/// Wraps a handshake message of type `hs_type` in its handshake header and
/// one TLS record (record version 3.1, as TLS 1.3 clients still write).
fn tls_record(hs_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    out.extend_from_slice(&[0x16, 0x03, 0x01]);
    u16be(&mut out, body.len() + 4);
    out.push(hs_type);
    u24be(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// A TLS 1.3 ClientHello record naming `sni` in its server_name extension,
/// offering TLS 1.3 and 1.2, X25519, ALPN `h2`/`http/1.1` and a key share.
pub fn tls_client_hello(sni: &str, seed: u64) -> Vec<u8> {
    let rnd = noise(seed, 32 + 32 + 32);
    let mut b = Vec::with_capacity(300 + sni.len());
    b.extend_from_slice(&[0x03, 0x03]); // legacy_version TLS 1.2
    b.extend_from_slice(&rnd[..32]); // random
    b.push(32); // legacy_session_id, as middlebox-compatible clients send
    b.extend_from_slice(&rnd[32..64]);
    let suites: [u16; 6] = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc030];
    u16be(&mut b, suites.len() * 2);
    for s in suites {
        b.extend_from_slice(&s.to_be_bytes());
    }
    b.extend_from_slice(&[1, 0]); // compression: null only
    let mut ext = Vec::with_capacity(200 + sni.len());
    // server_name: list length, type host_name (0), name length, name.
    let mut sn = Vec::with_capacity(sni.len() + 5);
    u16be(&mut sn, sni.len() + 3);
    sn.push(0);
    u16be(&mut sn, sni.len());
    sn.extend_from_slice(sni.as_bytes());
    tls_ext(&mut ext, 0x0000, &sn);
    tls_ext(
        &mut ext,
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    ); // groups
    tls_ext(
        &mut ext,
        0x000d,
        &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01],
    ); // sig algs
    tls_ext(
        &mut ext,
        0x0010,
        b"\x00\x0c\x02h2\x08http/1.1", // ALPN
    );
    tls_ext(&mut ext, 0x002b, &[4, 0x03, 0x04, 0x03, 0x03]); // supported_versions
    let mut ks = Vec::with_capacity(38);
    u16be(&mut ks, 36);
    ks.extend_from_slice(&[0x00, 0x1d, 0x00, 0x20]); // x25519, 32 bytes
    ks.extend_from_slice(&rnd[64..96]);
    tls_ext(&mut ext, 0x0033, &ks);
    u16be(&mut b, ext.len());
    b.extend_from_slice(&ext);
    tls_record(1, &b)
}

/// A TLS 1.3 ServerHello record (TLS_AES_128_GCM_SHA256, X25519 key share);
/// the encrypted rest of the server's flight is bulk data.
pub fn tls_server_hello(seed: u64) -> Vec<u8> {
    let rnd = noise(seed ^ 0x5e, 96);
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(&[0x03, 0x03]);
    b.extend_from_slice(&rnd[..32]);
    b.push(32);
    b.extend_from_slice(&rnd[32..64]);
    b.extend_from_slice(&0x1301u16.to_be_bytes());
    b.push(0);
    let mut ext = Vec::with_capacity(48);
    tls_ext(&mut ext, 0x002b, &[0x03, 0x04]);
    let mut ks = Vec::with_capacity(36);
    ks.extend_from_slice(&[0x00, 0x1d, 0x00, 0x20]);
    ks.extend_from_slice(&rnd[64..96]);
    tls_ext(&mut ext, 0x0033, &ks);
    u16be(&mut b, ext.len());
    b.extend_from_slice(&ext);
    tls_record(2, &b)
}

/// An SMB2 header (64 bytes) for `command` with `message_id`; `response`
/// sets SMB2_FLAGS_SERVER_TO_REDIR.
fn smb2_header(command: u16, message_id: u64, response: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(64);
    h.extend_from_slice(b"\xfeSMB");
    h.extend_from_slice(&64u16.to_le_bytes()); // StructureSize
    h.extend_from_slice(&0u16.to_le_bytes()); // CreditCharge
    h.extend_from_slice(&0u32.to_le_bytes()); // Status
    h.extend_from_slice(&command.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // Credits
    h.extend_from_slice(&u32::from(response).to_le_bytes()); // Flags
    h.extend_from_slice(&0u32.to_le_bytes()); // NextCommand
    h.extend_from_slice(&message_id.to_le_bytes());
    h.extend_from_slice(&[0; 4]); // Reserved
    h.extend_from_slice(&[0; 4]); // TreeId
    h.extend_from_slice(&[0; 8]); // SessionId
    h.extend_from_slice(&[0; 16]); // Signature
    h
}

/// Prefixes an SMB2 message with its NetBIOS session service header
/// (type 0, 24-bit length), as SMB over TCP 445 carries it.
fn netbios(msg: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 4);
    out.push(0);
    u24be(&mut out, msg.len());
    out.extend(msg);
    out
}

/// The SMB2 dialects a current Windows client offers: 2.0.2 to 3.1.1.
const SMB2_DIALECTS: [u16; 5] = [0x0202, 0x0210, 0x0300, 0x0302, 0x0311];

/// An SMB2 NEGOTIATE request over TCP 445 offering dialects 2.0.2 to 3.1.1
/// (no negotiate contexts: enough to identify SMB2 and its dialects).
pub fn smb2_negotiate_request(seed: u64) -> Vec<u8> {
    let mut m = smb2_header(0, 0, false);
    m.extend_from_slice(&36u16.to_le_bytes()); // StructureSize
    m.extend_from_slice(&(SMB2_DIALECTS.len() as u16).to_le_bytes());
    m.extend_from_slice(&1u16.to_le_bytes()); // SecurityMode: signing enabled
    m.extend_from_slice(&[0, 0]); // Reserved
    m.extend_from_slice(&0x7fu32.to_le_bytes()); // Capabilities
    m.extend_from_slice(&noise(seed, 16)); // ClientGuid
    m.extend_from_slice(&[0; 8]); // NegotiateContextOffset/Count, Reserved2
    for d in SMB2_DIALECTS {
        m.extend_from_slice(&d.to_le_bytes());
    }
    netbios(m)
}

/// The SMB2 NEGOTIATE response choosing dialect 3.0.2 (8 MiB maximum reads
/// and writes, no security blob).
pub fn smb2_negotiate_response(seed: u64) -> Vec<u8> {
    let mut m = smb2_header(0, 0, true);
    m.extend_from_slice(&65u16.to_le_bytes()); // StructureSize
    m.extend_from_slice(&1u16.to_le_bytes()); // SecurityMode
    m.extend_from_slice(&0x0302u16.to_le_bytes()); // DialectRevision
    m.extend_from_slice(&[0, 0]); // NegotiateContextCount
    m.extend_from_slice(&noise(seed ^ 0x5b, 16)); // ServerGuid
    m.extend_from_slice(&0x2fu32.to_le_bytes()); // Capabilities
    for _ in 0..3 {
        m.extend_from_slice(&(8u32 << 20).to_le_bytes()); // MaxTransact/Read/Write
    }
    m.extend_from_slice(&[0; 16]); // SystemTime, ServerStartTime
    m.extend_from_slice(&128u16.to_le_bytes()); // SecurityBufferOffset
    m.extend_from_slice(&0u16.to_le_bytes()); // SecurityBufferLength
    m.extend_from_slice(&[0; 4]); // NegotiateContextOffset
    netbios(m)
}

/// An SSH identification line (RFC 4253 4.2), e.g.
/// `ssh_banner("OpenSSH_9.6p1 Ubuntu-3ubuntu13")`.
pub fn ssh_banner(software: &str) -> Vec<u8> {
    format!("SSH-2.0-{software}\r\n").into_bytes()
}

/// An HTTP/1.1 request head: request line, Host, User-Agent, an empty line.
pub fn http_request(method: &str, host: &str, path: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

/// An HTTP/1.1 response head: status line, Content-Type, Content-Length.
pub fn http_response(status: u16, reason: &str, content_length: u64) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nServer: nginx\r\nContent-Type: application/octet-stream\r\nContent-Length: {content_length}\r\n\r\n"
    )
    .into_bytes()
}

/// An SMTP server greeting (`220 host ESMTP`).
pub fn smtp_greeting(host: &str) -> Vec<u8> {
    format!("220 {host} ESMTP Postfix\r\n").into_bytes()
}

/// An SMTP client's EHLO.
pub fn smtp_ehlo(host: &str) -> Vec<u8> {
    format!("EHLO {host}\r\n").into_bytes()
}

/// A RDP connection request (TPKT, X.224 CR, RDP negotiation request for
/// TLS and CredSSP), the first bytes a remote-desktop client sends.
pub fn rdp_connection_request(user: &str) -> Vec<u8> {
    let cookie = format!("Cookie: mstshash={user}\r\n");
    // X.224 CR TPDU: length indicator, CR code, dst ref, src ref, class.
    let mut x224 = vec![0u8, 0xe0, 0, 0, 0, 0, 0];
    x224.extend_from_slice(cookie.as_bytes());
    x224.extend_from_slice(&[0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00]);
    x224[0] = (x224.len() - 1) as u8;
    let mut out = vec![0x03, 0x00];
    u16be(&mut out, x224.len() + 4);
    out.extend(x224);
    out
}

/// A WireGuard handshake initiation (type 1, 148 bytes) from `sender`.
pub fn wireguard_initiation(sender: u32, seed: u64) -> Vec<u8> {
    let mut m = vec![1, 0, 0, 0];
    m.extend_from_slice(&sender.to_le_bytes());
    m.extend_from_slice(&noise(seed, 140));
    m
}

/// A WireGuard handshake response (type 2, 92 bytes).
pub fn wireguard_response(sender: u32, receiver: u32, seed: u64) -> Vec<u8> {
    let mut m = vec![2, 0, 0, 0];
    m.extend_from_slice(&sender.to_le_bytes());
    m.extend_from_slice(&receiver.to_le_bytes());
    m.extend_from_slice(&noise(seed ^ 0x3c, 80));
    m
}

/// The header of a WireGuard transport data message (type 4): receiver
/// index and counter; the encrypted packet follows.
pub fn wireguard_data_header(receiver: u32, counter: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0] = 4;
    h[4..8].copy_from_slice(&receiver.to_le_bytes());
    h[8..16].copy_from_slice(&counter.to_le_bytes());
    h
}

/// An RTP header (version 2, dynamic payload type 96 for video, 111 for
/// Opus audio) as video-call media carry it over UDP.
pub fn rtp_header(payload_type: u8, seq: u16, timestamp: u32, ssrc: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = 0x80;
    h[1] = payload_type & 0x7f;
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&timestamp.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

/// An IPP print job's HTTP head (POST /ipp/print), as printers on 631 see.
pub fn ipp_request(printer: &str) -> Vec<u8> {
    format!(
        "POST /ipp/print HTTP/1.1\r\nHost: {printer}:631\r\nContent-Type: application/ipp\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes()
}

/// The first bytes of an OpenVPN data packet (P_DATA_V2, key id 0): the
/// opcode byte, the 24-bit peer id and the packet id.
pub fn openvpn_data_header(peer: u32, packet_id: u32) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0] = 9 << 3;
    h[1..4].copy_from_slice(&peer.to_be_bytes()[1..]);
    h[4..8].copy_from_slice(&packet_id.to_be_bytes());
    h
}

/// An OpenVPN P_CONTROL_HARD_RESET (V2) over UDP: opcode 7 from the client,
/// 8 from the server, the sender's session id, an empty ack array and
/// message packet id 0.
pub fn openvpn_hard_reset(client: bool, session_id: u64) -> Vec<u8> {
    let opcode: u8 = if client { 7 } else { 8 };
    let mut m = vec![opcode << 3];
    m.extend_from_slice(&session_id.to_be_bytes());
    m.push(0); // ack array length
    m.extend_from_slice(&0u32.to_be_bytes()); // message packet id
    m
}

/// An IKEv2 IKE_SA_INIT header (exchange 34) on UDP 500 with an empty body:
/// initiator SPI, responder SPI (zero in the request), version 2.0 and the
/// response flag.
pub fn ike_sa_init(spi_i: u64, spi_r: u64, response: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(28);
    m.extend_from_slice(&spi_i.to_be_bytes());
    m.extend_from_slice(&(if response { spi_r } else { 0 }).to_be_bytes());
    m.push(0); // next payload: none
    m.push(0x20); // version 2.0
    m.push(34); // IKE_SA_INIT
    m.push(if response { 0x20 } else { 0x08 }); // response / initiator flag
    m.extend_from_slice(&0u32.to_be_bytes()); // message id
    m.extend_from_slice(&28u32.to_be_bytes()); // length
    m
}

/// The RDP server's answer to [`rdp_connection_request`]: TPKT, X.224
/// connection confirm and an RDP negotiation response selecting CredSSP
/// (MS-RDPBCGR 2.2.1.2).
pub fn rdp_connection_confirm() -> Vec<u8> {
    // LI 14: CC code, dst ref, src ref, class 0, then RDP_NEG_RSP (type 2,
    // flags, length 8, selected protocol PROTOCOL_HYBRID).
    let mut m = vec![
        0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00,
    ];
    m.extend_from_slice(&[0x02, 0x1f, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00]);
    m
}

/// The RFB ProtocolVersion message both VNC sides send first (RFC 6143
/// 7.1.1): `RFB 003.008\n`, the server before the client.
pub fn rfb_version() -> Vec<u8> {
    b"RFB 003.008\n".to_vec()
}

/// A Telnet side's opening option negotiation (RFC 854/855): the server
/// asks for the terminal type, speed, X display and environment (IAC DO
/// ...), the client offers them (IAC WILL ...).
pub fn telnet_negotiation(server: bool) -> Vec<u8> {
    let verb = if server { 0xfd } else { 0xfb };
    [0x18, 0x20, 0x23, 0x27]
        .iter()
        .flat_map(|&opt| [0xff, verb, opt])
        .collect()
}

/// A WinRM request head (MS-WSMV over HTTP): `POST /wsman` with a SOAP
/// body of `content_length` bytes to follow.
pub fn winrm_request(host: &str, content_length: u64) -> Vec<u8> {
    format!(
        "POST /wsman HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nUser-Agent: Microsoft WinRM Client\r\nContent-Length: {content_length}\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_lengths_agree_and_name_the_server() {
        let m = tls_client_hello("cloud.example.com", 3);
        assert_eq!(m[0], 0x16);
        let rec = usize::from(u16::from_be_bytes([m[3], m[4]]));
        assert_eq!(rec + 5, m.len());
        assert_eq!(m[5], 1);
        let hs = u32::from_be_bytes([0, m[6], m[7], m[8]]) as usize;
        assert_eq!(hs + 4, rec);
        let hay = m.windows(17).any(|w| w == b"cloud.example.com");
        assert!(hay);
        assert_eq!(tls_client_hello("a.b", 3), tls_client_hello("a.b", 3));
        assert_ne!(tls_client_hello("a.b", 3), tls_client_hello("a.b", 4));
    }

    #[test]
    fn smb2_messages_carry_their_netbios_length() {
        for m in [smb2_negotiate_request(1), smb2_negotiate_response(1)] {
            let len = u32::from_be_bytes([0, m[1], m[2], m[3]]) as usize;
            assert_eq!(len + 4, m.len());
            assert_eq!(&m[4..8], b"\xfeSMB");
        }
        assert_eq!(smb2_negotiate_request(1).len(), 4 + 64 + 36 + 10);
    }

    #[test]
    fn rdp_confirm_telnet_and_rfb_shapes() {
        let m = rdp_connection_confirm();
        assert_eq!(usize::from(u16::from_be_bytes([m[2], m[3]])), m.len());
        assert_eq!(usize::from(m[4]) + 5, m.len());
        assert_eq!(rfb_version().len(), 12);
        assert_eq!(telnet_negotiation(true)[..3], [0xff, 0xfd, 0x18]);
        assert!(winrm_request("h", 10).starts_with(b"POST /wsman HTTP/1.1\r\n"));
    }

    #[test]
    fn rdp_request_tpkt_length() {
        let m = rdp_connection_request("admin");
        assert_eq!(usize::from(u16::from_be_bytes([m[2], m[3]])), m.len());
        assert_eq!(usize::from(m[4]) + 5, m.len());
    }
}
