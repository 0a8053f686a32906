//! Several files replayed as one capture.

use std::path::PathBuf;

use tapsentry_capture::{CaptureError, FileSource, FrameSource, Next};

use crate::common::*;

fn lt(name: &str) -> PathBuf {
    pcaps().join("linktypes").join(name)
}

#[test]
fn two_files_yield_the_concatenation() {
    let a = read_paths(&[lt("ethernet-http-get.pcap")]);
    let b = read_paths(&[lt("pcapng-two-interfaces.pcapng")]);
    let both = read_paths(&[
        lt("ethernet-http-get.pcap"),
        lt("pcapng-two-interfaces.pcapng"),
    ]);
    let mut expected = a.frames.clone();
    expected.extend(b.frames.clone());
    assert_eq!(both.frames, expected);
    assert_eq!(both.files_read, 2);
    assert!(both.errors.is_empty());
}

#[test]
fn missing_middle_file_fails_open_naming_it() {
    let missing = pcaps().join("linktypes/no-such-file.pcap");
    let err = FileSource::open(&[
        lt("ethernet-http-get.pcap"),
        missing.clone(),
        lt("ipip-4in4.pcap"),
    ])
    .err()
    .expect("open must fail");
    assert!(matches!(err, CaptureError::Open { ref path, .. } if *path == missing));
    let msg = err.to_string();
    assert!(msg.contains("no-such-file.pcap"), "{msg}");
    assert!(msg.contains("cannot open"), "{msg}");
}

#[test]
fn directory_is_refused_at_open() {
    let err = FileSource::open(&[pcaps().join("linktypes")])
        .err()
        .expect("a directory");
    assert!(err.to_string().contains("linktypes"), "{err}");
}

#[test]
fn corrupt_middle_file_is_skipped_with_one_error() {
    let first = lt("ethernet-http-get.pcap");
    let last = lt("pcapng-two-interfaces.pcapng");
    let a = read_paths(std::slice::from_ref(&first));
    let c = read_paths(std::slice::from_ref(&last));
    for (bad, frames_from_bad) in [
        ("derived-bad-magic.pcap", 0),
        ("zeek-trunc-mpls-6in6-broken.pcap.gz", 0),
        ("derived-cut-in-packet-data.pcap", 4),
        ("derived-pcapng-block-length-huge.pcapng", 1),
    ] {
        let bad_path = pcaps().join("malformed").join(bad);
        let b = read_paths(std::slice::from_ref(&bad_path));
        let r = read_paths(&[first.clone(), bad_path, last.clone()]);
        assert_eq!(r.errors.len(), 1, "{bad}: {:?}", r.errors);
        assert!(r.errors[0].contains(bad), "{bad}: {}", r.errors[0]);
        assert_eq!(b.frames.len(), frames_from_bad, "{bad}");
        let mut expected = a.frames.clone();
        expected.extend(b.frames);
        expected.extend(c.frames.clone());
        assert_eq!(r.frames, expected, "{bad}");
    }
}

#[test]
fn no_files_is_an_empty_capture() {
    let mut src = FileSource::open(&[]).expect("open");
    assert!(matches!(src.next_frame(), Ok(Next::End)));
    assert!(src.file_errors().is_empty());
    assert_eq!(src.files_read(), 0);
    assert!(src.kernel_stats().is_none());
}

#[test]
fn frames_borrow_the_buffer_without_copying() {
    // Two frames in a row from the same reader must not alias: the second
    // call consumes the first record before parsing the next.
    let mut src = FileSource::open(&[lt("ethernet-http-get.pcap")]).expect("open");
    let first = match src.next_frame().expect("frame") {
        Next::Frame(f) => f.data.to_vec(),
        other => panic!("{other:?}"),
    };
    let second = match src.next_frame().expect("frame") {
        Next::Frame(f) => f.data.to_vec(),
        other => panic!("{other:?}"),
    };
    assert_ne!(first, second);
}
