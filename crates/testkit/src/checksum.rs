//! The internet checksum (RFC 1071) of IPv4 headers, TCP, UDP and ICMP,
//! for frames built by hand.
//!
//! One semantics for every caller: [`sum`] adds 16-bit words into an
//! unfolded 32-bit accumulator (so pieces can be summed separately and
//! added), and [`fold`] folds the carries and returns the one's complement,
//! the value to store in the checksum field.
//!
//! ```
//! use tapsentry_testkit::checksum::{fold, internet_checksum, sum};
//!
//! // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
//! let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
//! assert_eq!(internet_checksum(&data), !0xddf2);
//! // Summing in pieces (at even offsets) gives the same.
//! assert_eq!(fold(sum(sum(0, &data[..4]), &data[4..])), !0xddf2);
//! ```

/// Adds `data` as big-endian 16-bit words to `acc` without folding; an odd
/// last byte is padded with a zero byte. Sum pieces at even offsets only.
/// The accumulator does not overflow below 64 KiB of data.
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Folds the carries of `acc` into 16 bits and returns the one's
/// complement: the checksum to store. Over data whose stored checksum is
/// correct, it returns 0.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data`, ready to store.
pub fn internet_checksum(data: &[u8]) -> u16 {
    fold(sum(0, data))
}

/// The unfolded sum of the IPv4 pseudo-header of a TCP or UDP checksum:
/// addresses, protocol and the transport length `len` (header plus payload
/// as on the wire).
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    sum(sum(0, &src), &dst) + u32::from(proto) + len as u32
}

/// The checksum of a UDP datagram over IPv4, `datagram` being the header
/// (checksum field zero) and payload: a computed 0 is sent as 0xffff,
/// since 0 means "no checksum" in UDP (RFC 768).
pub fn udp_v4(src: [u8; 4], dst: [u8; 4], datagram: &[u8]) -> u16 {
    match fold(sum(
        pseudo_header_v4(src, dst, 17, datagram.len()),
        datagram,
    )) {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1071_example() {
        // Section 3 of RFC 1071: the sum is ddf2, stored as its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(0, &data), 0x2_ddf0);
        assert_eq!(internet_checksum(&data), 0x220d);
        // Byte-order independence (section 2B): swapped input, swapped sum.
        let swapped: Vec<u8> = data.chunks(2).flat_map(|w| [w[1], w[0]]).collect();
        assert_eq!(internet_checksum(&swapped), 0x0d22);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(internet_checksum(&[0x12]), !0x1200);
        assert_eq!(internet_checksum(&[0x12, 0x34, 0x56]), !(0x1234 + 0x5600));
        assert_eq!(internet_checksum(&[]), 0xffff);
    }

    /// The first IPv4 header of the bundled `pcaps/demo.pcap` (a DNS query
    /// from 10.10.0.21 to the resolver, checksum 0x2653), read from the file:
    /// the 24-byte file header, a 16-byte record header, 14 bytes of
    /// Ethernet.
    fn demo_ipv4_header() -> [u8; 20] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pcaps/demo.pcap");
        let file = std::fs::read(path).unwrap();
        assert_eq!(file[20..24], 1u32.to_le_bytes(), "Ethernet link type");
        assert_eq!(file[24 + 16 + 12..24 + 16 + 14], [0x08, 0x00], "IPv4");
        file[54..74].try_into().unwrap()
    }

    #[test]
    fn a_real_ipv4_header_from_a_bundled_capture() {
        let header = demo_ipv4_header();
        assert_eq!(header[10..12], [0x26, 0x53]);
        // Over a header with a correct checksum, the checksum is 0 ...
        assert_eq!(internet_checksum(&header), 0);
        // ... and with the field zeroed it is the stored value.
        let mut h = header;
        h[10..12].fill(0);
        assert_eq!(internet_checksum(&h), 0x2653);
        // etherparse agrees.
        let parsed = etherparse::Ipv4HeaderSlice::from_slice(&header).unwrap();
        assert_eq!(parsed.to_header().calc_header_checksum(), 0x2653);
    }

    #[test]
    fn udp_matches_etherparse_and_never_stores_zero() {
        let (src, dst) = ([10, 0, 0, 1], [10, 0, 0, 53]);
        let mut d = vec![0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0, 0, 1, 2, 3, 4];
        let want = etherparse::UdpHeader::with_ipv4_checksum(5353, 53, &ipv4(src, dst), &d[8..])
            .unwrap()
            .checksum;
        assert_eq!(udp_v4(src, dst, &d), want);
        // Payload chosen so the sum is all ones: the checksum would be 0.
        let rest = fold(sum(pseudo_header_v4(src, dst, 17, 12), &d[..8]));
        d[8..10].copy_from_slice(&rest.to_be_bytes());
        d[10..12].fill(0);
        assert_eq!(fold(sum(pseudo_header_v4(src, dst, 17, 12), &d)), 0);
        assert_eq!(udp_v4(src, dst, &d), 0xffff);
    }

    fn ipv4(src: [u8; 4], dst: [u8; 4]) -> etherparse::Ipv4Header {
        etherparse::Ipv4Header::new(12, 64, etherparse::IpNumber::UDP, src, dst).unwrap()
    }
}
