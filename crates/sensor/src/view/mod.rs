//! Readers of the alert log for the operator: `tapsentry alerts` (a
//! readable view, followed across rotation) and `tapsentry blocklist` (the
//! outside attackers as firewall input).
//!
//! They treat the log as untrusted input: a line that is not a record is
//! counted and skipped, never fatal, and no line is held beyond
//! [`records::MAX_LINE`] bytes.

pub mod alerts;
pub mod blocklist;
pub mod records;
pub mod summary;
