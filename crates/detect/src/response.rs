use std::collections::BTreeMap;
use std::net::IpAddr;

use tapsentry_types::Response;

/// Ready firewall commands that block all traffic to and from `ip`, for
/// nftables (an `inet` table named `filter` with `input`, `output` and
/// `forward` chains, as in the distributions' defaults) and iptables.
pub fn block_response(ip: IpAddr) -> Response {
    let (fam, tool) = match ip {
        IpAddr::V4(_) => ("ip", "iptables"),
        IpAddr::V6(_) => ("ip6", "ip6tables"),
    };
    let mut block = BTreeMap::new();
    block.insert(
        "nftables",
        format!(
            "nft insert rule inet filter input {fam} saddr {ip} drop; \
             nft insert rule inet filter forward {fam} saddr {ip} drop; \
             nft insert rule inet filter forward {fam} daddr {ip} drop; \
             nft insert rule inet filter output {fam} daddr {ip} drop"
        ),
    );
    block.insert(
        "iptables",
        format!(
            "{tool} -I INPUT -s {ip} -j DROP && {tool} -I FORWARD -s {ip} -j DROP && \
             {tool} -I FORWARD -d {ip} -j DROP && {tool} -I OUTPUT -d {ip} -j DROP"
        ),
    );
    Response {
        action: "block",
        ip,
        block,
        isolate: BTreeMap::new(),
    }
}

/// Ready firewall commands that isolate the inside host `ip`: its
/// forwarded traffic is dropped both ways at the site's gateway (an `inet`
/// table named `filter` with a `forward` chain), so a host that scans out
/// or leaks stops reaching anyone while it is examined. The rules name the
/// host only, never the victims it reached.
pub fn isolate_response(ip: IpAddr) -> Response {
    let (fam, tool) = match ip {
        IpAddr::V4(_) => ("ip", "iptables"),
        IpAddr::V6(_) => ("ip6", "ip6tables"),
    };
    let mut isolate = BTreeMap::new();
    isolate.insert(
        "nftables",
        format!(
            "nft insert rule inet filter forward {fam} saddr {ip} drop; \
             nft insert rule inet filter forward {fam} daddr {ip} drop"
        ),
    );
    isolate.insert(
        "iptables",
        format!("{tool} -I FORWARD -s {ip} -j DROP && {tool} -I FORWARD -d {ip} -j DROP"),
    );
    Response {
        action: "isolate",
        ip,
        block: BTreeMap::new(),
        isolate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_and_v6_commands() {
        let r = block_response("198.51.100.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])));
        assert!(r.block["nftables"].contains("ip saddr 198.51.100.7 drop"));
        assert!(r.block["iptables"].starts_with("iptables -I INPUT -s 198.51.100.7 -j DROP"));
        let r = block_response("2001:db8::1".parse().unwrap_or(IpAddr::from([0u16; 8])));
        assert!(r.block["nftables"].contains("ip6 daddr 2001:db8::1 drop"));
        assert!(r.block["iptables"].starts_with("ip6tables"));
    }

    #[test]
    fn isolation_names_only_the_inside_host() {
        let r = isolate_response("10.0.0.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])));
        assert_eq!(r.action, "isolate");
        assert!(r.block.is_empty());
        assert!(r.isolate["nftables"].contains("forward ip saddr 10.0.0.9 drop"));
        assert!(r.isolate["iptables"].contains("-d 10.0.0.9 -j DROP"));
    }
}
