use std::collections::HashSet;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use crate::IntelError;

/// Largest Tor exit list accepted (the real list is ~100 KiB in the plain
/// format and ~1 MiB in exit-addresses format).
pub const MAX_LIST_BYTES: u64 = 64 * 1024 * 1024;

/// Bad lines kept as examples in a [`LoadReport`].
const MAX_BAD_EXAMPLES: usize = 20;

/// Which of the two public formats a list was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TorListFormat {
    /// One address a line, `#` comments.
    #[default]
    Plain,
    /// Tor's `exit-addresses` document (`ExitAddress IP DATE TIME` lines).
    ExitAddresses,
    /// Both kinds of line appeared.
    Mixed,
}

/// What loading a list found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Distinct addresses loaded.
    pub entries: usize,
    /// Up to 20 bad lines: (line number from 1, why).
    pub bad_lines: Vec<(usize, String)>,
    /// All bad lines.
    pub bad_total: usize,
    /// The format seen.
    pub format: TorListFormat,
}

/// An immutable set of Tor exit addresses, IPv4 and IPv6.
///
/// Held in a `HashSet`: membership is asked for both ends of every flow
/// record, so lookups dominate and the set is built once per reload. With
/// the ~1,000-2,000 addresses of the real list, one hash beats the ~11
/// dependent, branchy comparisons of a binary search over a sorted `Vec`,
/// and the memory difference (tens of KiB) does not matter. IPv4-mapped
/// IPv6 addresses are stored and looked up in their IPv4 form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TorExitList {
    addrs: HashSet<IpAddr>,
}

/// Keywords of the exit-addresses format that carry no address.
const EXIT_DOC_KEYWORDS: [&str; 3] = ["ExitNode", "Published", "LastStatus"];

fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl TorExitList {
    /// Parses list text in either format, or a mix of both.
    ///
    /// `#` starts a comment (whole line or trailing); blank lines and
    /// surrounding whitespace (including CR of CRLF files and a leading
    /// byte-order mark) are ignored. In the exit-addresses format only
    /// `ExitAddress` lines carry an address; `ExitNode`, `Published` and
    /// `LastStatus` are known and skipped. Any other line is a bad line,
    /// reported with its number. `source` names the text for the caller's
    /// own messages; the report itself carries line numbers only.
    pub fn parse(text: &str, source: &str) -> (TorExitList, LoadReport) {
        // Kept in the signature so file and in-memory callers read alike.
        let _ = source;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut addrs = HashSet::new();
        let mut report = LoadReport::default();
        let (mut plain, mut doc) = (false, false);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or("");
            let parsed = if first == "ExitAddress" {
                doc = true;
                match words.next() {
                    Some(a) => parse_addr(a),
                    None => Err("ExitAddress without an address".to_string()),
                }
            } else if EXIT_DOC_KEYWORDS.contains(&first) {
                doc = true;
                continue;
            } else if words.next().is_some() {
                Err(format!("{} is not one address", quoted(line)))
            } else {
                plain = true;
                parse_addr(first)
            };
            match parsed {
                Ok(ip) => {
                    addrs.insert(normalise(ip));
                }
                Err(why) => {
                    report.bad_total += 1;
                    if report.bad_lines.len() < MAX_BAD_EXAMPLES {
                        report.bad_lines.push((i + 1, why));
                    }
                }
            }
        }
        report.entries = addrs.len();
        report.format = match (plain, doc) {
            (true, true) => TorListFormat::Mixed,
            (false, true) => TorListFormat::ExitAddresses,
            _ => TorListFormat::Plain,
        };
        (TorExitList { addrs }, report)
    }

    /// Loads a list file. A file whose non-comment lines hold no address at
    /// all, that is not text, or that is over [`MAX_LIST_BYTES`] is an error,
    /// so a broken replacement never wipes a good list.
    pub fn load(path: &Path) -> Result<(TorExitList, LoadReport), IntelError> {
        Self::load_with_limit(path, MAX_LIST_BYTES)
    }

    /// [`TorExitList::load`] with a size limit in bytes.
    pub fn load_with_limit(
        path: &Path,
        limit: u64,
    ) -> Result<(TorExitList, LoadReport), IntelError> {
        let read_err = |source| IntelError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let size = file.metadata().map_err(read_err)?.len();
        if size > limit {
            return Err(IntelError::TooLarge {
                path: path.to_path_buf(),
                size,
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // `take` guards against a file that grows while being read.
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > limit {
            return Err(IntelError::TooLarge {
                path: path.to_path_buf(),
                size: bytes.len() as u64,
                limit,
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| IntelError::NotText {
            path: path.to_path_buf(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        let (list, report) = Self::parse(&text, &path.display().to_string());
        if list.is_empty() && report.bad_total > 0 {
            let example = report
                .bad_lines
                .first()
                .map(|(n, why)| format!("line {n}: {why}"))
                .unwrap_or_default();
            return Err(IntelError::NoAddresses {
                path: path.to_path_buf(),
                lines: report.bad_total,
                example,
            });
        }
        Ok((list, report))
    }

    /// True when `ip` is listed (IPv4-mapped IPv6 matches its IPv4 form).
    pub fn contains(&self, ip: IpAddr) -> bool {
        !self.addrs.is_empty() && self.addrs.contains(&normalise(ip))
    }

    /// Addresses listed.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

/// One address, bare or in the bracketed IPv6 form some lists use.
fn parse_addr(word: &str) -> Result<IpAddr, String> {
    let bare = word
        .strip_prefix('[')
        .and_then(|w| w.strip_suffix(']'))
        .unwrap_or(word);
    bare.parse::<IpAddr>()
        .map_err(|_| format!("{} is not an IP address", quoted(word)))
}

/// A piece of a hostile file, made safe to print: at most 60 characters,
/// control characters escaped (no terminal escapes reach an operator).
fn quoted(s: &str) -> String {
    let mut out = String::from("'");
    for (n, c) in s.chars().enumerate() {
        if n == 60 {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn plain_format_with_comments_ipv6_and_crlf() {
        let text = "# list\r\n203.0.113.7\r\n\r\n  2001:db8::7  # trailing comment\r\n[2001:db8::8]\n203.0.113.7\n";
        let (l, r) = TorExitList::parse(text, "t");
        assert_eq!(r.entries, 3);
        assert_eq!(r.bad_total, 0);
        assert_eq!(r.format, TorListFormat::Plain);
        assert!(l.contains(ip("203.0.113.7")));
        assert!(l.contains(ip("2001:db8::7")));
        assert!(l.contains(ip("2001:db8::8")));
        assert!(l.contains(ip("::ffff:203.0.113.7")));
        assert!(!l.contains(ip("203.0.113.8")));
    }

    #[test]
    fn exit_addresses_format() {
        let text = "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2024-03-01 09:00:00\nLastStatus 2024-03-01 10:00:00\nExitAddress 198.51.100.9 2024-03-01 10:02:13\nExitAddress 2001:db8::9 2024-03-01 10:02:13\n";
        let (l, r) = TorExitList::parse(text, "t");
        assert_eq!(
            (r.entries, r.bad_total, r.format),
            (2, 0, TorListFormat::ExitAddresses)
        );
        assert!(l.contains(ip("198.51.100.9")));
        assert!(l.contains(ip("2001:db8::9")));
    }

    #[test]
    fn bad_lines_are_reported_with_numbers() {
        let (l, r) = TorExitList::parse(
            "203.0.113.1\nnot-an-ip\n1.2.3.4 5.6.7.8\nExitAddress\n",
            "t",
        );
        assert_eq!(l.len(), 1);
        assert_eq!(r.bad_total, 3);
        assert_eq!(r.bad_lines[0].0, 2);
        assert!(r.bad_lines[0].1.contains("not-an-ip"));
        assert_eq!(r.format, TorListFormat::Mixed);
    }

    #[test]
    fn files_good_bad_empty_binary_and_huge() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        std::fs::write(&p, "garbage\nmore garbage\n").unwrap();
        let e = TorExitList::load(&p).unwrap_err().to_string();
        assert!(e.contains("t.txt") && e.contains("line 1"), "{e}");
        std::fs::write(&p, "# nothing yet\n\n").unwrap();
        assert!(TorExitList::load(&p).unwrap().0.is_empty());
        std::fs::write(&p, [0x31, 0x2e, 0xff, 0xfe, b'\n']).unwrap();
        assert!(TorExitList::load(&p)
            .unwrap_err()
            .to_string()
            .contains("not a text file"));
        std::fs::write(&p, "203.0.113.1\n".repeat(100)).unwrap();
        assert!(matches!(
            TorExitList::load_with_limit(&p, 64),
            Err(IntelError::TooLarge { .. })
        ));
        let missing = TorExitList::load(&dir.path().join("missing.txt")).unwrap_err();
        assert!(missing.to_string().contains("missing.txt"));
    }
}
