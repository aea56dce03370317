#!/usr/bin/env python3
"""Generate a realistic, valid corpus of Cilium 1.19 policy documents for benchmarks.

    gen_policies.py OUTDIR [--docs N] [--files F] [--seed S]

Writes N YAML documents spread over F multi-document files ('---' separated):
    OUTDIR/<namespace>/<app>-<n>.yaml     CiliumNetworkPolicy / CiliumEnvoyConfig
    OUTDIR/clusterwide/<topic>-<n>.yaml   CiliumClusterwideNetworkPolicy / ...EnvoyConfig

Mix (exact quotas, then shuffled): ~70% CNP with `spec`, ~15% CCNP with `spec`,
~10% Envoy configs (4/5 CiliumEnvoyConfig, 1/5 CiliumClusterwideEnvoyConfig), ~5%
CNP/CCNP with a `specs:` list (some also carrying `spec`).

Every document is meant to be valid for Cilium 1.19 -- both the CRD schema and the agent's
Sanitize checks (shared/reference/cilium-semantics.md §3): one peer family per rule,
toFQDNs and DNS rules only on egress allow rules, L7 only on TCP (DNS: UDP/TCP) and never
on port 0 or a range, HTTP and DNS on disjoint ports (no L7 parser merge conflicts),
icmps never next to toPorts, CIDRSet excepts inside their cidr, CRD entity enum only, no
ICMP name the CRD pattern misses, no nodeSelector in a CNP, host policies (nodeSelector)
L3/L4 only, no fromNodes/toNodes (need a flag), no Kafka (deprecated), valid selectors.
Names are unique per (kind, namespace, name). Output is a pure function of the arguments.

Standard library only (includes a tiny YAML emitter).
"""
import argparse
import json
import os
import random
import re
import sys

# --------------------------------------------------------------------------- YAML emitter

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./:-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def _scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED and not s.endswith(":"):
        return s
    return json.dumps(s)  # JSON strings are valid YAML double-quoted scalars


def _key(k):
    return _scalar(k)


def _emit(v, indent, out):
    pad = "  " * indent
    if isinstance(v, dict):
        if not v:
            out.append(pad + "{}")
            return
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                out.append(f"{pad}{_key(k)}:")
                _emit(x, indent + 1 if isinstance(x, dict) else indent, out)
            elif isinstance(x, dict):
                out.append(f"{pad}{_key(k)}: {{}}")
            elif isinstance(x, list):
                out.append(f"{pad}{_key(k)}: []")
            else:
                out.append(f"{pad}{_key(k)}: {_scalar(x)}")
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, dict) and x:
                sub = []
                _emit(x, indent + 1, sub)
                first = sub[0][len(pad) + 2:]
                out.append(f"{pad}- {first}")
                out.extend(sub[1:])
            elif isinstance(x, list) and x:
                sub = []
                _emit(x, indent + 1, sub)
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            elif isinstance(x, dict):
                out.append(f"{pad}- {{}}")
            elif isinstance(x, list):
                out.append(f"{pad}- []")
            else:
                out.append(f"{pad}- {_scalar(x)}")
    else:
        out.append(pad + _scalar(v))


def to_yaml(doc):
    out = []
    _emit(doc, 0, out)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- vocabulary

APPS = ["frontend", "backend", "api", "web", "worker", "cache", "db", "queue", "search",
        "auth", "payments", "checkout", "catalog", "inventory", "orders", "gateway",
        "reporting", "scheduler", "notifier", "ledger", "billing", "profile", "media"]
TIERS = ["web", "app", "data", "edge", "batch"]
ENVS = ["prod", "staging", "dev"]
TEAMS = ["payments", "platform", "storefront", "data", "identity", "growth", "ops"]
NS_WORDS = ["shop", "payments", "identity", "catalog", "search", "billing", "media",
            "analytics", "platform", "ops", "checkout", "ledger", "partners", "mobile"]
INGRESS_ENTITIES = ["world", "cluster", "host", "remote-node", "health", "ingress",
                    "kube-apiserver", "unmanaged", "init", "all"]
EGRESS_ENTITIES = ["world", "cluster", "host", "remote-node", "kube-apiserver", "health",
                   "ingress", "all"]
DENY_ENTITIES = ["world", "remote-node", "unmanaged", "ingress"]
# Ports whose L7 parser is fixed, so that rules from different documents selecting the
# same endpoint never ask for two parsers on one port.
HTTP_PORTS = ["80", "8080", "8000", "3000", "9090"]
DNS_PORT = "53"
L4_TCP_PORTS = ["443", "5432", "6379", "3306", "9092", "27017", "8443", "11211", "5672",
                "2379", "9200", "9300", "15672", "6443", "10250"]
L4_UDP_PORTS = ["123", "514", "4789", "8472", "161", "5353"]
NAMED_PORTS = ["http", "https", "grpc", "metrics", "postgres", "redis", "http-alt"]
CIDRS_V4 = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "10.0.0.0/8",
            "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "203.0.113.7/32",
            "198.51.100.128/25"]
CIDRS_V6 = ["2001:db8::/32", "2001:db8:abcd::/48", "fd00::/8", "2001:db8:1:2::/64"]
CIDRSETS = [  # cidr, possible excepts (all contained)
    ("10.0.0.0/8", ["10.96.0.0/12", "10.244.0.0/16", "10.0.0.0/24"]),
    ("172.16.0.0/12", ["172.17.0.0/16", "172.20.0.0/14"]),
    ("192.168.0.0/16", ["192.168.1.0/24", "192.168.100.0/22"]),
    ("0.0.0.0/0", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.169.254/32"]),
    ("192.0.2.0/24", ["192.0.2.128/25", "192.0.2.1/32"]),
    ("2001:db8::/32", ["2001:db8:1::/48", "2001:db8:ffff::/48"]),
    ("::/0", ["fd00::/8", "fe80::/10"]),
]
CIDR_GROUPS = ["corp-egress-ranges", "partner-vpn", "office-networks", "payment-gw-ips",
               "monitoring-probes"]
FQDN_NAMES = ["api.github.com", "registry.npmjs.org", "pypi.org", "s3.amazonaws.com",
              "api.stripe.com", "hooks.slack.com", "login.microsoftonline.com",
              "storage.googleapis.com", "sts.amazonaws.com", "api.example.com"]
FQDN_PATTERNS = ["*.example.com", "*.s3.amazonaws.com", "**.googleapis.com", "*",
                 "api-*.example.org", "*.svc.cluster.local", "**.internal.example.net"]
HTTP_PATHS = ["/", "/api/v1/.*", "/healthz", "/metrics", "/api/v[12]/orders(/.*)?",
              "/static/.*", "/v1/payments/[0-9]+", "/graphql", "/login"]
HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "GET|HEAD", "POST|PUT|PATCH"]
HTTP_HOSTS = ["api.example.com", "shop.example.com", "internal.example.net"]
ICMP_V4 = [0, 3, 8, 11, "EchoReply", "DestinationUnreachable", "TimeExceeded", "Echo",
           "ParameterProblem"]
ICMP_V6 = [1, 2, 128, 129, "PacketTooBig", "EchoRequest", "EchoReply",
           "NeighborSolicitation", "NeighborAdvertisement"]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.used = set()

    # ----- helpers
    def pick(self, seq):
        return self.r.choice(seq)

    def some(self, seq, lo, hi):
        return self.r.sample(seq, self.r.randint(lo, min(hi, len(seq))))

    def chance(self, p):
        return self.r.random() < p

    def unique(self, kind, ns, base):
        name, i = base, 1
        while (kind, ns, name) in self.used:
            i += 1
            name = f"{base}-{i}"
        self.used.add((kind, ns, name))
        return name

    # ----- selectors
    def labels(self, app=None):
        m = {"app": app or self.pick(APPS)}
        if self.chance(0.3):
            m["tier"] = self.pick(TIERS)
        if self.chance(0.2):
            m["k8s:env"] = self.pick(ENVS)
        return m

    def selector(self, app=None, expressions=0.3):
        sel = {}
        if self.chance(1 - expressions / 2):
            sel["matchLabels"] = self.labels(app)
        if self.chance(expressions) or not sel:
            exprs = []
            for _ in range(self.r.randint(1, 2)):
                op = self.pick(["In", "NotIn", "Exists", "DoesNotExist"])
                key = self.pick(["app", "tier", "k8s:env", "version", "team",
                                 "app.kubernetes.io/component", "track"])
                e = {"key": key, "operator": op}
                if op in ("In", "NotIn"):
                    e["values"] = self.some(APPS if key == "app" else
                                            ENVS if key == "k8s:env" else
                                            TIERS if key == "tier" else
                                            ["v1", "v2", "canary", "stable", "blue", "green"],
                                            1, 3)
                exprs.append(e)
            sel["matchExpressions"] = exprs
        return sel

    def peer_selector(self, namespaces, cluster_scope=False):
        """Selector for fromEndpoints/toEndpoints."""
        x = self.r.random()
        if x < 0.6:
            return self.selector(expressions=0.25)
        if x < 0.8:  # another namespace, explicitly
            sel = {"matchLabels": {"k8s:io.kubernetes.pod.namespace": self.pick(namespaces)}}
            sel["matchLabels"].update(self.labels())
            return sel
        if x < 0.88:  # namespace by namespace label
            return {"matchLabels": {
                "k8s:io.cilium.k8s.namespace.labels.team": self.pick(TEAMS)}}
        if x < 0.94:  # kube-dns / kube-system
            return {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                    "k8s:k8s-app": "kube-dns"}}
        return {}  # wildcard: own namespace (CNP) or every pod (CCNP)

    # ----- ports
    def l4_ports(self, allow_range=True, max_n=4):
        ports = []
        for _ in range(self.r.randint(1, max_n)):
            x = self.r.random()
            if x < 0.5:
                ports.append({"port": self.pick(L4_TCP_PORTS + HTTP_PORTS), "protocol": "TCP"})
            elif x < 0.65:
                ports.append({"port": self.pick(L4_UDP_PORTS), "protocol": "UDP"})
            elif x < 0.75 and allow_range:
                lo = self.r.randint(1024, 60000)
                ports.append({"port": str(lo), "endPort": lo + self.r.randint(1, 2000),
                              "protocol": self.pick(["TCP", "UDP"])})
            elif x < 0.82:
                ports.append({"port": self.pick(NAMED_PORTS), "protocol": "TCP"})
            elif x < 0.9:
                ports.append({"port": self.pick(L4_TCP_PORTS)})  # protocol ANY
            elif x < 0.95:
                ports.append({"port": self.pick(["7946", "9000", "4000"]), "protocol": "ANY"})
            else:
                ports.append({"port": str(self.r.randint(1, 65535)), "protocol": "SCTP"})
        return ports

    def http_rules(self):
        rules = []
        for _ in range(self.r.randint(1, 3)):
            h = {}
            if self.chance(0.8):
                h["method"] = self.pick(HTTP_METHODS)
            if self.chance(0.8) or not h:
                h["path"] = self.pick(HTTP_PATHS)
            if self.chance(0.15):
                h["host"] = self.pick(HTTP_HOSTS)
            if self.chance(0.2):
                h["headers"] = self.some(["X-Request-Id", "Authorization", "X-Tenant"], 1, 2)
            if self.chance(0.1):
                h["headerMatches"] = [{"name": "X-Env", "value": self.pick(ENVS)}]
            rules.append(h)
        return rules

    def to_ports(self, direction, allow_l7=True):
        """List of allow PortRules. direction: ingress|egress."""
        x = self.r.random()
        if allow_l7 and x < 0.15:
            return [{"ports": [{"port": self.pick(HTTP_PORTS), "protocol": "TCP"}],
                     "rules": {"http": self.http_rules()}}]
        if allow_l7 and direction == "egress" and x < 0.22:
            ports = [{"port": DNS_PORT, "protocol": "UDP"}]
            if self.chance(0.7):
                ports.append({"port": DNS_PORT, "protocol": "TCP"})
            pats = [{"matchPattern": self.pick(FQDN_PATTERNS)}]
            if self.chance(0.4):
                pats.append({"matchName": self.pick(FQDN_NAMES)})
            return [{"ports": ports, "rules": {"dns": pats}}]
        if direction == "egress" and x < 0.25:
            return [{"ports": [{"port": "443", "protocol": "TCP"}],
                     "serverNames": self.some(["api.example.com", "*.example.com",
                                               "**.example.org"], 1, 2)}]
        out = [{"ports": self.l4_ports()}]
        if self.chance(0.1):
            out.append({"ports": self.l4_ports(max_n=2)})
        return out

    def deny_ports(self):
        return [{"ports": self.l4_ports(max_n=3)}]

    def icmps(self):
        fields = []
        for _ in range(self.r.randint(1, 3)):
            if self.chance(0.7):
                f = {"type": self.pick(ICMP_V4)}
                if self.chance(0.5):
                    f["family"] = "IPv4"
            else:
                f = {"family": "IPv6", "type": self.pick(ICMP_V6)}
            fields.append(f)
        return [{"fields": fields}]

    def cidr_set(self):
        items = []
        for _ in range(self.r.randint(1, 2)):
            x = self.r.random()
            if x < 0.75:
                cidr, excepts = self.pick(CIDRSETS)
                item = {"cidr": cidr}
                if self.chance(0.6):
                    item["except"] = self.some(excepts, 1, 2)
                items.append(item)
            elif x < 0.9:
                items.append({"cidrGroupRef": self.pick(CIDR_GROUPS)})
            else:
                items.append({"cidrGroupSelector": {"matchLabels": {"team": self.pick(TEAMS)}}})
        return items

    # ----- rules
    def ingress_rule(self, namespaces, host=False):
        fam = self.r.random()
        rule = {}
        if fam < 0.55:
            rule["fromEndpoints"] = [self.peer_selector(namespaces)
                                     for _ in range(self.r.randint(1, 2))]
        elif fam < 0.65:
            rule["fromCIDR"] = self.some(CIDRS_V4 + CIDRS_V6, 1, 3)
        elif fam < 0.77:
            rule["fromCIDRSet"] = self.cidr_set()
        elif fam < 0.92:
            rule["fromEntities"] = self.some(INGRESS_ENTITIES, 1, 2)
        # else: no peer -> any peer on the ports below
        if self.chance(0.12) and rule:
            rule["icmps"] = self.icmps()
        elif self.chance(0.85) or not rule:
            rule["toPorts"] = self.to_ports("ingress", allow_l7=not host)
        return rule

    def egress_rule(self, namespaces, host=False):
        fam = self.r.random()
        rule = {}
        fqdn = False
        if fam < 0.45:
            rule["toEndpoints"] = [self.peer_selector(namespaces)
                                   for _ in range(self.r.randint(1, 2))]
        elif fam < 0.53:
            rule["toCIDR"] = self.some(CIDRS_V4 + CIDRS_V6, 1, 3)
        elif fam < 0.63:
            rule["toCIDRSet"] = self.cidr_set()
        elif fam < 0.75:
            rule["toEntities"] = self.some(EGRESS_ENTITIES, 1, 2)
        elif fam < 0.87 and not host:
            fqdn = True
            rule["toFQDNs"] = ([{"matchName": n} for n in self.some(FQDN_NAMES, 1, 2)] +
                               ([{"matchPattern": self.pick(FQDN_PATTERNS)}]
                                if self.chance(0.5) else []))
        elif fam < 0.93:
            ns = self.pick(namespaces)
            if self.chance(0.6):
                rule["toServices"] = [{"k8sService": {"serviceName": self.pick(APPS),
                                                      "namespace": ns}}]
            else:
                rule["toServices"] = [{"k8sServiceSelector": {
                    "selector": {"matchLabels": {"app": self.pick(APPS)}}, "namespace": ns}}]
        if fqdn:
            rule["toPorts"] = [{"ports": [{"port": "443", "protocol": "TCP"}]}]
            if self.chance(0.3):
                rule["toPorts"][0]["ports"].append({"port": "80", "protocol": "TCP"})
        elif self.chance(0.1) and rule:
            rule["icmps"] = self.icmps()
        elif self.chance(0.8) or not rule:
            tp = self.to_ports("egress", allow_l7=not host)
            if host:  # HTTP is refused on host egress; DNS would be fine, keep it L4
                tp = [{"ports": p["ports"]} for p in tp]
            rule["toPorts"] = tp
        return rule

    def ingress_deny_rule(self, namespaces):
        fam = self.r.random()
        if fam < 0.3:
            rule = {"fromEndpoints": [self.peer_selector(namespaces)]}
        elif fam < 0.5:
            rule = {"fromCIDR": self.some(CIDRS_V4, 1, 2)}
        elif fam < 0.7:
            rule = {"fromCIDRSet": self.cidr_set()}
        else:
            rule = {"fromEntities": self.some(DENY_ENTITIES, 1, 2)}
        if self.chance(0.15):
            rule["icmps"] = self.icmps()
        elif self.chance(0.7):
            rule["toPorts"] = self.deny_ports()
        return rule

    def egress_deny_rule(self, namespaces):
        fam = self.r.random()
        if fam < 0.3:
            rule = {"toEndpoints": [self.peer_selector(namespaces)]}
        elif fam < 0.5:
            rule = {"toCIDR": self.some(CIDRS_V4, 1, 2)}
        elif fam < 0.75:
            rule = {"toCIDRSet": self.cidr_set()}
        else:
            rule = {"toEntities": self.some(DENY_ENTITIES, 1, 2)}
        if self.chance(0.15):
            rule["icmps"] = self.icmps()
        elif self.chance(0.7):
            rule["toPorts"] = self.deny_ports()
        return rule

    def rule(self, namespaces, app, clusterwide=False):
        host = clusterwide and self.chance(0.2)
        spec = {}
        if self.chance(0.3):
            spec["description"] = f"{app}: generated rule for benchmarks"
        if host:
            spec["nodeSelector"] = self.pick([
                {"matchLabels": {"node-role.kubernetes.io/control-plane": ""}},
                {"matchLabels": {"kubernetes.io/os": "linux"}},
                {"matchExpressions": [{"key": "node-role.kubernetes.io/worker",
                                       "operator": "Exists"}]},
            ])
        elif clusterwide and self.chance(0.3):
            spec["endpointSelector"] = {}
        elif clusterwide and self.chance(0.4):
            spec["endpointSelector"] = {"matchLabels": {
                "k8s:io.kubernetes.pod.namespace": self.pick(namespaces)}}
        else:  # workloads are picked by app label, sometimes narrowed by expressions
            sel = {"matchLabels": self.labels(app)}
            if self.chance(0.15):
                sel["matchExpressions"] = self.selector(expressions=1.0)["matchExpressions"]
            spec["endpointSelector"] = sel
        # which sections (at least one)
        sections = []
        x = self.r.random()
        if x < 0.35:
            sections = ["ingress"]
        elif x < 0.6:
            sections = ["egress"]
        elif x < 0.85:
            sections = ["ingress", "egress"]
        if self.chance(0.15):
            sections.append("ingressDeny")
        if self.chance(0.15):
            sections.append("egressDeny")
        if not sections:
            sections = [self.pick(["ingressDeny", "egressDeny"])]
        for s in sections:
            n = self.r.randint(1, 3)
            if s == "ingress":
                spec[s] = [self.ingress_rule(namespaces, host) for _ in range(n)]
            elif s == "egress":
                spec[s] = [self.egress_rule(namespaces, host) for _ in range(n)]
            elif s == "ingressDeny":
                spec[s] = [self.ingress_deny_rule(namespaces) for _ in range(n)]
            else:
                spec[s] = [self.egress_deny_rule(namespaces) for _ in range(n)]
        if self.chance(0.05) and "ingress" in spec:
            spec["ingress"].append({})  # the classic deny-all idiom, mixed in
        if self.chance(0.15):
            edd = {}
            if self.chance(0.5):
                edd["ingress"] = self.chance(0.5)
            if self.chance(0.5) or not edd:
                edd["egress"] = self.chance(0.5)
            spec["enableDefaultDeny"] = edd
        if self.chance(0.1):
            spec["labels"] = [{"key": "team", "value": self.pick(TEAMS)}]
            if self.chance(0.5):
                spec["labels"].append({"key": "owner", "value": app, "source": "k8s"})
        if self.chance(0.05):
            spec["log"] = {"value": f"{app}-audit"[:32]}
        return spec

    # ----- documents
    def cnp(self, ns, namespaces, specs=False):
        app = self.pick(APPS)
        verb = self.pick(["allow", "restrict", "lockdown", "isolate", "permit", "deny"])
        name = self.unique("CiliumNetworkPolicy", ns, f"{app}-{verb}")
        doc = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
               "metadata": {"name": name, "namespace": ns}}
        if self.chance(0.2):
            doc["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "ward",
                                         "team": self.pick(TEAMS)}
        if specs:
            if self.chance(0.2):
                doc["spec"] = self.rule(namespaces, app)
            doc["specs"] = [self.rule(namespaces, self.pick(APPS))
                            for _ in range(self.r.randint(2, 4))]
        else:
            doc["spec"] = self.rule(namespaces, app)
        return doc

    def ccnp(self, namespaces, specs=False):
        topic = self.pick(["baseline", "guardrail", "host-fw", "dns", "egress",
                           "monitoring", "compliance", "default"])
        name = self.unique("CiliumClusterwideNetworkPolicy", "",
                           f"{topic}-{self.pick(APPS)}")
        doc = {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
               "metadata": {"name": name}}
        if specs:
            doc["specs"] = [self.rule(namespaces, self.pick(APPS), clusterwide=True)
                            for _ in range(self.r.randint(2, 4))]
        else:
            doc["spec"] = self.rule(namespaces, self.pick(APPS), clusterwide=True)
        return doc

    def envoy(self, ns, clusterwide=False):
        kind = "CiliumClusterwideEnvoyConfig" if clusterwide else "CiliumEnvoyConfig"
        svc = self.pick(APPS)
        svc_ns = self.pick(NS_WORDS) if clusterwide else ns
        name = self.unique(kind, "" if clusterwide else ns, f"envoy-{svc}-l7lb")
        port = self.pick(["80", "8080", "9090"])
        listener = f"{svc}-listener"
        route = f"{svc}-route"
        backends = [svc] + ([f"{svc}-canary"] if self.chance(0.5) else [])
        clusters_ref = [f"{svc_ns}/{b}" for b in backends]
        route_action = {"timeout": f"{self.r.randint(5, 30)}s"}
        if len(backends) == 1:
            route_action["cluster"] = clusters_ref[0]
        else:
            w = self.r.choice([90, 95, 80])
            route_action["weighted_clusters"] = {"clusters": [
                {"name": clusters_ref[0], "weight": w},
                {"name": clusters_ref[1], "weight": 100 - w}]}
        if self.chance(0.5):
            route_action["retry_policy"] = {"retry_on": "5xx,reset",
                                            "num_retries": self.r.randint(1, 3)}
        hcm = {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
                     "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": listener,
            "rds": {"route_config_name": route},
            "use_remote_address": True,
            "skip_xff_append": True,
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        }
        resources = [
            {"@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
             "name": listener,
             "filter_chains": [{"filters": [{
                 "name": "envoy.filters.network.http_connection_manager",
                 "typed_config": hcm}]}]},
            {"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
             "name": route,
             "virtual_hosts": [{"name": svc, "domains": ["*"], "routes": [
                 {"match": {"prefix": "/"}, "route": route_action}]}]},
        ]
        for c in clusters_ref:
            resources.append({
                "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": c, "connect_timeout": "5s", "type": "EDS",
                "lb_policy": self.pick(["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"]),
                "outlier_detection": {"consecutive_5xx": self.r.randint(2, 10),
                                      "interval": "10s", "base_ejection_time": "30s"}})
        spec = {"services": [{"name": svc, "namespace": svc_ns, "ports": [int(port)],
                              "listener": listener}]}
        if len(backends) > 1:
            spec["backendServices"] = [{"name": backends[1], "namespace": svc_ns,
                                        "number": [port]}]
        else:
            spec["backendServices"] = [{"name": svc, "namespace": svc_ns}]
        if self.chance(0.2):
            spec["nodeSelector"] = {"matchLabels": {"kubernetes.io/os": "linux"}}
        spec["resources"] = resources
        meta = {"name": name}
        if not clusterwide:
            meta["namespace"] = ns
        return {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta, "spec": spec}


def plan_kinds(n, r):
    """Exact quotas for the mix, shuffled deterministically."""
    q_ccnp = round(n * 0.15)
    q_env = round(n * 0.10)
    q_specs = round(n * 0.05)
    q_cnp = n - q_ccnp - q_env - q_specs
    kinds = (["cnp"] * q_cnp + ["ccnp"] * q_ccnp + ["env"] * q_env + ["specs"] * q_specs)
    r.shuffle(kinds)
    out = []
    for k in kinds:
        if k == "env":
            out.append("ccec" if r.random() < 0.2 else "cec")
        elif k == "specs":
            out.append("ccnp-specs" if r.random() < 0.25 else "cnp-specs")
        else:
            out.append(k)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.docs < 1 or args.files < 1:
        ap.error("--docs and --files must be >= 1")
    files = min(args.files, args.docs)

    g = Gen(args.seed)
    kinds = plan_kinds(args.docs, g.r)
    cluster_kinds = [k for k in kinds if k in ("ccnp", "ccnp-specs", "ccec")]
    ns_kinds = [k for k in kinds if k not in ("ccnp", "ccnp-specs", "ccec")]

    if cluster_kinds and ns_kinds:
        f_cluster = max(1, min(files - 1, round(files * len(cluster_kinds) / args.docs)))
    elif cluster_kinds:
        f_cluster = files
    else:
        f_cluster = 0
    f_ns = files - f_cluster

    n_namespaces = max(1, min(400, f_ns // 5)) if f_ns else 1
    namespaces = []
    for i in range(n_namespaces):
        base = NS_WORDS[i % len(NS_WORDS)]
        namespaces.append(base if i < len(NS_WORDS) else f"{base}-{i // len(NS_WORDS)}")

    # bucket documents per file
    buckets = [[] for _ in range(files)]
    file_ns = [None] * files
    for i in range(f_ns):
        file_ns[i] = namespaces[i % n_namespaces]
    for i, k in enumerate(ns_kinds):
        buckets[i % f_ns].append(k)
    for i, k in enumerate(cluster_kinds):
        buckets[f_ns + i % f_cluster].append(k)

    all_ns = namespaces + ["kube-system", "monitoring", "ingress-nginx"]
    written_docs = 0
    name_count = {}
    for fi, bucket in enumerate(buckets):
        ns = file_ns[fi]
        docs = []
        for k in bucket:
            if k == "cnp":
                docs.append(g.cnp(ns, all_ns))
            elif k == "cnp-specs":
                docs.append(g.cnp(ns, all_ns, specs=True))
            elif k == "cec":
                docs.append(g.envoy(ns))
            elif k == "ccnp":
                docs.append(g.ccnp(all_ns))
            elif k == "ccnp-specs":
                docs.append(g.ccnp(all_ns, specs=True))
            elif k == "ccec":
                docs.append(g.envoy(None, clusterwide=True))
        if ns is None:
            subdir = "clusterwide"
            stem = g.pick(["guardrails", "baseline", "host-firewall", "envoy", "egress"])
        else:
            subdir = ns
            stem = f"{g.pick(APPS)}-policies"
        key = (subdir, stem)
        name_count[key] = name_count.get(key, 0) + 1
        path = os.path.join(args.outdir, subdir, f"{stem}-{name_count[key]:04d}.yaml")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        header = (f"# generated by ci/bench/gen_policies.py --seed {args.seed} "
                  f"(file {fi + 1}/{files}, {len(docs)} documents)\n")
        with open(path, "w", encoding="utf-8") as f:
            f.write(header + "---\n".join(to_yaml(d) for d in docs))
        written_docs += len(docs)
    print(f"wrote {written_docs} documents in {files} files under {args.outdir}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
