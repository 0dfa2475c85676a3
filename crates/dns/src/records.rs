//! The cluster's names, and the answer to a question about one — the
//! records CoreDNS's `kubernetes` plugin serves (its
//! `dns-specification`), decided without IO from what the watches saw.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

/// A Service as DNS sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceEntry {
    pub(crate) kind: ServiceKind,
    pub(crate) ports: Vec<PortEntry>,
}

/// What a Service name resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ServiceKind {
    /// Its cluster IPs.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: its ready endpoints.
    Headless,
    /// A CNAME to this name.
    ExternalName(String),
}

/// A named port (Service port or EndpointSlice port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortEntry {
    pub(crate) name: String,
    /// `TCP`, `UDP`, `SCTP`.
    pub(crate) protocol: String,
    pub(crate) port: u16,
}

/// One endpoint of an EndpointSlice, with the slice's ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndpointEntry {
    pub(crate) addresses: Vec<IpAddr>,
    pub(crate) hostname: Option<String>,
    pub(crate) ready: bool,
    pub(crate) ports: Vec<PortEntry>,
}

/// One record of an answer. Names are absolute, lowercase, without the
/// final dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rec {
    Addr(String, IpAddr),
    Cname(String, String),
    Srv {
        name: String,
        weight: u16,
        port: u16,
        target: String,
    },
    Soa,
    Ptr(String, String),
}

/// The answer to one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Records for the answer section, and for the additional section.
    Found(Vec<Rec>, Vec<Rec>),
    /// The name exists, with nothing of this type (NOERROR, SOA).
    NoData,
    /// The name does not exist (NXDOMAIN, SOA).
    NxDomain,
    /// Not in the cluster domain: forward.
    Elsewhere,
}

/// The question's type, reduced to what the cluster zone answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    A,
    Aaaa,
    Srv,
    Cname,
    Soa,
    Ptr,
    Any,
    Other,
}

/// What the watches know: Services by `(namespace, name)`, and each
/// Service's endpoints by EndpointSlice name.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cluster {
    pub(crate) services: HashMap<(String, String), ServiceEntry>,
    pub(crate) endpoints: HashMap<(String, String), HashMap<String, Vec<EndpointEntry>>>,
}

impl Cluster {
    /// Answers `name` (any case, with or without the final dot) in `domain`.
    pub(crate) fn lookup(&self, domain: &str, name: &str, want: Want) -> Lookup {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if let Some(reversed) = name.strip_suffix(".in-addr.arpa") {
            return self.reverse(&name, reversed, &domain, want);
        }
        let rest = if name == domain {
            ""
        } else if let Some(rest) = name.strip_suffix(&format!(".{domain}")) {
            rest
        } else {
            return Lookup::Elsewhere;
        };
        if rest.is_empty() {
            return match want {
                Want::Soa | Want::Any => Lookup::Found(vec![Rec::Soa], Vec::new()),
                _ => Lookup::NoData,
            };
        }
        let labels: Vec<&str> = rest.split('.').collect();
        let zone = |labels: &[&str]| format!("{}.{domain}", labels.join("."));
        match labels.as_slice() {
            ["svc"] => Lookup::NoData,
            [ns, "svc"] => {
                if self.services.keys().any(|(n, _)| n == ns) {
                    Lookup::NoData
                } else {
                    Lookup::NxDomain
                }
            }
            [svc, ns, "svc"] => self.service(&name, ns, svc, want, &|l| zone(l)),
            [host, svc, ns, "svc"] if !host.starts_with('_') => {
                self.endpoint(&name, ns, svc, host, want)
            }
            [port, proto, svc, ns, "svc"] => {
                match (port.strip_prefix('_'), proto.strip_prefix('_')) {
                    (Some(port), Some(proto)) => {
                        self.srv(&name, ns, svc, Some((port, proto)), want, &|l| zone(l))
                    }
                    _ => Lookup::NxDomain,
                }
            }
            ["pod"] => Lookup::NoData,
            [_ns, "pod"] => Lookup::NoData,
            [ip, _ns, "pod"] => match pod_ip(ip) {
                Some(ip) => address_answer(&name, &[IpAddr::V4(ip)], want),
                None => Lookup::NxDomain,
            },
            _ => Lookup::NxDomain,
        }
    }

    fn ready_endpoints(&self, ns: &str, svc: &str) -> Vec<&EndpointEntry> {
        let key = (ns.to_owned(), svc.to_owned());
        let mut out: Vec<&EndpointEntry> = self
            .endpoints
            .get(&key)
            .into_iter()
            .flat_map(|slices| slices.values().flatten())
            .filter(|e| e.ready)
            .collect();
        out.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        out
    }

    fn service(
        &self,
        name: &str,
        ns: &str,
        svc: &str,
        want: Want,
        zone: &dyn Fn(&[&str]) -> String,
    ) -> Lookup {
        let Some(service) = self.services.get(&(ns.to_owned(), svc.to_owned())) else {
            return Lookup::NxDomain;
        };
        match (&service.kind, want) {
            (ServiceKind::ExternalName(target), _) => Lookup::Found(
                vec![Rec::Cname(
                    name.to_owned(),
                    target.trim_end_matches('.').to_ascii_lowercase(),
                )],
                Vec::new(),
            ),
            (_, Want::Srv) => self.srv(name, ns, svc, None, want, zone),
            (ServiceKind::ClusterIp(ips), _) => address_answer(name, ips, want),
            (ServiceKind::Headless, _) => {
                let ips: BTreeSet<IpAddr> = self
                    .ready_endpoints(ns, svc)
                    .iter()
                    .flat_map(|e| e.addresses.iter().copied())
                    .collect();
                let ips: Vec<IpAddr> = ips.into_iter().collect();
                address_answer(name, &ips, want)
            }
        }
    }

    /// `<hostname>.<svc>.<ns>.svc`: a headless Service's endpoint, named by
    /// its hostname or its dashed address.
    fn endpoint(&self, name: &str, ns: &str, svc: &str, host: &str, want: Want) -> Lookup {
        let Some(service) = self.services.get(&(ns.to_owned(), svc.to_owned())) else {
            return Lookup::NxDomain;
        };
        if service.kind != ServiceKind::Headless {
            return Lookup::NxDomain;
        }
        let ips: BTreeSet<IpAddr> = self
            .ready_endpoints(ns, svc)
            .into_iter()
            .filter(|e| endpoint_label(e).as_deref() == Some(host))
            .flat_map(|e| e.addresses.iter().copied())
            .collect();
        if ips.is_empty() {
            return Lookup::NxDomain;
        }
        address_answer(name, &ips.into_iter().collect::<Vec<_>>(), want)
    }

    /// SRV records: `_<port>._<proto>.<svc>.<ns>.svc` (one port), or the
    /// Service name itself (every port).
    fn srv(
        &self,
        name: &str,
        ns: &str,
        svc: &str,
        filter: Option<(&str, &str)>,
        want: Want,
        zone: &dyn Fn(&[&str]) -> String,
    ) -> Lookup {
        let Some(service) = self.services.get(&(ns.to_owned(), svc.to_owned())) else {
            return Lookup::NxDomain;
        };
        let matches = |port: &PortEntry| match filter {
            None => true,
            Some((name, proto)) => {
                port.name.eq_ignore_ascii_case(name) && port.protocol.eq_ignore_ascii_case(proto)
            }
        };
        let mut targets: Vec<(u16, String, Vec<IpAddr>)> = Vec::new();
        match &service.kind {
            ServiceKind::ExternalName(_) => return Lookup::NoData,
            ServiceKind::ClusterIp(ips) => {
                for port in service.ports.iter().filter(|p| matches(p)) {
                    targets.push((port.port, zone(&[svc, ns, "svc"]), ips.clone()));
                }
            }
            ServiceKind::Headless => {
                for endpoint in self.ready_endpoints(ns, svc) {
                    let Some(label) = endpoint_label(endpoint) else {
                        continue;
                    };
                    for port in endpoint.ports.iter().filter(|p| matches(p)) {
                        targets.push((
                            port.port,
                            zone(&[&label, svc, ns, "svc"]),
                            endpoint.addresses.clone(),
                        ));
                    }
                }
            }
        }
        if targets.is_empty() {
            // The name exists only if the Service has such a port.
            return if filter.is_none() {
                Lookup::NoData
            } else {
                Lookup::NxDomain
            };
        }
        if want != Want::Srv && want != Want::Any {
            return Lookup::NoData;
        }
        let weight = (100 / targets.len()).max(1) as u16;
        let mut answers = Vec::new();
        let mut extra = Vec::new();
        for (port, target, ips) in targets {
            answers.push(Rec::Srv {
                name: name.to_owned(),
                weight,
                port,
                target: target.clone(),
            });
            for ip in ips {
                let rec = Rec::Addr(target.clone(), ip);
                if !extra.contains(&rec) {
                    extra.push(rec);
                }
            }
        }
        Lookup::Found(answers, extra)
    }
}

impl Cluster {
    /// `d.c.b.a.in-addr.arpa`: the Service whose cluster IP, or the
    /// headless Service whose endpoint, has that address; anything else
    /// falls through to the upstreams (k3s's Corefile: `fallthrough
    /// in-addr.arpa`).
    fn reverse(&self, name: &str, reversed: &str, domain: &str, want: Want) -> Lookup {
        let mut octets: Vec<&str> = reversed.split('.').collect();
        if octets.len() != 4 {
            return Lookup::Elsewhere;
        }
        octets.reverse();
        let Ok(ip) = octets.join(".").parse::<Ipv4Addr>() else {
            return Lookup::Elsewhere;
        };
        let ip = IpAddr::V4(ip);
        let mut targets: BTreeSet<String> = BTreeSet::new();
        for ((ns, svc), service) in &self.services {
            match &service.kind {
                ServiceKind::ClusterIp(ips) if ips.contains(&ip) => {
                    targets.insert(format!("{svc}.{ns}.svc.{domain}"));
                }
                ServiceKind::Headless => {
                    for endpoint in self.ready_endpoints(ns, svc) {
                        if endpoint.addresses.contains(&ip)
                            && let Some(label) = endpoint_label(endpoint)
                        {
                            targets.insert(format!("{label}.{svc}.{ns}.svc.{domain}"));
                        }
                    }
                }
                _ => {}
            }
        }
        if targets.is_empty() {
            return Lookup::Elsewhere;
        }
        if want != Want::Ptr && want != Want::Any {
            return Lookup::NoData;
        }
        Lookup::Found(
            targets
                .into_iter()
                .map(|t| Rec::Ptr(name.to_owned(), t))
                .collect(),
            Vec::new(),
        )
    }
}

/// The label an endpoint answers to: its hostname, or its first address
/// dashed (`10-42-0-5`), as CoreDNS names endpoints without one.
fn endpoint_label(endpoint: &EndpointEntry) -> Option<String> {
    if let Some(host) = endpoint.hostname.as_deref().filter(|h| !h.is_empty()) {
        return Some(host.to_ascii_lowercase());
    }
    endpoint.addresses.first().map(|ip| match ip {
        IpAddr::V4(ip) => ip.to_string().replace('.', "-"),
        IpAddr::V6(ip) => ip.to_string().replace(':', "-"),
    })
}

/// `10-42-0-5` → 10.42.0.5 (CoreDNS's `pods insecure`: any well-formed
/// address answers, as in k3s's default Corefile).
fn pod_ip(label: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = label.split('-').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (octet, part) in octets.iter_mut().zip(parts) {
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets))
}

fn address_answer(name: &str, ips: &[IpAddr], want: Want) -> Lookup {
    let records: Vec<Rec> = ips
        .iter()
        .filter(|ip| match want {
            Want::A => ip.is_ipv4(),
            Want::Aaaa => ip.is_ipv6(),
            Want::Any => true,
            _ => false,
        })
        .map(|ip| Rec::Addr(name.to_owned(), *ip))
        .collect();
    if records.is_empty() {
        Lookup::NoData
    } else {
        Lookup::Found(records, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, protocol: &str, port: u16) -> PortEntry {
        PortEntry {
            name: name.into(),
            protocol: protocol.into(),
            port,
        }
    }

    fn cluster() -> Cluster {
        let mut cluster = Cluster::default();
        let key = |ns: &str, name: &str| (ns.to_owned(), name.to_owned());
        cluster.services.insert(
            key("default", "web"),
            ServiceEntry {
                kind: ServiceKind::ClusterIp(vec!["10.43.0.20".parse().unwrap()]),
                ports: vec![port("http", "TCP", 80)],
            },
        );
        cluster.services.insert(
            key("default", "db"),
            ServiceEntry {
                kind: ServiceKind::Headless,
                ports: vec![port("pg", "TCP", 5432)],
            },
        );
        cluster.services.insert(
            key("default", "ext"),
            ServiceEntry {
                kind: ServiceKind::ExternalName("Example.COM.".into()),
                ports: vec![],
            },
        );
        let endpoint = |ip: &str, host: Option<&str>, ready: bool| EndpointEntry {
            addresses: vec![ip.parse().unwrap()],
            hostname: host.map(str::to_owned),
            ready,
            ports: vec![port("pg", "TCP", 5432)],
        };
        cluster.endpoints.insert(
            key("default", "db"),
            HashMap::from([(
                "db-abc".to_owned(),
                vec![
                    endpoint("10.42.0.6", Some("db-0"), true),
                    endpoint("10.42.0.5", None, true),
                    endpoint("10.42.0.7", Some("db-2"), false),
                ],
            )]),
        );
        cluster
    }

    fn check(name: &str, want: Want) -> String {
        match cluster().lookup("cluster.local", name, want) {
            Lookup::Found(answers, extra) => {
                let show = |r: &Rec| match r {
                    Rec::Addr(n, ip) => format!("{n} {ip}"),
                    Rec::Cname(n, t) => format!("{n} CNAME {t}"),
                    Rec::Srv {
                        name,
                        weight,
                        port,
                        target,
                    } => format!("{name} SRV 0 {weight} {port} {target}"),
                    Rec::Soa => "SOA".into(),
                    Rec::Ptr(n, t) => format!("{n} PTR {t}"),
                };
                let mut lines: Vec<String> = answers.iter().map(show).collect();
                lines.extend(extra.iter().map(|r| format!("+ {}", show(r))));
                lines.join("\n")
            }
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn service_names() {
        assert_eq!(
            check("Web.Default.svc.cluster.local.", Want::A),
            "web.default.svc.cluster.local 10.43.0.20"
        );
        assert_eq!(check("web.default.svc.cluster.local", Want::Aaaa), "NoData");
        assert_eq!(check("nope.default.svc.cluster.local", Want::A), "NxDomain");
        assert_eq!(check("default.svc.cluster.local", Want::A), "NoData");
        assert_eq!(check("other.svc.cluster.local", Want::A), "NxDomain");
        assert_eq!(check("example.com", Want::A), "Elsewhere");
        assert_eq!(check("cluster.local", Want::Soa), "SOA");
        assert_eq!(
            check("ext.default.svc.cluster.local", Want::A),
            "ext.default.svc.cluster.local CNAME example.com"
        );
    }

    #[test]
    fn headless_services_answer_with_ready_endpoints() {
        assert_eq!(
            check("db.default.svc.cluster.local", Want::A),
            "db.default.svc.cluster.local 10.42.0.5\ndb.default.svc.cluster.local 10.42.0.6"
        );
        assert_eq!(
            check("db-0.db.default.svc.cluster.local", Want::A),
            "db-0.db.default.svc.cluster.local 10.42.0.6"
        );
        assert_eq!(
            check("10-42-0-5.db.default.svc.cluster.local", Want::A),
            "10-42-0-5.db.default.svc.cluster.local 10.42.0.5"
        );
        // Not ready: not published.
        assert_eq!(
            check("db-2.db.default.svc.cluster.local", Want::A),
            "NxDomain"
        );
    }

    #[test]
    fn srv_records() {
        assert_eq!(
            check("_http._tcp.web.default.svc.cluster.local", Want::Srv),
            "_http._tcp.web.default.svc.cluster.local SRV 0 100 80 web.default.svc.cluster.local\n\
             + web.default.svc.cluster.local 10.43.0.20"
        );
        assert_eq!(
            check("_pg._tcp.db.default.svc.cluster.local", Want::Srv),
            "_pg._tcp.db.default.svc.cluster.local SRV 0 50 5432 10-42-0-5.db.default.svc.cluster.local\n\
             _pg._tcp.db.default.svc.cluster.local SRV 0 50 5432 db-0.db.default.svc.cluster.local\n\
             + 10-42-0-5.db.default.svc.cluster.local 10.42.0.5\n\
             + db-0.db.default.svc.cluster.local 10.42.0.6"
        );
        assert_eq!(
            check("_http._udp.web.default.svc.cluster.local", Want::Srv),
            "NxDomain"
        );
        assert_eq!(
            check("_http._tcp.web.default.svc.cluster.local", Want::A),
            "NoData"
        );
    }

    #[test]
    fn reverse_names_of_services_and_endpoints() {
        assert_eq!(
            check("20.0.43.10.in-addr.arpa.", Want::Ptr),
            "20.0.43.10.in-addr.arpa PTR web.default.svc.cluster.local"
        );
        assert_eq!(
            check("6.0.42.10.in-addr.arpa", Want::Ptr),
            "6.0.42.10.in-addr.arpa PTR db-0.db.default.svc.cluster.local"
        );
        assert_eq!(check("9.9.9.9.in-addr.arpa", Want::Ptr), "Elsewhere");
        assert_eq!(check("20.0.43.10.in-addr.arpa", Want::A), "NoData");
    }

    #[test]
    fn pod_names() {
        assert_eq!(
            check("10-42-1-9.default.pod.cluster.local", Want::A),
            "10-42-1-9.default.pod.cluster.local 10.42.1.9"
        );
        assert_eq!(
            check("10-42-1-999.default.pod.cluster.local", Want::A),
            "NxDomain"
        );
        assert_eq!(check("x.default.pod.cluster.local", Want::A), "NxDomain");
    }
}
