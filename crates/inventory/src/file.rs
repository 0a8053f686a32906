//! The inventory file (`output.inventory`): JSON, replaced atomically by
//! the sensor, read back at start and by `tapsentry inventory`.
//!
//! ```text
//! {"format":"tapsentry-inventory","version":1,"generated":"2023-11-14T23:00:00.000000Z","learned_secs":5400,"hosts":[
//! {"ip":"10.20.1.10","macs":[],"vlan":0,"names":["www.example.org"],"first_seen":…,"services":[…],…}
//! ]}
//! ```
//!
//! The file is outside input when read: anything wrong with it is one
//! [`InventoryFileError`], and the sensor starts with an empty inventory.

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tapsentry_types::Timestamp;

use crate::Host;

/// The `format` every inventory file carries.
pub const FORMAT: &str = "tapsentry-inventory";
/// The layout version this sensor writes and reads.
pub const VERSION: u64 = 1;
/// Larger files are refused: the whole file is parsed in memory, and the
/// bounds keep a real inventory far smaller (10,000 hosts are a few MB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u64,
    /// Capture time of the save.
    pub generated: Timestamp,
    /// Seconds of learning done when it was saved.
    #[serde(default)]
    pub learned_secs: u64,
    /// The hosts, in address order.
    pub hosts: Vec<Host>,
}

impl InventoryFile {
    /// The host at `ip`.
    pub fn host(&self, ip: IpAddr) -> Option<&Host> {
        self.hosts.iter().find(|h| h.ip == ip)
    }
}

/// Why an inventory file was not used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryFileError {
    /// Opening or reading failed (other than "does not exist").
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    /// Larger than [`MAX_FILE_BYTES`].
    #[error("larger than the {} MiB limit", MAX_FILE_BYTES >> 20)]
    TooLarge,
    /// Not JSON, truncated, or not the inventory's shape.
    #[error("not a tapsentry inventory file: {0}")]
    Parse(serde_json::Error),
    /// JSON, but of another format.
    #[error("format is '{0}', not '{FORMAT}'")]
    Format(String),
    /// Written by a sensor with another layout.
    #[error("version {0} is not supported (this sensor reads version {VERSION})")]
    Version(u64),
}

/// Reads an inventory file. `Ok(None)` when it does not exist (a first
/// start).
pub fn load(path: &Path) -> Result<Option<InventoryFile>, InventoryFileError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(InventoryFileError::Read(e)),
    };
    // The length may change between a check and the read: bound the read.
    let mut buf = Vec::new();
    file.take(MAX_FILE_BYTES.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(InventoryFileError::Read)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(InventoryFileError::TooLarge);
    }
    parse(&buf).map(Some)
}

#[derive(Deserialize)]
struct Header {
    format: String,
    version: u64,
}

/// Parses a file's bytes: the header first, so a foreign file is named as
/// such rather than by the first field that does not fit.
pub fn parse(bytes: &[u8]) -> Result<InventoryFile, InventoryFileError> {
    let h: Header = serde_json::from_slice(bytes).map_err(InventoryFileError::Parse)?;
    if h.format != FORMAT {
        return Err(InventoryFileError::Format(
            h.format.chars().take(64).collect(),
        ));
    }
    if h.version != VERSION {
        return Err(InventoryFileError::Version(h.version));
    }
    serde_json::from_slice(bytes).map_err(InventoryFileError::Parse)
}

/// The bytes of a file holding `hosts` (already in address order).
pub(crate) fn encode<'a>(
    generated: Timestamp,
    learned_secs: u64,
    hosts: impl Iterator<Item = &'a Host>,
    count: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + count * 512);
    out.extend_from_slice(
        format!(
            "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"generated\":\"{}\",\"learned_secs\":{learned_secs},\"hosts\":[",
            generated.to_rfc3339()
        )
        .as_bytes(),
    );
    let mut written = 0usize;
    for h in hosts {
        // A host of plain values always serializes; on the impossible
        // failure the host is left out rather than written half.
        let start = out.len();
        out.extend_from_slice(if written == 0 { b"\n" } else { b",\n" });
        if serde_json::to_writer(&mut out, h).is_err() {
            out.truncate(start);
        } else {
            written += 1;
        }
    }
    if written > 0 {
        out.push(b'\n');
    }
    out.extend_from_slice(b"]}\n");
    out
}
