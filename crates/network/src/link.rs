//! The netlink requests the pod network makes: links (bridge, veth pairs),
//! addresses and routes. Thin: the decisions are made in `lib.rs`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use nix::errno::Errno;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder,
};

use crate::NetworkError;
use crate::error::errno;
use crate::netns::Netns;

/// The routing protocol number that marks Bulwark's routes to peer nodes'
/// pod CIDRs (`ip route show proto 0x62`), so they can be listed and
/// replaced without touching anyone else's. Unassigned in iproute2's
/// `rt_protos`.
pub const ROUTE_PROTOCOL: u8 = 0x62;

/// A link's index, or `None` when no link has that name.
pub(crate) async fn index(handle: &Handle, name: &str) -> Result<Option<u32>, NetworkError> {
    Ok(get(handle, name).await?.map(|link| link.header.index))
}

/// The link called `name`, if there is one.
async fn get(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, NetworkError> {
    let found = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await;
    match found {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(Errno::ENODEV as i32) => Ok(None),
        Err(e) => Err(NetworkError::netlink(format!("looking up link {name}"))(e)),
    }
}

async fn require_index(handle: &Handle, name: &str) -> Result<u32, NetworkError> {
    index(handle, name).await?.ok_or_else(|| NetworkError::Io {
        action: format!("looking up link {name}"),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}

/// Creates the bridge if missing, sets its MTU, brings it up and gives it
/// the gateway address. Returns its index.
pub(crate) async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    mtu: u32,
    gateway: Ipv4Addr,
    prefix_len: u8,
) -> Result<u32, NetworkError> {
    if index(handle, name).await?.is_none() {
        handle
            .link()
            .add(LinkBridge::new(name).mtu(mtu).build())
            .execute()
            .await
            .map_err(NetworkError::netlink(format!("creating bridge {name}")))?;
    }
    let bridge = require_index(handle, name).await?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(bridge).mtu(mtu).up().build())
        .execute()
        .await
        .map_err(NetworkError::netlink(format!("bringing bridge {name} up")))?;
    handle
        .address()
        .add(bridge, IpAddr::V4(gateway), prefix_len)
        .replace()
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "adding {gateway}/{prefix_len} to {name}"
        )))?;
    Ok(bridge)
}

/// Deletes the link called `name`, if there is one (a veth's peer goes too).
pub(crate) async fn delete(handle: &Handle, name: &str) -> Result<(), NetworkError> {
    let Some(index) = index(handle, name).await? else {
        return Ok(());
    };
    match handle.link().del(index).execute().await {
        Err(e) if errno(&e) != Some(Errno::ENODEV as i32) => {
            Err(NetworkError::netlink(format!("deleting link {name}"))(e))
        }
        _ => Ok(()),
    }
}

/// Every link: index, name, and the index of the bridge it is attached to.
pub(crate) async fn list(handle: &Handle) -> Result<Vec<(u32, String, Option<u32>)>, NetworkError> {
    let links: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(NetworkError::netlink("listing links"))?;
    Ok(links
        .into_iter()
        .map(|link| {
            let mut name = String::new();
            let mut controller = None;
            for attribute in link.attributes {
                match attribute {
                    LinkAttribute::IfName(n) => name = n,
                    LinkAttribute::Controller(c) => controller = Some(c),
                    _ => {}
                }
            }
            (link.header.index, name, controller)
        })
        .collect())
}

/// The pod's ends of the wire: a veth pair `host`/`peer` in the node's
/// namespace, `host` on the bridge, `peer` moved into the pod's namespace.
pub(crate) async fn create_veth(
    node: &Handle,
    host: &str,
    peer: &str,
    bridge: u32,
    mtu: u32,
    pod_netns: &Netns,
) -> Result<(), NetworkError> {
    node.link()
        .add(LinkVeth::new(host, peer).mtu(mtu).build())
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "creating veth pair {host}/{peer}"
        )))?;
    let peer_index = require_index(node, peer).await?;
    node.link()
        .set(
            LinkUnspec::new_with_index(peer_index)
                .setns_by_fd(pod_netns.file().as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "moving {peer} into {}",
            pod_netns.path().display()
        )))?;
    let host_index = require_index(node, host).await?;
    node.link()
        .set(
            LinkUnspec::new_with_index(host_index)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "attaching {host} to the bridge"
        )))?;
    // Hairpin: a pod reaching itself through a Service address gets its
    // DNATed frame back out of the port it came in by (br_netfilter
    // bridges DNAT to a pod on the same bridge), as CNI's hairpinMode.
    node.link()
        .set_port(LinkBridgePort::new(host_index).hairpin(true).build())
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "turning on hairpin mode on {host}"
        )))?;
    Ok(())
}

/// Inside the pod's namespace: `peer` becomes `eth0` with the pod's
/// address and a default route via the gateway; `lo` comes up.
pub(crate) async fn configure_pod(
    pod: &Handle,
    peer: &str,
    mtu: u32,
    ip: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
) -> Result<(), NetworkError> {
    let eth0 = require_index(pod, peer).await?;
    pod.link()
        .set(
            LinkUnspec::new_with_index(eth0)
                .name("eth0")
                .mtu(mtu)
                .address(pod_mac(ip).to_vec())
                .build(),
        )
        .execute()
        .await
        .map_err(NetworkError::netlink(format!("renaming {peer} to eth0")))?;
    pod.link()
        .set(LinkUnspec::new_with_index(eth0).up().build())
        .execute()
        .await
        .map_err(NetworkError::netlink("bringing eth0 up"))?;
    if let Some(lo) = index(pod, "lo").await? {
        pod.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(NetworkError::netlink("bringing lo up"))?;
    }
    pod.address()
        .add(eth0, IpAddr::V4(ip), prefix_len)
        .replace()
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "adding {ip}/{prefix_len} to eth0"
        )))?;
    pod.route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(eth0)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "adding the default route via {gateway}"
        )))?;
    Ok(())
}

/// Whether the pod's wiring is whole, as `create_veth` and `configure_pod`
/// leave it: `host` up on `bridge`, its peer the pod's `eth0`, up, with
/// `mtu`, `ip/prefix_len` and the default route via `gateway`. Anything
/// less (an agent killed half-way through, a link someone removed) is not.
#[allow(clippy::too_many_arguments)] // the wiring's facts, each checked
pub(crate) async fn pod_wired(
    node: &Handle,
    pod: &Handle,
    host: &str,
    bridge: u32,
    mtu: u32,
    ip: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
) -> Result<bool, NetworkError> {
    let up = |link: &LinkMessage| link.header.flags.contains(LinkFlags::Up);
    let Some(host) = get(node, host).await? else {
        return Ok(false);
    };
    let on_bridge = host
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Controller(c) if *c == bridge));
    let Some(peer) = host.attributes.iter().find_map(|a| match a {
        LinkAttribute::Link(index) => Some(*index),
        _ => None,
    }) else {
        return Ok(false);
    };
    if !on_bridge || !up(&host) {
        return Ok(false);
    }
    let Some(eth0) = get(pod, "eth0").await? else {
        return Ok(false);
    };
    let right_mtu = eth0
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Mtu(m) if *m == mtu));
    if eth0.header.index != peer || !up(&eth0) || !right_mtu {
        return Ok(false);
    }
    let addresses: Vec<AddressMessage> = pod
        .address()
        .get()
        .set_link_index_filter(peer)
        .execute()
        .try_collect()
        .await
        .map_err(NetworkError::netlink("listing eth0's addresses"))?;
    let addressed = addresses.iter().any(|a| {
        a.header.prefix_len == prefix_len
            && a.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(v)) if *v == ip))
    });
    if !addressed {
        return Ok(false);
    }
    let routes: Vec<RouteMessage> = pod
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(NetworkError::netlink("listing the pod's routes"))?;
    Ok(routes.iter().any(|r| {
        r.header.table == RouteHeader::RT_TABLE_MAIN
            && r.header.destination_prefix_length == 0
            && r.attributes.iter().any(
                |a| matches!(a, RouteAttribute::Gateway(RouteAddress::Inet(g)) if *g == gateway),
            )
            && r.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Oif(o) if *o == peer))
    }))
}

/// The pod's MAC address, derived from its IP (`0a:58:` + the four
/// bytes, as the CNI bridge plugin did): a pod attached again gets the same
/// MAC, so its neighbours' ARP caches stay right and traffic resumes at
/// once.
pub(crate) fn pod_mac(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x0a, 0x58, a, b, c, d]
}

/// Bulwark's routes in the main table: destination → (gateway, message).
pub(crate) async fn routes(
    handle: &Handle,
) -> Result<BTreeMap<Ipv4Net, (Option<Ipv4Addr>, RouteMessage)>, NetworkError> {
    let all: Vec<RouteMessage> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(NetworkError::netlink("listing routes"))?;
    let mut ours = BTreeMap::new();
    for route in all {
        if route.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL)
            || route.header.table != RouteHeader::RT_TABLE_MAIN
        {
            continue;
        }
        let mut destination = Ipv4Addr::UNSPECIFIED;
        let mut gateway = None;
        for attribute in &route.attributes {
            match attribute {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = *a,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
                _ => {}
            }
        }
        if let Ok(net) = Ipv4Net::new(destination, route.header.destination_prefix_length) {
            ours.insert(net, (gateway, route));
        }
    }
    Ok(ours)
}

/// Adds (or replaces) the route to `destination` via `gateway`, marked
/// with `ROUTE_PROTOCOL`; with `onlink`, through that device whether or
/// not `gateway` is on one of its subnets (a VXLAN peer's VTEP).
pub(crate) async fn replace_route(
    handle: &Handle,
    destination: Ipv4Net,
    gateway: Ipv4Addr,
    onlink: Option<u32>,
) -> Result<(), NetworkError> {
    let mut route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(destination.network(), destination.prefix_len())
        .gateway(gateway)
        .protocol(RouteProtocol::Other(ROUTE_PROTOCOL));
    if let Some(device) = onlink {
        route = route.output_interface(device).onlink();
    }
    let route = route.build();
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "adding route {destination} via {gateway}"
        )))
}

/// Deletes a route `routes` returned.
pub(crate) async fn delete_route(handle: &Handle, route: RouteMessage) -> Result<(), NetworkError> {
    match handle.route().del(route).execute().await {
        Err(e) if errno(&e) != Some(Errno::ESRCH as i32) => {
            Err(NetworkError::netlink("deleting a route")(e))
        }
        _ => Ok(()),
    }
}

/// A VXLAN device as the pod network makes it: VNI `vni` on UDP `port`,
/// sending from `local`, with `mac`, `mtu` and `address`/32, no learning
/// (every entry comes from the agent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VxlanDevice<'a> {
    pub(crate) name: &'a str,
    pub(crate) vni: u32,
    pub(crate) port: u16,
    pub(crate) local: Ipv4Addr,
    pub(crate) mac: [u8; 6],
    pub(crate) address: Ipv4Addr,
    pub(crate) mtu: u32,
}

/// Creates the VXLAN device afresh (an old one, with another agent's
/// forwarding entries, is deleted first), up. Returns its index.
pub(crate) async fn recreate_vxlan(
    handle: &Handle,
    device: &VxlanDevice<'_>,
) -> Result<u32, NetworkError> {
    delete(handle, device.name).await?;
    create_vxlan(handle, device).await?;
    let index = require_index(handle, device.name).await?;
    vxlan_up(handle, device, index).await?;
    Ok(index)
}

/// The index of the VXLAN device if one is exactly as `device` says
/// (name, VNI, UDP port, local address, MAC, MTU, learning off), brought
/// up with its address; `None` when there is none (missing, or made with
/// other settings).
pub(crate) async fn keep_vxlan(
    handle: &Handle,
    device: &VxlanDevice<'_>,
) -> Result<Option<u32>, NetworkError> {
    let VxlanDevice {
        name,
        vni,
        port,
        local,
        mac,
        mtu,
        ..
    } = *device;
    let Some(link) = get(handle, name).await? else {
        return Ok(None);
    };
    let mut settings = Vec::new();
    let (mut right_mac, mut right_mtu) = (false, false);
    for attribute in &link.attributes {
        match attribute {
            LinkAttribute::Address(a) => right_mac = a.as_slice() == mac.as_slice(),
            LinkAttribute::Mtu(m) => right_mtu = *m == mtu,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Data(InfoData::Vxlan(vxlan)) = info {
                        settings.clone_from(vxlan);
                    }
                }
            }
            _ => {}
        }
    }
    let has = |wanted: &InfoVxlan| settings.contains(wanted);
    let same = right_mac
        && right_mtu
        && has(&InfoVxlan::Id(vni))
        && has(&InfoVxlan::Port(port))
        && has(&InfoVxlan::Local(local))
        && has(&InfoVxlan::Learning(false));
    if !same {
        return Ok(None);
    }
    let index = link.header.index;
    vxlan_up(handle, device, index).await?;
    Ok(Some(index))
}

/// The entries on the VXLAN device `device`: its permanent neighbours
/// (VTEP address → MAC) and forwarding entries (MAC → node address).
pub(crate) async fn tunnel_entries(
    handle: &Handle,
    device: u32,
) -> Result<(Vec<(Ipv4Addr, [u8; 6])>, Vec<([u8; 6], Ipv4Addr)>), NetworkError> {
    let mut neighbours = Vec::new();
    let mut forwarding = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Bridge] {
        let entries: Vec<NeighbourMessage> = handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await
            .map_err(NetworkError::netlink("listing neighbours"))?;
        for entry in entries {
            // Forwarding entries list as whatever state the driver
            // reports; neighbours we made are permanent.
            let ours =
                family == AddressFamily::Bridge || entry.header.state == NeighbourState::Permanent;
            if entry.header.ifindex != device || !ours {
                continue;
            }
            let (mut ip, mut mac) = (None, None);
            for attribute in &entry.attributes {
                match attribute {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
                    // A forwarding entry's (bridge family) remote comes raw.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(a)) => {
                        ip = <[u8; 4]>::try_from(&a[..]).ok().map(Ipv4Addr::from);
                    }
                    NeighbourAttribute::LinkLayerAddress(a) => {
                        mac = <[u8; 6]>::try_from(&a[..]).ok()
                    }
                    _ => {}
                }
            }
            match (family, ip, mac) {
                (AddressFamily::Inet, Some(ip), Some(mac)) => neighbours.push((ip, mac)),
                (_, Some(node), Some(mac)) => forwarding.push((mac, node)),
                _ => {}
            }
        }
    }
    Ok((neighbours, forwarding))
}

async fn create_vxlan(handle: &Handle, device: &VxlanDevice<'_>) -> Result<(), NetworkError> {
    let VxlanDevice {
        name,
        vni,
        port,
        local,
        mac,
        mtu,
        ..
    } = *device;
    handle
        .link()
        .add(
            LinkVxlan::new(name, vni)
                .port(port)
                .local(local)
                .learning(false)
                .mtu(mtu)
                .address(mac.to_vec())
                .build(),
        )
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "creating VXLAN device {name} (VNI {vni}, UDP {port}, from {local})"
        )))
}

async fn vxlan_up(
    handle: &Handle,
    device: &VxlanDevice<'_>,
    index: u32,
) -> Result<(), NetworkError> {
    let VxlanDevice { name, address, .. } = *device;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(NetworkError::netlink(format!("bringing {name} up")))?;
    handle
        .address()
        .add(index, IpAddr::V4(address), 32)
        .replace()
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "adding {address}/32 to {name}"
        )))
}

/// `ip neigh replace <ip> lladdr <mac> dev <device> nud permanent`: the
/// peer VTEP's MAC, so no ARP crosses the tunnel.
pub(crate) async fn replace_neighbour(
    handle: &Handle,
    device: u32,
    ip: Ipv4Addr,
    mac: [u8; 6],
) -> Result<(), NetworkError> {
    handle
        .neighbours()
        .add(device, IpAddr::V4(ip))
        .link_layer_address(&mac)
        .replace()
        .execute()
        .await
        .map_err(NetworkError::netlink(format!("adding neighbour {ip}")))
}

/// `bridge fdb replace <mac> dev <device> dst <remote> self permanent`:
/// frames for the peer VTEP's MAC go, encapsulated, to its node.
pub(crate) async fn replace_fdb(
    handle: &Handle,
    device: u32,
    mac: [u8; 6],
    remote: Ipv4Addr,
) -> Result<(), NetworkError> {
    handle
        .neighbours()
        .add_bridge(device, &mac)
        .flags(NeighbourFlags::Own)
        .destination(IpAddr::V4(remote))
        .replace()
        .execute()
        .await
        .map_err(NetworkError::netlink(format!(
            "adding forwarding entry to {remote}"
        )))
}

/// Removes what `replace_neighbour` (`fdb: None`) or `replace_fdb` added;
/// an entry already gone is fine.
pub(crate) async fn delete_neighbour(
    handle: &Handle,
    device: u32,
    ip: Ipv4Addr,
    fdb: Option<[u8; 6]>,
) -> Result<(), NetworkError> {
    let mut message = NeighbourMessage::default();
    message.header.ifindex = device;
    message.header.state = NeighbourState::Permanent;
    match fdb {
        Some(mac) => {
            message.header.family = AddressFamily::Bridge;
            message.header.flags = NeighbourFlags::Own;
            message
                .attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
            message
                .attributes
                .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        }
        None => {
            message.header.family = AddressFamily::Inet;
            message
                .attributes
                .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        }
    }
    match handle.neighbours().del(message).execute().await {
        Err(e) if errno(&e) != Some(Errno::ENOENT as i32) => {
            Err(NetworkError::netlink(format!("deleting neighbour {ip}"))(e))
        }
        _ => Ok(()),
    }
}

/// The MTU of the link that carries `address`, if one does.
pub(crate) async fn mtu_of(
    handle: &Handle,
    address: Ipv4Addr,
) -> Result<Option<u32>, NetworkError> {
    let addresses: Vec<_> = handle
        .address()
        .get()
        .set_address_filter(IpAddr::V4(address))
        .execute()
        .try_collect()
        .await
        .map_err(NetworkError::netlink("listing addresses"))?;
    let Some(found) = addresses.first() else {
        return Ok(None);
    };
    let links: Vec<LinkMessage> = handle
        .link()
        .get()
        .match_index(found.header.index)
        .execute()
        .try_collect()
        .await
        .map_err(NetworkError::netlink(format!(
            "looking up the link of {address}"
        )))?;
    Ok(links
        .iter()
        .flat_map(|l| &l.attributes)
        .find_map(|a| match a {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        }))
}
