//! Loading the fixture files in `tests/data/` (see its README) the way the
//! sensor does at start-up and on SIGHUP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]

use std::net::IpAddr;
use std::path::PathBuf;

use tapsentry_intel::{GeoIp, IntelError, IntelSnapshot, TorExitList, TorListFormat};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn plain_list_with_comments_padding_and_ipv6() {
    let (list, report) = TorExitList::load(&data("tor_plain.txt")).unwrap();
    assert_eq!(report.format, TorListFormat::Plain);
    assert_eq!((report.entries, report.bad_total), (5, 0));
    assert!(report.bad_lines.is_empty());
    assert_eq!(list.len(), 5);
    for a in [
        "203.0.113.7",
        "198.51.100.23",
        "2001:db8::7",
        "2001:db8::8",
        "192.0.2.44",
        "::ffff:203.0.113.7",
    ] {
        assert!(list.contains(ip(a)), "{a}");
    }
    assert!(!list.contains(ip("203.0.113.8")));
    assert!(!list.contains(ip("2001:db8::9")));
}

#[test]
fn exit_addresses_format() {
    let (list, report) = TorExitList::load(&data("tor_exit_addresses.txt")).unwrap();
    assert_eq!(report.format, TorListFormat::ExitAddresses);
    assert_eq!((report.entries, report.bad_total), (3, 0));
    assert!(list.contains(ip("198.51.100.9")));
    assert!(list.contains(ip("203.0.113.200")));
    assert!(list.contains(ip("2001:db8:1::9")));
    // The fingerprint and dates are not addresses.
    assert_eq!(list.len(), 3);
}

#[test]
fn crlf_line_endings() {
    let (list, report) = TorExitList::load(&data("tor_crlf.txt")).unwrap();
    assert_eq!((report.entries, report.bad_total), (3, 0), "{report:?}");
    assert_eq!(report.format, TorListFormat::Mixed);
    for a in ["203.0.113.1", "2001:db8::1", "198.51.100.1"] {
        assert!(list.contains(ip(a)), "{a}");
    }
}

#[test]
fn bad_lines_are_reported_with_line_numbers() {
    let (list, report) = TorExitList::load(&data("tor_mixed.txt")).unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.contains(ip("203.0.113.1")) && list.contains(ip("198.51.100.4")));
    assert_eq!(report.bad_total, 6);
    let lines: Vec<usize> = report.bad_lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, [3, 4, 5, 6, 8, 9]);
    assert_eq!(report.bad_lines[0].1, "'not-an-ip' is not an IP address");
    assert!(report.bad_lines[1].1.contains("not one address"));
    assert!(report.bad_lines[2].1.contains("without an address"));
    assert!(report.bad_lines[3].1.contains("'999.1.1.1'"));
    assert!(report.bad_lines[4].1.contains("'203.0.113.0/24'"));
}

#[test]
fn all_garbage_is_an_error_naming_the_file_and_the_first_bad_line() {
    let path = data("tor_garbage.txt");
    let err = TorExitList::load(&path).unwrap_err();
    assert!(
        matches!(err, IntelError::NoAddresses { lines: 4, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("no valid address in 4 lines (line 1: '<html>' is not an IP address)"),
        "{msg}"
    );
}

#[test]
fn empty_and_comment_only_lists_are_valid_and_empty() {
    for name in ["tor_empty.txt", "tor_comments_only.txt"] {
        let (list, report) = TorExitList::load(&data(name)).unwrap();
        assert!(list.is_empty(), "{name}");
        assert_eq!((report.entries, report.bad_total), (0, 0), "{name}");
    }
}

#[test]
fn invalid_utf8_is_an_error_naming_the_file() {
    let err = TorExitList::load(&data("tor_not_utf8.txt")).unwrap_err();
    assert!(
        matches!(err, IntelError::NotText { offset: 12, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("tor_not_utf8.txt"));
}

#[test]
fn oversize_files_are_refused_before_parsing() {
    let path = data("tor_exit_addresses.txt");
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(TorExitList::load_with_limit(&path, size).is_ok());
    let err = TorExitList::load_with_limit(&path, size - 1).unwrap_err();
    assert!(matches!(err, IntelError::TooLarge { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("tor_exit_addresses.txt") && msg.contains("limit"),
        "{msg}"
    );
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let err = TorExitList::load(&data("no_such_list.txt")).unwrap_err();
    assert!(matches!(err, IntelError::Read { .. }));
    assert!(err.to_string().contains("no_such_list.txt"));
}

#[test]
fn geoip_test_databases_answer() {
    for city in ["GeoLite2-City-Test.mmdb", "GeoIP2-City-Test.mmdb"] {
        let geo = GeoIp::open(Some(&data(city)), Some(&data("GeoLite2-ASN-Test.mmdb"))).unwrap();
        assert!(geo.is_configured());
        let gb = geo.lookup(ip("81.2.69.142")).unwrap();
        assert_eq!(gb.ip, Some(ip("81.2.69.142")));
        assert_eq!(gb.country.as_deref(), Some("GB"), "{city}");
        assert_eq!(gb.city.as_deref(), Some("London"), "{city}");
        assert_eq!(
            geo.lookup(ip("2001:218::1")).unwrap().country.as_deref(),
            Some("JP")
        );
        // The IPv4-mapped form of an address is the same host.
        let mapped = geo.lookup(ip("::ffff:81.2.69.142")).unwrap();
        assert_eq!(mapped.country.as_deref(), Some("GB"));
        assert_eq!(mapped.ip, Some(ip("::ffff:81.2.69.142")));
    }
    let geo = GeoIp::open(None, Some(&data("GeoLite2-ASN-Test.mmdb"))).unwrap();
    let telstra = geo.lookup(ip("1.128.0.1")).unwrap();
    assert_eq!(telstra.asn, Some(1221));
    assert!(telstra.as_org.is_some());
    assert_eq!(telstra.country, None, "no City database configured");
    assert_eq!(geo.lookup(ip("1.0.0.1")).unwrap().asn, Some(15169));
}

#[test]
fn geoip_unknown_addresses_have_no_geo() {
    let geo = GeoIp::open(
        Some(&data("GeoLite2-City-Test.mmdb")),
        Some(&data("GeoLite2-ASN-Test.mmdb")),
    )
    .unwrap();
    for a in ["10.1.2.3", "192.168.0.1", "fd00::1", "::1"] {
        // Nothing known: no GeoInfo at all, not a bare `{ip}`.
        assert_eq!(geo.lookup(ip(a)), None, "{a}");
    }
}

#[test]
fn geoip_without_databases_answers_none() {
    let geo = GeoIp::none();
    assert!(!geo.is_configured());
    assert!(geo.lookup(ip("81.2.69.142")).is_none());
    let snap = IntelSnapshot::default();
    assert!(snap.geo.lookup(ip("1.1.1.1")).is_none());
    assert!(!snap.tor.contains(ip("1.1.1.1")));
}

#[test]
fn geoip_broken_databases_fail_to_open_or_answer_partially() {
    // The node count points past the file: refused at open, naming it.
    let name = "GeoIP2-City-Test-Invalid-Node-Count.mmdb";
    let err = GeoIp::open(Some(&data(name)), None).unwrap_err();
    assert!(matches!(err, IntelError::GeoDb { .. }), "{err:?}");
    assert!(err.to_string().contains(name), "{err}");

    // Every record's coordinates are corrupt doubles: the file opens (the
    // probe addresses are not in it) and lookups still give the fields that
    // do decode.
    let geo = GeoIp::open(
        Some(&data("GeoIP2-City-Test-Broken-Double-Format.mmdb")),
        None,
    )
    .unwrap();
    let gb = geo.lookup(ip("81.2.69.142")).unwrap();
    assert_eq!(gb.country.as_deref(), Some("GB"));
    assert_eq!(gb.city.as_deref(), Some("London"));
    assert_eq!(
        geo.lookup(ip("2001:218::1")).unwrap().country.as_deref(),
        Some("JP")
    );
    // Addresses it does not hold: nothing, without a panic.
    for a in ["1.1.1.1", "::1", "0.0.0.0", "255.255.255.255", "ffff::"] {
        assert_eq!(geo.lookup(ip(a)), None, "{a}");
    }
}

#[test]
fn geoip_rejects_files_that_are_not_the_right_database() {
    let asn = data("GeoLite2-ASN-Test.mmdb");
    let city = data("GeoLite2-City-Test.mmdb");
    let swapped = GeoIp::open(Some(&asn), None).unwrap_err().to_string();
    assert!(
        swapped.contains("GeoLite2-ASN-Test.mmdb") && swapped.contains("expected City"),
        "{swapped}"
    );
    let swapped = GeoIp::open(None, Some(&city)).unwrap_err().to_string();
    assert!(swapped.contains("expected ASN"), "{swapped}");
    // A text file, and a missing file.
    for p in [data("tor_plain.txt"), data("missing.mmdb")] {
        let e = GeoIp::open(Some(&p), None).unwrap_err();
        assert!(
            e.to_string()
                .contains(p.file_name().unwrap().to_str().unwrap()),
            "{e}"
        );
    }
}
