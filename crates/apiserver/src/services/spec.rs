//! What a Service's spec asks of the allocators, as upstream's Service
//! registry reads it: which IPs and NodePorts it holds, what a create or an
//! update must take and give back, and the rules on those fields.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::{AllocError, Allocators, Held, forbidden, go_strings, invalid};
use crate::status::{ApiError, ApiResult, Cause};

fn type_of(service: &Value) -> &str {
    service
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

/// Every type but ExternalName has a cluster IP (or "None").
fn needs_cluster_ip(service: &Value) -> bool {
    type_of(service) != "ExternalName"
}

/// NodePort, and LoadBalancer unless `allocateLoadBalancerNodePorts` is false.
fn needs_node_ports(service: &Value) -> bool {
    match type_of(service) {
        "NodePort" => true,
        "LoadBalancer" => {
            service
                .pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

/// LoadBalancer with `externalTrafficPolicy: Local`: a health check port.
fn needs_health_check_port(service: &Value) -> bool {
    type_of(service) == "LoadBalancer"
        && service
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

fn health_check_port(service: &Value) -> Option<u16> {
    service
        .pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_u64)
        .filter(|p| *p != 0)
        .and_then(|p| u16::try_from(p).ok())
}

fn cluster_ip(service: &Value) -> &str {
    service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn cluster_ips(service: &Value) -> Vec<String> {
    service
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn is_headless(service: &Value) -> bool {
    cluster_ips(service) == ["None"] || cluster_ip(service) == "None"
}

fn ports_mut(service: &mut Value) -> impl Iterator<Item = &mut serde_json::Map<String, Value>> {
    service
        .pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn ports(service: &Value) -> impl Iterator<Item = &Value> {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn node_port(port: &Value) -> Option<u16> {
    port.get("nodePort")
        .and_then(Value::as_u64)
        .filter(|p| *p != 0)
        .and_then(|p| u16::try_from(p).ok())
}

/// The IPs and NodePorts a stored Service holds.
pub(crate) fn held(service: &Value) -> Held {
    let ips = if needs_cluster_ip(service) {
        cluster_ips(service)
            .iter()
            .filter_map(|ip| ip.parse::<Ipv4Addr>().ok())
            .collect()
    } else {
        Vec::new()
    };
    let mut ports: BTreeSet<u16> = ports(service).filter_map(node_port).collect();
    ports.extend(health_check_port(service));
    Held {
        ips,
        ports: ports.into_iter().collect(),
    }
}

/// Before validating an update: what upstream's `NormalizeClusterIPs`,
/// `patchAllocatedValues` and `dropTypeDependentFields` do — a client that
/// left allocated values out (a PUT of what it read without them, a
/// replace) keeps them; a switch to a type that no longer needs them drops
/// the ones the client did not change.
pub(crate) fn prepare_update(old: &Value, new: &mut Value) {
    let old_ips = cluster_ips(old);
    if new.get("spec").is_none_or(|s| !s.is_object()) {
        new["spec"] = json!({});
    }
    // NormalizeClusterIPs.
    if !old_ips.is_empty() && cluster_ips(new).is_empty() && cluster_ip(old) == cluster_ip(new) {
        new["spec"]["clusterIPs"] = json!(old_ips);
    }
    if cluster_ip(old) != cluster_ip(new) && cluster_ips(old) == cluster_ips(new) {
        if cluster_ip(new).is_empty() {
            remove(new, "clusterIPs");
        } else {
            new["spec"]["clusterIPs"] = json!([cluster_ip(new)]);
        }
    }
    // patchAllocatedValues.
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        if cluster_ip(new).is_empty() && !cluster_ip(old).is_empty() {
            new["spec"]["clusterIP"] = json!(cluster_ip(old));
        }
        if cluster_ips(new).is_empty() && !old_ips.is_empty() {
            new["spec"]["clusterIPs"] = json!(old_ips);
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let used_new: BTreeSet<u16> = ports(new).filter_map(node_port).collect();
        let by_name: Vec<(String, u16)> = ports(old)
            .filter_map(|p| {
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                Some((name.to_owned(), node_port(p)?))
            })
            .collect();
        for port in ports_mut(new) {
            if port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let name = port.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some((_, old_port)) = by_name.iter().find(|(n, _)| n == name)
                && !used_new.contains(old_port)
            {
                port.insert("nodePort".into(), json!(old_port));
            }
        }
    }
    if needs_health_check_port(old)
        && needs_health_check_port(new)
        && health_check_port(new).is_none()
        && let Some(port) = health_check_port(old)
    {
        new["spec"]["healthCheckNodePort"] = json!(port);
    }
    // dropTypeDependentFields.
    if needs_health_check_port(old)
        && !needs_health_check_port(new)
        && health_check_port(old) == health_check_port(new)
    {
        remove(new, "healthCheckNodePort");
    }
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        if cluster_ips(old) == cluster_ips(new) && cluster_ip(old) == cluster_ip(new) {
            remove(new, "clusterIP");
            remove(new, "clusterIPs");
        }
        if old.pointer("/spec/ipFamilies") == new.pointer("/spec/ipFamilies") {
            remove(new, "ipFamilies");
        }
        if old.pointer("/spec/ipFamilyPolicy") == new.pointer("/spec/ipFamilyPolicy") {
            remove(new, "ipFamilyPolicy");
        }
    }
    if needs_node_ports(old) && !needs_node_ports(new) {
        let old_ports: Vec<Option<u16>> = ports(old).map(node_port).collect();
        let new_ports: Vec<Option<u16>> = ports(new).map(node_port).collect();
        if old_ports == new_ports {
            for port in ports_mut(new) {
                port.remove("nodePort");
            }
        }
    }
}

fn remove(service: &mut Value, field: &str) {
    if let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove(field);
    }
}

/// The rules on the allocated fields (after defaulting; `old` on update).
pub(crate) fn validate(old: Option<&Value>, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let ips = cluster_ips(new);
    let single = cluster_ip(new);
    if !ips.is_empty() && !single.is_empty() && ips[0] != single {
        causes.push(invalid(
            "spec.clusterIPs",
            go_strings(&ips),
            "first value must match `clusterIP`",
        ));
    }
    if type_of(new) == "ExternalName" {
        if !single.is_empty() || !ips.is_empty() {
            causes.push(forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
    } else {
        for (i, ip) in ips.iter().enumerate() {
            if ip != "None" && ip.parse::<std::net::IpAddr>().is_err() {
                causes.push(invalid(
                    format!("spec.clusterIPs[{i}]"),
                    format!("{ip:?}"),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ));
            }
        }
        if ips.len() > 1 {
            causes.push(invalid(
                "spec.clusterIPs",
                go_strings(&ips),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if new.pointer("/spec/ipFamilyPolicy").and_then(Value::as_str) == Some("RequireDualStack") {
        causes.push(invalid(
            "spec.ipFamilyPolicy",
            "\"RequireDualStack\"",
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in new
        .pointer("/spec/ipFamilies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if family != "IPv4" {
            causes.push(invalid(
                format!("spec.ipFamilies[{i}]"),
                family,
                "not configured on this cluster",
            ));
        }
    }
    if !needs_node_ports(new) && type_of(new) != "LoadBalancer" {
        for (i, port) in ports(new).enumerate() {
            if node_port(port).is_some() {
                causes.push(forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    &format!("may not be used when `type` is '{}'", type_of(new)),
                ));
            }
        }
    }
    if let Some(port) = health_check_port(new)
        && !needs_health_check_port(new)
    {
        causes.push(invalid(
            "spec.healthCheckNodePort",
            port,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    if let Some(old) = old {
        causes.extend(immutable_cluster_ips(old, new));
    }
    causes
}

/// upstream's `validateUpgradeDowngradeClusterIPs`, single-stack: the
/// cluster IP may not change once set (ExternalName aside).
fn immutable_cluster_ips(old: &Value, new: &Value) -> Vec<Cause> {
    if type_of(old) == "ExternalName" || type_of(new) == "ExternalName" {
        return Vec::new();
    }
    if is_headless(old) && is_headless(new) {
        return Vec::new();
    }
    let (old_ips, new_ips) = (cluster_ips(old), cluster_ips(new));
    if old_ips.is_empty() {
        return Vec::new();
    }
    let changed = match new_ips.first() {
        None => true,
        Some(first) => *first != old_ips[0],
    };
    if !changed {
        return Vec::new();
    }
    if new_ips.is_empty() {
        return vec![invalid(
            "spec.clusterIPs[0]",
            go_strings(&new_ips),
            "primary clusterIP can not be unset",
        )];
    }
    vec![invalid(
        "spec.clusterIPs[0]",
        go_strings(&new_ips),
        "may not change once set",
    )]
}

fn name_of(service: &Value) -> String {
    service
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn invalid_service(service: &Value, cause: Cause) -> ApiError {
    ApiError::invalid("Service", "", &name_of(service), vec![cause])
}

/// On create: the cluster IP (requested or any), the IP family fields,
/// the NodePorts. Returns what was taken (to give back if the write fails).
pub(crate) async fn on_create(
    allocators: &Allocators,
    service: &mut Value,
    dry_run: bool,
) -> ApiResult<Held> {
    let mut taken = Held::default();
    let result = take_for(allocators, None, service, dry_run, &mut taken).await;
    if result.is_err() && !dry_run {
        allocators.release_logged(&taken).await;
    }
    result.map(|()| taken)
}

/// On update (inside the compare-and-swap loop): takes what `new` needs and
/// `old` did not hold; returns what was taken and what to give back once
/// the update is committed.
pub(crate) async fn on_update(
    allocators: &Allocators,
    old: &Value,
    new: &mut Value,
    dry_run: bool,
) -> ApiResult<(Held, Held)> {
    let mut taken = Held::default();
    if let Err(err) = take_for(allocators, Some(old), new, dry_run, &mut taken).await {
        if !dry_run {
            allocators.release_logged(&taken).await;
        }
        return Err(err);
    }
    let before = held(old);
    let after = held(new);
    let released = Held {
        ips: before
            .ips
            .into_iter()
            .filter(|ip| !after.ips.contains(ip))
            .collect(),
        ports: before
            .ports
            .into_iter()
            .filter(|p| !after.ports.contains(p))
            .collect(),
    };
    Ok((taken, released))
}

async fn take_for(
    allocators: &Allocators,
    old: Option<&Value>,
    service: &mut Value,
    dry_run: bool,
    taken: &mut Held,
) -> ApiResult<()> {
    let before = old.map(held).unwrap_or_default();
    if service.get("spec").is_none_or(|s| !s.is_object()) {
        service["spec"] = json!({});
    }
    if needs_cluster_ip(service) {
        let mut ips = cluster_ips(service);
        if ips.is_empty() && !cluster_ip(service).is_empty() {
            ips = vec![cluster_ip(service).to_owned()];
        }
        let ip = match ips.first().map(String::as_str) {
            Some("None") => "None".to_owned(),
            Some(requested) => {
                let parsed: Option<Ipv4Addr> = requested.parse().ok();
                match parsed {
                    Some(ip) if before.ips.contains(&ip) => requested.to_owned(),
                    _ => {
                        let outcome = match parsed {
                            Some(ip) => allocators.take_ip(Some(ip), dry_run).await?,
                            None => Err(AllocError::NotInRange),
                        };
                        let ip = outcome.map_err(|err| {
                            let detail = match err {
                                AllocError::Taken => "provided IP is already allocated".to_owned(),
                                _ => format!(
                                    "the provided IP ({requested}) is not in the valid range. The range of valid IPs is {}",
                                    allocators.ranges().cluster_ip_range
                                ),
                            };
                            invalid_service(
                                service,
                                invalid(
                                    "spec.clusterIPs",
                                    go_strings(&ips),
                                    &format!("failed to allocate IP {requested}: {detail}"),
                                ),
                            )
                        })?;
                        taken.ips.push(ip);
                        ip.to_string()
                    }
                }
            }
            None => {
                let ip = allocators.take_ip(None, dry_run).await?.map_err(|_| {
                    ApiError::internal("failed to allocate a serviceIP: range is full")
                })?;
                taken.ips.push(ip);
                ip.to_string()
            }
        };
        service["spec"]["clusterIP"] = json!(ip);
        service["spec"]["clusterIPs"] = json!([ip]);
        let spec = service["spec"]
            .as_object_mut()
            .expect("spec was made an object above");
        spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
        spec.entry("ipFamilyPolicy")
            .or_insert_with(|| json!("SingleStack"));
    }
    if needs_node_ports(service) {
        let name = name_of(service);
        let mut mine: Vec<u16> = Vec::new();
        let count = ports(service).count();
        for i in 0..count {
            let requested = node_port(&service["spec"]["ports"][i]);
            let port = match requested {
                Some(port) if before.ports.contains(&port) || mine.contains(&port) => port,
                Some(port) => allocators
                    .take_port(Some(port), dry_run)
                    .await?
                    .map_err(|err| {
                        let detail = match err {
                            AllocError::Taken => "provided port is already allocated".to_owned(),
                            _ => format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                allocators.ranges().node_ports.0,
                                allocators.ranges().node_ports.1
                            ),
                        };
                        ApiError::invalid(
                            "Service",
                            "",
                            &name,
                            vec![invalid(format!("spec.ports[{i}].nodePort"), port, &detail)],
                        )
                    })?,
                None => allocators.take_port(None, dry_run).await?.map_err(|_| {
                    ApiError::internal("failed to allocate a nodePort: range is full")
                })?,
            };
            if !before.ports.contains(&port) && !mine.contains(&port) {
                taken.ports.push(port);
            }
            mine.push(port);
            service["spec"]["ports"][i]["nodePort"] = json!(port);
        }
    }
    if needs_health_check_port(service) {
        let port = match health_check_port(service) {
            Some(port) if before.ports.contains(&port) => port,
            Some(port) => allocators
                .take_port(Some(port), dry_run)
                .await?
                .map_err(|err| {
                    let detail = match err {
                        AllocError::Taken => "provided port is already allocated".to_owned(),
                        _ => format!(
                            "provided port is not in the valid range. The range of valid ports is {}-{}",
                            allocators.ranges().node_ports.0,
                            allocators.ranges().node_ports.1
                        ),
                    };
                    ApiError::internal(format!(
                        "failed to allocate requested HealthCheck NodePort {port}: {detail}"
                    ))
                })?,
            None => allocators.take_port(None, dry_run).await?.map_err(|_| {
                ApiError::internal("failed to allocate a HealthCheck NodePort 0: range is full")
            })?,
        };
        if !before.ports.contains(&port) {
            taken.ports.push(port);
        }
        service["spec"]["healthCheckNodePort"] = json!(port);
    }
    Ok(())
}
