//! Application-protocol identification from the first payload bytes of each
//! direction of a flow, whatever the ports.
//!
//! This is protocol *detection* in Zeek's and Suricata's sense: a cheap look
//! at the first message of each side, not a parser. A [`ProtoState`] (4
//! bytes, `Copy`, no heap) lives next to a flow; the flow table feeds it the
//! payload of each packet with [`ProtoState::observe`] until
//! [`ProtoState::is_done`]. It inspects at most [`PACKET_BUDGET`] payload
//! packets per direction, never allocates and never reassembles: a matcher
//! sees one segment or datagram at a time and must decide from its first
//! bytes.
//!
//! ```
//! use tapsentry_proto::{Dir, ProtoState, TCP};
//! use tapsentry_types::AppProto;
//!
//! let mut st = ProtoState::new();
//! // The server speaks first: an SSH banner on port 8000.
//! let got = st.observe(Dir::ToClient, TCP, b"SSH-2.0-OpenSSH_8.2p1\r\n", (8000, 58496));
//! assert_eq!(got, Some(AppProto::Ssh));
//! assert!(st.is_done());
//! ```
//!
//! Rules every matcher follows:
//! * A verdict comes from bytes only. Port numbers are a tie-breaker between
//!   protocols whose bytes both match (a `220` greeting that names neither
//!   SMTP nor FTP), never a verdict on their own.
//! * No guess: when nothing matches, the verdict stays
//!   [`AppProto::Unknown`]. Precision matters more than recall: a wrong name
//!   misleads a detector, an unknown only leaves it to the port rules.
//! * A verdict, once made, never changes, with one exception: an HTTP
//!   `CONNECT` whose proxy answered 2xx is followed into the tunnel, and the
//!   tunnelled protocol, once recognised, replaces `http`. A STARTTLS
//!   (SMTP, IMAP, POP3 `STLS`, FTP `AUTH TLS`) does *not* change the verdict:
//!   the flow stays `smtp` (Suricata's reading, and the ground truth's); the
//!   upgrade is recorded as [`ProtoState::tls_inside`].
//! * Every matcher is a total function over a slice: bounded reads with
//!   `get`, no indexing that can panic, whatever the bytes (see the property
//!   tests); that makes [`ProtoState::observe`] a ready fuzz entry point.
//!
//! Metadata analysts want from the first messages (TLS SNI and ALPN, SSH
//! banners, HTTP host, user agent and server, mail and FTP greetings) comes
//! from a separate bounded extractor, [`first_message_meta`], for the
//! caller to run on the first payload of each direction of an identified
//! flow.

pub mod admin;
mod bytes;
pub mod dcerpc;
mod ftp;
mod matchers;
mod meta;
pub mod smb;
mod state;

pub use admin::AdminInspector;
pub use ftp::{ftp_data_endpoint, DataEndpoint};
pub use meta::{first_message_meta, Meta, MetaText, META_TEXT_MAX};
pub use state::{Dir, ProtoState, PACKET_BUDGET};
pub use tapsentry_types::AppProto;

/// IP protocol number of TCP.
pub const TCP: u8 = 6;
/// IP protocol number of UDP.
pub const UDP: u8 = 17;
/// IP protocol number of ESP.
pub const ESP: u8 = 50;
/// IP protocol number of AH.
pub const AH: u8 = 51;
