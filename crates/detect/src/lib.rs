//! placeholder crate, filled in by its own commit
