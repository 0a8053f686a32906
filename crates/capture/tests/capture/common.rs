//! Helpers shared by the integration tests: corpus paths and a bounded
//! read-to-the-end loop.

use std::path::{Path, PathBuf};

use tapsentry_capture::{CaptureWarning, FileSource, FrameSource, LinkType, Next};

/// The shared test captures, which sit beside the checkout (also in CI).
pub fn pcaps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps")
}

/// Every regular file in one corpus folder, sorted.
pub fn corpus(folder: &str) -> Vec<PathBuf> {
    let dir = pcaps().join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (is /work/shared/pcaps present?)", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no files", dir.display());
    files
}

/// One frame as the tests look at it (owned, so the source can move on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub ts_micros: i64,
    pub wire_len: u32,
    pub link: LinkType,
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct ReadAll {
    pub frames: Vec<Seen>,
    pub errors: Vec<String>,
    pub warnings: Vec<CaptureWarning>,
    pub files_read: usize,
    pub skipped: u64,
}

/// Iteration cap: a hang guard far above any corpus file's record count.
pub const MAX_STEPS: usize = 1_000_000;

/// Reads a source to the end, failing the test if it does not end within
/// [`MAX_STEPS`] calls.
pub fn read_source(src: &mut FileSource) -> ReadAll {
    let mut out = ReadAll::default();
    for _ in 0..MAX_STEPS {
        match src
            .next_frame()
            .expect("a file source never fails as a whole")
        {
            Next::Frame(f) => out.frames.push(Seen {
                ts_micros: f.ts.micros(),
                wire_len: f.wire_len,
                link: f.link,
                data: f.data.to_vec(),
            }),
            Next::Idle => panic!("a file source is never idle"),
            Next::End => {
                out.errors = src.file_errors().iter().map(|e| e.to_string()).collect();
                out.warnings = src.warnings();
                out.files_read = src.files_read();
                out.skipped = src.skipped_unsupported_frames();
                // End is sticky.
                assert!(matches!(src.next_frame(), Ok(Next::End)));
                return out;
            }
        }
    }
    panic!("source did not end within {MAX_STEPS} calls");
}

pub fn read_paths(paths: &[PathBuf]) -> ReadAll {
    let mut src = FileSource::open(paths).expect("open");
    read_source(&mut src)
}
