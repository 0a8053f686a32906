//! Connections announced in advance: an FTP control connection says where
//! its next data connection goes (`PORT`, `PASV`, `EPRT`, `EPSV`), and the
//! data connection, whose bytes are whatever file is sent, is named by
//! that announcement alone.
//!
//! Bound: [`EXPECT_MAX`] announcements, each kept [`EXPECT_TTL_SECS`] of
//! capture time. At the bound, expired ones are dropped first; if none has
//! expired, the new announcement is not kept (counted): its data
//! connection will be `unknown`.

use std::collections::HashMap;
use std::net::IpAddr;

use tapsentry_types::Timestamp;

/// Announcements kept at most (a few hundred KB).
pub const EXPECT_MAX: usize = 4096;

/// How long an announcement waits for its connection, in capture seconds
/// (clients connect within a second or two; servers time out in minutes).
pub const EXPECT_TTL_SECS: u64 = 120;

/// Announced responder endpoints and when they were announced.
#[derive(Debug, Default)]
pub(crate) struct Expectations {
    by_endpoint: HashMap<(IpAddr, u16), Timestamp>,
    /// Announcements not kept at the bound.
    pub refused: u64,
}

impl Expectations {
    /// Remembers that a connection to `endpoint` is coming.
    pub fn announce(&mut self, endpoint: (IpAddr, u16), now: Timestamp) {
        if self.by_endpoint.len() >= EXPECT_MAX && !self.by_endpoint.contains_key(&endpoint) {
            self.by_endpoint
                .retain(|_, at| now.micros_since(*at) <= EXPECT_TTL_SECS * 1_000_000);
            if self.by_endpoint.len() >= EXPECT_MAX {
                self.refused += 1;
                return;
            }
        }
        self.by_endpoint.insert(endpoint, now);
    }

    /// True (and forgotten) when a connection to `endpoint` was announced
    /// within the last [`EXPECT_TTL_SECS`].
    pub fn take(&mut self, endpoint: (IpAddr, u16), now: Timestamp) -> bool {
        self.by_endpoint
            .remove(&endpoint)
            .is_some_and(|at| now.micros_since(at) <= EXPECT_TTL_SECS * 1_000_000)
    }

    /// Announcements held.
    pub fn len(&self) -> usize {
        self.by_endpoint.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_is_taken_once_within_its_time_and_the_map_is_bounded() {
        let mut e = Expectations::default();
        let t = Timestamp::from_micros(1_000_000_000);
        let ep = |i: u16| (IpAddr::from([10, 0, 0, 1]), i);
        e.announce(ep(2000), t);
        assert!(e.take(ep(2000), t.plus_secs(1)));
        assert!(!e.take(ep(2000), t.plus_secs(1)), "taken once");
        e.announce(ep(2001), t);
        assert!(!e.take(ep(2001), t.plus_secs(121)), "too late");
        for i in 0..EXPECT_MAX as u16 {
            e.announce(ep(i), t);
        }
        e.announce(ep(60_000), t.plus_secs(1));
        assert_eq!((e.len(), e.refused), (EXPECT_MAX, 1));
        // Once the old ones expire, a new one evicts them.
        e.announce(ep(60_001), t.plus_secs(200));
        assert_eq!((e.len(), e.refused), (1, 1));
    }
}
