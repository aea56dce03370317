//! Layer 7: what Cilium's proxies decide about a request that layer 3/4 policy allowed
//! (reference §2 L7Rules, §4.1, §4.2). The datapath does not enforce these (that needs
//! Envoy and the DNS proxy); `ward test` and `ward explain` evaluate them offline.
//!
//! - The L7 rules that apply to a flow are the union, over every allow entry that matches
//!   the flow at layer 3/4, of the rules of its `toPorts` items that cover the port. An entry
//!   (or `toPorts` item) without L7 rules matching the same flow makes the port an L7
//!   wildcard: every request passes (Cilium adds an empty rule, §4.2).
//! - A direction not in default deny gets an L7 wildcard too (Cilium appends one so that
//!   other requests on the port are not denied, §4.1).
//! - HTTP (`http[]`, Envoy's route matching): a request is allowed when at least one rule
//!   matches it. In a rule every field given must match: `method`, `path` and `host` are
//!   regular expressions (RE2) matched against the whole method, path (with its query) and
//!   Host header; `headers` entries are `Name` (present) or `Name value` / `Name: value`
//!   (exactly this value); `headerMatches` without `mismatch` need the header with exactly
//!   `value` (present when no value is given), while with a `mismatch` action the rule still
//!   matches and Cilium only logs or rewrites the header. A value kept in a Secret is not
//!   known here: the rule is not evaluated and says so.
//! - DNS (`dns[]`, egress only): the query name must match a `matchName` or `matchPattern`
//!   ([`super::fqdn`]); a refused query gets REFUSED from Cilium's DNS proxy.
//! - Kafka, `l7proto` parsers, Envoy listeners and TLS interception are not evaluated.

use super::cluster::NamedPort;
use super::fqdn;
use super::ports::{L4, Protocol};
use super::rule::RuleRef;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use ward_schema::model::{self, PortRuleHttp};

/// An application-layer request carried by a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L7Request {
    /// An HTTP request.
    Http(HttpRequest),
    /// A DNS query for a name.
    Dns {
        /// The queried name (`api.example.com`).
        name: String,
    },
}

/// An HTTP request as the proxy sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method (`GET`).
    pub method: String,
    /// The path with its query (`/api/v1/items?limit=5`).
    pub path: String,
    /// The Host header (`:authority`), if the request has one.
    pub host: Option<String>,
    /// Other headers, by name (compared without regard to case).
    pub headers: BTreeMap<String, String>,
}

impl L7Request {
    fn family(&self) -> &'static str {
        match self {
            L7Request::Http(_) => "HTTP",
            L7Request::Dns { .. } => "DNS",
        }
    }
}

impl fmt::Display for L7Request {
    /// `HTTP GET /path (host x)` or `DNS query api.example.com`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            L7Request::Http(h) => {
                write!(f, "HTTP {} {}", h.method, h.path)?;
                if let Some(host) = &h.host {
                    write!(f, " (Host {host})")?;
                }
                Ok(())
            }
            L7Request::Dns { name } => write!(f, "DNS query {name}"),
        }
    }
}

/// The layer-4 match and L7 rules of one `toPorts` item of an allow entry.
#[derive(Debug, Clone)]
pub(crate) struct PortL7 {
    /// The ports of the item (no ports: it covers every port).
    pub l4: Vec<L4>,
    /// Its L7 rules, or `None` when it has none (an L7 wildcard for its ports).
    pub rules: Option<Arc<model::L7Rules>>,
    /// An Envoy listener, SNI or TLS setting that ward cannot evaluate.
    pub opaque: Option<&'static str>,
}

impl PortL7 {
    /// The items of an entry's `toPorts`, for entries that carry L7 rules.
    pub(crate) fn of(ports: &[model::PortRule]) -> Vec<PortL7> {
        ports
            .iter()
            .map(|p| PortL7 {
                l4: p
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|pp| super::ports::port_protocol(pp).ok())
                    .flatten()
                    .collect(),
                rules: p
                    .rules
                    .as_ref()
                    .filter(|r| **r != model::L7Rules::default())
                    .map(|r| Arc::new(r.clone())),
                opaque: opaque(p),
            })
            .collect()
    }

    fn covers(
        &self,
        proto: Protocol,
        port: u16,
        named: Option<&BTreeMap<String, NamedPort>>,
    ) -> bool {
        self.l4.is_empty()
            || self.l4.iter().any(|m| match m {
                L4::Named { proto: p, name } => {
                    *p == proto
                        && named
                            .and_then(|n| n.get(name))
                            .is_some_and(|np| np.port == port && np.protocol == proto)
                }
                other => other.matches(proto, port),
            })
    }
}

fn opaque(p: &model::PortRule) -> Option<&'static str> {
    if p.listener.is_some() {
        Some("an Envoy listener")
    } else if p.terminating_tls.is_some() || p.originating_tls.is_some() {
        Some("TLS interception")
    } else if p.server_names.is_some() {
        Some("TLS server names (SNI)")
    } else {
        None
    }
}

/// What the proxy of one direction decides about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L7Verdict {
    /// No L7 rule applies (or one of the matching entries has none): every request passes.
    Wildcard,
    /// The direction is not in default deny: Cilium adds an L7 wildcard, every request passes.
    NotEnforced,
    /// A rule allows the request.
    Allowed,
    /// No rule allows it: HTTP 403 Forbidden, or DNS REFUSED.
    Denied,
    /// ward cannot evaluate the rules (Kafka, a parser, a listener, a Secret's value).
    NotEvaluated,
}

/// The L7 decision of one direction, with the rules it is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L7Decision {
    /// The outcome.
    pub verdict: L7Verdict,
    /// The entry whose rule allowed the request, or (denied) every entry with L7 rules that
    /// applied.
    pub rules: Vec<RuleRef>,
    /// Why, in one sentence.
    pub explanation: String,
}

/// The L7 rules that apply to one flow in one direction: a wildcard, or a union.
#[derive(Debug, Default)]
pub(crate) struct Applicable<'a> {
    wildcard: Option<&'a RuleRef>,
    rules: Vec<(&'a RuleRef, &'a model::L7Rules)>,
    opaque: Vec<(&'a RuleRef, &'static str)>,
}

impl<'a> Applicable<'a> {
    /// Adds an allow entry that matched the flow at layer 3/4.
    pub(crate) fn add(
        &mut self,
        rule: &'a RuleRef,
        items: &'a [PortL7],
        (proto, port, named): (Protocol, u16, Option<&BTreeMap<String, NamedPort>>),
    ) {
        if items.is_empty() {
            self.wildcard.get_or_insert(rule);
            return;
        }
        for item in items.iter().filter(|i| i.covers(proto, port, named)) {
            match (&item.rules, item.opaque) {
                (_, Some(what)) => self.opaque.push((rule, what)),
                (Some(r), None) => self.rules.push((rule, r)),
                (None, None) => {
                    self.wildcard.get_or_insert(rule);
                }
            }
        }
    }

    /// The decision for `request`; `enforced` is whether the direction is in default deny.
    /// `None` when no L7 rule applies: the flow is not sent to a proxy at all.
    pub(crate) fn decide(&self, request: &L7Request, enforced: bool) -> Option<L7Decision> {
        if let Some((rule, what)) = self.opaque.first() {
            return Some(decision(
                L7Verdict::NotEvaluated,
                vec![(*rule).clone()],
                format!("{rule} sends the port to {what}, which ward does not evaluate"),
            ));
        }
        if self.rules.is_empty() {
            return None;
        }
        Some(self.decide_rules(request, enforced))
    }

    fn decide_rules(&self, request: &L7Request, enforced: bool) -> L7Decision {
        let family = request.family();
        if let Some(rule) = self.wildcard {
            return decision(
                L7Verdict::Wildcard,
                vec![rule.clone()],
                format!("{rule} allows the port without L7 rules, so every request passes"),
            );
        }
        if !enforced {
            return decision(
                L7Verdict::NotEnforced,
                Vec::new(),
                "the direction is not in default deny, so Cilium adds an L7 wildcard: every request passes".to_owned(),
            );
        }
        let mut unknown = Vec::new();
        for (rule, rules) in &self.rules {
            match allows(rules, request) {
                Match::Yes => {
                    return decision(
                        L7Verdict::Allowed,
                        vec![(*rule).clone()],
                        format!("allowed by {rule}"),
                    );
                }
                Match::Unknown(why) => unknown.push(format!("{rule}: {why}")),
                Match::No => {}
            }
        }
        let rules: Vec<RuleRef> = self.rules.iter().map(|(r, _)| (*r).clone()).collect();
        if !unknown.is_empty() {
            return decision(L7Verdict::NotEvaluated, rules, unknown.join("; "));
        }
        let answer = match request {
            L7Request::Http(_) => "403 Forbidden",
            L7Request::Dns { .. } => "REFUSED",
        };
        let names: Vec<String> = rules.iter().map(ToString::to_string).collect();
        decision(
            L7Verdict::Denied,
            rules,
            format!(
                "no {family} rule of {} allows it: the proxy answers {answer}",
                names.join(", ")
            ),
        )
    }
}

fn decision(verdict: L7Verdict, rules: Vec<RuleRef>, explanation: String) -> L7Decision {
    L7Decision {
        verdict,
        rules,
        explanation,
    }
}

enum Match {
    Yes,
    No,
    Unknown(String),
}

/// Whether one item's L7 rules allow the request.
fn allows(rules: &model::L7Rules, request: &L7Request) -> Match {
    match request {
        L7Request::Http(req) => {
            if let Some(family) = unevaluated_family(rules) {
                return Match::Unknown(format!("{family} rules are not evaluated"));
            }
            let mut unknown = None;
            for rule in rules.http.iter().flatten() {
                match http_rule(rule, req) {
                    Match::Yes => return Match::Yes,
                    Match::Unknown(why) => unknown = Some(why),
                    Match::No => {}
                }
            }
            unknown.map_or(Match::No, Match::Unknown)
        }
        L7Request::Dns { name } => {
            if let Some(family) = unevaluated_family(rules) {
                return Match::Unknown(format!("{family} rules are not evaluated"));
            }
            let hit = rules.dns.iter().flatten().any(|s| fqdn::matches(s, name));
            if hit { Match::Yes } else { Match::No }
        }
    }
}

/// A rule family ward does not evaluate, when the item has one. (An HTTP request on a
/// port with DNS rules, or the reverse, simply matches nothing.)
fn unevaluated_family(rules: &model::L7Rules) -> Option<&'static str> {
    if rules.kafka.is_some() {
        Some("Kafka")
    } else if rules.l7proto.is_some() {
        Some("l7proto parser")
    } else {
        None
    }
}

/// One `http[]` rule against a request: every field given must match.
fn http_rule(rule: &PortRuleHttp, req: &HttpRequest) -> Match {
    let regexes = [
        (&rule.method, Some(req.method.as_str())),
        (&rule.path, Some(req.path.as_str())),
        (&rule.host, req.host.as_deref()),
    ];
    for (pattern, value) in regexes {
        let Some(pattern) = pattern else { continue };
        match full_match(pattern, value) {
            Ok(true) => {}
            Ok(false) => return Match::No,
            Err(e) => return Match::Unknown(e),
        }
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    for h in rule.headers.iter().flatten() {
        let (name, want) = match h.trim().split_once(' ') {
            Some((n, v)) => (n.trim_end_matches(':'), Some(v.trim())),
            None => (h.trim(), None),
        };
        let ok = match (header(name), want) {
            (Some(v), Some(w)) => v == w,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !ok {
            return Match::No;
        }
    }
    for m in rule.header_matches.iter().flatten() {
        if m.mismatch.is_some() {
            continue;
        }
        if let Some(s) = &m.secret {
            return Match::Unknown(format!(
                "header {} is compared with Secret {}/{}, which only the cluster knows",
                m.name,
                s.namespace.as_deref().unwrap_or("?"),
                s.name
            ));
        }
        let ok = match (
            header(&m.name),
            m.value.as_deref().filter(|v| !v.is_empty()),
        ) {
            (Some(v), Some(w)) => v == w,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !ok {
            return Match::No;
        }
    }
    Match::Yes
}

/// Whether `pattern` matches the whole of `value` (absent: no match).
fn full_match(pattern: &str, value: Option<&str>) -> Result<bool, String> {
    let re = regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("{pattern:?} is not a regular expression ({e})"))?;
    Ok(value.is_some_and(|v| re.is_match(v)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn http(method: &str, path: &str, headers: &[(&str, &str)]) -> L7Request {
        L7Request::Http(HttpRequest {
            method: method.into(),
            path: path.into(),
            host: Some("api.shop".into()),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    fn rules(v: serde_json::Value) -> model::L7Rules {
        serde_json::from_value(v).unwrap()
    }

    fn matches(r: &model::L7Rules, req: &L7Request) -> Option<bool> {
        match allows(r, req) {
            Match::Yes => Some(true),
            Match::No => Some(false),
            Match::Unknown(_) => None,
        }
    }

    /// Method and path are anchored regular expressions (Cilium's getHTTPRule turns them
    /// into Envoy `safe_regex` matchers on `:method` and `:path`, which match the whole
    /// value): `GET` does not match `GETX`, `/public` does not match `/public/x`.
    #[test]
    fn method_and_path_match_the_whole_value() {
        let r = rules(
            json!({"http": [{"method": "GET", "path": "/public"}, {"method": "PUT|POST", "path": "/api/v[0-9]+/.*"}]}),
        );
        assert_eq!(matches(&r, &http("GET", "/public", &[])), Some(true));
        assert_eq!(matches(&r, &http("GETX", "/public", &[])), Some(false));
        assert_eq!(matches(&r, &http("GET", "/public/x", &[])), Some(false));
        assert_eq!(matches(&r, &http("POST", "/api/v2/items", &[])), Some(true));
        assert_eq!(
            matches(&r, &http("DELETE", "/api/v2/items", &[])),
            Some(false)
        );
        let host = rules(json!({"http": [{"host": "api\\.shop"}]}));
        assert_eq!(matches(&host, &http("GET", "/", &[])), Some(true));
        let other = rules(json!({"http": [{"host": "other"}]}));
        assert_eq!(matches(&other, &http("GET", "/", &[])), Some(false));
        let empty = rules(json!({"http": [{}]}));
        assert_eq!(matches(&empty, &http("PATCH", "/x", &[])), Some(true));
    }

    /// `headers`: `Name` needs the header, `Name: value` (or `Name value`) needs exactly the
    /// value (Cilium's getHTTPRule splits at the first space and trims the colon);
    /// `headerMatches` without `mismatch` needs the value, with a mismatch action the rule
    /// still matches (CRD: "Otherwise the overall rule is still considered as matching").
    #[test]
    fn headers_and_header_matches() {
        let r = rules(json!({"http": [{"headers": ["X-Token", "X-Env: prod"]}]}));
        assert_eq!(
            matches(
                &r,
                &http("GET", "/", &[("x-token", "1"), ("X-Env", "prod")])
            ),
            Some(true)
        );
        assert_eq!(
            matches(&r, &http("GET", "/", &[("X-Token", "1"), ("X-Env", "dev")])),
            Some(false)
        );
        assert_eq!(
            matches(&r, &http("GET", "/", &[("X-Env", "prod")])),
            Some(false)
        );
        let hm = rules(json!({"http": [{"headerMatches": [
            {"name": "X-Team", "value": "shop"},
            {"name": "X-Trace", "value": "on", "mismatch": "ADD"}
        ]}]}));
        assert_eq!(
            matches(&hm, &http("GET", "/", &[("X-Team", "shop")])),
            Some(true)
        );
        assert_eq!(
            matches(&hm, &http("GET", "/", &[("X-Team", "ops")])),
            Some(false)
        );
        let secret = rules(
            json!({"http": [{"headerMatches": [{"name": "Authorization", "secret": {"namespace": "shop", "name": "token"}}]}]}),
        );
        assert_eq!(matches(&secret, &http("GET", "/", &[])), None);
    }

    #[test]
    fn dns_names_and_patterns() {
        let r = rules(
            json!({"dns": [{"matchName": "api.example.com"}, {"matchPattern": "*.cdn.example.net"}]}),
        );
        let q = |n: &str| L7Request::Dns { name: n.into() };
        assert_eq!(matches(&r, &q("API.example.com.")), Some(true));
        assert_eq!(matches(&r, &q("img.cdn.example.net")), Some(true));
        assert_eq!(matches(&r, &q("a.b.cdn.example.net")), Some(false));
        assert_eq!(matches(&r, &q("evil.example.com")), Some(false));
        assert_eq!(matches(&r, &http("GET", "/", &[])), Some(false));
    }

    #[test]
    fn a_wildcard_entry_or_a_non_default_deny_direction_lets_every_request_pass() {
        let rule = RuleRef {
            policy: Arc::new(ward_schema::ResourceKey::new(
                ward_schema::Kind::CiliumNetworkPolicy,
                Some("shop"),
                "api",
            )),
            spec: crate::SpecRef::Spec,
            entry: Some((crate::RuleList::Ingress, 0)),
        };
        let items = PortL7::of(&[serde_json::from_value(json!({
            "ports": [{"port": "80", "protocol": "TCP"}],
            "rules": {"http": [{"method": "GET"}]}
        }))
        .unwrap()]);
        let flow = (Protocol::TCP, 80, None);
        let mut a = Applicable::default();
        a.add(&rule, &items, flow);
        let put = http("PUT", "/", &[]);
        let verdict = |a: &Applicable<'_>, r: &L7Request, enforced: bool| {
            a.decide(r, enforced).map(|d| d.verdict)
        };
        assert_eq!(verdict(&a, &put, true), Some(L7Verdict::Denied));
        assert_eq!(
            verdict(&a, &http("GET", "/", &[]), true),
            Some(L7Verdict::Allowed)
        );
        assert_eq!(verdict(&a, &put, false), Some(L7Verdict::NotEnforced));
        let l4_only = rule.clone();
        a.add(&l4_only, &[], flow);
        assert_eq!(verdict(&a, &put, true), Some(L7Verdict::Wildcard));
        let mut other_port = Applicable::default();
        other_port.add(&rule, &items, (Protocol::TCP, 8080, None));
        assert_eq!(verdict(&other_port, &put, true), None, "no proxy");
    }

    mod repository {
        #![allow(clippy::unwrap_used)]
        use crate::{
            Cluster, Direction, Endpoint, Flow, L7Request, L7Verdict, Node, Peer, PolicyRepository,
            Protocol,
        };
        use serde_json::json;
        use ward_schema::{Kind, Origin, Resource, ResourceKey, ResourceSet};

        fn cnp(name: &str, spec: serde_json::Value) -> Resource {
            Resource {
                key: ResourceKey::new(Kind::CiliumNetworkPolicy, Some("shop"), name),
                object: json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": name, "namespace": "shop"}, "spec": spec}),
                origin: Origin::default(),
            }
        }

        fn repo(policies: Vec<Resource>) -> PolicyRepository {
            let mut cluster = Cluster::default();
            for (name, node) in [("web", "n1"), ("api", "n2")] {
                cluster.endpoints.push(Endpoint {
                    name: name.into(),
                    namespace: "shop".into(),
                    labels: [("app".to_owned(), name.to_owned())].into(),
                    node: Some(node.into()),
                    service_account: None,
                    ..Endpoint::default()
                });
                cluster.nodes.push(Node {
                    name: node.into(),
                    ..Node::default()
                });
            }
            let mut set = ResourceSet::new();
            for p in policies {
                set.insert(p);
            }
            PolicyRepository::from_resources(cluster, &set).unwrap()
        }

        fn get(path: &str) -> L7Request {
            L7Request::Http(crate::HttpRequest {
                method: "GET".into(),
                path: path.into(),
                ..Default::default()
            })
        }

        /// The L7 rules of every allow entry that matches the flow apply together, and an
        /// L4-only allow of the same port makes it a wildcard (reference §4.2: "if one rule
        /// is L4-only and another has HTTP rules, the L4-only one becomes an L7 wildcard").
        #[test]
        fn rules_of_all_matching_entries_are_unioned_and_an_l4_only_allow_opens_the_port() {
            let http = |path: &str| {
                json!({
                    "endpointSelector": {"matchLabels": {"app": "api"}},
                    "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}],
                                 "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}],
                                              "rules": {"http": [{"method": "GET", "path": path}]}}]}]
                })
            };
            let r = repo(vec![cnp("a", http("/a")), cnp("b", http("/b"))]);
            let (web, api) = (
                r.endpoint_id("shop/web").unwrap(),
                r.endpoint_id("shop/api").unwrap(),
            );
            let flow = Flow::tcp(Peer::Endpoint(web), Peer::Endpoint(api), 80);
            let verdict = |r: &PolicyRepository, path: &str| {
                let v = r.l7_verdict(&flow, &get(path));
                assert_eq!(
                    v.len(),
                    1,
                    "only the ingress of api sends the flow to a proxy"
                );
                assert_eq!(v[0].0, Direction::Ingress);
                v[0].1.verdict.clone()
            };
            assert_eq!(verdict(&r, "/a"), L7Verdict::Allowed);
            assert_eq!(verdict(&r, "/b"), L7Verdict::Allowed);
            assert_eq!(verdict(&r, "/c"), L7Verdict::Denied);
            let l4_only = cnp(
                "c",
                json!({
                    "endpointSelector": {"matchLabels": {"app": "api"}},
                    "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}],
                                 "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]
                }),
            );
            let r = repo(vec![cnp("a", http("/a")), l4_only]);
            assert_eq!(verdict(&r, "/c"), L7Verdict::Wildcard);
            // A flow layer 4 drops never reaches a proxy.
            let other_port = Flow::tcp(Peer::Endpoint(web), Peer::Endpoint(api), 81);
            assert!(r.l7_verdict(&other_port, &get("/a")).is_empty());
        }

        /// `rules.dns` on the egress to the resolver: an allowed name passes, any other is
        /// refused (Cilium's DNS proxy answers REFUSED).
        #[test]
        fn dns_rules_decide_queries_on_egress() {
            let r = repo(vec![cnp(
                "dns",
                json!({
                    "endpointSelector": {"matchLabels": {"app": "web"}},
                    "egress": [{"toEndpoints": [{"matchLabels": {"app": "api"}}],
                                "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}],
                                             "rules": {"dns": [{"matchPattern": "*.example.com"}]}}]}]
                }),
            )]);
            let (web, api) = (
                r.endpoint_id("shop/web").unwrap(),
                r.endpoint_id("shop/api").unwrap(),
            );
            let flow = Flow {
                src: Peer::Endpoint(web),
                dst: Peer::Endpoint(api),
                protocol: Protocol::UDP,
                port: 53,
            };
            let q = |n: &str| L7Request::Dns { name: n.into() };
            let v = r.l7_verdict(&flow, &q("api.example.com"));
            assert_eq!(
                (v[0].0, &v[0].1.verdict),
                (Direction::Egress, &L7Verdict::Allowed)
            );
            let v = r.l7_verdict(&flow, &q("example.org"));
            assert_eq!(v[0].1.verdict, L7Verdict::Denied);
            assert!(
                v[0].1.explanation.ends_with("REFUSED"),
                "{}",
                v[0].1.explanation
            );
        }

        /// A node addressed by name is its host endpoint: `host` to its own pods, and
        /// `remote-node` to pods elsewhere.
        #[test]
        fn a_node_peer_is_host_to_its_pods_and_remote_node_to_others() {
            let r = repo(Vec::new());
            let (web, n1, n2) = (
                r.endpoint_id("shop/web").unwrap(),
                r.node_id("n1").unwrap(),
                r.node_id("n2").unwrap(),
            );
            assert_eq!(r.node_of(web), Some(n1));
            let remote = |node| {
                r.verdict(&Flow::tcp(Peer::Node(node), Peer::Endpoint(web), 80))
                    .ingress
                    .unwrap()
                    .remote
            };
            assert_eq!(remote(n1), crate::Identity::HOST);
            assert_eq!(remote(n2), crate::Identity::REMOTE_NODE);
            let d = r.verdict(&Flow::tcp(Peer::Endpoint(web), Peer::Node(n2), 22));
            assert!(d.ingress.is_some(), "the node's host endpoint is evaluated");
        }
    }
}
