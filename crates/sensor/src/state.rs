//! The baseline state file (`detect.state_file`): learned baselines saved
//! periodically (capture time) and at exit, loaded at start, so a restart
//! does not forget which hosts send mail or where a server's logins come
//! from.
//!
//! ```text
//! {"format":"tapsentry-state","version":1,"saved_at":"2023-11-14T23:00:00.000000Z","detectors":{
//! "spambot":{"learned_secs":2400,"entries":[
//! ["10.0.0.25",{"last_seen_us":1700000060000000}]
//! ]}}}
//! ```
//!
//! Entries are per host (the host whose shard owns them), so a file saved
//! with N workers loads into any worker count. Sections and hosts are sorted:
//! the same state always writes the same bytes. `learned_secs` is how much
//! of its learning period each detector has done, so a restart resumes the
//! period (usually: skips it) rather than learning from scratch again.
//!
//! The file is outside input. Anything wrong with it (unreadable, too big,
//! not JSON, truncated, another format or version, a section or entry that
//! does not parse) is one warning line and a fresh start for what was wrong
//! (the file, one detector), never a crash or a refusal to start. Writes go
//! to a temporary file in the same directory, are synced and renamed over
//! the old file, so a crash mid-write leaves the previous state.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Receiver;
use serde::Deserialize;
use serde_json::value::RawValue;
use tapsentry_detect::{shard_for, Worker};
use tapsentry_types::Timestamp;

use crate::control::FileFaults;

/// The `format` every state file carries.
pub const FORMAT: &str = "tapsentry-state";
/// The layout version this sensor writes and reads.
pub const VERSION: u64 = 1;
/// Larger files are refused (with a warning): the whole file is read into
/// memory to parse it, and the detectors' caps keep real state far smaller.
pub const MAX_STATE_BYTES: u64 = 512 << 20;

/// Why a state file was not used. Each is reported as one line.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// Opening or reading failed (other than "does not exist").
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    /// Larger than [`MAX_STATE_BYTES`].
    #[error("larger than the {} MiB limit", MAX_STATE_BYTES >> 20)]
    TooLarge,
    /// Not UTF-8 text.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// Not JSON, truncated, or not the header's shape.
    #[error("not a tapsentry state file: {0}")]
    Parse(serde_json::Error),
    /// JSON, but of another format.
    #[error("format is '{0}', not '{FORMAT}'")]
    Format(String),
    /// Written by a sensor with another layout.
    #[error("version {0} is not supported (this sensor reads version {VERSION})")]
    Version(u64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header<'a> {
    format: String,
    version: u64,
    #[serde(default)]
    saved_at: Option<String>,
    /// Parsed only once format and version are known to be ours.
    #[serde(borrow)]
    detectors: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section<'a> {
    learned_secs: u64,
    #[serde(borrow)]
    entries: Vec<&'a RawValue>,
}

/// What loading a state file did.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Seconds of learning already done, per detector whose baselines
    /// loaded without a fault (the others learn afresh).
    pub prior_learning: BTreeMap<String, u64>,
    /// Entries imported.
    pub entries: usize,
    /// Problems, one line each, naming the file.
    pub warnings: Vec<String>,
    /// One line saying what was loaded (none when there was no file).
    pub info: Option<String>,
}

/// Reads `path` into memory, bounded by `limit` bytes. `Ok(None)` when the
/// file does not exist (a first start).
fn read_bounded(path: &Path, limit: u64) -> Result<Option<String>, StateFileError> {
    let file = match File::open(path) {
        Ok(f) => f,
        // Also a parent that is not a directory: no file can be there yet
        // (saving will say why it cannot be written).
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(StateFileError::Read(e)),
    };
    if file.metadata().map_err(StateFileError::Read)?.len() > limit {
        return Err(StateFileError::TooLarge);
    }
    // The length may change between the check and the read: bound the read.
    let mut buf = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(StateFileError::Read)?;
    if buf.len() as u64 > limit {
        return Err(StateFileError::TooLarge);
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| StateFileError::NotUtf8)
}

fn parse_header(text: &str) -> Result<Header<'_>, StateFileError> {
    let h: Header<'_> = serde_json::from_str(text).map_err(StateFileError::Parse)?;
    if h.format != FORMAT {
        return Err(StateFileError::Format(h.format.chars().take(64).collect()));
    }
    if h.version != VERSION {
        return Err(StateFileError::Version(h.version));
    }
    Ok(h)
}

/// Loads `path` into `workers` (each entry to the worker that owns its
/// host) and says what each detector had learned. Never fails: problems
/// become warnings and a fresh start for what they concern.
pub fn load(path: &Path, workers: &mut [Worker]) -> Loaded {
    load_bounded(path, workers, MAX_STATE_BYTES)
}

const FRESH: &str = "starting with fresh baselines";

fn load_bounded(path: &Path, workers: &mut [Worker], limit: u64) -> Loaded {
    let name = path.display().to_string();
    match read_bounded(path, limit) {
        Ok(Some(text)) => load_str(&text, &name, workers),
        Ok(None) => Loaded::default(),
        Err(e) => failed(&name, &e),
    }
}

fn failed(name: &str, e: &StateFileError) -> Loaded {
    Loaded {
        warnings: vec![format!("state file {name}: {e}; {FRESH}")],
        ..Loaded::default()
    }
}

/// [`load`] on a state file's bytes already in memory; `name` names them in
/// the warnings. Bytes over [`MAX_STATE_BYTES`] or not UTF-8 are one
/// warning, like a file's. The fuzz targets and their seed test call it.
pub fn load_bytes(bytes: &[u8], name: &str, workers: &mut [Worker]) -> Loaded {
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return failed(name, &StateFileError::TooLarge);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => load_str(text, name, workers),
        Err(_) => failed(name, &StateFileError::NotUtf8),
    }
}

fn load_str(text: &str, name: &str, workers: &mut [Worker]) -> Loaded {
    let mut out = Loaded::default();
    let fresh = FRESH;
    let header = match parse_header(text) {
        Ok(h) => h,
        Err(e) => {
            out.warnings
                .push(format!("state file {name}: {e}; {fresh}"));
            return out;
        }
    };
    let sections: BTreeMap<String, &RawValue> = match serde_json::from_str(header.detectors.get()) {
        Ok(s) => s,
        Err(e) => {
            let e = StateFileError::Parse(e);
            out.warnings
                .push(format!("state file {name}: detectors: {e}; {fresh}"));
            return out;
        }
    };
    let Some(first) = workers.first() else {
        return out;
    };
    let running = first.persisted_detectors();
    let n = workers.len();
    // Sections of detectors not running now (disabled, or gone) are left
    // out: there is nobody to give them to, and the next save drops them.
    for det in running {
        let Some(raw) = sections.get(det) else {
            continue;
        };
        let section: Section<'_> = match serde_json::from_str(raw.get()) {
            Ok(s) => s,
            Err(e) => {
                out.warnings.push(format!(
                    "state file {name}: detector {det}: section does not parse: {e}; {det} starts with a fresh baseline"
                ));
                continue;
            }
        };
        let total = section.entries.len();
        let mut skipped = 0usize;
        let mut first_problem = None;
        for (i, raw) in section.entries.iter().enumerate() {
            let res = serde_json::from_str::<(IpAddr, serde_json::Value)>(raw.get())
                .map_err(|e| e.to_string())
                .and_then(|(host, v)| {
                    let w = workers.get_mut(shard_for(host, n)).ok_or("no worker")?;
                    w.import_state(det, host, v).map_err(|e| e.to_string())
                });
            match res {
                Ok(()) => out.entries += 1,
                Err(e) => {
                    skipped += 1;
                    first_problem.get_or_insert_with(|| format!("entry {i}: {e}"));
                }
            }
        }
        match first_problem {
            // A damaged baseline is relearned (the good entries are kept):
            // skipping the learning period with holes in the baseline would
            // turn every lost host into a false alarm.
            Some(p) => out.warnings.push(format!(
                "state file {name}: detector {det}: {skipped} of {total} entries skipped (first: {p}); {det} learns again"
            )),
            None => {
                out.prior_learning
                    .insert(det.to_string(), section.learned_secs);
            }
        }
    }
    out.info = Some(format!(
        "loaded baseline state from {name} (saved at capture time {}): {} entries",
        header.saved_at.as_deref().unwrap_or("unknown"),
        out.entries
    ));
    out
}

/// A request, carried by the batch of every worker at one capture time, to
/// export the worker's state for a save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveReq {
    /// Sequence number of the save (the same in every worker).
    pub seq: u64,
    /// Capture time of the save.
    pub now: Timestamp,
    /// Seconds of capture time since this run's capture started.
    pub elapsed_secs: u64,
    /// The save at exit (never skipped, even live).
    pub last: bool,
}

/// Entries of a save: (detector, host, entry as JSON text).
pub type Entries = Vec<(&'static str, IpAddr, String)>;

/// One worker's share of a save.
pub struct StatePart {
    /// Which save.
    pub req: SaveReq,
    /// The worker's entries, in no particular order.
    pub entries: Entries,
}

/// Exports a worker's baselines for a save.
pub fn export(worker: &Worker, req: SaveReq) -> StatePart {
    let mut entries = Vec::new();
    worker.export_state(&mut |det, host, v| {
        // A Value always serializes; on the impossible failure the entry
        // is left out rather than written half.
        if let Ok(s) = serde_json::to_string(&v) {
            entries.push((det, host, s));
        }
    });
    StatePart { req, entries }
}

/// Writes state files: the prior learning loaded at start, and the
/// detectors that get a section.
pub struct Saver {
    path: PathBuf,
    detectors: Vec<&'static str>,
    prior_learning: BTreeMap<String, u64>,
    /// A failure was reported and no save has worked since: say it once.
    failing: bool,
    /// Where failed saves are counted (the stats record's `files`).
    files: Option<Arc<FileFaults>>,
}

impl Saver {
    /// A saver for `path`.
    pub fn new(
        path: PathBuf,
        detectors: Vec<&'static str>,
        prior_learning: BTreeMap<String, u64>,
    ) -> Saver {
        Saver {
            path,
            detectors,
            prior_learning,
            failing: false,
            files: None,
        }
    }

    /// Counts each failed save in `files`.
    #[must_use]
    pub fn counting_failures(mut self, files: Arc<FileFaults>) -> Saver {
        self.files = Some(files);
        self
    }

    /// The file's bytes for a save at `req` with these entries.
    pub fn encode(&self, req: SaveReq, mut entries: Entries) -> Vec<u8> {
        entries.sort_unstable();
        let mut by_det: BTreeMap<&'static str, Vec<(IpAddr, String)>> =
            self.detectors.iter().map(|d| (*d, Vec::new())).collect();
        for (d, h, e) in entries {
            by_det.entry(d).or_default().push((h, e));
        }
        let mut s = format!(
            "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"saved_at\":\"{}\",\"detectors\":{{",
            req.now.to_rfc3339()
        );
        for (i, (det, list)) in by_det.iter().enumerate() {
            let learned = self
                .prior_learning
                .get(*det)
                .copied()
                .unwrap_or(0)
                .saturating_add(req.elapsed_secs);
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                "\n\"{det}\":{{\"learned_secs\":{learned},\"entries\":["
            ));
            // One entry a line: the file diffs and greps well.
            for (j, (host, entry)) in list.iter().enumerate() {
                if j > 0 {
                    s.push(',');
                }
                s.push_str(&format!("\n[\"{host}\",{entry}]"));
            }
            if !list.is_empty() {
                s.push('\n');
            }
            s.push_str("]}");
        }
        s.push_str("\n}}\n");
        s.into_bytes()
    }

    /// Saves; a failure is one warning until a save works again.
    pub fn save(&mut self, req: SaveReq, entries: Entries) {
        let bytes = self.encode(req, entries);
        match write_atomic(&self.path, &bytes) {
            Ok(()) => self.failing = false,
            Err(e) => {
                if let Some(f) = &self.files {
                    FileFaults::count(&f.state_save_failures);
                }
                if !self.failing {
                    eprintln!(
                        "tapsentry: warning: cannot save baseline state to {}: {e}; running on without saving",
                        self.path.display()
                    );
                }
                self.failing = true;
            }
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one, never half of either: a temporary file in the same directory
/// (owner-only: the state maps the network), synced, renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut w = BufWriter::new(file);
        w.write_all(bytes)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // The rename is durable once the directory is synced; a failure here
    // only risks the old state after a power cut, so it is not reported.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The `state-out` thread: gathers every worker's part of a save and
/// writes the file when all have arrived. A save some worker skipped (live
/// capture dropped its batch) is abandoned when the next one starts.
pub fn state_loop(rx: &Receiver<StatePart>, mut saver: Saver, workers: usize) {
    let mut current: Option<(SaveReq, usize, Entries)> = None;
    for part in rx {
        match current.as_mut() {
            Some((req, _, _)) if req.seq > part.req.seq => continue,
            Some((req, got, entries)) if req.seq == part.req.seq => {
                *got += 1;
                entries.extend(part.entries);
            }
            _ => current = Some((part.req, 1, part.entries)),
        }
        if current.as_ref().is_some_and(|(_, got, _)| *got >= workers) {
            if let Some((req, _, entries)) = current.take() {
                saver.save(req, entries);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tapsentry_detect::{DetectConfig, HomeNet};
    use tapsentry_intel::IntelSnapshot;

    fn workers(n: usize) -> Vec<Worker> {
        let home = Arc::new(HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap());
        let intel = Arc::new(IntelSnapshot::empty());
        (0..n)
            .map(|_| Worker::new(&DetectConfig::default(), home.clone(), intel.clone()))
            .collect()
    }

    fn req(last: bool) -> SaveReq {
        SaveReq {
            seq: 1,
            now: Timestamp::from_micros(1_700_003_600_000_000),
            elapsed_secs: 3600,
            last,
        }
    }

    const GOOD: &str = r#"{"format":"tapsentry-state","version":1,"saved_at":"x","detectors":{
"spambot":{"learned_secs":2400,"entries":[
["10.0.0.25",{"last_seen_us":5}],
["10.0.0.26",{"last_seen_us":6}]
]},
"unusual_protocol":{"learned_secs":2400,"entries":[]},
"port_scan":{"learned_secs":1,"entries":[["10.0.0.1",{}]]}
}}"#;

    fn load_text(text: &[u8], n: usize) -> (Loaded, Vec<Worker>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        std::fs::write(&p, text).unwrap();
        let mut w = workers(n);
        let l = load(&p, &mut w);
        (l, w)
    }

    fn saved(w: &[Worker], prior: BTreeMap<String, u64>) -> String {
        let mut entries = Vec::new();
        for w in w {
            entries.extend(export(w, req(true)).entries);
        }
        let s = Saver::new(PathBuf::from("unused"), w[0].persisted_detectors(), prior);
        String::from_utf8(s.encode(req(true), entries)).unwrap()
    }

    #[test]
    fn bytes_in_memory_load_like_a_file() {
        let (from_file, _) = load_text(GOOD.as_bytes(), 2);
        let mut w = workers(2);
        let from_bytes = load_bytes(GOOD.as_bytes(), "mem", &mut w);
        assert_eq!(from_bytes.entries, from_file.entries);
        assert_eq!(from_bytes.prior_learning, from_file.prior_learning);
        assert!(from_bytes.warnings.is_empty(), "{:?}", from_bytes.warnings);
        let bad = load_bytes(b"{\xff}", "mem", &mut workers(2));
        assert_eq!(bad.entries, 0);
        assert!(bad.warnings[0].contains("not UTF-8"), "{:?}", bad.warnings);
    }

    #[test]
    fn a_good_file_loads_into_any_worker_count_and_writes_back_the_same() {
        let (l1, w1) = load_text(GOOD.as_bytes(), 1);
        let (l3, w3) = load_text(GOOD.as_bytes(), 3);
        assert!(l1.warnings.is_empty(), "{:?}", l1.warnings);
        assert_eq!(l1.entries, 2);
        assert_eq!(l3.entries, 2);
        assert_eq!(l1.prior_learning["spambot"], 2400);
        assert_eq!(l1.prior_learning["unusual_protocol"], 2400);
        assert!(!l1.prior_learning.contains_key("port_scan"));
        assert!(!l1.prior_learning.contains_key("external_login"));
        let a = saved(&w1, l1.prior_learning.clone());
        let b = saved(&w3, l3.prior_learning);
        assert_eq!(a, b);
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["format"], FORMAT);
        assert_eq!(v["version"], VERSION);
        assert_eq!(v["saved_at"], "2023-11-14T23:13:20.000000Z");
        assert_eq!(v["detectors"]["spambot"]["learned_secs"], 6000);
        assert_eq!(v["detectors"]["external_login"]["learned_secs"], 3600);
        assert_eq!(v["detectors"]["spambot"]["entries"][1][0], "10.0.0.26");
        // Written back, it loads to the same state again.
        let (l, w) = load_text(a.as_bytes(), 2);
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(saved(&w, BTreeMap::new()).len(), a.len());
    }

    #[test]
    fn every_damaged_file_is_one_warning_and_a_fresh_start() {
        let truncated = &GOOD.as_bytes()[..GOOD.len() / 2];
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "not a tapsentry state file"),
            (b"not json at all", "not a tapsentry state file"),
            (b"\xff\xfe\x00", "not UTF-8"),
            (truncated, "not a tapsentry state file"),
            (b"[1,2,3]", "not a tapsentry state file"),
            (
                br#"{"format":"other","version":1,"detectors":{}}"#,
                "format is 'other'",
            ),
            (
                br#"{"format":"tapsentry-state","version":2,"detectors":[]}"#,
                "version 2 is not supported",
            ),
            (
                br#"{"format":"tapsentry-state","version":1,"detectors":[]}"#,
                "detectors",
            ),
        ];
        for (text, want) in cases {
            let (l, w) = load_text(text, 2);
            assert_eq!(l.warnings.len(), 1, "{:?}", String::from_utf8_lossy(text));
            assert!(l.warnings[0].contains(want), "{}", l.warnings[0]);
            assert!(l.warnings[0].contains("state.json"), "{}", l.warnings[0]);
            assert!(!l.warnings[0].contains('\n'));
            assert!(l.prior_learning.is_empty());
            assert_eq!(l.entries, 0);
            assert!(w.iter().all(|w| export(w, req(false)).entries.is_empty()));
        }
    }

    #[test]
    fn a_damaged_section_or_entry_concerns_only_its_detector() {
        let text = r#"{"format":"tapsentry-state","version":1,"detectors":{
"spambot":{"learned_secs":2400,"entries":[["10.0.0.25",{"last_seen_us":5}],["nonsense",{}],["10.0.0.27",{"last_seen_us":"x"}]]},
"unusual_protocol":{"learned_secs":"many","entries":[]},
"external_login":{"learned_secs":2400,"entries":[["10.0.0.6",{"inside_logins":0,"outside_logins":2,"last_seen_us":1}]]}
}}"#;
        let (l, w) = load_text(text.as_bytes(), 2);
        assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
        assert!(l.warnings[0].contains("spambot: 2 of 3 entries skipped (first: entry 1"));
        assert!(l.warnings[1].contains("unusual_protocol: section does not parse"));
        assert_eq!(l.entries, 2);
        // Only the intact detector skips its learning period.
        assert_eq!(
            l.prior_learning.keys().collect::<Vec<_>>(),
            ["external_login"]
        );
        let n: usize = w.iter().map(|w| export(w, req(false)).entries.len()).sum();
        assert_eq!(n, 2);
    }

    #[test]
    fn missing_file_is_silent_and_oversized_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = workers(1);
        let l = load(&dir.path().join("none.json"), &mut w);
        assert!(l.warnings.is_empty() && l.info.is_none());
        let p = dir.path().join("big.json");
        std::fs::write(&p, GOOD).unwrap();
        let l = load_bounded(&p, &mut w, 10);
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].contains("limit"), "{}", l.warnings[0]);
    }

    #[test]
    fn atomic_write_replaces_and_reports_bad_directories() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary file left behind");
        assert!(write_atomic(&dir.path().join("no/such/dir/s.json"), b"x").is_err());
        assert!(write_atomic(&p.join("under-a-file.json"), b"x").is_err());
    }
}
