//! What the node is: capacity, addresses and system facts, read from the
//! host (`/proc`, `/etc/os-release`, `statvfs`), as the kubelet's cadvisor
//! and `nodeInfo` report them.

use std::net::IpAddr;
use std::path::Path;

/// Facts about the machine the agent runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// Online CPUs.
    pub cpus: u64,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// Size of the filesystem holding the agent's state, bytes.
    pub ephemeral_storage_bytes: u64,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_image: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// The Kubernetes spelling of the architecture (`amd64`, `arm64`).
    pub architecture: &'static str,
}

impl HostFacts {
    /// Reads the facts of this machine; `state_dir` names the filesystem
    /// whose size is the node's ephemeral storage.
    pub fn read(state_dir: &Path) -> HostFacts {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        let memory_bytes = meminfo_total(&read("/proc/meminfo")).unwrap_or(0);
        let ephemeral_storage_bytes = nix::sys::statvfs::statvfs(state_dir)
            .map(|s| s.blocks() * s.fragment_size())
            .unwrap_or(0);
        let kernel_version = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        HostFacts {
            cpus,
            memory_bytes,
            ephemeral_storage_bytes,
            kernel_version,
            os_image: os_release_pretty_name(&read("/etc/os-release"))
                .unwrap_or_else(|| "Linux".to_owned()),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            architecture: architecture(std::env::consts::ARCH),
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub(crate) fn meminfo_total(meminfo: &str) -> Option<u64> {
    meminfo_field(meminfo, "MemTotal")
}

/// A `/proc/meminfo` field (given in kB there), in bytes.
pub(crate) fn meminfo_field(meminfo: &str, field: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

fn os_release_pretty_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?;
        Some(value.trim_matches('"').to_owned())
    })
}

/// Rust's architecture names in Go's (`GOARCH`) spelling, as node labels use.
fn architecture(rust: &str) -> &'static str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        _ => "unknown",
    }
}

/// The address other nodes reach this one at: the source address the kernel
/// would pick for a route off the machine, else the first non-loopback
/// address of the host, else loopback.
pub fn default_node_ip() -> IpAddr {
    // A connected UDP socket sends nothing; it only asks the routing table.
    let routed = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|socket| {
        socket.connect("192.0.2.1:9")?;
        socket.local_addr()
    });
    match routed {
        Ok(addr) if !addr.ip().is_unspecified() => addr.ip(),
        _ => IpAddr::from([127, 0, 0, 1]),
    }
}

/// The node name a host gets by default: its hostname, lower-cased, as the
/// kubelet does.
pub fn default_node_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().to_lowercase())
        .unwrap_or_else(|_| "bulwark".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_are_bytes() {
        let text =
            "MemTotal:       24563232 kB\nMemFree:        1000 kB\nMemAvailable:   2000 kB\n";
        assert_eq!(meminfo_total(text), Some(24_563_232 * 1024));
        assert_eq!(meminfo_field(text, "MemAvailable"), Some(2000 * 1024));
        assert_eq!(meminfo_field(text, "Mem"), None);
        assert_eq!(meminfo_total("garbage"), None);
    }

    #[test]
    fn os_release_and_architecture() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_release_pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(architecture("x86_64"), "amd64");
        assert_eq!(architecture("aarch64"), "arm64");
    }
}
