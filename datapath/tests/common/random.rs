//! Random policies and flows over the connectivity-test cluster, from a seed: the input of the
//! property tests that compare the engine with the datapath (map lookups, and the kernel).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use super::{ccnp, cnp};

/// A small deterministic generator (xorshift64*), so a failing seed replays exactly.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// True with probability `n` in `d`.
    pub fn chance(&mut self, n: usize, d: usize) -> bool {
        self.below(d) < n
    }
}

/// The endpoint-side peers of a generated flow (names understood by `Suite::peer`).
pub const PEERS: [&str; 8] = [
    "client",
    "client2",
    "echo",
    "echo-other-ns",
    "world",
    "world2",
    "host1",
    "host2",
];

/// Ports the policies and flows draw from.
pub const PORTS: [u16; 7] = [53, 80, 443, 8000, 8080, 8081, 9090];

const SELECTORS: [&str; 8] = [
    "{}",
    r#"{"matchLabels": {"kind": "client"}}"#,
    r#"{"matchLabels": {"kind": "echo"}}"#,
    r#"{"matchLabels": {"name": "client"}}"#,
    r#"{"matchLabels": {"name": "echo"}}"#,
    r#"{"matchExpressions": [{"key": "kind", "operator": "In", "values": ["echo", "client"]}]}"#,
    r#"{"matchExpressions": [{"key": "name", "operator": "NotIn", "values": ["client2"]}]}"#,
    r#"{"matchExpressions": [{"key": "other", "operator": "DoesNotExist"}]}"#,
];

const ENTITIES: [&str; 5] = ["world", "all", "cluster", "host", "remote-node"];

const CIDRS: [&str; 10] = [
    "203.0.113.0/24",
    "203.0.113.10/32",
    "198.51.100.0/24",
    "0.0.0.0/0",
    "10.1.0.0/16",
    "203.0.113.0/28",
    "2001:db8::/32",
    "2001:db8::10/128",
    "::/0",
    "fd00::a01:0/112",
];

/// `toServices` entries: the property lab's services (by name, by label, one it lacks).
const TO_SERVICES: [&str; 3] = [
    r#"{"k8sService": {"serviceName": "echo-svc", "namespace": "cilium-test"}}"#,
    r#"{"k8sServiceSelector": {"selector": {"matchLabels": {"tier": "external"}}}}"#,
    r#"{"k8sService": {"serviceName": "absent"}}"#,
];

/// `toFQDNs` selectors (the property lab's DNS cache answers `api.example.com`).
const TO_FQDNS: [&str; 3] = [
    r#"{"matchName": "api.example.com"}"#,
    r#"{"matchPattern": "*.example.com"}"#,
    r#"{"matchName": "other.example.org"}"#,
];

/// One random rule entry's peer part (`fromX`/`toX` chosen by `dir`), possibly empty;
/// egress also draws `toServices`, and egress allows `toFQDNs`.
fn peer(rng: &mut Rng, dir: &str, allow: bool) -> String {
    let (eps, ents, cidr, set) = if dir == "ingress" {
        ("fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet")
    } else {
        ("toEndpoints", "toEntities", "toCIDR", "toCIDRSet")
    };
    if dir == "egress" && rng.chance(1, 6) {
        return format!(r#""toServices": [{}]"#, rng.pick(&TO_SERVICES));
    }
    if dir == "egress" && allow && rng.chance(1, 3) {
        return format!(r#""toFQDNs": [{}]"#, rng.pick(&TO_FQDNS));
    }
    match rng.below(6) {
        0 => String::new(),
        1 | 2 => format!(r#""{eps}": [{}]"#, rng.pick(&SELECTORS)),
        3 => format!(r#""{ents}": ["{}"]"#, rng.pick(&ENTITIES)),
        4 => format!(r#""{cidr}": ["{}"]"#, rng.pick(&CIDRS)),
        5 if rng.chance(1, 3) => format!(r#""{set}": [{{"cidrGroupRef": "{GROUP}"}}]"#),
        _ => {
            let except = if rng.chance(1, 2) {
                r#", "except": ["203.0.113.8/29"]"#
            } else {
                ""
            };
            format!(
                r#""{set}": [{{"cidr": "{}"{except}}}]"#,
                rng.pick(&["203.0.113.0/24", "0.0.0.0/0"])
            )
        }
    }
}

/// A random `toPorts` (or nothing); named ports only in allow rules.
fn ports(rng: &mut Rng, allow: bool) -> String {
    let proto = *rng.pick(&["TCP", "UDP", "ANY"]);
    match rng.below(5) {
        0 => String::new(),
        1 if allow => format!(
            r#""toPorts": [{{"ports": [{{"port": "{}", "protocol": "{}"}}]}}]"#,
            rng.pick(&["http", "dns"]),
            rng.pick(&["TCP", "UDP"])
        ),
        2 => {
            let lo = *rng.pick(&PORTS);
            format!(
                r#""toPorts": [{{"ports": [{{"port": "{lo}", "endPort": {}, "protocol": "{proto}"}}]}}]"#,
                lo + *rng.pick(&[1u16, 7, 100])
            )
        }
        _ => format!(
            r#""toPorts": [{{"ports": [{{"port": "{}", "protocol": "{proto}"}}]}}]"#,
            rng.pick(&PORTS)
        ),
    }
}

/// One random rule: an endpoint selector and one to three entries in random lists.
fn rule(rng: &mut Rng) -> String {
    rule_of(rng, |rng| {
        format!(r#""endpointSelector": {}"#, rng.pick(&SELECTORS))
    })
}

/// One random rule whose subject `subject` draws.
fn rule_of(rng: &mut Rng, subject: impl FnOnce(&mut Rng) -> String) -> String {
    let mut lists: Vec<String> = Vec::new();
    for _ in 0..=rng.below(3) {
        let list = *rng.pick(&[
            "ingress",
            "egress",
            "ingressDeny",
            "egressDeny",
            "ingress",
            "egress",
        ]);
        let dir = if list.starts_with("ingress") {
            "ingress"
        } else {
            "egress"
        };
        let allow = !list.ends_with("Deny");
        let parts: Vec<String> = [peer(rng, dir, allow), ports(rng, allow)]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        if !allow && parts.is_empty() {
            continue;
        }
        lists.push(format!(r#""{list}": [{{{}}}]"#, parts.join(", ")));
    }
    if lists.is_empty() {
        lists.push(r#""ingress": [{}]"#.to_owned());
    }
    let mut fields = vec![subject(rng)];
    if rng.chance(1, 8) {
        fields.push(format!(
            r#""enableDefaultDeny": {{"ingress": {}, "egress": {}}}"#,
            rng.chance(1, 2),
            rng.chance(1, 2)
        ));
    }
    // Merge duplicate list names: keep the first of each.
    let mut seen = Vec::new();
    for l in lists {
        let name = l.split('"').nth(1).unwrap_or_default().to_owned();
        if !seen.contains(&name) {
            seen.push(name);
            fields.push(l);
        }
    }
    format!("{{{}}}", fields.join(", "))
}

/// The CiliumCIDRGroup every generated policy set holds, which `cidrGroupRef` peers name.
pub const GROUP: &str = "random-group";

const CIDR_GROUP: &str = "---
apiVersion: cilium.io/v2alpha1
kind: CiliumCIDRGroup
metadata:
  name: random-group
spec:
  externalCIDRs: [203.0.113.0/28, 198.51.100.0/24]
";

/// Node selectors of host policies (the clusters' nodes have `zone: a` and `zone: b`).
const NODE_SELECTORS: [&str; 3] = [
    "{}",
    r#"{"matchLabels": {"zone": "a"}}"#,
    r#"{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}"#,
];

/// One to four random policies: CNPs in `cilium-test` or `other-ns`, sometimes a CCNP, a
/// host policy (a CCNP with a `nodeSelector`) or a Kubernetes NetworkPolicy; always with
/// the CIDR group [`GROUP`].
pub fn policies(rng: &mut Rng) -> Vec<String> {
    let mut out: Vec<String> = (0..=rng.below(4))
        .map(|i| {
            let name = format!("random-{i}");
            match rng.below(10) {
                0 | 1 => ccnp(&name, &rule(rng)),
                2 => ccnp(&name, &host_rule(rng)),
                3 => knp(rng, &name),
                _ => {
                    let namespace: &str =
                        rng.pick::<&str>(&["cilium-test", "cilium-test", "other-ns"]);
                    cnp(&name, namespace, &rule(rng))
                }
            }
        })
        .collect();
    out.push(CIDR_GROUP.to_owned());
    out
}

/// A random host policy: a rule whose subject is a node selector.
fn host_rule(rng: &mut Rng) -> String {
    rule_of(rng, |rng| {
        format!(r#""nodeSelector": {}"#, rng.pick(&NODE_SELECTORS))
    })
}

/// A random Kubernetes NetworkPolicy in `cilium-test`.
fn knp(rng: &mut Rng, name: &str) -> String {
    let pods = rng.pick(&[
        "{}",
        r#"{"matchLabels": {"kind": "echo"}}"#,
        r#"{"matchLabels": {"name": "client"}}"#,
    ]);
    let peer = *rng.pick(&[
        r#"{"podSelector": {"matchLabels": {"kind": "client"}}}"#,
        r#"{"namespaceSelector": {"matchLabels": {"team": "other"}}}"#,
        r#"{"namespaceSelector": {}, "podSelector": {"matchLabels": {"name": "echo"}}}"#,
        r#"{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.8/29"]}}"#,
        r#"{"ipBlock": {"cidr": "0.0.0.0/0"}}"#,
    ]);
    let port = format!(
        r#"{{"protocol": "{}", "port": {}}}"#,
        rng.pick(&["TCP", "UDP"]),
        rng.pick(&PORTS)
    );
    let ports = if rng.chance(1, 2) {
        format!(r#", "ports": [{port}]"#)
    } else {
        String::new()
    };
    let (types, list, side) = match rng.below(3) {
        0 => (r#"["Ingress"]"#, "ingress", "from"),
        1 => (r#"["Egress"]"#, "egress", "to"),
        _ => (r#"["Ingress", "Egress"]"#, "ingress", "from"),
    };
    let spec = format!(
        r#"{{"podSelector": {pods}, "policyTypes": {types}, "{list}": [{{"{side}": [{peer}]{ports}}}]}}"#
    );
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: cilium-test\nspec: {spec}\n"
    )
}

/// A random flow: (from, to, "PROTO/port") with at least one managed end.
pub fn flow(rng: &mut Rng) -> (&'static str, &'static str, String) {
    loop {
        let (from, to) = (*rng.pick(&PEERS), *rng.pick(&PEERS));
        let managed = |p: &str| !p.starts_with("world") && !p.starts_with("host");
        if from != to && (managed(from) || managed(to)) {
            return (
                from,
                to,
                format!("{}/{}", rng.pick(&["TCP", "UDP"]), rng.pick(&PORTS)),
            );
        }
    }
}
