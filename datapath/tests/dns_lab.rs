//! FQDN policy in the kernel: `ward-agent`'s DNS proxy between a pod and a DNS server in the
//! lab's world namespace, with real packets.
//!
//! The client pod may ask the world's DNS server for names under `example.com` only
//! (`rules.dns`) and connect on port 80 to what those names resolve to (`toFQDNs`). Checked:
//! nothing is reachable before a query; an allowed query is answered and its addresses are
//! reachable on the very first connect (the proxy holds the answer until the maps have them);
//! a name the rules do not allow gets REFUSED without reaching the server (over UDP and over
//! TCP); an address nobody
//! answered stays unreachable; when an answer's TTL runs out an established connection keeps
//! working, and once it has closed new connections are dropped; all of it over IPv4 and IPv6
//! (AAAA answers, and a query to the server's IPv6 address); the engine, given the answers
//! the agent learned, decides every one of these flows and queries as the kernel did; a
//! restarted agent keeps what its predecessor learned; a pod without DNS rules asks the
//! server directly.
//!
//! Needs root and bpffs; without them it prints `SKIPPED: <test>: <reason>` (a failure in
//! must-run mode).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;

use common::lab::{AgentLab, privileged, still_works, tcp_connect, tcp_server};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use ward_datapath::lab::dns::{self, DnsServer, Zone};

const LAB: &str = include_str!("data/dns-lab.yaml");

const POLICY: &str = include_str!("data/fqdn-policy.yaml");

/// The node's own egress in default deny (only to an address nobody uses): the DNS proxy's
/// upstream queries leave the node all the same, as Cilium's proxy traffic never meets the
/// host firewall.
const HOST_POLICY: &str = "apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: node-egress}
spec:
  nodeSelector: {}
  egress:
    - toCIDR: [192.0.2.99/32]
";

const OPEN: Duration = Duration::from_secs(2);
const SHUT: Duration = Duration::from_millis(400);
/// The TTL of `short.example.com`.
const SHORT_TTL: u32 = 2;

#[test]
fn a_pod_reaches_exactly_what_its_allowed_names_resolved_to_until_they_expire() {
    if !privileged("dns_lab") {
        return;
    }
    let mut lab = AgentLab::up("dns", LAB);
    let world = lab.netns("world");
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let (api, short, other) = (ip("203.0.113.20"), ip("203.0.113.30"), ip("198.51.100.5"));
    let tcp = ip("203.0.113.40");
    let (api6, short6) = (lab.ip6_of(api), lab.ip6_of(short));
    for a in [api, short, other, tcp, api6, short6] {
        tcp_server(&world, a, 80);
    }
    let zone = |addrs: &[IpAddr], ttl| Zone {
        addresses: addrs.to_vec(),
        ttl,
    };
    let names = BTreeMap::from([
        ("api.example.com".to_owned(), zone(&[api, api6], 300)),
        (
            "short.example.com".to_owned(),
            zone(&[short, short6], SHORT_TTL),
        ),
        ("other.example.org".to_owned(), zone(&[other], 300)),
        ("tcp.example.com".to_owned(), zone(&[tcp], 300)),
    ]);
    let server: SocketAddr = (lab.ip("world"), 53).into();
    let server6: SocketAddr = (lab.ip6("world"), 53).into();
    let dns4 = DnsServer::start(&world, server, names.clone()).unwrap();
    let dns6 = DnsServer::start(&world, server6, names).unwrap();

    let set = common::load(&format!("{POLICY}---\n{HOST_POLICY}"));
    lab.write_objects(&set);
    let node = lab.nodes().remove(0);
    lab.start_agent(&node);
    let client = lab.netns("shop/client");
    let ask = |server: SocketAddr, name: &str, t: RecordType| {
        dns::query(&client, server, name, t, OPEN)
            .unwrap()
            .unwrap_or_else(|| panic!("no answer to {name} from {server}"))
    };

    // The host policy holds for the node's own traffic, a DNS query of its own included.
    let node_ns = lab.netns(&format!("node:{node}"));
    assert!(
        dns::query(&node_ns, server, "api.example.com", RecordType::A, SHUT)
            .unwrap()
            .is_none(),
        "the node's own query meets its host policy"
    );

    // Nothing is reachable before a query.
    assert!(
        tcp_connect(&client, api, 80, SHUT).is_none(),
        "api before any query"
    );

    // An allowed name: answered, and its address reachable on the first connect.
    let reply = ask(server, "api.example.com", RecordType::A);
    assert_eq!(reply.code, ResponseCode::NoError);
    assert_eq!(reply.addresses, [api]);
    let asked = Instant::now();
    let mut held = tcp_connect(&client, api, 80, OPEN)
        .expect("the first connect after the answer must pass (the proxy waits for the maps)");
    eprintln!(
        "answer took {:?}; first connect {:?} after it",
        reply.took,
        asked.elapsed()
    );
    assert!(still_works(&mut held));
    // Other ports, and addresses nobody answered, stay closed.
    assert!(
        tcp_connect(&client, short, 80, SHUT).is_none(),
        "unanswered address"
    );
    assert!(
        tcp_connect(&client, other, 80, SHUT).is_none(),
        "unanswered address"
    );

    // A name the rules do not allow: REFUSED by the proxy, the server never asked.
    let before = dns4.queries();
    let refused = ask(server, "other.example.org", RecordType::A);
    assert_eq!(refused.code, ResponseCode::Refused);
    assert!(refused.addresses.is_empty());
    assert_eq!(
        dns4.queries(),
        before,
        "a refused query must not reach the server"
    );
    assert!(tcp_connect(&client, other, 80, SHUT).is_none());

    // IPv6: an AAAA answer over IPv4, then a query to the server's IPv6 address.
    let reply6 = ask(server, "api.example.com", RecordType::AAAA);
    assert_eq!(reply6.addresses, [api6]);
    assert!(
        tcp_connect(&client, api6, 80, OPEN).is_some(),
        "api over IPv6"
    );
    let refused6 = ask(server6, "other.example.org", RecordType::AAAA);
    assert_eq!(refused6.code, ResponseCode::Refused);
    assert_eq!(dns6.queries(), 0);

    // DNS over TCP goes through the proxy too: refused, and answered and learned.
    let before = dns4.queries();
    let refused = dns::query_tcp(&client, server, "other.example.org", RecordType::A, OPEN)
        .unwrap()
        .expect("an answer over TCP");
    assert_eq!(refused.code, ResponseCode::Refused);
    assert_eq!(
        dns4.queries(),
        before,
        "a refused query must not reach the server"
    );
    assert!(
        tcp_connect(&client, tcp, 80, SHUT).is_none(),
        "tcp before its query"
    );
    let answered = dns::query_tcp(&client, server, "tcp.example.com", RecordType::A, OPEN)
        .unwrap()
        .expect("an answer over TCP");
    assert_eq!(answered.addresses, [tcp]);
    assert!(
        tcp_connect(&client, tcp, 80, OPEN).is_some(),
        "an address learned over TCP"
    );

    // A short TTL. As in Cilium, an address whose TTL ran out stays while a connection to it
    // lives (a "zombie"): the established connection keeps working, and the address goes once
    // the connection has closed and its conntrack entry ended (10 s after a FIN each way).
    let s = ask(server6, "short.example.com", RecordType::AAAA);
    assert_eq!(
        (s.addresses.as_slice(), s.ttl),
        ([short6].as_slice(), Some(SHORT_TTL))
    );
    let s = ask(server, "short.example.com", RecordType::A);
    assert_eq!(s.addresses, [short]);
    let mut established = tcp_connect(&client, short, 80, OPEN).expect("short before its TTL");
    assert!(
        tcp_connect(&client, short6, 80, OPEN).is_some(),
        "short over IPv6"
    );
    std::thread::sleep(Duration::from_millis(u64::from(SHORT_TTL) * 1000 + 1500));
    assert!(
        still_works(&mut established),
        "an established connection keeps working after its name's TTL"
    );
    drop(established);
    // The close's conntrack lifetime, the agent's recheck, and a margin.
    std::thread::sleep(Duration::from_millis(12_500));
    assert!(
        tcp_connect(&client, short, 80, SHUT).is_none(),
        "short after its TTL, once no connection uses it"
    );
    assert!(
        tcp_connect(&client, short6, 80, SHUT).is_none(),
        "short over IPv6 after its TTL"
    );
    assert!(
        tcp_connect(&client, api, 80, OPEN).is_some(),
        "api's longer TTL still holds"
    );

    // `ward-agent status` shows the proxy's counters and what it learned.
    let dns_status = lab.run_dir(&node).join("dns.json");
    common::lab::wait_for("the DNS status", Duration::from_secs(5), || {
        let doc: serde_json::Value = std::fs::read(&dns_status)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        doc["proxy"]["refused"].as_u64() >= Some(3) && doc["proxy"]["forwarded"].as_u64() >= Some(5)
    });
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_ward-agent"))
        .args(["status", "--node", &node, "--run-dir"])
        .arg(lab.run_dir(&node))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(text.contains("dns proxy: port "), "{text}");
    assert!(text.contains("api.example.com."), "{text}");
    assert!(text.contains("203.0.113.20"), "{text}");

    // The engine over the answers the agent learned (its saved cache) decides every flow
    // above as the kernel did: what `ward test` says of these policies with those answers.
    let saved: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(lab.run_dir(&node).join("dns-cache.json")).unwrap())
            .unwrap();
    let mut answers: std::collections::BTreeMap<String, Vec<IpAddr>> = Default::default();
    for s in &saved {
        answers
            .entry(s["name"].as_str().unwrap().to_owned())
            .or_default()
            .push(s["address"].as_str().unwrap().parse().unwrap());
    }
    let learned: Vec<&str> = answers.keys().map(String::as_str).collect();
    assert_eq!(learned, ["api.example.com.", "tcp.example.com."]);
    let mut cluster = ward_engine::Cluster::from_topology(lab.lab.topology());
    cluster.dns = answers
        .into_iter()
        .map(|(name, addresses)| ward_engine::DnsAnswer { name, addresses })
        .collect();
    let repo = ward_engine::PolicyRepository::from_resources(cluster, &set).unwrap();
    let from = ward_engine::Peer::Ip(lab.ip("shop/client").into());
    let tcp80 = |to: IpAddr| {
        repo.verdict(&ward_engine::Flow::tcp(from, ward_engine::Peer::Ip(to), 80))
            .verdict
    };
    for (to, kernel_passed) in [
        (api, true),
        (api6, true),
        (tcp, true),
        (short, false),
        (short6, false),
        (other, false),
    ] {
        let engine_allows = tcp80(to) == ward_engine::Verdict::Allow;
        assert_eq!(
            engine_allows, kernel_passed,
            "the engine and the kernel on client -> {to}:80"
        );
    }
    let dns53 = ward_engine::Flow {
        src: from,
        dst: ward_engine::Peer::Ip(server.ip()),
        protocol: ward_engine::Protocol::UDP,
        port: 53,
    };
    for (name, refused) in [("api.example.com", false), ("other.example.org", true)] {
        let request = ward_engine::L7Request::Dns { name: name.into() };
        let denied = repo
            .l7_verdict(&dns53, &request)
            .iter()
            .any(|(_, d)| d.verdict == ward_engine::L7Verdict::Denied);
        assert_eq!(
            denied, refused,
            "the engine and the proxy on a query for {name}"
        );
    }

    // A restarted agent takes back what its predecessor learned: api's address stays open
    // to new connections without a new query (the answers are kept in the run directory).
    lab.terminate_agent(&node);
    lab.start_agent(&node);
    assert!(
        tcp_connect(&client, api, 80, OPEN).is_some(),
        "api after an agent restart, without a new query"
    );
    assert!(
        tcp_connect(&client, short, 80, SHUT).is_none(),
        "short stays gone"
    );

    // A pod without DNS rules is not proxied: it asks the server directly, which its
    // (default-allow) policy lets through.
    let direct = dns::query(
        &lab.netns("shop/other"),
        server,
        "other.example.org",
        RecordType::A,
        OPEN,
    )
    .unwrap()
    .expect("shop/other asks the server directly");
    assert_eq!(direct.addresses, [other]);
    drop(held);
}
