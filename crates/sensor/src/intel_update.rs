//! `tapsentry intel update`: download the Tor exit list, check it, put it
//! in place atomically and tell the running sensor.
//!
//! A download replaces the list only when it is whole and plausible: an
//! HTTP success status, at most `intel.update_max_bytes` (the body is not
//! read past the bound), UTF-8 text in one of the two list formats, at
//! least `intel.update_min_entries` addresses, and at most one line in a
//! hundred that is not an address (an HTML error page served with status
//! 200 has none). Anything else leaves the old file untouched: a broken
//! update must never switch Tor detection off. The new file is written
//! beside the old one, flushed to disk, renamed over it and the directory
//! flushed, so the sensor reads the old list or the new one, never a mix.
//!
//! This module does not reload anything itself: the sensor reloads its
//! intel on SIGHUP ([`crate::control::reload`]), which [`signal_sensor`]
//! sends to the process named by `output.pid_file`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tapsentry_intel::{LoadReport, TorExitList, TorListFormat};

use crate::config::{configured, IntelConfig};
use crate::pidfile::{read_pid, PidFileError};

/// How long the whole download may take (connect, headers and body).
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an update did not replace the list; every message names the URL or
/// the file, and says the old list is kept where that applies.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// `intel.tor_exit_list` is empty: there is nowhere to put the list.
    #[error("intel.tor_exit_list is \"\" (off): nowhere to put the list")]
    NoListPath,
    /// `intel.tor_exit_list_url` is empty.
    #[error("intel.tor_exit_list_url is \"\": nothing to download")]
    NoUrl,
    /// The request failed (address, connection, TLS, timeout, cut body).
    #[error("{url}: download failed: {detail}; the old list is kept")]
    Download {
        /// Where from.
        url: String,
        /// The client's reason.
        detail: String,
    },
    /// The server answered with a status other than success.
    #[error("{url}: HTTP status {status}; the old list is kept")]
    Status {
        /// Where from.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body was larger than `intel.update_max_bytes`.
    #[error("{url}: larger than intel.update_max_bytes ({limit} bytes); the old list is kept")]
    TooLarge {
        /// Where from.
        url: String,
        /// The bound.
        limit: u64,
    },
    /// The body is not UTF-8 text.
    #[error("{url}: not a text file (invalid UTF-8 at byte {offset}); the old list is kept")]
    NotText {
        /// Where from.
        url: String,
        /// The first invalid byte.
        offset: usize,
    },
    /// Fewer addresses than `intel.update_min_entries`.
    #[error("{url}: {entries} addresses, fewer than intel.update_min_entries ({min}){example}; the old list is kept")]
    TooFew {
        /// Where from.
        url: String,
        /// Addresses found.
        entries: usize,
        /// The bound.
        min: usize,
        /// The first line that was not an address, if any.
        example: String,
    },
    /// More than one line in a hundred is not an address.
    #[error("{url}: {bad} lines are not addresses ({entries} are; first: {example}); the old list is kept")]
    Garbled {
        /// Where from.
        url: String,
        /// Bad lines.
        bad: usize,
        /// Addresses found.
        entries: usize,
        /// The first bad line and why.
        example: String,
    },
    /// The new file could not be written or renamed into place.
    #[error("{path}: cannot replace the list: {source}; the old list is kept")]
    Write {
        /// The file (or its temporary sibling).
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// What a successful update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The list file replaced.
    pub path: PathBuf,
    /// Distinct addresses in it.
    pub entries: usize,
    /// Its format.
    pub format: TorListFormat,
    /// Its size in bytes.
    pub bytes: usize,
}

/// Downloads, checks and installs the list named by `cfg`.
pub fn update_tor_list(cfg: &IntelConfig) -> Result<Updated, UpdateError> {
    let path = configured(&cfg.tor_exit_list).ok_or(UpdateError::NoListPath)?;
    if cfg.tor_exit_list_url.is_empty() {
        return Err(UpdateError::NoUrl);
    }
    let url = cfg.tor_exit_list_url.as_str();
    let body = download(url, cfg.update_max_bytes)?;
    let report = validate(url, &body, cfg.update_min_entries)?;
    replace_atomically(path, &body)?;
    Ok(Updated {
        path: path.to_path_buf(),
        entries: report.entries,
        format: report.format,
        bytes: body.len(),
    })
}

/// The body of `url`, at most `max_bytes` of it.
pub fn download(url: &str, max_bytes: u64) -> Result<Vec<u8>, UpdateError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(DOWNLOAD_TIMEOUT))
        .http_status_as_error(false)
        .user_agent(concat!("tapsentry/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let failed = |e: ureq::Error| match e {
        ureq::Error::BodyExceedsLimit(_) => UpdateError::TooLarge {
            url: url.to_string(),
            limit: max_bytes,
        },
        e => UpdateError::Download {
            url: url.to_string(),
            detail: e.to_string(),
        },
    };
    let mut resp = agent.get(url).call().map_err(failed)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(UpdateError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    resp.body_mut()
        .with_config()
        .limit(max_bytes)
        .read_to_vec()
        .map_err(failed)
}

/// Checks a downloaded list (see the module documentation).
pub fn validate(url: &str, body: &[u8], min_entries: usize) -> Result<LoadReport, UpdateError> {
    let text = std::str::from_utf8(body).map_err(|e| UpdateError::NotText {
        url: url.to_string(),
        offset: e.valid_up_to(),
    })?;
    let (_, report) = TorExitList::parse(text, url);
    let example = report
        .bad_lines
        .first()
        .map(|(n, why)| format!("line {n}: {why}"))
        .unwrap_or_default();
    if report.entries < min_entries {
        return Err(UpdateError::TooFew {
            url: url.to_string(),
            entries: report.entries,
            min: min_entries,
            example: if example.is_empty() {
                example
            } else {
                format!("; first bad {example}")
            },
        });
    }
    if report.bad_total.saturating_mul(100) > report.entries {
        return Err(UpdateError::Garbled {
            url: url.to_string(),
            bad: report.bad_total,
            entries: report.entries,
            example,
        });
    }
    Ok(report)
}

/// Replaces `path` with `bytes`: a temporary sibling (mode 0644: the list
/// is public data, and the sensor may run as another user than the
/// updater), flushed, renamed over `path`, then the directory flushed so
/// the rename survives a crash.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(UpdateError::Write { path: tmp, source });
    }
    if let Err(source) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(UpdateError::Write {
            path: path.to_path_buf(),
            source,
        });
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| UpdateError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// What [`signal_sensor`] found.
#[derive(Debug)]
pub enum Signalled {
    /// `output.pid_file` is not set: nobody to tell.
    NoPidFile,
    /// The pid file does not exist: no sensor is running with it.
    NotRunning(PathBuf),
    /// SIGHUP was sent to this process.
    Sent(u32),
    /// The pid file is unreadable or garbled, or the signal failed (a
    /// stale pid, or no permission).
    Failed(String),
}

/// Sends SIGHUP to the sensor named by `pid_file`, so it reloads its intel
/// (and reopens its logs, which is harmless).
pub fn signal_sensor(pid_file: &Path) -> Signalled {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let Some(path) = configured(pid_file) else {
        return Signalled::NoPidFile;
    };
    let pid = match read_pid(path) {
        Ok(p) => p,
        Err(PidFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Signalled::NotRunning(path.to_path_buf())
        }
        Err(e) => return Signalled::Failed(e.to_string()),
    };
    // A pid file left by a killed sensor may name a process that reused
    // the pid: SIGHUP would end it. Only a process named tapsentry is
    // signalled (its command name, as the kernel keeps it).
    let comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
    let comm = String::from_utf8_lossy(comm.get(..64).unwrap_or(&comm));
    if comm.trim_end() != "tapsentry" {
        return Signalled::Failed(format!(
            "pid file {}: process {pid} is not tapsentry ({:?}); a stale pid file? not signalled",
            path.display(),
            comm.trim_end()
        ));
    }
    // read_pid only returns pids that fit a positive i32.
    let raw = i32::try_from(pid).unwrap_or(i32::MAX);
    match kill(Pid::from_raw(raw), Signal::SIGHUP) {
        Ok(()) => Signalled::Sent(pid),
        Err(e) => Signalled::Failed(format!(
            "pid file {}: cannot signal process {pid}: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> String {
        (0..n)
            .map(|i| format!("198.51.{}.{}\n", i / 250, i % 250 + 1))
            .collect()
    }

    #[test]
    fn both_formats_pass_and_short_or_garbled_lists_do_not() {
        let r = validate("u", list(150).as_bytes(), 100).unwrap();
        assert_eq!((r.entries, r.format), (150, TorListFormat::Plain));
        let doc: String = (0..120)
            .map(|i| {
                format!(
                    "ExitNode {i:040X}\nPublished 2026-01-01 00:00:00\nExitAddress 203.0.{}.{} 2026-01-01 00:10:00\n",
                    i / 200,
                    i % 200 + 1
                )
            })
            .collect();
        let r = validate("u", doc.as_bytes(), 100).unwrap();
        assert_eq!((r.entries, r.format), (120, TorListFormat::ExitAddresses));

        let e = validate("u", list(99).as_bytes(), 100)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("99 addresses, fewer than intel.update_min_entries (100)"),
            "{e}"
        );
        let html = "<html><body><h1>502 Bad Gateway</h1></body></html>\n";
        let e = validate("u", html.as_bytes(), 100).unwrap_err().to_string();
        assert!(e.contains("0 addresses") && e.contains("line 1"), "{e}");
        // A list with an HTML page glued on: too many bad lines.
        let glued = format!("{}{}", list(200), html.repeat(3));
        let e = validate("u", glued.as_bytes(), 100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 lines are not addresses"), "{e}");
        let e = validate("u", &[0x31, 0xff, 0xfe], 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a text file"), "{e}");
    }

    #[test]
    fn replacing_writes_the_whole_file_with_its_mode_and_no_leftovers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tor.txt");
        std::fs::write(&path, "old\n").unwrap();
        replace_atomically(&path, b"new\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let e = replace_atomically(&dir.path().join("no/such/dir/x"), b"x").unwrap_err();
        assert!(e.to_string().contains("no/such/dir/x.tmp-"), "{e}");
    }

    #[test]
    fn signalling_without_a_pid_file_or_a_sensor_says_so() {
        assert!(matches!(signal_sensor(Path::new("")), Signalled::NoPidFile));
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("s.pid");
        assert!(matches!(signal_sensor(&pf), Signalled::NotRunning(_)));
        std::fs::write(&pf, "junk").unwrap();
        assert!(matches!(signal_sensor(&pf), Signalled::Failed(m) if m.contains("does not hold")));
    }

    /// A stale pid file naming another program: that program is not sent
    /// SIGHUP (which would end it).
    #[test]
    fn a_pid_reused_by_another_program_is_not_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("s.pid");
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(&pf, format!("{}\n", other.id())).unwrap();
        let got = signal_sensor(&pf);
        assert!(
            matches!(&got, Signalled::Failed(m) if m.contains("is not tapsentry (\"sleep\")")),
            "{got:?}"
        );
        // Time for a SIGHUP, had one been sent, to end it.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(other.try_wait().unwrap().is_none(), "sleep was signalled");
        other.kill().unwrap();
        let _ = other.wait();
    }
}
