//! Learned baselines as plain values, so the sensor can keep them in a
//! state file across restarts.
//!
//! A detector that learns (which hosts send mail, which protocols a pair
//! uses, where a server's logins come from) exports one entry per host:
//! the host whose shard owns the state (the `host` its `on_flow` sees) and
//! a small serde value. Per-host entries make the file independent of the
//! worker count: on load each entry goes to the worker [`crate::shard_for`]
//! names. Only learned habits are exported; open windows and in-progress
//! counts are evidence about now and start afresh after a restart.
//!
//! Entries come from a file, which is outside input: importing parses into
//! a typed struct first (all or nothing per entry) and goes through the
//! detector's bounded tables, so a hostile file can neither crash the
//! sensor nor grow memory past the configured caps.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why one state entry was not imported.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The entry is not the shape this detector writes.
    #[error("entry does not parse: {0}")]
    Parse(#[from] serde_json::Error),
    /// The entry parses but holds values this code never writes.
    #[error("entry out of range: {0}")]
    Invalid(String),
    /// No detector of that name runs here (disabled, or unknown).
    #[error("no detector '{0}' is running")]
    UnknownDetector(String),
}

/// A detector's typed entry from its JSON value.
pub(crate) fn parse_entry<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, StateError> {
    Ok(serde_json::from_value(v)?)
}

/// A typed entry as a JSON value (`Null` if it cannot be represented,
/// which the import side rejects rather than misreading).
pub(crate) fn entry_value<T: Serialize>(entry: &T) -> serde_json::Value {
    serde_json::to_value(entry).unwrap_or(serde_json::Value::Null)
}
