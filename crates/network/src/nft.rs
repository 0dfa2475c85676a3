//! The `bulwark` nftables tables: forwarding accept rules, masquerade of
//! pod traffic leaving the cluster CIDR, and the pods' anti-spoofing rules,
//! applied in one `nft -f -` transaction (as upstream kube-proxy's nftables
//! mode drives `nft`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::netns::{self, Netns};
use crate::{NetworkError, VETH_PREFIX};

/// The table every rule of this crate lives in.
pub(crate) const TABLE: &str = "bulwark";

/// One attached pod, as the anti-spoofing rules know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodPort {
    /// The host end of its veth pair, its port on the bridge.
    pub(crate) veth: String,
    /// Its address.
    pub(crate) ip: Ipv4Addr,
    /// Its `eth0`'s MAC.
    pub(crate) mac: [u8; 6],
}

/// The node's two tables, replacing what was there (declaring each table
/// first makes its `delete` succeed on a fresh node; the whole text is one
/// transaction):
///
/// - `ip bulwark`: forwarding of cluster traffic accepted, pod traffic
///   leaving the cluster CIDR masqueraded;
/// - `bridge bulwark`: a frame a pod sends must carry its own MAC, and its
///   own IPv4 address as IP or ARP source, or it is dropped where it enters
///   the bridge — a pod cannot pose as another pod (or as the gateway) to
///   its neighbours or to the node. The `bw*` ports of pods not (yet)
///   listed drop everything.
pub(crate) fn render(pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net, pods: &[PodPort]) -> String {
    let mut ips = String::new();
    let mut macs = String::new();
    if !pods.is_empty() {
        let join =
            |f: &dyn Fn(&PodPort) -> String| pods.iter().map(f).collect::<Vec<_>>().join(", ");
        ips = format!(
            "\t\telements = {{ {} }}\n",
            join(&|p| format!("\"{}\" . {}", p.veth, p.ip))
        );
        macs = format!(
            "\t\telements = {{ {} }}\n",
            join(&|p| format!("\"{}\" . {}", p.veth, mac(p.mac)))
        );
    }
    format!(
        "table ip {TABLE}
delete table ip {TABLE}
table ip {TABLE} {{
\tchain forward {{
\t\ttype filter hook forward priority filter; policy accept;
\t\tip saddr {cluster_cidr} accept
\t\tip daddr {cluster_cidr} accept
\t}}
\tchain postrouting {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr {pod_cidr} ip daddr != {cluster_cidr} masquerade
\t}}
}}
table bridge {TABLE}
delete table bridge {TABLE}
table bridge {TABLE} {{
\tset pod_ips {{
\t\ttype ifname . ipv4_addr
{ips}\t}}
\tset pod_macs {{
\t\ttype ifname . ether_addr
{macs}\t}}
\tchain prerouting {{
\t\ttype filter hook prerouting priority filter; policy accept;
\t\tiifname \"{VETH_PREFIX}*\" iifname . ether saddr != @pod_macs drop
\t\tiifname \"{VETH_PREFIX}*\" iifname . ip saddr != @pod_ips drop
\t\tiifname \"{VETH_PREFIX}*\" iifname . arp saddr ip != @pod_ips drop
\t}}
}}
"
    )
}

fn mac(bytes: [u8; 6]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Removes both tables, and the service proxy's (and nothing else); a
/// no-op when they are absent.
pub(crate) fn render_delete() -> String {
    format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable bridge {TABLE}\ndelete table bridge {TABLE}\n{}",
        crate::proxy::render_delete()
    )
}

/// Finds the `nft` binary: PATH first, then the sbin directories a service
/// PATH often lacks.
pub(crate) fn find() -> Result<PathBuf, NetworkError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join("nft"))
        .find(|candidate| candidate.is_file())
        .ok_or(NetworkError::NftMissing)
}

/// Runs `nft -f -` with `ruleset` on stdin, inside `netns` (None: ours).
pub(crate) fn apply(nft: &Path, netns: Option<&Netns>, ruleset: &str) -> Result<(), NetworkError> {
    // A child inherits the network namespace of the thread that spawns it.
    let output = netns::run_in(netns, || {
        let mut child = Command::new(nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(ruleset.as_bytes())?;
        }
        child.wait_with_output()
    })?
    .map_err(NetworkError::io(format!("running {}", nft.display())))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetworkError::Nft {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_tables() {
        let pods = [
            PodPort {
                veth: "bw0123456789a".into(),
                ip: Ipv4Addr::new(10, 42, 3, 2),
                mac: [0x0a, 0x58, 10, 42, 3, 2],
            },
            PodPort {
                veth: "bwfedcba98765".into(),
                ip: Ipv4Addr::new(10, 42, 3, 3),
                mac: [0x0a, 0x58, 10, 42, 3, 3],
            },
        ];
        let text = render(
            "10.42.3.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
            &pods,
        );
        expect_test::expect![[r#"
            table ip bulwark
            delete table ip bulwark
            table ip bulwark {
            	chain forward {
            		type filter hook forward priority filter; policy accept;
            		ip saddr 10.42.0.0/16 accept
            		ip daddr 10.42.0.0/16 accept
            	}
            	chain postrouting {
            		type nat hook postrouting priority srcnat; policy accept;
            		ip saddr 10.42.3.0/24 ip daddr != 10.42.0.0/16 masquerade
            	}
            }
            table bridge bulwark
            delete table bridge bulwark
            table bridge bulwark {
            	set pod_ips {
            		type ifname . ipv4_addr
            		elements = { "bw0123456789a" . 10.42.3.2, "bwfedcba98765" . 10.42.3.3 }
            	}
            	set pod_macs {
            		type ifname . ether_addr
            		elements = { "bw0123456789a" . 0a:58:0a:2a:03:02, "bwfedcba98765" . 0a:58:0a:2a:03:03 }
            	}
            	chain prerouting {
            		type filter hook prerouting priority filter; policy accept;
            		iifname "bw*" iifname . ether saddr != @pod_macs drop
            		iifname "bw*" iifname . ip saddr != @pod_ips drop
            		iifname "bw*" iifname . arp saddr ip != @pod_ips drop
            	}
            }
        "#]].assert_eq(&text);
    }

    #[test]
    fn no_pods_no_elements() {
        let text = render(
            "10.42.3.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
            &[],
        );
        assert!(!text.contains("elements"), "{text}");
    }
}
