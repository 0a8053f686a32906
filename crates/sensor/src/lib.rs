//! tapsentry: a network security sensor for a SPAN or tap port.
//!
//! This crate wires the others together: configuration ([`config`]), the
//! threaded pipeline ([`pipeline`], one module per stage), intel loading and signal handling
//! ([`control`]), the baseline state file ([`state`]). The binary
//! (`main.rs`) only parses the command line, opens inputs and outputs, and
//! maps failures to the contract's exit codes.
//!
//! ```
//! let cfg = tapsentry::config::SensorConfig::embedded_default().unwrap();
//! assert_eq!(cfg.output.alert_log, "/var/log/tapsentry/alerts.jsonl");
//! ```
//!
//! It does not decode packets, keep flows or detect anything itself: those
//! are the `tapsentry-decode`, `tapsentry-flow` and `tapsentry-detect` crates.

pub mod check;
pub mod config;
pub mod control;
pub mod intel_update;
pub mod pidfile;
pub mod pipeline;
pub mod state;
