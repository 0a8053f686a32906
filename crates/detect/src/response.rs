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
    Response { block }
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
}
