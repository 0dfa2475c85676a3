//! The proxy's table, rendered from services in memory.

use expect_test::expect;

use super::render::{Rendered, render as render_all};
use super::*;

/// Services only (host ports have their own test).
fn render(config: &ProxyConfig, services: &[ServicePort], previous: Option<&Objects>) -> Rendered {
    render_all(config, services, &[], previous)
}

fn config() -> ProxyConfig {
    ProxyConfig {
        node_ips: vec![Ipv4Addr::new(192, 168, 0, 3)],
        cluster_cidr: "10.42.0.0/16".parse().unwrap(),
    }
}

fn web(endpoints: &[(&str, bool)]) -> ServicePort {
    ServicePort {
        namespace: "shop".into(),
        name: "web".into(),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ip: Ipv4Addr::new(10, 43, 0, 20),
        port: 80,
        node_port: None,
        affinity_timeout: None,
        internal_local: false,
        external_local: false,
        endpoints: endpoints
            .iter()
            .map(|(ip, local)| Endpoint {
                ip: ip.parse().unwrap(),
                port: 8080,
                local: *local,
            })
            .collect(),
    }
}

/// The part of the text after the fixed chains: the service's own chains.
fn service_chains(text: &str) -> String {
    let start = text.find("\tchain services {").expect("the dispatch chain");
    let rest = &text[start..];
    let end = rest.find("\t}\n").expect("its end") + 3;
    rest[end..].to_owned()
}

/// The declarations of the maps and sets (before the first chain).
fn maps(text: &str) -> String {
    let start = text.find("table ip bulwark_proxy {").expect("the table");
    let end = text.find("\tchain ").expect("a chain");
    text[start..end].to_owned()
}

#[test]
fn a_first_sync_replaces_the_whole_table() {
    let text = render(&config(), &[web(&[("10.42.1.5", false)])], None).text;
    expect![[r#"
        table ip bulwark_proxy
        delete table ip bulwark_proxy
        table ip bulwark_proxy {
        	set cluster-ips {
        		type ipv4_addr
        		elements = { 10.43.0.20 }
        	}
        	set nodeport-ips {
        		type ipv4_addr
        		elements = { 192.168.0.3 }
        	}
        	map no-endpoint-services {
        		type ipv4_addr . inet_proto . inet_service : verdict
        	}
        	map no-endpoint-nodeports {
        		type inet_proto . inet_service : verdict
        	}
        	map service-ips {
        		type ipv4_addr . inet_proto . inet_service : verdict
        		elements = { 10.43.0.20 . tcp . 80 : goto service-7GM5H76F-shop/web/tcp/http }
        	}
        	map service-nodeports {
        		type inet_proto . inet_service : verdict
        	}
        	chain filter-prerouting {
        		type filter hook prerouting priority dstnat - 10; policy accept;
        		ct state new jump service-endpoints-check
        		ct state new jump nodeport-endpoints-check
        	}
        	chain filter-output {
        		type filter hook output priority -110; policy accept;
        		ct state new jump service-endpoints-check
        		ct state new jump nodeport-endpoints-check
        	}
        	chain filter-forward {
        		type filter hook forward priority filter - 10; policy accept;
        		ct state new jump cluster-ips-check
        	}
        	chain filter-output-post-dnat {
        		type filter hook output priority -90; policy accept;
        		ct state new jump cluster-ips-check
        	}
        	chain nat-prerouting {
        		type nat hook prerouting priority dstnat; policy accept;
        		fib daddr type local ip daddr != 127.0.0.0/8 jump hostports
        		jump services
        	}
        	chain nat-output {
        		type nat hook output priority -100; policy accept;
        		fib daddr type local ip daddr != 127.0.0.0/8 jump hostports
        		jump services
        	}
        	chain nat-postrouting {
        		type nat hook postrouting priority srcnat; policy accept;
        		jump masquerading
        	}
        	chain reject-chain {
        		meta l4proto tcp reject with tcp reset
        		reject
        	}
        	chain mark-for-masquerade {
        		meta mark set meta mark | 0x4000
        	}
        	chain masquerading {
        		meta mark & 0x4000 == 0 return
        		meta mark set meta mark ^ 0x4000
        		masquerade fully-random
        	}
        	chain service-endpoints-check {
        		ip daddr . meta l4proto . th dport vmap @no-endpoint-services
        	}
        	chain nodeport-endpoints-check {
        		ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
        	}
        	chain cluster-ips-check {
        		ip daddr @cluster-ips reject
        	}
        	chain hostports {
        	}
        	chain services {
        		ip daddr . meta l4proto . th dport vmap @service-ips
        		ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
        	}
        	chain service-7GM5H76F-shop/web/tcp/http {
        		ip daddr 10.43.0.20 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
        		numgen random mod 1 vmap { 0 : goto endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080 }
        	}
        	chain endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080 {
        		ip saddr 10.42.1.5 jump mark-for-masquerade
        		meta l4proto tcp dnat to 10.42.1.5:8080
        	}
        }
    "#]]
    .assert_eq(&text);
}

#[test]
fn endpoints_are_picked_at_random_and_hairpin_is_masqueraded() {
    let text = render(
        &config(),
        &[web(&[("10.42.1.5", false), ("10.42.2.7", true)])],
        None,
    )
    .text;
    expect![[r#"
        	chain service-7GM5H76F-shop/web/tcp/http {
        		ip daddr 10.43.0.20 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
        		numgen random mod 2 vmap { 0 : goto endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080, 1 : goto endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080 }
        	}
        	chain endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080 {
        		ip saddr 10.42.1.5 jump mark-for-masquerade
        		meta l4proto tcp dnat to 10.42.1.5:8080
        	}
        	chain endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080 {
        		ip saddr 10.42.2.7 jump mark-for-masquerade
        		meta l4proto tcp dnat to 10.42.2.7:8080
        	}
        }
    "#]]
    .assert_eq(&service_chains(&text));
}

#[test]
fn a_service_without_endpoints_is_rejected() {
    let mut service = web(&[]);
    service.node_port = Some(30080);
    let text = render(&config(), &[service], None).text;
    expect![[r#"
        table ip bulwark_proxy {
        	set cluster-ips {
        		type ipv4_addr
        		elements = { 10.43.0.20 }
        	}
        	set nodeport-ips {
        		type ipv4_addr
        		elements = { 192.168.0.3 }
        	}
        	map no-endpoint-services {
        		type ipv4_addr . inet_proto . inet_service : verdict
        		elements = { 10.43.0.20 . tcp . 80 : goto reject-chain }
        	}
        	map no-endpoint-nodeports {
        		type inet_proto . inet_service : verdict
        		elements = { tcp . 30080 : goto reject-chain }
        	}
        	map service-ips {
        		type ipv4_addr . inet_proto . inet_service : verdict
        	}
        	map service-nodeports {
        		type inet_proto . inet_service : verdict
        	}
    "#]]
    .assert_eq(&maps(&text));
    assert_eq!(service_chains(&text), "}\n");
}

#[test]
fn a_node_port_masquerades_what_it_forwards() {
    let mut service = web(&[("10.42.1.5", false)]);
    service.node_port = Some(30080);
    let text = render(&config(), &[service], None).text;
    assert!(
        text.contains("elements = { tcp . 30080 : goto external-"),
        "{text}"
    );
    expect![[r#"
        	chain service-7GM5H76F-shop/web/tcp/http {
        		ip daddr 10.43.0.20 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
        		numgen random mod 1 vmap { 0 : goto endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080 }
        	}
        	chain external-QBNPJAMX-shop/web/tcp/http {
        		jump mark-for-masquerade
        		goto service-7GM5H76F-shop/web/tcp/http
        	}
        	chain endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080 {
        		ip saddr 10.42.1.5 jump mark-for-masquerade
        		meta l4proto tcp dnat to 10.42.1.5:8080
        	}
        }
    "#]]
    .assert_eq(&service_chains(&text));
}

#[test]
fn external_traffic_policy_local_keeps_the_source_and_uses_local_endpoints() {
    let mut service = web(&[("10.42.1.5", false), ("10.42.2.7", true)]);
    service.node_port = Some(30080);
    service.external_local = true;
    let text = render(&config(), &[service], None).text;
    expect![[r#"
        	chain service-7GM5H76F-shop/web/tcp/http {
        		ip daddr 10.43.0.20 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
        		numgen random mod 2 vmap { 0 : goto endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080, 1 : goto endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080 }
        	}
        	chain local-K5IWGISR-shop/web/tcp/http {
        		numgen random mod 1 vmap { 0 : goto endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080 }
        	}
        	chain external-QBNPJAMX-shop/web/tcp/http {
        		ip saddr 10.42.0.0/16 goto service-7GM5H76F-shop/web/tcp/http
        		fib saddr type local jump mark-for-masquerade
        		fib saddr type local goto service-7GM5H76F-shop/web/tcp/http
        		goto local-K5IWGISR-shop/web/tcp/http
        	}
        	chain endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080 {
        		ip saddr 10.42.1.5 jump mark-for-masquerade
        		meta l4proto tcp dnat to 10.42.1.5:8080
        	}
        	chain endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080 {
        		ip saddr 10.42.2.7 jump mark-for-masquerade
        		meta l4proto tcp dnat to 10.42.2.7:8080
        	}
        }
    "#]]
    .assert_eq(&service_chains(&text));
}

#[test]
fn local_policies_without_local_endpoints_drop_rather_than_reject() {
    let mut service = web(&[("10.42.1.5", false)]);
    service.node_port = Some(30080);
    service.external_local = true;
    service.internal_local = true;
    let text = render(&config(), &[service], None).text;
    let maps = maps(&text);
    assert!(
        maps.contains("elements = { 10.43.0.20 . tcp . 80 : drop }"),
        "{maps}"
    );
    assert!(maps.contains("elements = { tcp . 30080 : drop }"), "{maps}");
    assert!(!text.contains("external-"), "{text}");
    assert!(!text.contains("local-"), "{text}");
}

#[test]
fn internal_traffic_policy_local_sends_cluster_ip_traffic_to_local_endpoints() {
    let mut service = web(&[("10.42.1.5", false), ("10.42.2.7", true)]);
    service.internal_local = true;
    let text = render(&config(), &[service], None).text;
    assert!(
        text.contains("10.43.0.20 . tcp . 80 : goto local-K5IWGISR-shop/web/tcp/http"),
        "{text}"
    );
    assert!(!text.contains("chain service-7GM5H76F"), "{text}");
    assert!(
        text.contains(
            "\tchain local-K5IWGISR-shop/web/tcp/http {\n\t\tnumgen random mod 1 vmap { 0 : goto endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080 }\n\t}\n"
        ),
        "{text}"
    );
}

#[test]
fn client_ip_affinity_remembers_clients_per_endpoint() {
    let mut service = web(&[("10.42.1.5", false), ("10.42.2.7", true)]);
    service.affinity_timeout = Some(10800);
    let text = render(&config(), &[service], None).text;
    expect![[r#"
        	chain service-7GM5H76F-shop/web/tcp/http {
        		ip daddr 10.43.0.20 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
        		ip saddr @affinity-NYYLUWJT-shop/web/tcp/http__10.42.1.5/8080 goto endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080
        		ip saddr @affinity-NJVA7LOS-shop/web/tcp/http__10.42.2.7/8080 goto endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080
        		numgen random mod 2 vmap { 0 : goto endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080, 1 : goto endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080 }
        	}
        	chain endpoint-UGNTVXZG-shop/web/tcp/http__10.42.1.5/8080 {
        		ip saddr 10.42.1.5 jump mark-for-masquerade
        		update @affinity-NYYLUWJT-shop/web/tcp/http__10.42.1.5/8080 { ip saddr }
        		meta l4proto tcp dnat to 10.42.1.5:8080
        	}
        	chain endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080 {
        		ip saddr 10.42.2.7 jump mark-for-masquerade
        		update @affinity-NJVA7LOS-shop/web/tcp/http__10.42.2.7/8080 { ip saddr }
        		meta l4proto tcp dnat to 10.42.2.7:8080
        	}
        }
    "#]]
    .assert_eq(&service_chains(&text));
    assert!(
        text.contains(
            "\tset affinity-NYYLUWJT-shop/web/tcp/http__10.42.1.5/8080 {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 10800s\n\t}"
        ),
        "{text}"
    );
}

#[test]
fn a_later_sync_flushes_deletes_what_went_and_keeps_affinity_entries() {
    let mut before = web(&[("10.42.1.5", false), ("10.42.2.7", true)]);
    before.affinity_timeout = Some(60);
    let first = render(&config(), &[before.clone()], None);
    let mut after = before;
    after.endpoints.truncate(1);
    let second = render(&config(), &[after], Some(&first.objects));
    let head: String = second
        .text
        .lines()
        .take_while(|l| !l.starts_with("table ip bulwark_proxy {"))
        .map(|l| format!("{l}\n"))
        .collect();
    expect![[r#"
        add table ip bulwark_proxy
        flush set ip bulwark_proxy cluster-ips
        flush set ip bulwark_proxy nodeport-ips
        flush map ip bulwark_proxy no-endpoint-services
        flush map ip bulwark_proxy no-endpoint-nodeports
        flush map ip bulwark_proxy service-ips
        flush map ip bulwark_proxy service-nodeports
        flush chain ip bulwark_proxy service-7GM5H76F-shop/web/tcp/http
        flush chain ip bulwark_proxy endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080
        delete chain ip bulwark_proxy endpoint-OWGN3DMN-shop/web/tcp/http__10.42.2.7/8080
        delete set ip bulwark_proxy affinity-OAJSJDSY-shop/web/tcp/http__10.42.2.7/8080
    "#]]
    .assert_eq(&head);
    // The remaining endpoint's set is declared again, not deleted: its
    // entries stay.
    assert!(
        second
            .text
            .contains("\tset affinity-R4DOB7CC-shop/web/tcp/http__10.42.1.5/8080 {"),
        "{}",
        second.text
    );
    assert!(second.objects.chains() < first.objects.chains());
    // Only what changed is written: the service's chain, not the fixed
    // chains or the remaining endpoint's.
    let written: Vec<&str> = second
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("\tchain "))
        .collect();
    assert_eq!(written, ["service-7GM5H76F-shop/web/tcp/http {"]);
    // Nothing changed: maps rewritten, no chain touched.
    let third = render(&config(), &[after_again()], Some(&second.objects));
    assert!(!third.text.contains("chain "), "{}", third.text);
}

fn after_again() -> ServicePort {
    let mut service = web(&[("10.42.1.5", false)]);
    service.affinity_timeout = Some(60);
    service
}

#[test]
fn chain_names_differ_per_service_port_and_protocol() {
    let tcp = web(&[("10.42.1.5", false)]);
    let mut udp = tcp.clone();
    udp.protocol = Protocol::Udp;
    let mut other = tcp.clone();
    other.name = "api".into();
    other.cluster_ip = Ipv4Addr::new(10, 43, 0, 21);
    let text = render(&config(), &[tcp, udp, other], None).text;
    for chain in [
        "service-7GM5H76F-shop/web/tcp/http",
        "shop/web/udp/http {",
        "shop/api/tcp/http {",
    ] {
        assert!(text.contains(chain), "{chain} missing from {text}");
    }
    assert!(text.contains("meta l4proto udp dnat to 10.42.1.5:8080"));
}

#[test]
fn host_ports_dnat_from_node_addresses_to_the_pod() {
    let ports = [
        HostPort {
            namespace: "shop".into(),
            pod: "web-0".into(),
            protocol: Protocol::Tcp,
            host_ip: None,
            host_port: 8080,
            pod_ip: Ipv4Addr::new(10, 42, 3, 5),
            container_port: 80,
        },
        HostPort {
            namespace: "shop".into(),
            pod: "dns-0".into(),
            protocol: Protocol::Udp,
            host_ip: Some(Ipv4Addr::new(192, 168, 0, 3)),
            host_port: 5353,
            pod_ip: Ipv4Addr::new(10, 42, 3, 6),
            container_port: 53,
        },
    ];
    let text = render_all(&config(), &[], &ports, None).text;
    let start = text.find("chain hostports {").expect("the chain");
    let end = text.find("\tchain services {").expect("the next chain");
    expect![[r#"
        chain hostports {
        		meta l4proto tcp th dport 8080 goto hostport-4AQYZRDE-shop/web-0/tcp/8080
        		ip daddr 192.168.0.3 meta l4proto udp th dport 5353 goto hostport-QW46ENWC-shop/dns-0/udp/5353
        	}
    "#]]
    .assert_eq(&text[start..end]);
    expect![[r#"
        	chain hostport-4AQYZRDE-shop/web-0/tcp/8080 {
        		ip saddr 10.42.3.5 jump mark-for-masquerade
        		meta l4proto tcp dnat to 10.42.3.5:80
        	}
        	chain hostport-QW46ENWC-shop/dns-0/udp/5353 {
        		ip saddr 10.42.3.6 jump mark-for-masquerade
        		meta l4proto udp dnat to 10.42.3.6:53
        	}
        }
    "#]]
    .assert_eq(&service_chains(&text));
    assert!(
        text.contains("fib daddr type local ip daddr != 127.0.0.0/8 jump hostports"),
        "{text}"
    );
}

#[test]
fn a_second_claim_on_an_address_and_port_is_skipped_not_fatal() {
    let first = web(&[("10.42.1.5", false)]);
    let mut second = web(&[("10.42.1.9", false)]);
    second.name = "copy".into();
    let text = render(&config(), &[first, second], None).text;
    assert!(!text.contains("shop/copy/"), "{text}");
    assert_eq!(text.matches("10.43.0.20 . tcp . 80").count(), 1, "{text}");
}

#[test]
fn long_names_are_cut_to_what_nftables_takes() {
    let long = "a".repeat(63);
    let mut service = web(&[("10.42.1.5", false)]);
    service.namespace = long.clone();
    service.name = long.clone();
    service.port_name = "a-very-long-nam".into();
    let host_port = HostPort {
        namespace: long.clone(),
        pod: "p".repeat(253),
        protocol: Protocol::Tcp,
        host_ip: None,
        host_port: 8080,
        pod_ip: Ipv4Addr::new(10, 42, 3, 5),
        container_port: 80,
    };
    let text = render_all(&config(), &[service], &[host_port], None).text;
    for line in text.lines() {
        if let Some(name) = line.trim().strip_prefix("chain ") {
            assert!(name.len() <= 202, "{name}");
        }
    }
    assert!(text.contains("goto hostport-"), "{text}");
}
