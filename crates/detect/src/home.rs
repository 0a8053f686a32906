use std::net::IpAddr;

use ipnet::IpNet;

/// A CIDR network, or a bare address as a /32 or /128 (config lists:
/// `home_net`, allow-lists, mail servers).
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    let t = s.trim();
    t.parse::<IpNet>()
        .ok()
        .or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

/// The networks that are "inside" (`network.home_net`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeNet {
    nets: Vec<IpNet>,
}

/// A `home_net` entry that is not a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{entry}' is not a network in CIDR form (e.g. 10.0.0.0/8 or fd00::/8)")]
pub struct HomeNetError {
    /// The offending entry.
    pub entry: String,
}

impl HomeNet {
    /// Parses CIDR strings; a bare address counts as a /32 or /128.
    pub fn parse(entries: &[String]) -> Result<HomeNet, HomeNetError> {
        let mut nets = Vec::with_capacity(entries.len());
        for e in entries {
            let net = parse_net(e).ok_or_else(|| HomeNetError { entry: e.clone() })?;
            nets.push(net);
        }
        Ok(HomeNet { nets })
    }

    /// True when `ip` is inside. IPv4-mapped IPv6 addresses are judged as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_v4_v6_and_mapped() {
        let h =
            HomeNet::parse(&["10.0.0.0/8".into(), "fd00::/8".into(), "192.0.2.7".into()]).unwrap();
        assert!(h.contains("10.255.0.1".parse().unwrap()));
        assert!(h.contains("fd12::1".parse().unwrap()));
        assert!(h.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(h.contains("192.0.2.7".parse().unwrap()));
        assert!(!h.contains("192.0.2.8".parse().unwrap()));
        assert!(!h.contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn bad_entry_named() {
        let e = HomeNet::parse(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/33"));
    }
}
