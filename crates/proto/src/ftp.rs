//! FTP data connections: the control connection announces where the next
//! data connection will go, and only that announcement can name it (its
//! bytes are whatever file is sent). RFC 959 `PORT` and the `227` reply to
//! `PASV`; RFC 2428 `EPRT` and the `229` reply to `EPSV`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bytes::{find, first_line, starts_with_ci};
use crate::Dir;

/// Where an FTP data connection announced on a control connection will
/// be accepted: the responder of the data flow to come. `addr` is `None`
/// when the announcement gives only a port (`229`): the control
/// connection's server is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataEndpoint {
    /// The address, when the message names one.
    pub addr: Option<IpAddr>,
    /// The port.
    pub port: u16,
}

/// The data endpoint a control-connection message announces, if it is one
/// of `PORT`, `EPRT` (client) or `227`, `229` (server). Reads one line of
/// at most 256 bytes; never allocates.
pub fn ftp_data_endpoint(dir: Dir, payload: &[u8]) -> Option<DataEndpoint> {
    let line = first_line(payload, 256)?;
    match dir {
        Dir::ToServer if starts_with_ci(line, b"PORT ") => {
            six_numbers(line.get(5..)?).map(|(addr, port)| DataEndpoint {
                addr: Some(IpAddr::V4(addr)),
                port,
            })
        }
        Dir::ToServer if starts_with_ci(line, b"EPRT ") => eprt(line.get(5..)?),
        Dir::ToClient if line.starts_with(b"227") => {
            // "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)": the numbers
            // follow the first '(' (RFC 959 allows the text to vary; the
            // parenthesis is what servers send and clients parse).
            let open = find(line, b"(")?;
            six_numbers(line.get(open + 1..)?).map(|(addr, port)| DataEndpoint {
                addr: Some(IpAddr::V4(addr)),
                port,
            })
        }
        Dir::ToClient if line.starts_with(b"229") => {
            // "229 Entering Extended Passive Mode (|||6446|)".
            let open = find(line, b"(")?;
            let inner = line.get(open + 1..)?;
            let d = *inner.first()?;
            let rest = inner.get(3..)?;
            if inner.get(1) != Some(&d) || inner.get(2) != Some(&d) {
                return None;
            }
            let port = number(rest.get(..rest.iter().position(|&b| b == d)?)?)?;
            Some(DataEndpoint {
                addr: None,
                port: u16::try_from(port).ok().filter(|&p| p != 0)?,
            })
        }
        _ => None,
    }
}

/// `h1,h2,h3,h4,p1,p2` at the start of `p` (digits and commas, then
/// anything): the address and port.
fn six_numbers(p: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let end = p
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b','))
        .unwrap_or(p.len());
    let mut n = [0u8; 6];
    let mut parts = p.get(..end)?.split(|&b| b == b',');
    for slot in n.iter_mut() {
        *slot = u8::try_from(number(parts.next()?)?).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let port = u16::from(n[4]) << 8 | u16::from(n[5]);
    (port != 0).then(|| (Ipv4Addr::new(n[0], n[1], n[2], n[3]), port))
}

/// `|1|132.235.1.2|6275|` or `|2|1080::8:800:200C:417A|5282|` (any
/// delimiter): the address and port.
fn eprt(p: &[u8]) -> Option<DataEndpoint> {
    let d = *p.first()?;
    let mut fields = p.get(1..)?.split(|&b| b == d);
    let family = fields.next()?;
    let addr = std::str::from_utf8(fields.next()?).ok()?;
    let port = u16::try_from(number(fields.next()?)?).ok()?;
    let addr = match family {
        b"1" => IpAddr::V4(addr.parse::<Ipv4Addr>().ok()?),
        b"2" => IpAddr::V6(addr.parse::<Ipv6Addr>().ok()?),
        _ => return None,
    };
    (port != 0).then_some(DataEndpoint {
        addr: Some(addr),
        port,
    })
}

/// 1 to 5 ASCII digits.
fn number(p: &[u8]) -> Option<u32> {
    if p.is_empty() || p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        p.iter()
            .fold(0u32, |n, &b| n * 10 + u32::from(b.wrapping_sub(b'0'))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(addr: Option<&str>, port: u16) -> Option<DataEndpoint> {
        Some(DataEndpoint {
            addr: addr.map(|a| a.parse().unwrap()),
            port,
        })
    }

    #[test]
    fn announcements_of_both_modes_and_both_rfcs() {
        let s = Dir::ToServer;
        let c = Dir::ToClient;
        assert_eq!(
            ftp_data_endpoint(
                c,
                b"227 Entering Passive Mode (199,233,217,249,221,90).\r\n"
            ),
            ep(Some("199.233.217.249"), 56666)
        );
        assert_eq!(
            ftp_data_endpoint(s, b"PORT 141,142,220,235,131,46\r\n"),
            ep(Some("141.142.220.235"), 33582)
        );
        assert_eq!(
            ftp_data_endpoint(c, b"229 Entering Extended Passive Mode (|||6446|)\r\n"),
            ep(None, 6446)
        );
        assert_eq!(
            ftp_data_endpoint(s, b"EPRT |2|1080::8:800:200C:417A|5282|\r\n"),
            ep(Some("1080::8:800:200c:417a"), 5282)
        );
        assert_eq!(
            ftp_data_endpoint(s, b"EPRT |1|132.235.1.2|6275|\r\n"),
            ep(Some("132.235.1.2"), 6275)
        );
    }

    #[test]
    fn malformed_and_misdirected_announcements_are_none() {
        for (dir, msg) in [
            (Dir::ToClient, &b"PORT 1,2,3,4,5,6\r\n"[..]),
            (
                Dir::ToServer,
                b"227 Entering Passive Mode (1,2,3,4,5,6)\r\n",
            ),
            (Dir::ToServer, b"PORT 1,2,3,4,5\r\n"),
            (Dir::ToServer, b"PORT 1,2,3,4,5,6,7\r\n"),
            (Dir::ToServer, b"PORT 256,2,3,4,5,6\r\n"),
            (Dir::ToServer, b"PORT 1,2,3,4,0,0\r\n"),
            (Dir::ToClient, b"227 no numbers\r\n"),
            (Dir::ToClient, b"229 (|x|6446|)\r\n"),
            (Dir::ToClient, b"229 (|||99999|)\r\n"),
            (Dir::ToServer, b"EPRT |3|x|1|\r\n"),
            (Dir::ToServer, b"EPRT |1|1.2.3|80|\r\n"),
            (Dir::ToServer, b"PORT 1,2,3,4,5,6"),
        ] {
            assert_eq!(ftp_data_endpoint(dir, msg), None, "{msg:?}");
        }
    }
}
