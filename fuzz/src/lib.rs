//! The entry points of tapsentry's fuzz targets, one function per target.
//!
//! `entries.rs` is shared with the main workspace's stable test
//! (`tests/fuzz_seeds.rs`), which runs every seed and regression input
//! through the same functions, so CI exercises them without nightly.

pub mod entries;
