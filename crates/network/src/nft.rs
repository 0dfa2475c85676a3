//! The `bulwark` nftables table: forwarding accept rules and masquerade of
//! pod traffic leaving the cluster CIDR, applied in one `nft -f -`
//! transaction (as upstream kube-proxy's nftables mode drives `nft`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::NetworkError;
use crate::netns::{self, Netns};

/// The table every rule of this crate lives in.
pub(crate) const TABLE: &str = "bulwark";

/// The whole table for a node. Applying it replaces what was there:
/// declaring the table first makes the `delete` succeed on a fresh node,
/// and all three statements are one transaction.
pub(crate) fn render(pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net) -> String {
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
"
    )
}

/// Removes the table (and nothing else); a no-op when it is absent.
pub(crate) fn render_delete() -> String {
    format!("table ip {TABLE}\ndelete table ip {TABLE}\n")
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
    fn the_node_table() {
        let text = render(
            "10.42.3.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
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
        "#]]
        .assert_eq(&text);
    }
}
