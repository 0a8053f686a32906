//! Configuration problems: values that parse but make no sense.

use std::fmt;

/// One configuration value that parses but makes no sense: the full dotted
/// path of its key (`detect.port_scan.window_secs`) and what is wrong.
///
/// Every section's validation returns these (the flow table's, each
/// detector's, the sensor's own), so `check-config` prints them all one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Full dotted key path, from the top of the file.
    pub path: String,
    /// What is wrong, one line, without the key.
    pub message: String,
}

impl Problem {
    /// A problem with the key at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    /// `key 'detect.port_scan.window_secs': must be at least 1 second`,
    /// the spelling `check-config` has always used.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key '{}': {}", self.path, self.message)
    }
}

/// The problems of one configuration section, each under the section's
/// path: a section checks its keys by their own names and the caller says
/// where the section lives (`flow`, `detect.spambot`).
#[derive(Debug)]
pub struct SectionProblems<'a> {
    section: &'a str,
    found: Vec<Problem>,
}

impl<'a> SectionProblems<'a> {
    /// An empty list for the section at `section`.
    pub fn new(section: &'a str) -> SectionProblems<'a> {
        SectionProblems {
            section,
            found: Vec::new(),
        }
    }

    /// The full path of `key` in this section.
    pub fn path(&self, key: &str) -> String {
        if self.section.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.section)
        }
    }

    /// Records a problem with `key`.
    pub fn push(&mut self, key: &str, message: impl Into<String>) {
        let path = self.path(key);
        self.found.push(Problem::new(path, message));
    }

    /// `key` must be at least `min` (counts, caps and windows whose zero
    /// would turn the detector into nonsense): "must be at least {min}".
    pub fn at_least<T: PartialOrd + fmt::Display>(&mut self, key: &str, value: T, min: T) {
        if value < min {
            self.push(key, format!("must be at least {min}"));
        }
    }

    /// `key` must be a finite number within `[lo, hi]`.
    pub fn within(&mut self, key: &str, value: f64, lo: f64, hi: f64) {
        if !(value.is_finite() && value >= lo && value <= hi) {
            self.push(key, format!("{value} must be a number from {lo} to {hi}"));
        }
    }

    /// A list key that must name at least one entry.
    pub fn not_empty<T>(&mut self, key: &str, list: &[T], what: &str) {
        if list.is_empty() {
            self.push(
                key,
                format!(
                    "must list at least one {what} (set enabled = false to turn the detector off)"
                ),
            );
        }
    }

    /// A port list: at least one port, none of them 0.
    pub fn ports(&mut self, key: &str, ports: &[u16]) {
        self.not_empty(key, ports, "port");
        if ports.contains(&0) {
            self.push(key, "0 is not a port");
        }
    }

    /// Takes in problems found by a nested section or a shared helper.
    pub fn extend(&mut self, more: impl IntoIterator<Item = Problem>) {
        self.found.extend(more);
    }

    /// Every problem found, in the order found.
    pub fn into_vec(self) -> Vec<Problem> {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_under_their_section() {
        let mut p = SectionProblems::new("detect.tor");
        p.at_least("window_secs", 0u64, 1);
        p.at_least("max_hosts", 5usize, 1);
        p.within("share", f64::NAN, 0.0, 1.0);
        p.within("fine", 0.5, 0.0, 1.0);
        p.ports("ports", &[]);
        p.ports("more_ports", &[22, 0]);
        let all: Vec<String> = p.into_vec().iter().map(ToString::to_string).collect();
        assert_eq!(
            all,
            [
                "key 'detect.tor.window_secs': must be at least 1",
                "key 'detect.tor.share': NaN must be a number from 0 to 1",
                "key 'detect.tor.ports': must list at least one port (set enabled = false to turn the detector off)",
                "key 'detect.tor.more_ports': 0 is not a port",
            ]
        );
    }

    #[test]
    fn a_top_level_section_has_no_prefix() {
        let p = SectionProblems::new("");
        assert_eq!(p.path("x"), "x");
        assert_eq!(
            SectionProblems::new("flow").path("max_flows"),
            "flow.max_flows"
        );
    }
}
