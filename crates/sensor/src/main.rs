//! The `tapsentry` command line: parse, open, run, map failures to exit codes
//! (0 success, 2 usage or configuration, 1 runtime).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use tapsentry::config::{configured, SensorConfig};
use tapsentry::control::{load_intel_for_run, IntelHandle, SignalThread};
use tapsentry::pipeline::{Control, Mode, Pipeline, Speed};
use tapsentry_capture::{
    drop_privileges, FileSource, FrameSource, LiveSource, LiveSpec, ResilientLive,
};
use tapsentry_intel::IntelSnapshot;
use tapsentry_output::JsonlSink;

#[derive(Parser)]
#[command(
    name = "tapsentry",
    version,
    about = "Network security sensor: finds scans, lateral movement and data exfiltration in packets from a SPAN/tap port or pcap files",
    after_help = "Alerts are JSON lines (one per finding). Exit status: 0 success, 2 usage or configuration error, 1 runtime error."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags shared by `replay` and `run`: the configuration file and the keys
/// a flag may override.
#[derive(Args)]
struct Common {
    /// Configuration file (default: the embedded default, equal to sensor.toml.example).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Alert log path, overriding output.alert_log; "-" writes to stdout.
    #[arg(long, value_name = "PATH")]
    alerts: Option<String>,
    /// Detector worker threads, overriding pipeline.workers. Alerts do not depend on it.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Flow log path, overriding output.flow_log.
    #[arg(long, value_name = "PATH")]
    flows: Option<String>,
    /// Stats log path, overriding output.stats_log.
    #[arg(long, value_name = "PATH")]
    stats: Option<String>,
    /// Tor exit list, overriding intel.tor_exit_list (e.g. a snapshot from the day of the capture).
    #[arg(long, value_name = "FILE")]
    tor_exit_list: Option<PathBuf>,
    /// Baseline state file, overriding detect.state_file ("" for none): loaded at start, saved periodically and at exit.
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,
    /// Asset inventory file, overriding output.inventory ("" for none): loaded at start, saved periodically and at exit.
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay pcap/pcapng files, in the order given, as one continuous capture.
    ///
    /// "-" reads one capture from stdin (`tcpdump -w - | tapsentry replay -`). A directory
    /// replays every capture in it (not its subdirectories or hidden files), ordered by the
    /// time of each file's first packet; files that are not captures are skipped with a
    /// warning. Files are replayed one after another, never interleaved: a file that starts
    /// before the previous one ends comes after it whole. On a terminal, stderr shows a
    /// progress bar and, at the end, a summary table; otherwise one summary line.
    Replay {
        #[command(flatten)]
        common: Common,
        /// max (default), realtime, or a factor such as 10 (ten times real time). Alerts do not depend on it.
        #[arg(long, value_name = "SPEED", default_value = "max", value_parser = parse_speed)]
        speed: Speed,
        /// Capture files (pcap or pcapng, any supported link type), directories of them, or "-" for stdin.
        #[arg(required = true, value_name = "PCAP")]
        pcaps: Vec<PathBuf>,
    },
    /// Capture live on a SPAN/tap interface until SIGINT or SIGTERM.
    ///
    /// SIGHUP reloads the Tor exit list and GeoIP databases and reopens the
    /// logs (for logrotate). With output.pid_file set the process id is
    /// written there at start and removed at exit (what `intel update` and
    /// logrotate signal); with [metrics] listen set the stats counters are
    /// served on GET /metrics in the Prometheus text format. deploy/ has a
    /// systemd unit, a timer for `intel update`, a logrotate file and a
    /// log shipper.
    Run {
        #[command(flatten)]
        common: Common,
        /// Interface, overriding capture.interface.
        #[arg(long, value_name = "IFACE")]
        interface: Option<String>,
    },
    /// Show the asset inventory: one block per inside host (address, MACs, VLAN, names, first/last seen, bytes, services).
    Inventory {
        /// Configuration file, for output.inventory (default: the embedded default).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only this host.
        #[arg(long, value_name = "IP")]
        host: Option<std::net::IpAddr>,
        /// Print the file's JSON as it is (with --host: that host's object).
        #[arg(long)]
        json: bool,
        /// The inventory file (default: output.inventory of the configuration).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Show the alert log, one line per record: time, severity, category, who -> whom, what, key evidence, country.
    ///
    /// Shows `alert`, `alert_update` (a finding's final figures), `incident` and `inventory`
    /// records; skips other record types. Lines that are not records are counted (reported on
    /// stderr), never fatal. Colour only when stdout is a terminal (NO_COLOR and CLICOLOR_FORCE
    /// are honoured). Exit status: 0, or 1 when the file cannot be read.
    #[command(
        after_help = "Examples:\n  tapsentry alerts --severity 1 --since 2024-05-01\n  tapsentry alerts --follow --category port_scan\n  tapsentry alerts --json /var/log/tapsentry/alerts.jsonl | jq .evidence"
    )]
    Alerts {
        /// Configuration file, for output.alert_log (default: the embedded default).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Keep reading as records are appended, across rotation (rename or truncation), like
        /// `tail -F`; a file that does not exist yet is waited for. Stop with Ctrl-C. With "-"
        /// (stdin) it reads stdin to its end, as a pipe follows by itself.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only this category (e.g. port_scan, external_login, exfiltration); `incident` or
        /// `inventory` selects those records.
        #[arg(long, value_name = "C")]
        category: Option<String>,
        /// Only severity N or higher: 1 high, 2 medium and high, 3 all. Records without a
        /// severity (incidents, inventory) are then not shown.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=3))]
        severity: Option<u8>,
        /// Only records at or after this capture time: RFC 3339 (2024-05-01T10:00:00Z) or a
        /// date (2024-05-01, midnight UTC).
        #[arg(long, value_name = "T", value_parser = parse_since)]
        since: Option<time::OffsetDateTime>,
        /// Print the matching records as they are (JSON lines, for jq).
        #[arg(long)]
        json: bool,
        /// The alert log (default: output.alert_log of the configuration); "-" reads stdin.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print the outside attackers of an alert log as a firewall block list.
    ///
    /// Listed: the src_ip of every alert whose src_ip is outside network.home_net (an inbound
    /// scanner, an outside login source, a Tor exit connecting in), deduplicated and sorted,
    /// IPv4 then IPv6, each with a comment naming its alerts. Never listed: an address in
    /// home_net; any address an inside host reached in an alert (its scan's targets, the
    /// receiver of its upload, the resolver of its DNS tunnel, its mail server), even if it also
    /// acted against the site; loopback, link-local, multicast and unspecified addresses.
    /// Addresses are not aggregated into prefixes.
    #[command(
        after_help = "Loading the output:\n  nft:       nft -f FILE   (replaces table inet tapsentry: sets attackers_v4/v6, input and forward drop chains)\n  iptables:  iptables-restore --noflush FILE, once: iptables -I INPUT -j TAPSENTRY; iptables -I FORWARD -j TAPSENTRY\n  ip6tables: the same with ip6tables-restore and ip6tables\n  ipset:     ipset restore -exist < FILE   (sets tapsentry-v4, tapsentry-v6)"
    )]
    Blocklist {
        /// Configuration file, for output.alert_log and network.home_net (default: the embedded default).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only attackers with an alert of severity N or higher: 1 high, 2 medium and high, 3 all.
        #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
        min_severity: u8,
        /// Output format.
        #[arg(long, value_enum, default_value = "plain")]
        format: tapsentry::view::blocklist::Format,
        /// The alert log (default: output.alert_log of the configuration); "-" reads stdin.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Show the incidents of an alert log as timelines: for each incident (the latest record of its id) its score, stages (ATT&CK tactics, in order), hosts, outside parties and its alerts in time order, read from the same log. Colour only on a terminal (NO_COLOR turns it off).
    Incidents {
        /// Configuration file, for output.alert_log (default: the embedded default).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The alert log (default: output.alert_log of the configuration).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Check a configuration file and this host for `run`, in one pass.
    ///
    /// Configuration errors (syntax, unknown keys, bad values, a BPF filter
    /// that does not compile) are printed and exit 2. Problems of this host
    /// (the interface does not exist, a log, state, inventory or pid
    /// directory is missing or not writable, also for
    /// capture.drop_privileges_user; the drop-privileges user does not
    /// exist; an intel file is missing or does not parse; the metrics
    /// address is taken) are warnings, exit 0; with --strict they are
    /// errors, exit 2.
    CheckConfig {
        /// Treat problems of this host as errors (exit 2).
        #[arg(long)]
        strict: bool,
        /// The file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Threat intelligence: keep the Tor exit list up to date.
    Intel {
        #[command(subcommand)]
        cmd: IntelCmd,
    },
}

#[derive(Subcommand)]
enum IntelCmd {
    /// Download the Tor exit list from intel.tor_exit_list_url, check it and
    /// replace intel.tor_exit_list atomically, then send SIGHUP to the sensor
    /// named by output.pid_file so it reloads the list.
    ///
    /// The download must be an HTTP success, at most intel.update_max_bytes,
    /// text in one of the two list formats (one address a line, or Tor's
    /// exit-addresses), with at least intel.update_min_entries addresses and
    /// at most 1 line in 100 that is not one. Otherwise the old list is kept
    /// and the exit status is 1. Run it from the tapsentry-intel-update timer
    /// (deploy/), as a user that may write the list's directory.
    Update {
        /// Configuration file (default: the embedded default).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn parse_speed(s: &str) -> Result<Speed, String> {
    match s {
        "max" => Ok(Speed::Max),
        "realtime" => Ok(Speed::Factor(1.0)),
        f => match f.parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(Speed::Factor(x)),
            _ => Err(format!("'{f}' is not max, realtime or a positive factor")),
        },
    }
}

/// A failure and its exit status.
enum Failure {
    /// Exit 2: the command line or the configuration is wrong.
    Config(String),
    /// Exit 1: a capture, log or permission problem at run time.
    Runtime(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::CheckConfig { strict, file } => check_config(&file, strict),
        Cmd::Intel {
            cmd: IntelCmd::Update { config },
        } => intel_update(config),
        Cmd::Replay {
            common,
            speed,
            pcaps,
        } => replay(common, speed, &pcaps),
        Cmd::Run { common, interface } => run_live(common, interface),
        Cmd::Inventory {
            config,
            host,
            json,
            file,
        } => show_inventory(config, host, json, file),
        Cmd::Alerts {
            config,
            follow,
            category,
            severity,
            since,
            json,
            file,
        } => {
            let filter = tapsentry::view::alerts::Filter {
                category,
                severity,
                since,
                json,
            };
            show_alerts(config, follow, &filter, file)
        }
        Cmd::Blocklist {
            config,
            min_severity,
            format,
            file,
        } => blocklist(config, min_severity, format, file),
        Cmd::Incidents { config, file } => show_incidents(config, file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("tapsentry: error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn check_config(file: &std::path::Path, strict: bool) -> Result<(), Failure> {
    let cfg = SensorConfig::load(file).map_err(|e| Failure::Config(e.to_string()))?;
    let name = file.display();
    let errors = tapsentry::check::config_errors(&cfg);
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|e| format!("{name}: {e}")).collect();
        return Err(Failure::Config(lines.join("\n")));
    }
    let warnings = tapsentry::check::host_warnings(&cfg);
    let level = if strict { "error" } else { "warning" };
    for w in &warnings {
        eprintln!("{name}: {level}: {w}");
    }
    if strict && !warnings.is_empty() {
        return Err(Failure::Config(format!(
            "{name}: {} problems of this host (--strict)",
            warnings.len()
        )));
    }
    match warnings.len() {
        0 => eprintln!("{name}: OK"),
        n => eprintln!("{name}: OK for the configuration; {n} warnings for this host"),
    }
    Ok(())
}

/// `tapsentry intel update`: download, check, replace, signal.
fn intel_update(config: Option<PathBuf>) -> Result<(), Failure> {
    use tapsentry::intel_update::{signal_sensor, update_tor_list, Signalled};
    let cfg = match &config {
        Some(p) => SensorConfig::load(p),
        None => SensorConfig::embedded_default(),
    }
    .map_err(|e| Failure::Config(e.to_string()))?;
    let done = update_tor_list(&cfg.intel).map_err(|e| Failure::Runtime(e.to_string()))?;
    eprintln!(
        "tapsentry: {}: {} Tor exit addresses ({:?} format, {} bytes) from {}",
        done.path.display(),
        done.entries,
        done.format,
        done.bytes,
        cfg.intel.tor_exit_list_url
    );
    match signal_sensor(&cfg.output.pid_file) {
        Signalled::NoPidFile => eprintln!(
            "tapsentry: output.pid_file is not set: a running sensor reads the new list on SIGHUP or at its next start"
        ),
        Signalled::NotRunning(p) => eprintln!(
            "tapsentry: {} does not exist: no sensor running; the list is read at the next start",
            p.display()
        ),
        Signalled::Sent(pid) => eprintln!("tapsentry: sent SIGHUP to the sensor (pid {pid})"),
        // The list is in place; the sensor will read it at its next
        // reload or start, so this is a warning, not a failure.
        Signalled::Failed(why) => eprintln!("tapsentry: warning: {why}"),
    }
    Ok(())
}

/// `tapsentry inventory`: the file as a table, or its JSON as it is.
fn show_inventory(
    config: Option<PathBuf>,
    host: Option<std::net::IpAddr>,
    json: bool,
    file: Option<PathBuf>,
) -> Result<(), Failure> {
    use std::io::Write;
    let path = match file {
        Some(f) => f,
        None => {
            let cfg = match &config {
                Some(p) => SensorConfig::load(p),
                None => SensorConfig::embedded_default(),
            }
            .map_err(|e| Failure::Config(e.to_string()))?;
            configured(&cfg.output.inventory)
                .map(std::path::Path::to_path_buf)
                .ok_or_else(|| {
                    Failure::Config(
                        "tapsentry inventory: no file given and output.inventory is not set".into(),
                    )
                })?
        }
    };
    let name = path.display();
    let inv = match tapsentry_inventory::file::load(&path) {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(Failure::Runtime(format!(
                "inventory file {name}: does not exist"
            )))
        }
        Err(e) => return Err(Failure::Runtime(format!("inventory file {name}: {e}"))),
    };
    let text: Vec<u8> = match (host, json) {
        (None, true) => std::fs::read(&path)
            .map_err(|e| Failure::Runtime(format!("inventory file {name}: {e}")))?,
        (None, false) => tapsentry_inventory::table::render(&inv).into_bytes(),
        (Some(ip), as_json) => {
            let h = inv
                .host(ip)
                .ok_or_else(|| Failure::Runtime(format!("inventory file {name}: no host {ip}")))?;
            if as_json {
                let mut v = serde_json::to_vec(h)
                    .map_err(|e| Failure::Runtime(format!("inventory file {name}: {e}")))?;
                v.push(b'\n');
                v
            } else {
                tapsentry_inventory::table::host_block(h).into_bytes()
            }
        }
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is the reader's choice, not an error.
    match out.write_all(&text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Runtime(format!("stdout: {e}")))
        }
        _ => Ok(()),
    }
}

fn parse_since(s: &str) -> Result<time::OffsetDateTime, String> {
    tapsentry::view::records::parse_time(s)
        .ok_or_else(|| format!("'{s}' is not an RFC 3339 time or a date (2024-05-01)"))
}

/// The configuration of a reader command (`--config` or the default).
fn reader_config(config: Option<&std::path::Path>) -> Result<SensorConfig, Failure> {
    match config {
        Some(p) => SensorConfig::load(p),
        None => SensorConfig::embedded_default(),
    }
    .map_err(|e| Failure::Config(e.to_string()))
}

/// Opens a log to read: stdin for `-`.
fn open_log(path: &std::path::Path) -> Result<Box<dyn std::io::Read>, Failure> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    std::fs::File::open(path)
        .map(|f| Box::new(f) as Box<dyn std::io::Read>)
        .map_err(|e| Failure::Runtime(format!("alert log {}: {e}", path.display())))
}

/// `tapsentry alerts`.
fn show_alerts(
    config: Option<PathBuf>,
    follow: bool,
    filter: &tapsentry::view::alerts::Filter,
    file: Option<PathBuf>,
) -> Result<(), Failure> {
    use tapsentry::view::alerts;
    let path = match file {
        Some(f) => f,
        None => PathBuf::from(reader_config(config.as_deref())?.output.alert_log),
    };
    let out = anstream::stdout().lock();
    let name = path.display();
    if follow && path.as_os_str() != "-" {
        // Runs until Ctrl-C (the default action ends the process) or a
        // closed stdout.
        let stop = std::sync::atomic::AtomicBool::new(false);
        alerts::follow(&path, filter, out, &mut std::io::stderr(), &stop)
            .map_err(|e| Failure::Runtime(format!("alert log {name}: {e}")))?;
        return Ok(());
    }
    let mut input = open_log(&path)?;
    let counts = alerts::show(&mut input, filter, out)
        .map_err(|e| Failure::Runtime(format!("alert log {name}: {e}")))?;
    if counts.unreadable > 0 {
        eprintln!(
            "tapsentry alerts: {name}: {} lines were not records and were skipped",
            counts.unreadable
        );
    }
    Ok(())
}

/// `tapsentry blocklist`.
fn blocklist(
    config: Option<PathBuf>,
    min_severity: u8,
    format: tapsentry::view::blocklist::Format,
    file: Option<PathBuf>,
) -> Result<(), Failure> {
    use std::io::Write;
    use tapsentry::view::{blocklist::Blocklist, records::LineSplitter, records::LogRecord};
    let cfg = reader_config(config.as_deref())?;
    let home = tapsentry_detect::HomeNet::parse(&cfg.network.home_net)
        .map_err(|e| Failure::Config(format!("network.home_net: {e}")))?;
    let path = file.unwrap_or_else(|| PathBuf::from(&cfg.output.alert_log));
    let name = path.display().to_string();
    let mut input = open_log(&path)?;
    let mut list = Blocklist::default();
    let mut unreadable = 0u64;
    let mut split = LineSplitter::default();
    let mut take = |l: &[u8]| match LogRecord::parse(l) {
        Some(r) => list.add(&r, &home, min_severity),
        None if l.iter().all(u8::is_ascii_whitespace) => {}
        None => unreadable += 1,
    };
    split
        .feed(&mut input, &mut take)
        .map_err(|e| Failure::Runtime(format!("alert log {name}: {e}")))?;
    if let Some(last) = split.finish() {
        take(&last);
    }
    unreadable += split.too_long;
    if unreadable > 0 {
        eprintln!(
            "tapsentry blocklist: {name}: {unreadable} lines were not records and were skipped"
        );
    }
    let withheld = list.withheld();
    if withheld > 0 {
        eprintln!("tapsentry blocklist: {withheld} outside actors not listed: inside hosts reached them (see --help)");
    }
    if list.over_bound > 0 {
        eprintln!(
            "tapsentry blocklist: {} addresses left out: more than {} distinct addresses",
            list.over_bound,
            tapsentry::view::blocklist::MAX_ADDRESSES
        );
    }
    let text = list.render(format, &name);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Runtime(format!("stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// `tapsentry incidents`: the log's incidents as timelines.
fn show_incidents(config: Option<PathBuf>, file: Option<PathBuf>) -> Result<(), Failure> {
    use std::io::{BufReader, IsTerminal, Write};
    use tapsentry_incidents::timeline;
    let path = match file {
        Some(f) => f,
        None => {
            let cfg = match &config {
                Some(p) => SensorConfig::load(p),
                None => SensorConfig::embedded_default(),
            }
            .map_err(|e| Failure::Config(e.to_string()))?;
            if cfg.output.alert_log == "-" {
                return Err(Failure::Config(
                    "tapsentry incidents: output.alert_log is stdout; give the log file".into(),
                ));
            }
            PathBuf::from(cfg.output.alert_log)
        }
    };
    let name = path.display();
    let open = || {
        std::fs::File::open(&path)
            .map(BufReader::new)
            .map_err(|e| Failure::Runtime(format!("alert log {name}: {e}")))
    };
    // Two passes: the incidents, then only their alerts (memory follows
    // what is shown, not the log's size).
    let (incidents, skipped) = timeline::latest_incidents(open()?)
        .map_err(|e| Failure::Runtime(format!("alert log {name}: {e}")))?;
    let ids = incidents
        .iter()
        .flat_map(|r| r.incident.alert_ids.iter().copied())
        .collect();
    let (alerts, _) = timeline::member_alerts(open()?, &ids)
        .map_err(|e| Failure::Runtime(format!("alert log {name}: {e}")))?;
    if skipped.too_long + skipped.unreadable > 0 {
        eprintln!(
            "tapsentry: warning: alert log {name}: skipped {} unreadable and {} overlong lines",
            skipped.unreadable, skipped.too_long
        );
    }
    let mut out = std::io::stdout().lock();
    let colour = out.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let text = if incidents.is_empty() {
        "no incidents\n".to_string()
    } else {
        timeline::render(&incidents, &alerts, colour)
    };
    // A closed pipe (`| head`) is the reader's choice, not an error.
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Runtime(format!("stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// The configuration file (or the embedded default) with the flags'
/// overrides applied.
fn load_config(c: Common) -> Result<SensorConfig, Failure> {
    let mut cfg = match &c.config {
        Some(p) => SensorConfig::load(p),
        None => SensorConfig::embedded_default(),
    }
    .map_err(|e| Failure::Config(e.to_string()))?;
    if let Some(a) = c.alerts {
        cfg.output.alert_log = a;
    }
    if let Some(f) = c.flows {
        cfg.output.flow_log = f;
    }
    if let Some(s) = c.stats {
        cfg.output.stats_log = s;
    }
    if let Some(t) = c.tor_exit_list {
        cfg.intel.tor_exit_list = t;
    }
    if let Some(s) = c.state_file {
        cfg.detect.state_file = s;
    }
    if let Some(i) = c.inventory {
        cfg.output.inventory = i;
    }
    if let Some(w) = c.workers {
        if !(1..=64).contains(&w) {
            return Err(Failure::Config(format!(
                "--workers {w}: must be between 1 and 64"
            )));
        }
        cfg.pipeline.workers = w;
    }
    Ok(cfg)
}

struct Outputs {
    alerts: JsonlSink,
    flows: Option<JsonlSink>,
    stats: Option<JsonlSink>,
    metrics: Option<std::net::TcpListener>,
}

fn open_outputs(cfg: &SensorConfig) -> Result<Outputs, Failure> {
    let open = |p: &str, what: &'static str| {
        JsonlSink::open_as(p, what).map_err(|e| Failure::Runtime(e.to_string()))
    };
    let o = &cfg.output;
    Ok(Outputs {
        alerts: open(&o.alert_log, "alert log")?,
        flows: (!o.flow_log.is_empty())
            .then(|| open(&o.flow_log, "flow log"))
            .transpose()?,
        stats: (!o.stats_log.is_empty())
            .then(|| open(&o.stats_log, "stats log"))
            .transpose()?,
        // Bound before privileges are dropped, so a port below 1024 works.
        metrics: cfg
            .metrics
            .address()
            .map(|a| {
                std::net::TcpListener::bind(a).map_err(|e| {
                    Failure::Runtime(format!("metrics.listen: cannot listen on {a}: {e}"))
                })
            })
            .transpose()?,
    })
}

/// The control block, with the intel files loaded: one that is broken is
/// said once and the run goes on without it (`check-config` calls it an
/// error).
fn prepare(cfg: &SensorConfig) -> Result<Control, Failure> {
    let mut control = Control::new(IntelSnapshot::empty());
    let intel = load_intel_for_run(
        &cfg.intel,
        &IntelSnapshot::empty(),
        &control.files,
        "running without it",
    );
    // Said once, loudly: Tor detection silently matching nothing is what
    // an operator must not miss (the stats and metrics carry the count).
    // A list turned off (`""`) is the operator's choice, not news.
    if cfg.detect.tor.enabled
        && configured(&cfg.intel.tor_exit_list).is_some()
        && intel.tor.is_empty()
    {
        eprintln!(
            "tapsentry: WARNING: no Tor exit list loaded (intel.tor_exit_list = {:?}): Tor detection is OFF until `tapsentry intel update` installs one and the sensor gets SIGHUP",
            cfg.intel.tor_exit_list
        );
    }
    control.intel = std::sync::Arc::new(IntelHandle::new(intel));
    Ok(control)
}

fn replay(common: Common, speed: Speed, pcaps: &[PathBuf]) -> Result<(), Failure> {
    let cfg = load_config(common)?;
    let control = prepare(&cfg)?;
    let files = expand_captures(pcaps)?;
    let source = FileSource::open(&files).map_err(|e| Failure::Runtime(e.to_string()))?;
    let out = open_outputs(&cfg)?;
    // A terminal gets a progress bar and a summary table; anything else
    // (a log, a pipe, a test) the one summary line.
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| progress_bar(&files, source.bytes_read()));
    execute(
        cfg,
        control,
        Mode::Replay(speed),
        Box::new(source),
        out,
        None,
        bar,
    )
}

/// The replay's progress on stderr: bytes of the files read (a spinner
/// when stdin is among them: its size is unknown), packets per second and
/// alerts so far.
struct Bar {
    bar: indicatif::ProgressBar,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    start: std::time::Instant,
}

fn progress_bar(files: &[PathBuf], bytes: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Bar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let sizes: Option<u64> = files
        .iter()
        .map(|f| {
            (f.as_os_str() != tapsentry_capture::STDIN)
                .then(|| std::fs::metadata(f).map_or(0, |m| m.len()))
        })
        .sum();
    let bar = match sizes {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {bytes}/{total_bytes} {elapsed} (eta {eta}) {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {bytes} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    Bar {
        bar,
        bytes,
        start: tapsentry_telemetry::wall::instant(),
    }
}

impl Bar {
    fn show(&self, p: &tapsentry::pipeline::Progress) {
        let read = self.bytes.load(std::sync::atomic::Ordering::Relaxed);
        // Readers read ahead of the frames: never past the end.
        self.bar
            .set_position(self.bar.length().map_or(read, |l| read.min(l)));
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!(
            "{:.0} packets/s, {} packets, {} flows, {} alerts",
            p.packets as f64 / secs,
            p.packets,
            p.flows,
            p.alerts
        ));
    }
}

/// The capture arguments with each directory replaced by the captures in
/// it, in time order; `-` (stdin) and files stay as they are.
fn expand_captures(args: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for a in args {
        if a.as_os_str() == tapsentry_capture::STDIN || !a.is_dir() {
            files.push(a.clone());
            continue;
        }
        let (found, warnings) =
            FileSource::captures_in(a).map_err(|e| Failure::Runtime(e.to_string()))?;
        for w in warnings {
            eprintln!("tapsentry: warning: {w}");
        }
        if found.is_empty() {
            return Err(Failure::Runtime(format!(
                "{}: no pcap or pcapng file in this directory",
                a.display()
            )));
        }
        files.extend(found);
    }
    Ok(files)
}

/// Starts the signal thread, runs the pipeline to the end, prints the
/// summary and turns the report into the exit status.
fn execute(
    cfg: SensorConfig,
    control: Control,
    mode: Mode,
    source: Box<dyn FrameSource>,
    out: Outputs,
    banner: Option<&str>,
    bar: Option<Bar>,
) -> Result<(), Failure> {
    let signals = SignalThread::start(control.clone(), cfg.intel.clone())
        .map_err(|e| Failure::Runtime(format!("{e:#}")))?;
    // Written once the signal handlers are in place, so a SIGHUP sent by
    // whoever reads it reloads instead of killing the process.
    let pid_file = configured(&cfg.output.pid_file)
        .map(tapsentry::pidfile::PidFile::create)
        .transpose()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    // Said only once SIGTERM is handled: a supervisor that stops the
    // sensor as soon as it says it runs gets the orderly shutdown.
    if let Some(b) = banner {
        eprintln!("{b}");
    }
    let pipeline = Pipeline {
        cfg,
        mode,
        source,
        alerts: out.alerts,
        flows: out.flows,
        stats: out.stats,
        metrics: out.metrics,
    };
    let report = match &bar {
        Some(b) => pipeline.run_observed(&control, &mut |p| b.show(p)),
        None => pipeline.run(&control),
    };
    drop(pid_file);
    signals.stop();
    let report = report.map_err(|e| Failure::Runtime(format!("{e:#}")))?;
    match bar {
        Some(b) => {
            b.bar.finish_and_clear();
            eprint!("{}", tapsentry::view::summary::table(&report));
        }
        None => summarise(&report),
    }
    finish(report)
}

fn run_live(common: Common, interface: Option<String>) -> Result<(), Failure> {
    let cfg = load_config(common)?;
    let control = prepare(&cfg)?;
    let c = &cfg.capture;
    let spec = LiveSpec {
        interface: interface.unwrap_or_else(|| c.interface.clone()),
        promiscuous: c.promiscuous,
        snaplen: c.snaplen,
        buffer_size_bytes: c.buffer_size_mb.saturating_mul(1 << 20),
        read_timeout_ms: c.read_timeout_ms,
        bpf_filter: (!c.bpf_filter.is_empty()).then(|| c.bpf_filter.clone()),
        immediate: false,
    };
    // Opening must work at start (a wrong name is the operator's mistake
    // to hear about at once); later losses are reopened with backoff.
    let source = LiveSource::open(&spec).map_err(|e| Failure::Runtime(e.to_string()))?;
    let source = ResilientLive::new(source, spec.clone());
    // Logs are opened while still privileged (e.g. /var/log/tapsentry).
    let out = open_outputs(&cfg)?;
    if !c.drop_privileges_user.is_empty() {
        drop_privileges(&c.drop_privileges_user).map_err(|e| Failure::Runtime(e.to_string()))?;
    }
    let banner = format!(
        "tapsentry: capturing on {} (SIGINT/SIGTERM to stop, SIGHUP to reload)",
        spec.interface
    );
    execute(
        cfg,
        control,
        Mode::Live,
        Box::new(source),
        out,
        Some(&banner),
        None,
    )
}

fn summarise(r: &tapsentry::pipeline::RunReport) {
    let s = &r.stats;
    let packets = s.capture.packets;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let decode_errors = s.capture.decode_errors_total;
    // By reason, in name order (as the summary has always listed them).
    let by_reason = if decode_errors > 0 {
        let sorted: std::collections::BTreeMap<_, _> = s.capture.decode_errors.nonzero().collect();
        serde_json::to_string(&sorted).unwrap_or_default()
    } else {
        String::new()
    };
    eprintln!(
        "tapsentry: {} packets ({:.1} MB) in {:.2} s ({:.0} packets/s); {} flows; {} alerts written, {} suppressed; {} packets not decoded {}",
        packets,
        s.capture.wire_bytes as f64 / 1e6,
        secs,
        packets as f64 / secs,
        s.flows.created,
        s.alerts.written,
        s.alerts.suppressed,
        decode_errors,
        by_reason,
    );
}

fn finish(r: tapsentry::pipeline::RunReport) -> Result<(), Failure> {
    if let Some(f) = r.fatal {
        return Err(Failure::Runtime(f));
    }
    match r.capture_errors.as_slice() {
        [] => Ok(()),
        [one] => Err(Failure::Runtime(one.clone())),
        [first, rest @ ..] => {
            for e in rest {
                eprintln!("tapsentry: error: {e}");
            }
            Err(Failure::Runtime(first.clone()))
        }
    }
}
