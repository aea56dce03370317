//! Property tests of the YAML loader and the validator on generated documents: policies that
//! look valid, then random mutations of their text, deep nesting, huge scalars, anchors and
//! aliases (alias bombs and aliases that nest). Whatever the input, the invariants of
//! `support/invariants.rs` hold: no panic, the trees stay within the limits, every finding has
//! a file, line and column, the two YAML paths agree.
//!
//! A failure prints the shrunk input; keep it as a regression file in `tests/data/fuzz/`.
//! `PROPTEST_CASES=N` runs more cases than the default.

mod support;

use proptest::prelude::*;
use proptest::sample::select;
use support::invariants::{self, LIMITS};
use ward_schema::diagnostic::codes;
use ward_schema::yaml::parse_bytes;

/// A YAML value before it is written out.
#[derive(Debug, Clone)]
enum Y {
    Scalar(String),
    Seq(Vec<Y>),
    Map(Vec<(String, Y)>),
}

/// Keys of Cilium policies and of ward's documents, so that generated trees reach the schema
/// and semantic checks rather than stopping at the envelope.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "apiVersion", "kind", "metadata", "name", "namespace", "labels", "spec", "specs",
    "description", "endpointSelector", "nodeSelector", "matchLabels", "matchExpressions",
    "key", "operator", "values", "ingress", "egress", "ingressDeny", "egressDeny",
    "fromEndpoints", "toEndpoints", "fromEntities", "toEntities", "fromCIDR", "toCIDR",
    "fromCIDRSet", "toCIDRSet", "cidr", "except", "toFQDNs", "matchName", "matchPattern",
    "toServices", "fromRequires", "toRequires", "fromNodes", "toNodes", "toPorts", "ports",
    "port", "endPort", "protocol", "icmps", "fields", "type", "family", "rules", "http",
    "dns", "kafka", "l7proto", "l7", "method", "path", "headers", "headerMatches",
    "serverNames", "listener", "envoyConfig", "authentication", "mode", "endpoints",
    "expectations", "from", "to", "expect", "decidedBy", "ip", "resources", "services",
    "enable-icmp-rules", "enable-l7-proxy", "enable-node-selector-labels",
];

/// Scalars that mean something somewhere in a policy, and some that are hard to read.
#[rustfmt::skip]
const SCALARS: &[&str] = &[
    "cilium.io/v2", "cilium.io/v2alpha1", "cilium.io/v1alpha1", "ward.dev/v1alpha1",
    "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "CiliumEnvoyConfig",
    "CiliumConfig", "PolicyTest", "shop", "backend", "frontend", "app", "In", "NotIn",
    "Exists", "DoesNotExist", "TCP", "UDP", "SCTP", "ANY", "ICMP", "ICMPv6", "IPv4", "IPv6",
    "EchoRequest", "80", "\"80\"", "65535", "\"65536\"", "0", "-1", "http", "world",
    "world-ipv4", "cluster", "host", "all", "kube-apiserver", "reserved:init", "10.0.0.0/8",
    "::/0", "203.0.113.10", "10.0.0.0/33", "*.example.com", "**.", "GET", "/api/(a|b)+",
    "/[", "(?P<x>", "true", "false", "null", "~", "", "0x7fffffffffffffff",
    "-0x8000000000000000", "0o777", "1e400", ".inf", "-.5", "allow", "deny", "required",
    "k8s:io.kubernetes.pod.namespace", "a=b", "'quoted'", "é", "\u{200b}",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z][a-zA-Z0-9_.-]{0,12}",
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(SCALARS).prop_map(str::to_owned),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[ -~]{0,16}",
        1 => "\\PC{0,8}",
    ]
}

fn value() -> impl Strategy<Value = Y> {
    scalar()
        .prop_map(Y::Scalar)
        .prop_recursive(8, 96, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Y::Seq),
                prop::collection::vec((key(), inner), 0..6).prop_map(Y::Map),
            ]
        })
}

/// A document with the envelope of a real resource and a random body.
fn resource() -> impl Strategy<Value = Y> {
    (
        select(&SCALARS[..4]),
        select(&SCALARS[4..9]),
        "[a-z][a-z0-9-]{0,10}",
        prop::option::of(select(&["shop", "kube-system", "Bad_NS"][..])),
        value(),
        prop::option::of(value()),
    )
        .prop_map(|(api, kind, name, ns, spec, extra)| {
            let mut meta = vec![("name".to_owned(), Y::Scalar(name))];
            if let Some(ns) = ns {
                meta.push(("namespace".to_owned(), Y::Scalar(ns.to_owned())));
            }
            let mut doc = vec![
                ("apiVersion".to_owned(), Y::Scalar(api.to_owned())),
                ("kind".to_owned(), Y::Scalar(kind.to_owned())),
                ("metadata".to_owned(), Y::Map(meta)),
                ("spec".to_owned(), spec),
            ];
            if let Some(extra) = extra {
                doc.push(("specs".to_owned(), extra));
            }
            Y::Map(doc)
        })
}

/// Writes `y` as YAML; `style` picks, node by node, block or flow style and the quoting.
fn emit(y: &Y, style: &mut u64) -> String {
    let mut out = String::new();
    emit_block(y, 0, style, &mut out);
    out
}

fn next(style: &mut u64) -> u64 {
    // xorshift64: cheap, and shrinking `style` shrinks every choice.
    *style ^= *style << 13;
    *style ^= *style >> 7;
    *style ^= *style << 17;
    *style
}

fn quote(s: &str, style: &mut u64) -> String {
    match next(style) % 4 {
        0 => format!("{s:?}"), // Rust's escapes are mostly YAML's too
        1 => format!("'{}'", s.replace('\'', "''")),
        _ => s.to_owned(), // plain: may not parse, which is fine
    }
}

fn emit_flow(y: &Y, style: &mut u64, out: &mut String) {
    match y {
        Y::Scalar(s) => out.push_str(&quote(s, style)),
        Y::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                emit_flow(item, style, out);
            }
            out.push(']');
        }
        Y::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                emit_flow(v, style, out);
            }
            out.push('}');
        }
    }
}

fn emit_block(y: &Y, indent: usize, style: &mut u64, out: &mut String) {
    let pad = " ".repeat(indent);
    match y {
        Y::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(k);
                out.push(':');
                emit_child(v, indent, style, out);
            }
        }
        Y::Seq(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                emit_child(item, indent, style, out);
            }
        }
        _ => {
            out.push_str(&pad);
            emit_flow(y, style, out);
            out.push('\n');
        }
    }
}

fn emit_child(v: &Y, indent: usize, style: &mut u64, out: &mut String) {
    let nested = matches!(v, Y::Map(e) if !e.is_empty()) || matches!(v, Y::Seq(i) if !i.is_empty());
    if nested && !next(style).is_multiple_of(3) {
        out.push('\n');
        emit_block(v, indent + 2, style, out);
    } else {
        out.push(' ');
        emit_flow(v, style, out);
        out.push('\n');
    }
}

/// One edit of the text.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(prop::sample::Index, String),
    Delete(prop::sample::Index, usize),
    DuplicateLine(prop::sample::Index),
    Indent(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let bits = prop_oneof![
        select(
            &[
                "&a ",
                "*a",
                "&b ",
                "*b",
                "!!str ",
                "!!int ",
                "!!map ",
                "? ",
                "- ",
                ": ",
                "---\n",
                "...\n",
                "#",
                "|\n",
                ">-\n",
                "[",
                "]",
                "{",
                "}",
                ",",
                "\"",
                "'",
                "\t",
                "\r",
                "\r\n",
                "\u{feff}",
                "%YAML 1.2\n",
                "\\",
                "\u{1}",
                "\n  ",
            ][..]
        )
        .prop_map(str::to_owned),
        "\\PC{1,4}",
    ];
    prop_oneof![
        3 => (any::<prop::sample::Index>(), bits).prop_map(|(i, s)| Mutation::Insert(i, s)),
        2 => (any::<prop::sample::Index>(), 1..12usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::DuplicateLine),
        1 => (any::<prop::sample::Index>(), 0..5usize).prop_map(|(i, n)| Mutation::Indent(i, n)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

/// The char boundary at or before `i`.
fn boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(text: &str, m: &Mutation) -> String {
    let mut s = text.to_owned();
    let at = |i: &prop::sample::Index, s: &str| boundary(s, i.index(s.len() + 1));
    match m {
        Mutation::Insert(i, bits) => s.insert_str(at(i, &s), bits),
        Mutation::Delete(i, n) => {
            let start = at(i, &s);
            let end = boundary(&s, start + n);
            s.replace_range(start..end, "");
        }
        Mutation::DuplicateLine(i) => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            if !lines.is_empty() {
                let k = i.index(lines.len());
                s = lines[..=k].concat() + lines[k] + &lines[k + 1..].concat();
            }
        }
        Mutation::Indent(i, n) => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            if !lines.is_empty() {
                let k = i.index(lines.len());
                let line = lines[k].trim_start_matches(' ');
                s = lines[..k].concat() + &" ".repeat(*n) + line + &lines[k + 1..].concat();
            }
        }
        Mutation::Truncate(i) => s.truncate(at(i, &s)),
    }
    s
}

fn limit_findings(bytes: &[u8]) -> usize {
    parse_bytes(invariants::FILE, bytes, &LIMITS)
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::YAML_LIMIT)
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Policies that look valid, one to three per file, as written and after mutations.
    #[test]
    fn generated_policies_keep_the_invariants(
        docs in prop::collection::vec(resource(), 1..4),
        style in any::<u64>(),
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let mut style = style | 1;
        let mut text = String::new();
        for doc in &docs {
            text.push_str("---\n");
            text.push_str(&emit(doc, &mut style));
        }
        invariants::check(text.as_bytes());
        for m in &mutations {
            text = mutate(&text, m);
            invariants::check(text.as_bytes());
        }
    }

    /// Nesting past the depth limit, in block and flow style, inside a policy: a limit
    /// finding, never a deeper tree or a stack overflow.
    #[test]
    fn deep_nesting_stops_at_the_limit(depth in 1usize..400, flow in any::<bool>(), map in any::<bool>()) {
        let mut text = String::from("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: deep, namespace: shop}\nspec:\n");
        if flow {
            let (open, close) = if map { ("{a: ", "}") } else { ("[", "]") };
            text.push_str("  x: ");
            text.push_str(&open.repeat(depth));
            text.push('1');
            text.push_str(&close.repeat(depth));
            text.push('\n');
        } else {
            for level in 0..depth {
                text.push_str(&" ".repeat(2 * (level + 1)));
                text.push_str(if map { "a:\n" } else { "-\n" });
            }
            text.push_str(&" ".repeat(2 * (depth + 1)));
            text.push_str("1\n");
        }
        invariants::check(text.as_bytes());
        // The top mapping, `spec: {x: ...}` in flow style, and the nesting: past the limit,
        // the loader says so.
        let levels = if flow { depth + 2 } else { depth + 1 };
        if levels > LIMITS.max_depth {
            prop_assert!(limit_findings(text.as_bytes()) > 0, "no limit finding at depth {}", depth);
        }
    }

    /// Alias bombs: `width` aliases per layer, `layers` layers. Past the node limit, a limit
    /// finding; never a tree over the limit.
    #[test]
    fn alias_bombs_stop_at_the_node_limit(width in 1usize..12, layers in 1usize..8) {
        let mut text = String::from("l0: &l0 [x, x]\n");
        for layer in 1..=layers {
            let items = vec![format!("*l{}", layer - 1); width].join(", ");
            text.push_str(&format!("l{layer}: &l{layer} [{items}]\n"));
        }
        invariants::check(text.as_bytes());
        // Every layer's anchor is also a value of the top mapping, so the tree holds them all.
        let expanded: usize = (0..=layers).map(|l| {
            let mut n = 3; // [x, x]
            for _ in 0..l { n = n * width + 1; }
            n
        }).sum();
        if expanded > LIMITS.max_nodes {
            prop_assert!(limit_findings(text.as_bytes()) > 0, "no limit finding for {} nodes", expanded);
        }
    }

    /// Aliases of deep anchors, nested in deep collections: the depth of the tree counts the
    /// alias's copy too.
    #[test]
    fn aliases_do_not_nest_past_the_depth_limit(anchor_depth in 1usize..64, at_depth in 0usize..64, chain in 1usize..4) {
        let mut text = format!("a0: &a0 {}x{}\n", "[".repeat(anchor_depth), "]".repeat(anchor_depth));
        for i in 1..=chain {
            text.push_str(&format!("a{i}: &a{i} {}*a{}{}\n", "[".repeat(at_depth), i - 1, "]".repeat(at_depth)));
        }
        invariants::check(text.as_bytes());
    }

}

proptest! {
    // Each case reads up to a megabyte twice: fewer cases.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Huge scalars (keys and values, plain and quoted) around the size limit.
    #[test]
    fn huge_scalars(len in prop_oneof![1usize..5000, 500_000usize..1_100_000], quoted in any::<bool>(), as_key in any::<bool>()) {
        let big = "x".repeat(len);
        let big = if quoted { format!("\"{big}\"") } else { big };
        let text = if as_key {
            format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  {big}: 1\n")
        } else {
            format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {big}\n  namespace: shop\nspec: {{endpointSelector: {{}}}}\n")
        };
        invariants::check(text.as_bytes());
    }
}
