use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

/// A capture timestamp: microseconds since the Unix epoch, UTC.
///
/// Every clock inside the sensor (windows, timeouts, alert times) is this
/// packet time, never the wall clock, so replays are reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest representable time (used as "never").
    pub const ZERO: Timestamp = Timestamp(0);

    /// From microseconds since the epoch.
    pub const fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }

    /// From seconds and a sub-second fraction in nanoseconds (truncated to µs).
    pub fn from_secs_nanos(secs: i64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000)
                .saturating_add(i64::from(nanos / 1_000)),
        )
    }

    /// Microseconds since the epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floor).
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// This time plus a number of seconds (saturating).
    pub const fn plus_secs(self, secs: u64) -> Self {
        let add = if secs > (i64::MAX as u64) / 1_000_000 {
            i64::MAX
        } else {
            (secs as i64) * 1_000_000
        };
        Timestamp(self.0.saturating_add(add))
    }

    /// Microseconds elapsed from `earlier` to `self` (0 when `earlier` is later).
    pub fn micros_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }

    /// RFC 3339 UTC with exactly six fractional digits, e.g.
    /// `2024-05-01T12:00:00.123456Z`. Out-of-range values clamp to the epoch.
    pub fn to_rfc3339(self) -> String {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        dt.format(&fmt)
            .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".to_string())
    }
}

impl Timestamp {
    /// Parses what [`Timestamp::to_rfc3339`] writes
    /// (`2024-05-01T12:00:00.123456Z`, exactly that shape); `None` for
    /// anything else. Files the sensor wrote itself (the inventory) are read
    /// back with it, so the strict shape is enough.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() != 27 || b[26] != b'Z' {
            return None;
        }
        for (i, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
        ] {
            if b[i] != c {
                return None;
            }
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let d = s.get(r)?;
            if !d.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            d.parse().ok()
        };
        let year = i32::try_from(num(0..4)?).ok()?;
        let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
        let day = u8::try_from(num(8..10)?).ok()?;
        let date = time::Date::from_calendar_date(year, month, day).ok()?;
        let t = time::Time::from_hms_micro(
            u8::try_from(num(11..13)?).ok()?,
            u8::try_from(num(14..16)?).ok()?,
            u8::try_from(num(17..19)?).ok()?,
            num(20..26)?,
        )
        .ok()?;
        let dt = time::PrimitiveDateTime::new(date, t).assume_utc();
        let us = dt.unix_timestamp_nanos() / 1_000;
        i64::try_from(us).ok().map(Timestamp)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "not an RFC 3339 UTC time with microseconds: {s:?}"
            ))
        })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_microseconds() {
        let t = Timestamp::from_secs_nanos(1_700_000_000, 123_456_789);
        assert_eq!(t.to_rfc3339(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(Timestamp::ZERO.to_rfc3339(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn rfc3339_round_trips_and_rejects_other_shapes() {
        for us in [
            0i64,
            1_700_000_000_123_456,
            1_234_567,
            253_402_300_799_999_999,
        ] {
            let t = Timestamp::from_micros(us);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        }
        for bad in [
            "",
            "2023-11-14T22:13:20Z",
            "2023-11-14T22:13:20.123456+00:00",
            "2023-13-14T22:13:20.123456Z",
            "2023-11-14T25:13:20.123456Z",
            "2023-11-14T22:13:20.12345xZ",
            "+023-11-14T22:13:20.123456Z",
            "2023-11-14 22:13:20.123456Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
        let t: Timestamp = serde_json::from_str("\"2023-11-14T22:13:20.123456Z\"").unwrap();
        assert_eq!(t, Timestamp::from_secs_nanos(1_700_000_000, 123_456_000));
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(
            Timestamp::from_micros(i64::MAX).plus_secs(10).micros(),
            i64::MAX
        );
        assert_eq!(
            Timestamp::from_micros(5).micros_since(Timestamp::from_micros(9)),
            0
        );
        assert_eq!(Timestamp::from_micros(-1).secs(), -1);
    }
}
