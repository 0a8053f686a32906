//! `output.pid_file`: the running sensor's process id, for the programs
//! that signal it (`tapsentry intel update`, logrotate's `postrotate`).
//!
//! Written at start (temporary file, then rename, so a reader never sees a
//! half-written number) and removed at exit, but only while it still holds
//! this process's id: a second sensor that took the file over keeps it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The most a pid file may hold: a pid and a newline, with room to spare.
/// A larger file is not a pid file, and is not read further.
const MAX_PID_FILE_BYTES: u64 = 64;

/// What went wrong with a pid file; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// The file could not be written, read or renamed into place.
    #[error("pid file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file does not hold one positive process id.
    #[error("pid file {path}: does not hold a process id ({content:?})")]
    Garbled {
        /// The file.
        path: PathBuf,
        /// Its first bytes, as text.
        content: String,
    },
}

/// The pid file of this process; removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's id to `path` (mode 0644: anyone may read whom
    /// to signal; only the sensor's user may change it).
    pub fn create(path: &Path) -> Result<PidFile, PidFileError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| PidFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let pid = std::process::id();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{pid}.tmp"));
        let tmp = PathBuf::from(tmp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut f| f.write_all(format!("{pid}\n").as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Another sensor started with the same file owns it now.
        if matches!(read_pid(&self.path), Ok(p) if p == self.pid) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                eprintln!(
                    "tapsentry: warning: cannot remove pid file {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

/// The process id a pid file holds (at most 64 bytes are read).
pub fn read_pid(path: &Path) -> Result<u32, PidFileError> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PID_FILE_BYTES).read_to_string(&mut text))
        .map_err(|source| PidFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    match text.trim().parse::<u32>() {
        // 0 would signal the whole process group, and a pid above
        // i32::MAX a negative number (a group) to kill(2).
        Ok(p) if p > 0 && i32::try_from(p).is_ok() => Ok(p),
        _ => Err(PidFileError::Garbled {
            path: path.to_path_buf(),
            content: text.chars().take(32).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_at_create_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pid");
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(read_pid(&path).unwrap(), std::process::id());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(pf);
        assert!(!path.exists());
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_file_taken_over_by_another_process_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pid");
        let pf = PidFile::create(&path).unwrap();
        std::fs::write(&path, "4242\n").unwrap();
        drop(pf);
        assert_eq!(read_pid(&path).unwrap(), 4242);
    }

    #[test]
    fn garbage_zero_negative_and_huge_are_not_pids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pid");
        for bad in ["", "0\n", "-1\n", "abc", "4294967295\n", &"9".repeat(100)] {
            std::fs::write(&path, bad).unwrap();
            let e = read_pid(&path).unwrap_err().to_string();
            assert!(e.contains("does not hold a process id"), "{bad:?}: {e}");
        }
        let e = read_pid(&dir.path().join("none")).unwrap_err().to_string();
        assert!(e.contains("none"), "{e}");
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_the_file() {
        let e = PidFile::create(Path::new("/nonexistent-dir/t.pid")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/t.pid"), "{e}");
    }
}
