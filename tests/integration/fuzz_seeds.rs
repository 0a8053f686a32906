//! Every committed fuzz seed (`fuzz/seeds/<target>/`) and regression input
//! (`fuzz/regressions/<target>/`) through the fuzz targets' own entry
//! points, on the stable toolchain: a crash the fuzzer once found stays
//! fixed even where nightly and cargo-fuzz are not installed.

#[path = "../../fuzz/src/entries.rs"]
mod entries;

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn every_seed_and_regression_input_runs_through_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut total = 0;
    for (name, entry) in entries::TARGETS {
        let seeds = inputs(&root.join("seeds").join(name));
        assert!(!seeds.is_empty(), "no seeds for fuzz target {name}");
        for path in seeds
            .iter()
            .chain(&inputs(&root.join("regressions").join(name)))
        {
            entry(&std::fs::read(path).unwrap());
            total += 1;
        }
    }
    eprintln!("{total} fuzz inputs ran");
}

#[test]
fn the_decoded_link_types_are_what_the_decoder_decodes() {
    use tapsentry_decode::{decode, DecodeError};
    use tapsentry_types::{Frame, LinkType, Timestamp};
    // The list the reader admits and the fuzz target picks from is the
    // decoder's: every link type number up to 65535 is unsupported by the
    // decoder exactly when it is not on the list.
    for l in 0..=u16::MAX {
        let lt = LinkType(u32::from(l));
        let frame = Frame {
            ts: Timestamp::ZERO,
            wire_len: 0,
            link: lt,
            data: &[],
        };
        let unsupported = decode(&frame).err() == Some(DecodeError::UnsupportedLinkType);
        assert_eq!(unsupported, !LinkType::DECODED.contains(&lt), "{lt:?}");
        assert_eq!(
            tapsentry_capture::is_supported_link_type(lt),
            !unsupported,
            "{lt:?}"
        );
    }
    assert_eq!(entries::LINK_TYPES, LinkType::DECODED);
}
