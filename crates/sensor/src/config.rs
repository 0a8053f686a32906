//! The sensor's configuration: one TOML file, one section per crate.
//!
//! Unknown keys are errors naming their full path; `check-config` reports
//! every problem at once (syntax, unknown keys, wrong types, bad values).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tapsentry_detect::{DetectConfig, HomeNet};
use tapsentry_flow::FlowConfig;
use tapsentry_incidents::IncidentsConfig;
use tapsentry_inventory::InventoryConfig;
use tapsentry_types::{Problem, SectionProblems};

/// The embedded default configuration: the example file, byte for byte.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../sensor.toml.example");

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// `[network]`: what is inside.
    #[serde(default)]
    pub network: NetworkConfig,
    /// `[capture]`: live capture settings.
    #[serde(default)]
    pub capture: CaptureConfig,
    /// `[flow]`: the flow table.
    #[serde(default)]
    pub flow: FlowConfig,
    /// `[pipeline]`: threads and queues.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// `[intel]`: Tor exit list and GeoIP databases.
    #[serde(default)]
    pub intel: IntelConfig,
    /// `[output]`: logs.
    #[serde(default)]
    pub output: OutputConfig,
    /// `[detect]`: per-detector settings.
    #[serde(default)]
    pub detect: DetectConfig,
    /// `[inventory]`: the asset inventory's bounds and clocks (built when
    /// `output.inventory` is set).
    #[serde(default)]
    pub inventory: InventoryConfig,
    /// `[incidents]`: grouping alerts into incidents (docs/incidents.md).
    #[serde(default)]
    pub incidents: IncidentsConfig,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[metrics]`: counters and latency quantiles in the Prometheus text
/// format, served over HTTP on `GET /metrics`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `ADDRESS:PORT` to listen on, e.g. `127.0.0.1:9477`; empty turns the
    /// endpoint off. Default "" (off).
    pub listen: String,
}

impl MetricsConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(
                "listen",
                format!(
                    "'{}' is not ADDRESS:PORT (e.g. 127.0.0.1:9477), or \"\" for off",
                    self.listen
                ),
            );
        }
        p.into_vec()
    }

    /// The address to listen on, when the endpoint is on and the value
    /// parses (checked by [`MetricsConfig::problems`]).
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        self.listen.parse().ok()
    }
}

/// `[network]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// CIDR networks that are inside. Default: the RFC 1918 ranges and the
    /// IPv6 unique local range `fd00::/8`.
    pub home_net: Vec<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            home_net: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// `[capture]`: used by `tapsentry run`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Interface to capture on (overridden by `--interface`). Default `eth0`.
    pub interface: String,
    /// Put the interface in promiscuous mode. Default true (a SPAN port
    /// delivers other hosts' frames).
    pub promiscuous: bool,
    /// Bytes captured per packet. Volumes are counted from IP headers, so a
    /// short snap length does not change them. Default 262144 (libpcap's).
    pub snaplen: u32,
    /// Kernel capture buffer in MiB. Default 64.
    pub buffer_size_mb: u32,
    /// Read timeout in milliseconds: how long a read waits before the
    /// capture thread checks for shutdown and advances time. Default 100.
    pub read_timeout_ms: u32,
    /// BPF filter applied in the kernel; empty for none. Default "".
    pub bpf_filter: String,
    /// When started as root, switch to this user once the capture handle is
    /// open; empty keeps root. Default "".
    pub drop_privileges_user: String,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interface: "eth0".into(),
            promiscuous: true,
            snaplen: 262_144,
            buffer_size_mb: 64,
            read_timeout_ms: 100,
            bpf_filter: String::new(),
            drop_privileges_user: String::new(),
        }
    }
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Detector worker threads (per-host state is sharded across them).
    /// Default 2.
    pub workers: usize,
    /// Batches queued per detector worker. Replay waits when full; live
    /// drops and counts. Default 64.
    pub worker_queue: usize,
    /// Messages queued for the alert writer. Default 1024.
    pub writer_queue: usize,
    /// Capture-time seconds between flow sweeps (expiry, interim records).
    /// Default 1.
    pub sweep_interval_secs: u32,
    /// DNS events buffered between sweeps before live capture drops them.
    /// Default 65536. Also bounds the administration events (SMB2 and
    /// DCE-RPC operations) waiting for a sweep.
    pub max_pending_dns: usize,
    /// SMB and DCE-RPC flows followed at once by the administration
    /// inspector (a 600-byte inspector each, at most 1.5 KB with the map's
    /// slack, outside the flow table). At the
    /// cap a new such flow is not followed, counted as
    /// `admin_table_full`. 0 turns the inspector off. Default 4096.
    pub max_admin_flows: usize,
    /// Payload packets of one SMB or DCE-RPC flow the inspector reads
    /// (both directions together); later packets of the flow cost one
    /// compare. Default 4096.
    pub admin_packet_budget: u32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: 2,
            worker_queue: 64,
            writer_queue: 1024,
            sweep_interval_secs: 1,
            max_pending_dns: 65_536,
            max_admin_flows: 4096,
            admin_packet_budget: 4096,
        }
    }
}

/// `[intel]`. Every path is optional: `""` turns it off, and a file that
/// does not exist is a warning (it may be installed later; SIGHUP reloads).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IntelConfig {
    /// Tor exit list (one address a line, or Tor's exit-addresses format).
    /// Reloaded on SIGHUP. Default `/var/lib/tapsentry/tor-exits.txt`.
    pub tor_exit_list: PathBuf,
    /// MaxMind City (or Country) database. Default
    /// `/usr/share/GeoIP/GeoLite2-City.mmdb`.
    pub geoip_city: PathBuf,
    /// MaxMind ASN database. Default `/usr/share/GeoIP/GeoLite2-ASN.mmdb`.
    pub geoip_asn: PathBuf,
    /// Where `tapsentry intel update` downloads the Tor exit list from
    /// (`http://` or `https://`; either list format). Default the Tor
    /// Project's bulk exit list, `https://check.torproject.org/torbulkexitlist`.
    pub tor_exit_list_url: String,
    /// A downloaded list with fewer addresses is refused (the old list is
    /// kept): a truncated or emptied list must not switch Tor detection off.
    /// Default 100 (the real list holds over 1,000).
    pub update_min_entries: usize,
    /// A download larger than this many bytes is refused (and not read
    /// further). Default 16777216 (16 MiB; the real list is about 100 KiB,
    /// its exit-addresses form about 1 MiB).
    pub update_max_bytes: u64,
}

impl Default for IntelConfig {
    fn default() -> Self {
        IntelConfig {
            tor_exit_list: "/var/lib/tapsentry/tor-exits.txt".into(),
            geoip_city: "/usr/share/GeoIP/GeoLite2-City.mmdb".into(),
            geoip_asn: "/usr/share/GeoIP/GeoLite2-ASN.mmdb".into(),
            tor_exit_list_url: "https://check.torproject.org/torbulkexitlist".into(),
            update_min_entries: 100,
            update_max_bytes: 16 << 20,
        }
    }
}

impl IntelConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        let url = self.tor_exit_list_url.to_ascii_lowercase();
        if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
            p.push(
                "tor_exit_list_url",
                format!(
                    "'{}' is not an http:// or https:// URL",
                    self.tor_exit_list_url
                ),
            );
        }
        p.at_least("update_min_entries", self.update_min_entries, 1);
        if self.update_max_bytes == 0 || self.update_max_bytes > tapsentry_intel::MAX_LIST_BYTES {
            p.push(
                "update_max_bytes",
                format!(
                    "must be between 1 and {} (the largest list the sensor loads)",
                    tapsentry_intel::MAX_LIST_BYTES
                ),
            );
        }
        p.into_vec()
    }
}

/// `Some(path)` unless the configured path is empty (turned off).
pub fn configured(p: &Path) -> Option<&Path> {
    (!p.as_os_str().is_empty()).then_some(p)
}

/// `[output]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Alert log (JSON lines); `-` for stdout. Overridden by `--alerts`.
    pub alert_log: String,
    /// Flow log, one record per ended flow; empty for none. Default "".
    pub flow_log: String,
    /// Stats log (`event_type: "stats"`); empty for none. Default "".
    pub stats_log: String,
    /// Seconds (wall clock) between stats records. Default 60.
    pub stats_interval_secs: u64,
    /// Repeats of one finding (signature, src_ip, dest_ip) within this many
    /// seconds of capture time write no new line. Default 3600.
    pub suppression_window_secs: u64,
    /// Findings remembered for suppression (memory bound). Default 100000.
    pub suppression_max_entries: usize,
    /// MiB of alert-log lines kept in memory while the log cannot be
    /// written (disk full, permissions), written in order once it can
    /// (retried every second and on SIGHUP); lines beyond it are lost and
    /// counted (`alert_log.lost`). 0 keeps none. At most 4096. Default 16.
    pub alert_backlog_mb: u64,
    /// The asset inventory file (JSON, replaced atomically, mode 0600),
    /// saved every `inventory.save_interval_secs` of capture time and at
    /// exit, loaded at start; `""` turns the inventory (and its records in
    /// the alert log) off. Default "".
    pub inventory: PathBuf,
    /// A file the running sensor writes its process id to at start and
    /// removes at exit, for `tapsentry intel update` and logrotate's
    /// `postrotate` to signal it (SIGHUP); `""` for none. Default "".
    pub pid_file: PathBuf,
    /// The sensor's name, the `host` field of every record (many sensors
    /// may feed one SIEM); `""` means the machine's hostname, looked up at
    /// start ([`OutputConfig::sensor_host`]). Default "".
    pub host: String,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            alert_log: "/var/log/tapsentry/alerts.jsonl".into(),
            flow_log: String::new(),
            stats_log: String::new(),
            stats_interval_secs: 60,
            suppression_window_secs: 3600,
            suppression_max_entries: 100_000,
            alert_backlog_mb: 16,
            inventory: PathBuf::new(),
            pid_file: PathBuf::new(),
            host: String::new(),
        }
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblems {
    /// The file (or "embedded default").
    pub source: String,
    /// One line per problem, each naming the key.
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", self.source, p)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigProblems {}

impl SensorConfig {
    /// The embedded default configuration.
    pub fn embedded_default() -> Result<SensorConfig, ConfigProblems> {
        SensorConfig::parse(DEFAULT_CONFIG_TOML, "embedded default configuration")
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<SensorConfig, ConfigProblems> {
        let source = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| ConfigProblems {
            source: source.clone(),
            problems: vec![format!("cannot read: {e}")],
        })?;
        let text = String::from_utf8(text).map_err(|_| ConfigProblems {
            source: source.clone(),
            problems: vec!["not UTF-8 text".into()],
        })?;
        SensorConfig::parse(&text, &source)
    }

    /// Parses and validates TOML text, collecting every problem: it
    /// removes each offending key and parses again, so one run names them all.
    pub fn parse(text: &str, source: &str) -> Result<SensorConfig, ConfigProblems> {
        let fail = |problems| ConfigProblems {
            source: source.to_string(),
            problems,
        };
        let mut table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => return Err(fail(vec![one_line(&e.to_string())])),
        };
        let mut problems = Vec::new();
        // Each round removes one bad key; bounded by the keys in the file.
        for _ in 0..256 {
            let de = toml::Value::Table(table.clone());
            match serde_path_to_error::deserialize::<_, SensorConfig>(de) {
                Ok(cfg) => {
                    problems.extend(cfg.problems().iter().map(ToString::to_string));
                    return if problems.is_empty() {
                        Ok(cfg)
                    } else {
                        Err(fail(problems))
                    };
                }
                Err(e) => {
                    let path: Vec<String> = e
                        .path()
                        .iter()
                        .map(|s| s.to_string().trim_matches('?').to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                    let inner = e.into_inner().to_string();
                    // serde_path_to_error's path already ends with an
                    // unknown field's name; make sure of it either way.
                    let mut path = path;
                    if let Some(field) = unknown_field(&inner) {
                        if path.last().map(String::as_str) != Some(field) {
                            path.push(field.to_string());
                        }
                    }
                    let key_path = path.join(".");
                    let removed = remove_key(&mut table, &path);
                    let msg = if unknown_field(&inner).is_some() {
                        format!("unknown key '{key_path}'")
                    } else {
                        format!("key '{key_path}': {}", one_line(&inner))
                    };
                    problems.push(msg);
                    if !removed {
                        return Err(fail(problems));
                    }
                }
            }
        }
        Err(fail(problems))
    }

    /// Problems with values that parse but make no sense: every section's,
    /// each naming its full key path (the detectors' through the registry).
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = self.network.problems("network");
        p.extend(self.flow.problems("flow"));
        p.extend(self.detect.problems("detect"));
        p.extend(self.pipeline.problems("pipeline"));
        p.extend(self.output.problems("output"));
        p.extend(self.capture.problems("capture"));
        p.extend(self.inventory.problems("inventory"));
        p.extend(self.intel.problems("intel"));
        p.extend(self.metrics.problems("metrics"));
        p.extend(self.incidents.problems("incidents"));
        p
    }
}

impl NetworkConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        if let Err(e) = HomeNet::parse(&self.home_net) {
            p.push("home_net", e.to_string());
        }
        if self.home_net.is_empty() {
            p.push("home_net", "must list at least one network");
        }
        p.into_vec()
    }
}

impl PipelineConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        if !(1..=64).contains(&self.workers) {
            p.push(
                "workers",
                format!("{} is not between 1 and 64", self.workers),
            );
        }
        p.at_least("worker_queue", self.worker_queue, 1);
        p.at_least("writer_queue", self.writer_queue, 1);
        if self.max_admin_flows > 1_000_000 {
            p.push("max_admin_flows", "must be at most 1000000");
        }
        if self.sweep_interval_secs == 0 || self.sweep_interval_secs > 60 {
            p.push("sweep_interval_secs", "must be between 1 and 60");
        }
        p.into_vec()
    }
}

impl OutputConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        if self.alert_log.trim().is_empty() {
            p.push("alert_log", "must not be empty (use \"-\" for stdout)");
        }
        p.at_least("stats_interval_secs", self.stats_interval_secs, 1);
        p.at_least("suppression_max_entries", self.suppression_max_entries, 1);
        if self.alert_backlog_mb > 4096 {
            p.push(
                "alert_backlog_mb",
                format!("{} is above 4096", self.alert_backlog_mb),
            );
        }
        if self.host.chars().any(char::is_control) {
            p.push("host", "must not contain control characters");
        }
        p.into_vec()
    }

    /// The `host` field of every record: `output.host`, or when it is
    /// empty the machine's hostname (`"unknown"` if the system cannot say,
    /// which a configured name avoids).
    pub fn sensor_host(&self) -> String {
        if !self.host.is_empty() {
            return self.host.clone();
        }
        match nix::unistd::gethostname() {
            Ok(h) if !h.is_empty() => h.to_string_lossy().into_owned(),
            _ => "unknown".to_string(),
        }
    }
}

impl CaptureConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        if self.snaplen < 64 {
            p.push(
                "snaplen",
                format!(
                    "{} is below 64 bytes, too short for IP and transport headers",
                    self.snaplen
                ),
            );
        }
        if self.read_timeout_ms == 0 || self.read_timeout_ms > 10_000 {
            p.push("read_timeout_ms", "must be between 1 and 10000");
        }
        if self.buffer_size_mb == 0 || self.buffer_size_mb > 4096 {
            p.push("buffer_size_mb", "must be between 1 and 4096");
        }
        p.into_vec()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The field name in serde's "unknown field `x`, expected ..." message.
fn unknown_field(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Removes the key at `path` from the table; false when it is not there
/// (then no progress is possible and parsing stops).
fn remove_key(table: &mut toml::Table, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => table.remove(last).is_some(),
        [first, rest @ ..] => match table.get_mut(first) {
            Some(toml::Value::Table(t)) => remove_key(t, rest),
            Some(toml::Value::Array(a)) => {
                // A bad element of an array: drop the whole array key.
                let _ = a;
                table.remove(first).is_some()
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_equals_code_defaults_where_documented() {
        let cfg = SensorConfig::embedded_default().unwrap();
        assert_eq!(cfg.flow, FlowConfig::default());
        assert_eq!(cfg.pipeline, PipelineConfig::default());
        assert_eq!(cfg.capture, CaptureConfig::default());
        assert_eq!(cfg.network, NetworkConfig::default());
        assert_eq!(cfg.output, OutputConfig::default());
        assert_eq!(cfg.detect, DetectConfig::default());
        assert_eq!(cfg.intel, IntelConfig::default());
        assert_eq!(cfg.metrics, MetricsConfig::default());
    }

    #[test]
    fn operations_keys_parse_and_are_checked() {
        let cfg = SensorConfig::parse(
            "[metrics]\nlisten = \"127.0.0.1:9477\"\n[output]\npid_file = \"/run/tapsentry/tapsentry.pid\"\n\
             [intel]\ntor_exit_list_url = \"http://127.0.0.1:8000/exits\"\nupdate_min_entries = 5\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(cfg.metrics.address(), Some(([127, 0, 0, 1], 9477).into()));
        assert_eq!(
            cfg.output.pid_file,
            PathBuf::from("/run/tapsentry/tapsentry.pid")
        );
        assert_eq!(cfg.intel.update_min_entries, 5);
        let e = SensorConfig::parse(
            "[metrics]\nlisten = \"localhost\"\n[intel]\ntor_exit_list_url = \"ftp://x/y\"\n\
             update_min_entries = 0\nupdate_max_bytes = 0\n",
            "t.toml",
        )
        .unwrap_err();
        let all = e.to_string();
        for key in [
            "metrics.listen",
            "intel.tor_exit_list_url",
            "intel.update_min_entries",
            "intel.update_max_bytes",
        ] {
            assert!(all.contains(&format!("key '{key}': ")), "{key}: {all}");
        }
        assert_eq!(e.problems.len(), 4, "{all}");
    }

    #[test]
    fn every_unknown_key_is_named_at_once() {
        let text = "[network]\nhome_nets = []\n[flow]\nmax_flow = 3\n[flow.timeouts]\ntcp_nwe = 5\n[bogus]\nx = 1\n";
        let e = SensorConfig::parse(text, "t.toml").unwrap_err();
        let all = e.to_string();
        for k in [
            "network.home_nets",
            "flow.max_flow",
            "flow.timeouts.tcp_nwe",
            "bogus",
        ] {
            assert!(all.contains(&format!("unknown key '{k}'")), "{all}");
        }
        assert_eq!(e.problems.len(), 4, "{all}");
    }

    #[test]
    fn wrong_types_and_bad_values_are_named() {
        let text = "[flow]\nmax_flows = \"many\"\n[pipeline]\nworkers = 0\n[network]\nhome_net = [\"10.0.0.0/40\"]\n";
        let e = SensorConfig::parse(text, "t.toml").unwrap_err();
        let all = e.to_string();
        assert!(all.contains("key 'flow.max_flows'"), "{all}");
        assert!(all.contains("key 'pipeline.workers'"), "{all}");
        assert!(all.contains("10.0.0.0/40"), "{all}");
    }

    #[test]
    fn state_keys_parse_and_are_checked() {
        let cfg = SensorConfig::parse(
            "[detect]\nstate_file = \"/tmp/s.json\"\nstate_interval_secs = 60\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(cfg.detect.state_file, PathBuf::from("/tmp/s.json"));
        assert_eq!(cfg.detect.state_interval_secs.0, 60);
        let e = SensorConfig::parse("[detect]\nstate_interval_secs = 0\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("detect.state_interval_secs"), "{e}");
        let e = SensorConfig::parse(
            "[detect]\nstate_interval_secs = \"often\"\nstate_fil = \"x\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
    }

    /// Every registered detector has its `[detect.NAME]` section in the
    /// example (which is also the embedded default), with every key of its
    /// config type, each at its default.
    #[test]
    fn example_has_every_detector_section_with_every_key_at_its_default() {
        let example: toml::Table = DEFAULT_CONFIG_TOML.parse().unwrap();
        let detect = example
            .get("detect")
            .and_then(toml::Value::as_table)
            .unwrap();
        for e in tapsentry_detect::DETECTORS {
            let Some(section) = detect.get(e.name).and_then(toml::Value::as_table) else {
                panic!("sensor.toml.example lacks [detect.{}]", e.name);
            };
            let got = serde_json::to_value(section).unwrap();
            let want = e.default_section();
            let want = want.as_object().unwrap();
            for (key, value) in want {
                match got.get(key) {
                    None => panic!(
                        "[detect.{}] in sensor.toml.example lacks `{key}` (default {value})",
                        e.name
                    ),
                    Some(v) => assert_eq!(
                        v, value,
                        "[detect.{}] `{key}` in sensor.toml.example is not the default",
                        e.name
                    ),
                }
            }
            assert_eq!(got.as_object().unwrap().len(), want.len(), "{}", e.name);
        }
    }

    /// Every registered detector has its section in docs/detections.md: a
    /// `## NAME` heading (optionally followed by a space and more words).
    #[test]
    fn detections_doc_has_a_section_per_detector() {
        let doc = include_str!("../../../docs/detections.md");
        for e in tapsentry_detect::DETECTORS {
            let heading = format!("## {}", e.name);
            assert!(
                doc.lines()
                    .any(|l| l == heading || l.starts_with(&format!("{heading} "))),
                "docs/detections.md lacks a section headed `{heading}`"
            );
        }
    }

    /// The problems of every detector section are reported at once, each
    /// under its full path; the previously unchecked sections included.
    #[test]
    fn detector_values_are_checked_under_their_full_paths() {
        let text = "[detect.dns_tunnel]\nwindow_secs = 0\nmin_entropy = 9.5\nallow = [\".\"]\n\
                    [detect.external_login]\nwindow_secs = 0\nports = []\nbrute_force_sessions = 1\n\
                    [detect.unusual_protocol]\nmax_pairs = 0\n\
                    [detect.spambot]\nsmtp_ports = [0]\nmax_hosts = 0\n\
                    [detect.data_collection]\nmax_hosts = 0\npeak_half_life_secs = 0\n\
                    [detect.exfiltration]\nmax_hosts = 0\n\
                    [detect.port_scan]\nwindow_secs = 0\n";
        let e = SensorConfig::parse(text, "t.toml").unwrap_err();
        let all = e.to_string();
        for key in [
            "detect.dns_tunnel.window_secs",
            "detect.dns_tunnel.min_entropy",
            "detect.dns_tunnel.allow",
            "detect.external_login.window_secs",
            "detect.external_login.ports",
            "detect.external_login.brute_force_sessions",
            "detect.unusual_protocol.max_pairs",
            "detect.spambot.smtp_ports",
            "detect.spambot.max_hosts",
            "detect.data_collection.max_hosts",
            "detect.data_collection.peak_half_life_secs",
            "detect.exfiltration.max_hosts",
            "detect.port_scan.window_secs",
        ] {
            assert!(all.contains(&format!("key '{key}': ")), "{key}: {all}");
        }
        assert_eq!(e.problems.len(), 13, "{all}");
    }

    #[test]
    fn syntax_error_is_one_line() {
        let e = SensorConfig::parse("[flow\nmax_flows=1", "t.toml").unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert!(!e.problems[0].contains('\n'));
    }
}
