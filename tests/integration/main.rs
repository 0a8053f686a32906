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
mod detections;
mod determinism;
mod fuzz_seeds;
mod inventory;
mod lateral_movement;
mod linktypes;
mod live;
mod malformed;
mod office;
mod protocols;
mod signals;
mod state;
mod tor;
mod volume;
mod week;
mod week_source;
