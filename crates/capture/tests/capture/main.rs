//! Integration tests of tapsentry-capture against the shared capture corpus.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]

mod common;
mod corpus;
mod live;
mod multi;
mod synthetic;
mod truncation;
