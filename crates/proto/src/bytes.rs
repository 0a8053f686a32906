//! Bounded reads over a byte slice: every helper returns `None` past the end
//! instead of panicking, so matchers stay total over arbitrary input.

/// The byte at `at`.
pub(crate) fn u8_at(p: &[u8], at: usize) -> Option<u8> {
    p.get(at).copied()
}

/// A big-endian `u16` at `at`.
pub(crate) fn be16(p: &[u8], at: usize) -> Option<u16> {
    let b: [u8; 2] = p.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(b))
}

/// A little-endian `u16` at `at`.
pub(crate) fn le16(p: &[u8], at: usize) -> Option<u16> {
    let b: [u8; 2] = p.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_le_bytes(b))
}

/// A big-endian `u32` at `at`.
pub(crate) fn be32(p: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = p.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// A little-endian `u32` at `at`.
pub(crate) fn le32(p: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = p.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// A 3-byte little-endian length at `at` (MySQL packet header).
pub(crate) fn le24(p: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 3] = p.get(at..at.checked_add(3)?)?.try_into().ok()?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], 0]))
}

/// True when `p` starts with `prefix`, ASCII case ignored.
pub(crate) fn starts_with_ci(p: &[u8], prefix: &[u8]) -> bool {
    p.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// The position of `needle` in `hay`, if any (`needle` non-empty).
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The position of `needle` in `hay`, ASCII case ignored.
pub(crate) fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// The first line of `p` without its CR/LF, at most `max` bytes; `None` when
/// no line end comes within `max` bytes.
pub(crate) fn first_line(p: &[u8], max: usize) -> Option<&[u8]> {
    let window = p.get(..p.len().min(max))?;
    let end = window.iter().position(|&b| b == b'\n')?;
    let line = window.get(..end)?;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// A BER/DER length (X.690 8.1.3) at `at`: `(length, bytes the length took)`.
/// Definite forms only, up to four length octets, at most 16 MiB.
pub(crate) fn ber_len(p: &[u8], at: usize) -> Option<(usize, usize)> {
    let first = u8_at(p, at)?;
    if first < 0x80 {
        return Some((usize::from(first), 1));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 1..=n {
        len = (len << 8) | usize::from(u8_at(p, at.checked_add(i)?)?);
    }
    // No first message is anywhere near 16 MiB; the cap keeps sums of
    // lengths and offsets far from overflow on any target.
    (len <= 1 << 24).then_some((len, n + 1))
}

/// A BER INTEGER (tag 0x02) at `at` holding a small non-negative value:
/// `(value, bytes the whole TLV took)`.
pub(crate) fn ber_small_int(p: &[u8], at: usize) -> Option<(u32, usize)> {
    if u8_at(p, at)? != 0x02 {
        return None;
    }
    let (len, ll) = ber_len(p, at.checked_add(1)?)?;
    if len == 0 || len > 4 {
        return None;
    }
    let start = at.checked_add(1 + ll)?;
    let mut v = 0u32;
    for i in 0..len {
        v = (v << 8) | u32::from(u8_at(p, start.checked_add(i)?)?);
    }
    Some((v, 1 + ll + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_end() {
        let p = [1u8, 2, 3];
        assert_eq!(be16(&p, 1), Some(0x0203));
        assert_eq!(be16(&p, 2), None);
        assert_eq!(be32(&p, 0), None);
        assert_eq!(be16(&p, usize::MAX), None);
        assert_eq!(le24(&p, 0), Some(0x030201));
        assert_eq!(ber_len(&[0x82, 0x01, 0x00], 0), Some((256, 3)));
        assert_eq!(ber_len(&[0x82, 0x01], 0), None);
        assert_eq!(ber_len(&[0x80], 0), None);
        assert_eq!(ber_small_int(&[0x02, 0x01, 0x05], 0), Some((5, 3)));
        assert_eq!(first_line(b"abc\r\ndef", 64), Some(&b"abc"[..]));
        assert_eq!(first_line(b"abcdef", 64), None);
        assert_eq!(find(b"abc", b""), None);
    }
}
