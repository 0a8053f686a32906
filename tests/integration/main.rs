//! End-to-end tests of the `tapsentry` binary on real and generated captures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]

mod any_port;
mod badinput;
mod common;
mod config;
mod deploy;
mod detections;
mod determinism;
mod faults;
mod flood;
mod fuzz_seeds;
mod incidents;
mod inventory;
mod lateral_movement;
mod linktypes;
mod live;
mod malformed;
mod office;
mod operator;
mod ops;
mod protocols;
mod security;
mod signals;
mod state;
mod tor;
mod volume;
mod week;
mod week_source;
