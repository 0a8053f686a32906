//! Volume baselines shared by `exfiltration` and `data_collection`: how many
//! bytes a host moves in a window, held against that host's own history.
//!
//! A host's traffic is counted in tumbling windows aligned to capture time
//! (so every worker count and replay speed cuts them at the same instants),
//! and judged on a sliding estimate: the current window plus the share of
//! the previous one that still falls within `window_secs` of now. A burst
//! that straddles a window boundary is therefore not split in two.
//!
//! A closed window teaches the baseline: a [`LogEwma`] of its total (only
//! windows in which the host moved anything, so a laptop that sleeps at
//! night does not look like a volcano each morning) and a slowly decaying
//! peak. After the learning period an observation is clamped to two
//! standard deviations above the mean before it is learned, so a real change
//! of habit is absorbed over many windows but one burst does not teach the
//! baseline that bursts are normal.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{proto_name, AppProto, SectionProblems, Timestamp};

use crate::common::LogEwma;

/// Peers remembered per window (the rest is counted in `other_bytes`).
pub(crate) const MAX_PEERS_PER_WINDOW: usize = 8;

/// How a volume detector judges a window: the shared knobs of its config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VolumeParams {
    pub window_secs: u64,
    pub min_bytes: u64,
    pub z_threshold: f64,
    pub min_sd: f64,
    pub max_sd: f64,
    pub alpha: f64,
    pub peak_factor: f64,
    pub peak_half_life_secs: u64,
}

impl VolumeParams {
    /// Problems with the shared knobs, added to the section's list.
    pub(crate) fn problems(&self, p: &mut SectionProblems<'_>) {
        p.at_least("window_secs", self.window_secs, 1);
        if !(self.z_threshold.is_finite() && self.z_threshold > 0.0) {
            p.push("z_threshold", "must be a positive number");
        }
        if !(self.min_sd.is_finite() && self.min_sd > 0.0) {
            p.push("min_sd", "must be a positive number");
        }
        if !(self.max_sd.is_finite() && self.max_sd >= self.min_sd) {
            p.push("max_sd", "must be a number at least min_sd");
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0 && self.alpha <= 1.0) {
            p.push("alpha", "must be in (0, 1]");
        }
        if !(self.peak_factor.is_finite() && self.peak_factor >= 0.0) {
            p.push("peak_factor", "must be 0 or more");
        }
        p.at_least("peak_half_life_secs", self.peak_half_life_secs, 1);
    }

    fn window_us(&self) -> i64 {
        i64::try_from(self.window_secs.max(1).saturating_mul(1_000_000)).unwrap_or(i64::MAX)
    }
}

/// What a host normally moves per window: a log-space EWMA of active
/// windows and a decaying peak. Persisted across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeBaseline {
    ewma: LogEwma,
    /// Largest window seen (learned windows and alerted volumes), as of
    /// `peak_at_us`; it halves every `peak_half_life_secs`.
    peak: f64,
    peak_at_us: i64,
}

/// The numbers behind a verdict, for the alert's evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Judgement {
    pub observed: u64,
    pub typical: f64,
    pub windows: u64,
    pub z: f64,
    pub z_threshold_bytes: f64,
    pub peak: f64,
    /// The volume that had to be exceeded: the largest of the floor, the
    /// z threshold and `peak_factor` × peak.
    pub threshold: f64,
    pub exceeded: bool,
}

impl VolumeBaseline {
    /// The peak, decayed to `now`.
    pub(crate) fn peak_at(&self, now: Timestamp, half_life_secs: u64) -> f64 {
        let dt = now.micros().saturating_sub(self.peak_at_us).max(0) as f64 / 1e6;
        let hl = half_life_secs.max(1) as f64;
        let p = self.peak * (-dt / hl * std::f64::consts::LN_2).exp();
        if p.is_finite() {
            p.max(0.0)
        } else {
            0.0
        }
    }

    fn raise_peak(&mut self, bytes: f64, now: Timestamp, half_life_secs: u64) {
        let decayed = self.peak_at(now, half_life_secs);
        self.peak = decayed.max(if bytes.is_finite() { bytes } else { 0.0 });
        self.peak_at_us = now.micros();
    }

    /// Learns one closed window's total. While `learning`, the value is
    /// taken as is with a running-mean weight (so the first windows do not
    /// dominate). Afterwards it is clamped to mean + 2 sd first, for the
    /// mean and for the peak alike: a window that closes in the middle of a
    /// burst (its first half, still under the floor) must not become the
    /// peak the second half is then measured against.
    pub(crate) fn learn(&mut self, bytes: u64, now: Timestamp, p: &VolumeParams, learning: bool) {
        let raw = bytes as f64;
        let n = self.ewma.samples();
        if learning || n == 0 {
            let alpha = p.alpha.max(1.0 / (n as f64 + 1.0));
            self.ewma.update(raw, alpha);
            self.raise_peak(raw, now, p.peak_half_life_secs);
        } else {
            let (mean, sd) = self.scale(p);
            let x = raw.min((mean + 2.0 * sd).min(700.0).exp_m1());
            self.ewma.update(x, p.alpha);
            self.raise_peak(x, now, p.peak_half_life_secs);
        }
    }

    /// After an alert: the volume that alerted becomes the peak, so the
    /// host alerts again only when it escalates beyond `peak_factor` × it.
    pub(crate) fn absorb_alert(&mut self, bytes: u64, now: Timestamp, p: &VolumeParams) {
        self.raise_peak(bytes as f64, now, p.peak_half_life_secs);
    }

    /// Log-space mean and the standard deviation used for scoring: the
    /// learned one held within [`VolumeParams::min_sd`, `max_sd`]. The cap
    /// matters for bursty hosts: one 100 MB backup window in six quiet ones
    /// has a log-space deviation near 3, and four of those would put the
    /// threshold beyond any real transfer; past the cap the peak decides.
    fn scale(&self, p: &VolumeParams) -> (f64, f64) {
        let mean = self.ewma.typical().ln_1p();
        let lo = if p.min_sd.is_finite() {
            p.min_sd.max(1e-3)
        } else {
            0.5
        };
        let hi = if p.max_sd.is_finite() {
            p.max_sd.max(lo)
        } else {
            lo
        };
        (mean, self.ewma.sd().clamp(lo, hi))
    }

    /// Whether `observed` bytes within one window is far above this host's
    /// normal at `now`.
    pub(crate) fn judge(&self, observed: u64, now: Timestamp, p: &VolumeParams) -> Judgement {
        let (mean, sd) = self.scale(p);
        let learned = self.ewma.samples() > 0;
        let z = if learned {
            ((observed as f64).ln_1p() - mean) / sd
        } else {
            0.0
        };
        let z_threshold_bytes = if learned {
            let t = (mean + p.z_threshold * sd).min(700.0).exp_m1();
            if t.is_finite() {
                t.max(0.0)
            } else {
                f64::MAX
            }
        } else {
            0.0
        };
        let peak = self.peak_at(now, p.peak_half_life_secs);
        let threshold = (p.min_bytes as f64)
            .max(z_threshold_bytes)
            .max(p.peak_factor * peak);
        Judgement {
            observed,
            typical: self.ewma.typical(),
            windows: self.ewma.samples(),
            z: if z.is_finite() { z } else { 0.0 },
            z_threshold_bytes,
            peak,
            threshold,
            exceeded: observed as f64 >= threshold && observed > 0,
        }
    }

    /// True when every number is one this code could have produced (a
    /// baseline read from a state file is outside input).
    pub(crate) fn is_sane(&self) -> bool {
        let t = self.ewma.typical();
        t.is_finite()
            && t < 1e18
            && self.ewma.sd() <= 50.0
            && self.peak.is_finite()
            && (0.0..1e18).contains(&self.peak)
    }

    /// The typical volume of an active window.
    pub(crate) fn typical(&self) -> f64 {
        self.ewma.typical()
    }
}

impl Judgement {
    /// 1 (high) at five times the threshold, else 2.
    pub(crate) fn severity(&self) -> u8 {
        if self.observed as f64 >= 5.0 * self.threshold {
            1
        } else {
            2
        }
    }

    /// The evidence every volume alert carries: the observed volume under
    /// `volume_key`, the baseline and each bar it had to clear, and the
    /// largest peers under `peers_key` (with their reverse bytes under
    /// `reverse_key`, where the detector reports them).
    pub(crate) fn evidence(
        &self,
        p: &VolumeParams,
        volume_key: &'static str,
        peers_key: &'static str,
        reverse_key: Option<&'static str>,
        top: &[PeerBytes],
    ) -> BTreeMap<&'static str, serde_json::Value> {
        let mut e = BTreeMap::new();
        e.insert(volume_key, json!(self.observed));
        e.insert("window_secs", json!(p.window_secs));
        e.insert("baseline_typical_bytes", json!(self.typical.round() as u64));
        e.insert("baseline_windows", json!(self.windows));
        e.insert("z_score", json!((self.z * 100.0).round() / 100.0));
        e.insert("z_threshold", json!(p.z_threshold));
        e.insert(
            "z_threshold_bytes",
            json!(self.z_threshold_bytes.round() as u64),
        );
        e.insert("peak_bytes", json!(self.peak.round() as u64));
        e.insert("peak_factor", json!(p.peak_factor));
        e.insert("min_bytes", json!(p.min_bytes));
        e.insert("threshold_bytes", json!(self.threshold.round() as u64));
        let peers: Vec<serde_json::Value> = top
            .iter()
            .take(5)
            .map(|t| {
                let mut o = serde_json::Map::new();
                o.insert("ip".into(), json!(t.peer.to_string()));
                o.insert("bytes".into(), json!(t.bytes));
                if let Some(k) = reverse_key {
                    o.insert(k.into(), json!(t.reverse));
                }
                o.insert("port".into(), json!(t.port));
                o.insert("proto".into(), json!(proto_name(t.proto)));
                o.insert("app_proto".into(), json!(t.app));
                serde_json::Value::Object(o)
            })
            .collect();
        e.insert(peers_key, json!(peers));
        e
    }
}

/// The peer that carried at least two thirds of `observed`, if one did.
pub(crate) fn dominant(top: &[PeerBytes], observed: u64) -> Option<PeerBytes> {
    top.first()
        .filter(|t| t.bytes as f64 * 3.0 >= observed as f64 * 2.0)
        .copied()
}

/// Bytes exchanged with one peer within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerBytes {
    pub peer: IpAddr,
    /// Bytes the host sent to (or, for data collection, got from) `peer`.
    pub bytes: u64,
    /// Bytes the other way, in the same flows.
    pub reverse: u64,
    /// The service port and protocol of the largest contribution.
    pub port: u16,
    pub proto: u8,
    /// The classifier's verdict on the largest contribution.
    pub app: AppProto,
    largest: u64,
}

/// One window's bytes, with the peers that carried most of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub bytes: u64,
    pub peers: Vec<PeerBytes>,
    pub other_bytes: u64,
}

impl Tally {
    fn add(&mut self, peer: IpAddr, svc: Service, bytes: u64, reverse: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        if let Some(p) = self.peers.iter_mut().find(|p| p.peer == peer) {
            p.bytes = p.bytes.saturating_add(bytes);
            p.reverse = p.reverse.saturating_add(reverse);
            if bytes > p.largest {
                (p.largest, p.port, p.proto, p.app) = (bytes, svc.port, svc.proto, svc.app);
            }
            return;
        }
        let entry = PeerBytes {
            peer,
            bytes,
            reverse,
            port: svc.port,
            proto: svc.proto,
            app: svc.app,
            largest: bytes,
        };
        if self.peers.len() < MAX_PEERS_PER_WINDOW {
            self.peers.push(entry);
            return;
        }
        // Full: the smallest peer makes room if the newcomer is larger, so
        // the heavy hitters stay named; the loser's bytes go to "other".
        if let Some(min) = self.peers.iter_mut().min_by_key(|p| p.bytes) {
            if min.bytes < bytes {
                self.other_bytes = self.other_bytes.saturating_add(min.bytes);
                *min = entry;
                return;
            }
        }
        self.other_bytes = self.other_bytes.saturating_add(bytes);
    }
}

/// A host's traffic in the current and the previous window.
#[derive(Debug, Clone, Default)]
pub(crate) struct WindowedVolume {
    /// Index of the current window (capture µs / window µs).
    index: i64,
    started: bool,
    pub cur: Tally,
    /// The window just before `index` (empty when the host was silent then).
    pub prev: Tally,
}

impl WindowedVolume {
    /// Moves to the window containing `now`. Returns the total of the
    /// window that just closed, when one did and the host was active in it.
    pub(crate) fn advance(&mut self, now: Timestamp, p: &VolumeParams) -> Option<u64> {
        let idx = now.micros().div_euclid(p.window_us());
        if !self.started {
            (self.started, self.index) = (true, idx);
            return None;
        }
        if idx <= self.index {
            // A record a little older than the newest one counts in the
            // current window: windows only move forward.
            return None;
        }
        let closed = std::mem::take(&mut self.cur);
        let total = closed.bytes;
        self.prev = if idx == self.index + 1 {
            closed
        } else {
            Tally::default()
        };
        self.index = idx;
        (total > 0).then_some(total)
    }

    /// Counts `bytes` moved with `peer` (and `reverse` bytes the other way
    /// in the same flows) in the current window.
    pub(crate) fn add(&mut self, peer: IpAddr, svc: Service, bytes: u64, reverse: u64) {
        self.cur.add(peer, svc, bytes, reverse);
    }

    /// Fraction of the previous window still within one window of `now`.
    fn prev_weight(&self, now: Timestamp, p: &VolumeParams) -> f64 {
        let w = p.window_us();
        let into = now.micros().saturating_sub(self.index.saturating_mul(w));
        (1.0 - into as f64 / w as f64).clamp(0.0, 1.0)
    }

    /// Bytes within the last `window_secs` of `now`: the current window and
    /// the still-recent share of the previous one.
    pub(crate) fn sliding(&self, now: Timestamp, p: &VolumeParams) -> u64 {
        let prev = (self.prev.bytes as f64 * self.prev_weight(now, p)) as u64;
        self.cur.bytes.saturating_add(prev)
    }

    /// The peers of the sliding window, largest first, with their weighted
    /// bytes (at most `MAX_PEERS_PER_WINDOW` × 2).
    pub(crate) fn top_peers(&self, now: Timestamp, p: &VolumeParams) -> Vec<PeerBytes> {
        let w = self.prev_weight(now, p);
        let mut out: Vec<PeerBytes> = self.cur.peers.clone();
        for pb in &self.prev.peers {
            let b = (pb.bytes as f64 * w) as u64;
            let r = (pb.reverse as f64 * w) as u64;
            if b == 0 {
                continue;
            }
            match out.iter_mut().find(|o| o.peer == pb.peer) {
                Some(o) => {
                    o.bytes = o.bytes.saturating_add(b);
                    o.reverse = o.reverse.saturating_add(r);
                }
                None => out.push(PeerBytes {
                    bytes: b,
                    reverse: r,
                    ..*pb
                }),
            }
        }
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.peer.cmp(&b.peer)));
        out
    }
}

/// What a flow's bytes went over: its service port, IP protocol and the
/// classifier's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Service {
    pub port: u16,
    pub proto: u8,
    pub app: AppProto,
}

impl Service {
    /// The service of `rec` (see [`service_port`]).
    pub(crate) fn of(rec: &tapsentry_types::FlowRecord) -> Service {
        Service {
            port: service_port(rec),
            proto: rec.proto,
            app: rec.app_proto,
        }
    }
}

/// The service port of a flow: the server's, except for an active-mode FTP
/// data connection, which the FTP server opens from port 20 (so the port
/// that names the service is the client's).
pub(crate) fn service_port(rec: &tapsentry_types::FlowRecord) -> u16 {
    if rec.proto == 6 && rec.client_port == 20 {
        20
    } else {
        rec.server_port
    }
}

/// "2900x its typical 21 kB per active window", or what there was to
/// compare with when the host has no history yet.
pub(crate) fn versus_typical(observed: f64, j: &Judgement) -> String {
    if j.windows == 0 || j.typical < 1.0 {
        "with no earlier activity to compare".to_string()
    } else {
        format!(
            "{:.0}x its typical {} per active window",
            observed / j.typical,
            human(j.typical)
        )
    }
}

/// The application protocol a transfer used, as an analyst names it (what
/// they search a firewall log for): from the classifier's verdict when it
/// named one, so an upload over HTTP on 8888 or SSH on 443 says so; else,
/// for flows it could not name, from the service port (FTP data
/// connections, which only their control connection can name, among them).
pub(crate) fn app_protocol(svc: Service, ftp_peer: bool) -> &'static str {
    if let Some(name) = verdict_name(svc.app, svc.port) {
        return name;
    }
    let Service { port, proto, .. } = svc;
    match (proto, port) {
        (6, 21) | (6, 20) => "FTP",
        _ if ftp_peer && proto == 6 => "FTP",
        (6 | 17, 53) | (6, 853) => "DNS",
        (6, 80 | 8000 | 8080) => "HTTP",
        (6, 443 | 8443) | (17, 443) => "HTTPS",
        (6, 22) => "SSH",
        (6, 25 | 465 | 587) => "SMTP",
        (6, 139 | 445) => "SMB",
        (6 | 17, 2049) => "NFS",
        (6, 873) => "rsync",
        _ => "other",
    }
}

/// The analyst's name of a verdict; `None` for `unknown`. TLS is HTTPS on
/// the HTTPS ports, plain TLS elsewhere (IMAPS, LDAPS, a custom service);
/// QUIC is HTTP/3 in practice, so HTTPS as before.
fn verdict_name(app: AppProto, port: u16) -> Option<&'static str> {
    Some(match app {
        AppProto::Unknown => return None,
        AppProto::Http => "HTTP",
        AppProto::Tls if matches!(port, 443 | 8443) => "HTTPS",
        AppProto::Tls => "TLS",
        AppProto::Quic => "HTTPS",
        AppProto::Ssh => "SSH",
        AppProto::Smtp => "SMTP",
        AppProto::Smb => "SMB",
        AppProto::Dns => "DNS",
        AppProto::Ftp | AppProto::FtpData => "FTP",
        AppProto::Rdp => "RDP",
        AppProto::Vnc => "VNC",
        AppProto::Telnet => "Telnet",
        AppProto::Dcerpc => "DCE-RPC",
        AppProto::Kerberos => "Kerberos",
        AppProto::Ldap => "LDAP",
        AppProto::Winrm => "WinRM",
        AppProto::Imap => "IMAP",
        AppProto::Pop3 => "POP3",
        AppProto::Ntp => "NTP",
        AppProto::Snmp => "SNMP",
        AppProto::Mysql => "MySQL",
        AppProto::Postgresql => "PostgreSQL",
        AppProto::Mssql => "MSSQL",
        AppProto::Redis => "Redis",
        AppProto::Tor => "Tor",
        AppProto::Openvpn => "OpenVPN",
        AppProto::Wireguard => "WireGuard",
        AppProto::Ike | AppProto::Ipsec => "IPsec",
        AppProto::Bittorrent | AppProto::BittorrentDht => "BitTorrent",
        AppProto::Anydesk => "AnyDesk",
        AppProto::Teamviewer => "TeamViewer",
    })
}

/// Bytes as an analyst reads them ("61.2 MB").
pub(crate) fn human(bytes: f64) -> String {
    let b = if bytes.is_finite() {
        bytes.max(0.0)
    } else {
        0.0
    };
    bytesize::ByteSize(b as u64).display().si().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params() -> VolumeParams {
        VolumeParams {
            window_secs: 600,
            min_bytes: 50_000_000,
            z_threshold: 3.0,
            min_sd: 0.5,
            max_sd: 1.5,
            alpha: 0.02,
            peak_factor: 2.0,
            peak_half_life_secs: 7 * 86_400,
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_micros((1_700_000_000 + secs) * 1_000_000)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sliding_window_spans_the_boundary() {
        let p = params();
        let mut w = WindowedVolume::default();
        // Window boundaries fall on multiples of 600 s of epoch time.
        let base = 1_700_000_200; // 200 s before a boundary
        let at = |s: i64| Timestamp::from_micros((base + s) * 1_000_000);
        assert_eq!(w.advance(at(0), &p), None);
        w.add(ip("203.0.113.1"), svc(6, 443), 30_000_000, 0);
        assert_eq!(w.advance(at(300), &p), Some(30_000_000));
        w.add(ip("203.0.113.1"), svc(6, 443), 30_000_000, 0);
        // 100 s into the new window: 5/6 of the previous one still counts.
        let s = w.sliding(at(300), &p);
        assert_eq!(s, 55_000_000);
        let top = w.top_peers(at(300), &p);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].bytes, 55_000_000);
        // Two windows later the previous one is gone.
        assert_eq!(w.advance(at(1400), &p), Some(30_000_000));
        assert_eq!(w.sliding(at(1400), &p), 0);
    }

    #[test]
    fn a_steady_host_is_quiet_and_a_burst_is_not() {
        let p = params();
        let mut b = VolumeBaseline::default();
        for i in 0..30i64 {
            b.learn(20_000 + (i as u64 % 7) * 3_000, t(i * 600), &p, i < 3);
        }
        assert!(!b.judge(40_000, t(18_000), &p).exceeded);
        assert!(
            !b.judge(49_999_999, t(18_000), &p).exceeded,
            "below the floor"
        );
        let j = b.judge(50_000_000, t(18_000), &p);
        assert!(j.exceeded, "{j:?}");
        assert!(j.z > 10.0);
        assert_eq!(j.threshold, 50_000_000.0);
    }

    #[test]
    fn a_host_that_bursts_every_hour_is_its_own_normal() {
        let p = params();
        let mut b = VolumeBaseline::default();
        // One 120 MB backup window in six, the rest small.
        for i in 0..3 {
            let v = if i == 1 { 120_000_000 } else { 30_000 };
            b.learn(v, t(i * 600), &p, true);
        }
        for i in 3..40 {
            let v = if i % 6 == 1 { 150_000_000 } else { 30_000 };
            let j = b.judge(v, t(i * 600), &p);
            assert!(!j.exceeded, "window {i}: {j:?}");
            b.learn(v, t(i * 600), &p, false);
        }
        // Past its own peak the host stands out again: the capped deviation
        // keeps the z threshold from growing without bound.
        let j = b.judge(301_000_000, t(40 * 600), &p);
        assert!(j.exceeded, "{j:?}");
        assert!(j.z_threshold_bytes < 301_000_000.0, "{j:?}");
    }

    #[test]
    fn after_an_alert_only_an_escalation_alerts_again() {
        let p = params();
        let mut b = VolumeBaseline::default();
        b.learn(10_000, t(0), &p, true);
        assert!(b.judge(60_000_000, t(3600), &p).exceeded);
        b.absorb_alert(60_000_000, t(3600), &p);
        assert!(!b.judge(100_000_000, t(4200), &p).exceeded);
        assert!(b.judge(130_000_000, t(4200), &p).exceeded);
    }

    #[test]
    fn peak_halves_every_half_life() {
        let p = VolumeParams {
            peak_half_life_secs: 3600,
            ..params()
        };
        let mut b = VolumeBaseline::default();
        b.learn(100, t(0), &p, true);
        assert!((b.peak_at(t(3600), 3600) - 50.0).abs() < 1e-6);
        assert!((b.peak_at(t(7200), 3600) - 25.0).abs() < 1e-6);
    }

    #[test]
    fn tally_keeps_the_heaviest_peers() {
        let mut tl = Tally::default();
        for i in 0..20u8 {
            tl.add(IpAddr::from([203, 0, 113, i]), svc(6, 443), 1_000, 0);
        }
        tl.add(ip("198.51.100.9"), svc(6, 21), 5_000_000, 10);
        assert_eq!(tl.peers.len(), MAX_PEERS_PER_WINDOW);
        assert!(tl.peers.iter().any(|p| p.peer == ip("198.51.100.9")));
        assert_eq!(tl.bytes, 20 * 1_000 + 5_000_000);
        assert_eq!(
            tl.peers.iter().map(|p| p.bytes).sum::<u64>() + tl.other_bytes,
            tl.bytes
        );
    }

    fn svc(proto: u8, port: u16) -> Service {
        Service {
            port,
            proto,
            app: AppProto::Unknown,
        }
    }

    #[test]
    fn protocols_by_port() {
        assert_eq!(app_protocol(svc(6, 443), false), "HTTPS");
        assert_eq!(app_protocol(svc(17, 443), false), "HTTPS");
        assert_eq!(app_protocol(svc(6, 80), false), "HTTP");
        assert_eq!(app_protocol(svc(17, 53), false), "DNS");
        assert_eq!(app_protocol(svc(6, 21), false), "FTP");
        assert_eq!(app_protocol(svc(6, 50123), true), "FTP");
        assert_eq!(app_protocol(svc(6, 50123), false), "other");
        assert_eq!(human(61_234_567.0), "61.2 MB");
    }

    #[test]
    fn protocols_by_verdict_before_port() {
        let with = |proto, port, app| Service { port, proto, app };
        assert_eq!(app_protocol(with(6, 8888, AppProto::Http), false), "HTTP");
        assert_eq!(app_protocol(with(6, 443, AppProto::Ssh), false), "SSH");
        assert_eq!(app_protocol(with(6, 80, AppProto::Tls), false), "TLS");
        assert_eq!(app_protocol(with(6, 8443, AppProto::Tls), false), "HTTPS");
        assert_eq!(app_protocol(with(17, 1053, AppProto::Dns), false), "DNS");
        // A verdict beats the FTP-peer guess; an unnamed flow keeps it.
        assert_eq!(app_protocol(with(6, 50123, AppProto::Tls), true), "TLS");
        assert_eq!(app_protocol(with(6, 50123, AppProto::Unknown), true), "FTP");
        for a in AppProto::ALL {
            assert_eq!(verdict_name(a, 1).is_none(), a.is_unknown(), "{a}");
        }
    }

    proptest! {
        #[test]
        fn baselines_stay_finite(
            xs in proptest::collection::vec(any::<u64>(), 1..200),
            alpha in any::<f64>(),
            learning in any::<bool>(),
        ) {
            let p = VolumeParams { alpha, ..params() };
            let mut b = VolumeBaseline::default();
            for (i, x) in xs.iter().enumerate() {
                b.learn(*x, t(i as i64 * 600), &p, learning);
                let j = b.judge(*x, t(i as i64 * 600 + 1), &p);
                prop_assert!(j.z.is_finite() && j.threshold.is_finite() && j.peak.is_finite());
                prop_assert!(j.typical.is_finite() && j.z_threshold_bytes.is_finite());
            }
        }

        #[test]
        fn tallies_stay_bounded_and_add_up(
            adds in proptest::collection::vec((any::<u8>(), 1u64..1_000_000), 0..300),
        ) {
            let mut tl = Tally::default();
            for (h, b) in &adds {
                tl.add(IpAddr::from([10, 0, 0, *h]), svc(6, 443), *b, 1);
            }
            prop_assert!(tl.peers.len() <= MAX_PEERS_PER_WINDOW);
            prop_assert_eq!(tl.peers.iter().map(|p| p.bytes).sum::<u64>() + tl.other_bytes, tl.bytes);
        }
    }
}
