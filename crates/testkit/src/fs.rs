//! A small filesystem a test can fill: [`Tmpfs`] mounts a tmpfs of a given
//! size (root only) and unmounts it when dropped, for tests of what the
//! sensor does when a disk is full.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A mounted tmpfs, unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_bytes` at `dir` (an existing directory).
    /// `None`, after printing why on stderr, when that is impossible (not
    /// root, no `mount`): the caller skips its test.
    pub fn mount(dir: &Path, size_bytes: u64) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_bytes}"))
            .arg("tmpfs")
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs at {} (needs root)",
                dir.display()
            );
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `name` until the filesystem is full (or `limit` bytes), and
    /// returns the bytes written: deleting that file gives them back.
    #[allow(
        clippy::disallowed_methods,
        reason = "filling a disk needs to know how far the last short write got"
    )]
    pub fn fill(&self, name: &str, limit: u64) -> u64 {
        let Ok(mut f) = std::fs::File::create(self.dir.join(name)) else {
            return 0;
        };
        let chunk = [0u8; 512];
        let mut n = 0;
        while n < limit {
            match f.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        n
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}
