//! The one builder of [`Alert`] values for tests that need alerts without
//! the detectors that raise them (the incidents stage, the alert writer).

use std::collections::BTreeMap;
use std::net::IpAddr;

use tapsentry_types::{Alert, AlertBody, Category, Mitre, Timestamp};

use crate::scenario::at;

/// An alert under construction: a signature, its category and ATT&CK
/// tactic, a subject, a time; the rest optional.
#[derive(Debug, Clone)]
pub struct AlertBuilder {
    alert: Alert,
}

impl AlertBuilder {
    /// An alert of `signature` (category: the part before the dot) with
    /// ATT&CK `tactic`, about `src`, at `secs` after the scenario epoch
    /// ([`crate::scenario::at`]); severity 2, no counterpart.
    pub fn new(secs: f64, signature: &'static str, tactic: &'static str, src: IpAddr) -> Self {
        let category = signature.split('.').next().unwrap_or(signature);
        // Categories are 'static names; the signature's prefix is one.
        let category: &'static str = &signature[..category.len()];
        AlertBuilder {
            alert: Alert {
                timestamp: at(secs),
                event_type: "alert",
                src_ip: src,
                dest_ip: None,
                src_port: None,
                dest_port: None,
                proto: None,
                alert: AlertBody {
                    category: Category::new(category),
                    signature,
                    severity: 2,
                    description: format!("{signature} by {src}."),
                    mitre: Mitre {
                        tactic,
                        technique: "T0000",
                    },
                },
                evidence: BTreeMap::new(),
                community_id: None,
                flow_id: None,
                app_proto: None,
                geo: None,
                response: None,
                updates: None,
            },
        }
    }

    /// The counterpart.
    pub fn dest(mut self, dest: IpAddr) -> Self {
        self.alert.dest_ip = Some(dest);
        self
    }

    /// 1 high, 2 medium, 3 low.
    pub fn severity(mut self, severity: u8) -> Self {
        self.alert.alert.severity = severity;
        self
    }

    /// The exact capture time.
    pub fn timestamp(mut self, t: Timestamp) -> Self {
        self.alert.timestamp = t;
        self
    }

    /// The alert.
    pub fn build(self) -> Alert {
        self.alert
    }
}
