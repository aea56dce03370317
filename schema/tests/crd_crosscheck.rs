//! Generates ward's `json/ward.schema.json` (from `json/ward.overlay.json` and the CRDs, see the
//! last section) and cross-checks it against the vendored Cilium CRDs in
//! `crds/<minor>/` (Cilium's own files at each release `ci/crds/releases` pins; `vendored_crds_are_ciliums`
//! compares them with what `ci/crds/fetch.sh` takes from Cilium's Go package), and exercises the
//! schema with the `jsonschema` crate.
//!
//! The walk compares, at every level reachable from both roots: property names, `type`,
//! `required`, `additionalProperties` maps, `items`, enums and every other constraint keyword.
//! Each intentional difference must be on one of the allow-lists below, with its reason; an
//! allow-list entry that no longer matches anything is itself an error, so the lists cannot rot.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Map, Value, json};

mod support;

// ---------------------------------------------------------------------------------------------
// Allow-lists
// ---------------------------------------------------------------------------------------------

/// Which side has property names the other lacks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    /// Only ward.schema.json declares these names.
    WardOnly,
    /// Only the CRD declares these names.
    CrdOnly,
}

/// Intentional differences in property names at one object level.
struct PropertyDiff {
    /// Path pattern (see [`glob`]) of the object level.
    path: &'static str,
    names: &'static [&'static str],
    side: Side,
    reason: &'static str,
}

const PROPERTY_DIFFS: &[PropertyDiff] = &[
    // The CRDs declare metadata as a bare `type: object` (the API server validates ObjectMeta
    // itself). ward spells out the standard ObjectMeta field names so that a typo under metadata
    // is reported as an unknown field with a did-you-mean.
    PropertyDiff {
        path: "metadata",
        names: OBJECT_META_FIELDS,
        side: Side::WardOnly,
        reason: "CRD leaves ObjectMeta opaque; ward lists its standard fields",
    },
    // ward never validates status (it is written by the operator and the agents, not by the
    // policy author), so it is a free-form object in ward.schema.json.
    PropertyDiff {
        path: "status",
        names: &["conditions", "derivativePolicies"],
        side: Side::CrdOnly,
        reason: "status is free-form in ward",
    },
];

/// Keywords ward leaves out before Cilium 1.19 (the CRDs of 1.19 no longer have them).
const OMITTED_BEFORE_1_19: &[Omitted] = &[Omitted {
    path: "*.toPorts[].ports[]",
    keyword: "required",
    reason: "port: 'port must be specified' (ward says it once, for every release)",
}];

/// The omitted-keyword allow-list that applies to `release`.
fn omitted(release: &Release) -> Vec<&'static Omitted> {
    let mut out: Vec<&Omitted> = OMITTED.iter().collect();
    if !release.at_least("1.19") {
        out.extend(OMITTED_BEFORE_1_19);
    }
    out
}

/// Differences that exist from Cilium 1.19 on.
const PROPERTY_DIFFS_SINCE_1_19: &[PropertyDiff] = &[
    // `fromRequires` / `toRequires` no longer do anything in Cilium 1.19. The released CRDs keep
    // them as deprecated `maxItems: 0` string lists (so only an empty list is accepted);
    // ward.schema.json leaves them out, so any use is reported as an unknown field.
    // `requires_fields_are_deprecated_and_empty` pins that down.
    PropertyDiff {
        path: "*ingress[]",
        names: &["fromRequires"],
        side: Side::CrdOnly,
        reason: "deprecated no-op, `maxItems: 0` in the CRD; ward rejects the field",
    },
    PropertyDiff {
        path: "*ingressDeny[]",
        names: &["fromRequires"],
        side: Side::CrdOnly,
        reason: "deprecated no-op, `maxItems: 0` in the CRD; ward rejects the field",
    },
    PropertyDiff {
        path: "*egress[]",
        names: &["toRequires"],
        side: Side::CrdOnly,
        reason: "deprecated no-op, `maxItems: 0` in the CRD; ward rejects the field",
    },
    PropertyDiff {
        path: "*egressDeny[]",
        names: &["toRequires"],
        side: Side::CrdOnly,
        reason: "deprecated no-op, `maxItems: 0` in the CRD; ward rejects the field",
    },
];

/// The property allow-list that applies to `release`.
fn property_diffs(release: &Release) -> Vec<&'static PropertyDiff> {
    let mut out: Vec<&PropertyDiff> = PROPERTY_DIFFS.iter().collect();
    if release.at_least("1.19") {
        out.extend(PROPERTY_DIFFS_SINCE_1_19);
    }
    out
}

/// A constraint keyword the CRD has at some path that ward.schema.json deliberately leaves out,
/// because ward reports the problem itself with Cilium's exact message (so each problem is
/// reported once, in Cilium's words). An omitted keyword must be *absent* from ward's node,
/// not changed.
struct Omitted {
    /// Path pattern (see [`glob`]).
    path: &'static str,
    keyword: &'static str,
    reason: &'static str,
}

const OMITTED: &[Omitted] = &[
    // L7.
    Omitted {
        path: "*.rules.kafka[].topic",
        keyword: "maxLength",
        reason: "'kafka topic exceeds maximum len of 255'",
    },
    // Rule level.
    Omitted {
        path: "spec",
        keyword: "oneOf",
        reason: "endpointSelector/nodeSelector: 'rule must have one of EndpointSelector or NodeSelector' / 'rule cannot have both ...'",
    },
    Omitted {
        path: "specs[]",
        keyword: "oneOf",
        reason: "same as spec",
    },
    Omitted {
        path: "spec",
        keyword: "anyOf",
        reason: "'rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny'",
    },
    Omitted {
        path: "specs[]",
        keyword: "anyOf",
        reason: "same as spec",
    },
    // Peers.
    Omitted {
        path: "*Entities[]",
        keyword: "enum",
        reason: "'unsupported entity: <name>' (the agent also knows world-ipv4/world-ipv6)",
    },
    Omitted {
        path: "*CIDR[]",
        keyword: "format",
        reason: "format cidr: 'IP must be specified' / 'unable to parse CIDR: ...'",
    },
    Omitted {
        path: "*CIDRSet[]",
        keyword: "oneOf",
        reason: "'one of cidr, cidrGroupRef, or cidrGroupSelector is required' / 'more than one of ...'",
    },
    Omitted {
        path: "*CIDRSet[].cidr",
        keyword: "format",
        reason: "'unable to parse CIDRRule ...'",
    },
    Omitted {
        path: "*CIDRSet[].except[]",
        keyword: "format",
        reason: "'unable to parse CIDR' / 'allow CIDR prefix ... does not contain exclude CIDR prefix ...'",
    },
    Omitted {
        path: "*.toFQDNs[]",
        keyword: "oneOf",
        reason: "'only one of MatchName or MatchPattern is allowed in an FQDNSelector'",
    },
    Omitted {
        path: "*.rules.dns[]",
        keyword: "oneOf",
        reason: "same check for DNS L7 rules",
    },
    Omitted {
        path: "*.matchName",
        keyword: "pattern",
        reason: "'Invalid characters in MatchName: ...'",
    },
    Omitted {
        path: "*.matchName",
        keyword: "maxLength",
        reason: "FQDN selector form is checked by ward as a whole",
    },
    Omitted {
        path: "*.matchPattern",
        keyword: "pattern",
        reason: "'Invalid characters in MatchPattern: ...'",
    },
    Omitted {
        path: "*.matchPattern",
        keyword: "maxLength",
        reason: "'Invalid MatchPattern: ... Must be <= 255 characters long.'",
    },
    // Label selectors.
    Omitted {
        path: "*.matchExpressions[].operator",
        keyword: "enum",
        reason: "'invalid label selector: ... not a valid selector operator'",
    },
    Omitted {
        path: "*.matchLabels{}",
        keyword: "pattern",
        reason: "'invalid label selector: ...' (label value format)",
    },
    Omitted {
        path: "*.matchLabels{}",
        keyword: "maxLength",
        reason: "'invalid label selector: ...' (label value length)",
    },
    // L4.
    Omitted {
        path: "*.toPorts[].ports",
        keyword: "maxItems",
        reason: "'too many ports, the max is 40' (the agent checks deny rules too; the CRD does not)",
    },
    Omitted {
        path: "*.toPorts[].ports[].port",
        keyword: "pattern",
        reason: "CRD regex is only half anchored; ward does the agent's parse: 'unable to parse port: ...'",
    },
    Omitted {
        path: "*.toPorts[].ports[].protocol",
        keyword: "enum",
        reason: "'invalid protocol \"X\", must be { tcp | udp | sctp | vrrp | igmp | any }' (agent is case-insensitive)",
    },
    // ICMP.
    Omitted {
        path: "*.icmps[].fields",
        keyword: "maxItems",
        reason: "'too many types, the max is 40'",
    },
    Omitted {
        path: "*.icmps[].fields[].family",
        keyword: "enum",
        reason: "'wrong family: X'",
    },
    Omitted {
        path: "*.icmps[].fields[].type",
        keyword: "pattern",
        reason: "'ICMP type X not found in <family>'; the CRD regex also has the 'ExtendedEcho Reply' typo",
    },
    // L7.
    Omitted {
        path: "*.toPorts[].rules",
        keyword: "oneOf",
        reason: "'multiple L7 protocol rule types specified in single rule'",
    },
    Omitted {
        path: "*.http[].host",
        keyword: "format",
        reason: "host is a POSIX regex; idn-hostname is not enforced by the API server and would reject regexes",
    },
];

/// The standard Kubernetes ObjectMeta field names ward accepts under `metadata`.
const OBJECT_META_FIELDS: &[&str] = &[
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

/// The kinds whose schema comes from elsewhere, with the file it is read from: Cilium's CRDs
/// (`crds/*.yaml`) and, for Kubernetes NetworkPolicy, the API server's OpenAPI spec
/// (`openapi/*.json`, see [`load_openapi`]).
const CRD_KINDS: &[(&str, &str)] = &[
    ("CiliumCIDRGroup", "ciliumcidrgroups.yaml"),
    ("CiliumNetworkPolicy", "ciliumnetworkpolicies.yaml"),
    (
        "CiliumClusterwideNetworkPolicy",
        "ciliumclusterwidenetworkpolicies.yaml",
    ),
    ("CiliumEnvoyConfig", "ciliumenvoyconfigs.yaml"),
    (
        "CiliumClusterwideEnvoyConfig",
        "ciliumclusterwideenvoyconfigs.yaml",
    ),
    ("NetworkPolicy", OPENAPI_NETWORK_POLICY),
];

/// NetworkPolicy's OpenAPI schema as `ci/crds/k8s-openapi.sh` takes it from Kubernetes.
const OPENAPI_NETWORK_POLICY: &str = "networking.k8s.io_v1.networkpolicy.json";

/// All top-level kinds of ward.schema.json.
const ALL_KINDS: &[&str] = &[
    "CiliumCIDRGroup",
    "NetworkPolicy",
    "CiliumNetworkPolicy",
    "CiliumClusterwideNetworkPolicy",
    "CiliumEnvoyConfig",
    "CiliumClusterwideEnvoyConfig",
    "CiliumConfig",
];

/// Constraint keywords compared value-for-value between the CRD and ward.
const CONSTRAINT_KEYWORDS: &[&str] = &[
    "enum",
    "pattern",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "default",
    "nullable",
    "oneOf",
    "anyOf",
    "allOf",
    "not",
];

/// Keywords the walk handles structurally (besides [`CONSTRAINT_KEYWORDS`]).
const STRUCTURAL_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "items",
    "additionalProperties",
    "required",
];

/// CRD keywords that carry no validation for a static document and are ignored.
const CRD_IGNORED: &[&str] = &[
    "description",
    "x-kubernetes-map-type",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
];

/// ward keywords that carry no validation relevant to the comparison.
const WARD_IGNORED: &[&str] = &["description", "x-kubernetes-preserve-unknown-fields"];

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A Cilium release ward has schemas for: a line of `ci/crds/releases`.
#[derive(Debug, Clone)]
struct Release {
    /// The minor version as users name it (`1.19`); also the folder under `crds/`.
    minor: String,
    /// The release (`v1.19.7`).
    version: String,
    /// Whether it is the newest (the default, whose schema is `json/ward.schema.json`).
    newest: bool,
}

impl Release {
    /// Whether this release is `minor` or newer.
    fn at_least(&self, minor: &str) -> bool {
        minor_key(&self.minor) >= minor_key(minor)
    }

    /// Where its CRDs are.
    fn crds(&self) -> PathBuf {
        crate_dir().join("crds").join(&self.minor)
    }

    /// Its generated schema, relative to the crate.
    fn schema_file(&self) -> String {
        if self.newest {
            SCHEMA.to_owned()
        } else {
            format!("json/ward-{}.schema.json", self.minor)
        }
    }
}

/// `1.19` as a comparable pair.
fn minor_key(minor: &str) -> (u32, u32) {
    let (a, b) = minor.split_once('.').expect("a minor version like 1.19");
    (a.parse().expect("major"), b.parse().expect("minor"))
}

/// The releases `ci/crds/releases` pins, oldest first.
fn releases() -> Vec<Release> {
    let mut out: Vec<Release> = ward_testkit::cilium_releases()
        .into_iter()
        .map(|(minor, version)| Release {
            minor,
            version,
            newest: false,
        })
        .collect();
    out.last_mut().expect("a release").newest = true;
    out
}

/// The newest release (the default).
fn newest() -> Release {
    releases().pop().expect("a release")
}

/// The newest release's schema.
fn load_ward() -> Value {
    load_ward_for(&newest())
}

fn load_ward_for(release: &Release) -> Value {
    let path = crate_dir().join(release.schema_file());
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the schema is valid JSON")
}

/// The schema of a kind's source file for `release`: the `v2` version of a CRD
/// (CiliumCIDRGroup also serves v2alpha1, with the same schema; 1.17 serves only v2alpha1), or
/// NetworkPolicy's OpenAPI schema.
fn load_crd(release: &Release, file: &str) -> Value {
    if file.ends_with(".json") {
        return load_openapi(file);
    }
    let path = release.crds().join(file);
    let text = std::fs::read_to_string(&path).expect("read vendored CRD");
    let doc: Value = serde_yaml_ng::from_str(&text).expect("CRD is valid YAML");
    let versions = doc
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .expect("CRD has spec.versions");
    let v2: Vec<&Value> = versions.iter().filter(|v| v["name"] == "v2").collect();
    let chosen = match v2.as_slice() {
        [one] => *one,
        [] if versions.len() == 1 => &versions[0],
        _ => panic!("{file}: expected exactly one version v2, or a single version"),
    };
    for other in versions.iter().filter(|v| v["name"] != chosen["name"]) {
        assert_eq!(
            other.pointer("/schema/openAPIV3Schema"),
            chosen.pointer("/schema/openAPIV3Schema"),
            "{file}: version {} has another schema than {}",
            other["name"],
            chosen["name"]
        );
    }
    chosen
        .pointer("/schema/openAPIV3Schema")
        .cloned()
        .expect("CRD has spec.versions[v2].schema.openAPIV3Schema")
}

/// NetworkPolicy's schema from the API server's OpenAPI v3 spec (`openapi/`), shaped like a
/// CRD's `openAPIV3Schema`: references (`$ref`, and `allOf: [{$ref}]` beside a description)
/// inlined, `IntOrString` as `x-kubernetes-int-or-string`, and `metadata` a bare object (the
/// API server validates ObjectMeta itself, as for the CRDs).
fn load_openapi(file: &str) -> Value {
    let path = crate_dir().join("openapi").join(file);
    let text = std::fs::read_to_string(&path).expect("read vendored OpenAPI spec");
    let doc: Value = serde_json::from_str(&text).expect("OpenAPI spec is valid JSON");
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .expect("OpenAPI spec has components.schemas");
    let mut root = inline_openapi(schemas, &schemas["io.k8s.api.networking.v1.NetworkPolicy"]);
    root["properties"]["metadata"] = json!({"type": "object"});
    root.as_object_mut()
        .expect("schema object")
        .remove("x-kubernetes-group-version-kind");
    root
}

fn inline_openapi(schemas: &Map<String, Value>, node: &Value) -> Value {
    const PREFIX: &str = "#/components/schemas/";
    let target = |r: &str| -> Value {
        let name = r
            .strip_prefix(PREFIX)
            .unwrap_or_else(|| panic!("OpenAPI: non-local $ref {r}"));
        if name == "io.k8s.apimachinery.pkg.util.intstr.IntOrString" {
            return json!({"x-kubernetes-int-or-string": true});
        }
        inline_openapi(schemas, &schemas[name])
    };
    match node {
        Value::Object(map) => {
            let reference = map.get("$ref").and_then(Value::as_str).or_else(|| {
                match map
                    .get("allOf")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                {
                    Some([one]) => one.get("$ref").and_then(Value::as_str),
                    _ => None,
                }
            });
            let mut out = match reference {
                Some(r) => target(r),
                None => Value::Object(Map::new()),
            };
            let obj = out.as_object_mut().expect("schema object");
            for (k, v) in map {
                // `default` is the API server's defaulting, not validation (ward applies
                // NetworkPolicy's defaults where it reads the policy).
                if k == "$ref" || k == "default" || (k == "allOf" && reference.is_some()) {
                    continue;
                }
                obj.insert(k.clone(), inline_openapi(schemas, v));
            }
            out
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| inline_openapi(schemas, v)).collect())
        }
        other => other.clone(),
    }
}

fn defs(ward: &Value) -> &Map<String, Value> {
    ward.get("$defs")
        .and_then(Value::as_object)
        .expect("ward.schema.json has $defs")
}

// ---------------------------------------------------------------------------------------------
// The parallel walk
// ---------------------------------------------------------------------------------------------

/// Full-string match where `*` stands for any run of characters (including none).
/// Whether an allow-listed property difference is about this node: its path matches, and a
/// `*`-pattern (a place inside Cilium's rules, such as `*ingress[]`) is never about a
/// NetworkPolicy, whose `spec.ingress[]` is another schema.
fn diff_applies(d: &PropertyDiff, kind: &str, path: &str) -> bool {
    glob(d.path, path) && !(kind == "NetworkPolicy" && d.path.starts_with('*'))
}

fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn string_set(v: Option<&Value>) -> BTreeSet<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect(),
        Some(Value::String(s)) => BTreeSet::from([s.clone()]),
        Some(other) => BTreeSet::from([other.to_string()]),
        None => BTreeSet::new(),
    }
}

fn key_set(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Compares keyword values; enums and `required`-like lists compare as sets.
fn same_value(keyword: &str, a: &Value, b: &Value) -> bool {
    if keyword == "enum" {
        string_set(Some(a)) == string_set(Some(b))
    } else {
        a == b
    }
}

struct Checker<'a> {
    defs: &'a Map<String, Value>,
    property_diffs: &'a [&'a PropertyDiff],
    omitted: &'a [&'a Omitted],
    errors: Vec<String>,
    /// Number of (ward, CRD) node pairs compared, per kind, to prove the walk went deep.
    visited: BTreeMap<String, usize>,
    used_property_diffs: BTreeSet<usize>,
    used_omitted: BTreeSet<usize>,
}

impl<'a> Checker<'a> {
    fn new(
        defs: &'a Map<String, Value>,
        property_diffs: &'a [&'a PropertyDiff],
        omitted: &'a [&'a Omitted],
    ) -> Self {
        Checker {
            defs,
            property_diffs,
            omitted,
            errors: Vec::new(),
            visited: BTreeMap::new(),
            used_property_diffs: BTreeSet::new(),
            used_omitted: BTreeSet::new(),
        }
    }

    /// Follows local `$ref`s; sibling keywords next to a `$ref` override the target's.
    fn resolve(&mut self, kind: &str, path: &str, node: &Value) -> Option<Map<String, Value>> {
        let mut current = node.as_object()?.clone();
        for _ in 0..32 {
            let Some(reference) = current.remove("$ref") else {
                return Some(current);
            };
            let Some(name) = reference.as_str().and_then(|r| r.strip_prefix("#/$defs/")) else {
                self.errors
                    .push(format!("{kind} {path}: non-local $ref {reference}"));
                return None;
            };
            let Some(target) = self.defs.get(name).and_then(Value::as_object) else {
                self.errors
                    .push(format!("{kind} {path}: dangling $ref {reference}"));
                return None;
            };
            let mut merged = target.clone();
            for (k, v) in current {
                merged.insert(k, v);
            }
            current = merged;
        }
        self.errors.push(format!("{kind} {path}: $ref cycle"));
        None
    }

    fn error(&mut self, kind: &str, path: &str, msg: String) {
        let at = if path.is_empty() { "<root>" } else { path };
        self.errors.push(format!("{kind} {at}: {msg}"));
    }

    fn walk(&mut self, kind: &str, path: &str, ward: &Value, crd: &Value) {
        *self.visited.entry(kind.to_owned()).or_default() += 1;
        let Some(w) = self.resolve(kind, path, ward) else {
            self.error(kind, path, "ward node is not a schema object".into());
            return;
        };
        let Some(c) = crd.as_object() else {
            self.error(kind, path, "CRD node is not a schema object".into());
            return;
        };

        // Keywords neither side of the comparison knows about must not slip through silently.
        for k in c.keys() {
            let known = CRD_IGNORED.contains(&k.as_str())
                || STRUCTURAL_KEYWORDS.contains(&k.as_str())
                || CONSTRAINT_KEYWORDS.contains(&k.as_str());
            if !known {
                self.error(
                    kind,
                    path,
                    format!("CRD keyword `{k}` is not handled by this cross-check"),
                );
            }
        }
        for k in w.keys() {
            let known = WARD_IGNORED.contains(&k.as_str())
                || STRUCTURAL_KEYWORDS.contains(&k.as_str())
                || CONSTRAINT_KEYWORDS.contains(&k.as_str());
            if !known {
                self.error(
                    kind,
                    path,
                    format!("ward keyword `{k}` is not handled by this cross-check"),
                );
            }
        }

        // type: `x-kubernetes-int-or-string` (with its anyOf of integer|string) is ward's
        // `type: [integer, string]`.
        let int_or_string = c.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        let crd_types = if int_or_string {
            let expected = json!([{ "type": "integer" }, { "type": "string" }]);
            if c.get("anyOf").is_some_and(|a| a != &expected) {
                self.error(
                    kind,
                    path,
                    "int-or-string node with an unexpected anyOf".into(),
                );
            }
            BTreeSet::from(["integer".to_owned(), "string".to_owned()])
        } else {
            string_set(c.get("type"))
        };
        let ward_types = string_set(w.get("type"));
        if crd_types != ward_types {
            self.error(
                kind,
                path,
                format!("type differs: CRD {crd_types:?}, ward {ward_types:?}"),
            );
        }

        // required (unless ward leaves the CRD's out on purpose)
        let (cr, wr) = (string_set(c.get("required")), string_set(w.get("required")));
        let required_omitted = self
            .omitted
            .iter()
            .position(|o| o.keyword == "required" && glob(o.path, path));
        if let (Some(i), false) = (required_omitted, cr.is_empty()) {
            self.used_omitted.insert(i);
            if !wr.is_empty() {
                let reason = self.omitted[i].reason;
                self.error(
                    kind,
                    path,
                    format!("ward.schema.json must not have `required` here: {reason}"),
                );
            }
        } else if cr != wr {
            self.error(
                kind,
                path,
                format!("required differs: CRD {cr:?}, ward {wr:?}"),
            );
        }

        // enums and every other constraint keyword
        for &kw in CONSTRAINT_KEYWORDS {
            if kw == "anyOf" && int_or_string {
                continue;
            }
            let (cv, wv) = (c.get(kw), w.get(kw));
            let omitted = self
                .omitted
                .iter()
                .position(|o| o.keyword == kw && glob(o.path, path));
            if let (Some(i), Some(_)) = (omitted, cv) {
                // Allow-listed: ward must leave the keyword out entirely (it reports the
                // problem itself, once, in Cilium's words).
                self.used_omitted.insert(i);
                if wv.is_some() {
                    let reason = self.omitted[i].reason;
                    self.error(
                        kind,
                        path,
                        format!("ward.schema.json must not have `{kw}` here: {reason}"),
                    );
                }
                continue;
            }
            match (cv, wv) {
                (None, None) => {}
                (Some(a), Some(b)) if same_value(kw, a, b) => {}
                (Some(a), None) => {
                    self.error(kind, path, format!("CRD has `{kw}` {a} but ward.schema.json does not (and it is not allow-listed)"))
                }
                _ => self.error(
                    kind,
                    path,
                    format!(
                        "`{kw}` differs: CRD {}, ward {}",
                        cv.map_or("absent".into(), Value::to_string),
                        wv.map_or("absent".into(), Value::to_string)
                    ),
                ),
            }
        }

        // property names
        let (cp, wp) = (key_set(c.get("properties")), key_set(w.get("properties")));
        for (side, names) in [
            (
                Side::CrdOnly,
                cp.difference(&wp).cloned().collect::<Vec<_>>(),
            ),
            (
                Side::WardOnly,
                wp.difference(&cp).cloned().collect::<Vec<_>>(),
            ),
        ] {
            for name in names {
                let hit = self.property_diffs.iter().position(|d| {
                    d.side == side
                        && diff_applies(d, kind, path)
                        && d.names.contains(&name.as_str())
                });
                match hit {
                    Some(i) => {
                        self.used_property_diffs.insert(i);
                    }
                    None => {
                        let (has, lacks) = match side {
                            Side::CrdOnly => ("the CRD", "ward.schema.json"),
                            Side::WardOnly => ("ward.schema.json", "the CRD"),
                        };
                        self.error(
                            kind,
                            path,
                            format!("property `{name}` is in {has} but not in {lacks}"),
                        );
                    }
                }
            }
        }
        // Also make sure every allow-listed name at this level really differs (no stale names).
        for (i, d) in self.property_diffs.iter().enumerate() {
            if !diff_applies(d, kind, path) {
                continue;
            }
            for name in d.names {
                let (present_on_owner, absent_on_other) = match d.side {
                    Side::WardOnly => (wp.contains(*name), !cp.contains(*name)),
                    Side::CrdOnly => (cp.contains(*name), !wp.contains(*name)),
                };
                if !(present_on_owner && absent_on_other) {
                    self.errors.push(format!(
                        "{kind} {path}: allow-listed property difference #{i} ({}) names `{name}`, which is not a {:?} difference here",
                        d.reason, d.side
                    ));
                }
            }
        }

        // Convention: a ward object with a fixed property list is closed.
        if !wp.is_empty() && w.get("additionalProperties") != Some(&Value::Bool(false)) {
            self.error(
                kind,
                path,
                "ward object has properties but not `additionalProperties: false`".into(),
            );
        }
        for name in cp.intersection(&wp) {
            let (wc, cc) = (&w["properties"][name], &c["properties"][name]);
            self.walk(kind, &child(path, name), wc, cc);
        }

        // maps
        match (c.get("additionalProperties"), w.get("additionalProperties")) {
            (Some(cv @ Value::Object(_)), Some(wv @ Value::Object(_))) => {
                let (cv, wv) = (cv.clone(), wv.clone());
                self.walk(kind, &format!("{path}{{}}"), &wv, &cv);
            }
            (Some(Value::Object(_)), _) => {
                self.error(kind, path, "CRD has a map here, ward does not".into())
            }
            (_, Some(Value::Object(_))) => {
                self.error(kind, path, "ward has a map here, the CRD does not".into())
            }
            (Some(other), _) => {
                self.error(kind, path, format!("CRD has additionalProperties {other}"))
            }
            _ => {}
        }

        // arrays
        match (c.get("items"), w.get("items")) {
            (Some(ci), Some(wi)) => {
                let (ci, wi) = (ci.clone(), wi.clone());
                self.walk(kind, &format!("{path}[]"), &wi, &ci);
            }
            (None, None) => {}
            (Some(_), None) => self.error(kind, path, "CRD has items, ward does not".into()),
            (None, Some(_)) => self.error(kind, path, "ward has items, the CRD does not".into()),
        }
    }

    /// Allow-list entries that never matched anything are errors too.
    fn check_all_allow_list_entries_used(&mut self) {
        for (i, d) in self.property_diffs.iter().enumerate() {
            if !self.used_property_diffs.contains(&i) {
                self.errors.push(format!(
                    "stale property allow-list entry at `{}` ({}): never matched",
                    d.path, d.reason
                ));
            }
        }
        for (i, o) in self.omitted.iter().enumerate() {
            if !self.used_omitted.contains(&i) {
                self.errors.push(format!(
                    "stale omitted-keyword allow-list entry `{}` {} ({}): never matched",
                    o.path, o.keyword, o.reason
                ));
            }
        }
    }
}

/// Runs the whole cross-check of `ward` against the four vendored CRDs; returns the problems
/// and how many node pairs were compared per kind.
fn crosscheck_counted(ward: &Value, release: &Release) -> (Vec<String>, BTreeMap<String, usize>) {
    let defs = defs(ward);
    let diffs = property_diffs(release);
    let omitted = omitted(release);
    let mut checker = Checker::new(defs, &diffs, &omitted);
    for (kind, file) in CRD_KINDS {
        let Some(root) = defs.get(*kind) else {
            checker.errors.push(format!("$defs/{kind} is missing"));
            continue;
        };
        let crd = load_crd(release, file);
        checker.walk(kind, "", root, &crd);
    }
    checker.check_all_allow_list_entries_used();
    (checker.errors, checker.visited)
}

fn crosscheck(ward: &Value) -> Vec<String> {
    crosscheck_counted(ward, &newest()).0
}

fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "ward.schema.json disagrees with the CRDs ({} problems):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Cross-check tests
// ---------------------------------------------------------------------------------------------

#[test]
fn ward_schema_matches_crds() {
    for release in releases() {
        ward_schema_matches_crds_of(&release);
    }
}

fn ward_schema_matches_crds_of(release: &Release) {
    let (problems, visited) = crosscheck_counted(&load_ward_for(release), release);
    assert!(
        problems.is_empty(),
        "{} disagrees with the CRDs of Cilium {} ({} problems):\n  {}",
        release.schema_file(),
        release.version,
        problems.len(),
        problems.join("\n  ")
    );
    // The walk must really descend into both trees: the CNP/CCNP CRDs have a few hundred
    // schema nodes under spec and again under specs[]; the CEC/CCEC ones a couple of dozen.
    for (kind, minimum) in [
        ("CiliumNetworkPolicy", 600),
        ("CiliumClusterwideNetworkPolicy", 600),
        ("CiliumEnvoyConfig", 20),
        ("CiliumClusterwideEnvoyConfig", 20),
        ("NetworkPolicy", 25),
        ("CiliumCIDRGroup", 4),
    ] {
        let n = visited.get(kind).copied().unwrap_or(0);
        assert!(
            n >= minimum,
            "{kind}: only {n} node pairs compared, expected at least {minimum}"
        );
    }
}

/// The cross-check must notice edits to ward.schema.json, otherwise it proves nothing.
#[test]
fn crosscheck_detects_mutations() {
    type Mutation = (&'static str, fn(&mut Map<String, Value>));
    let mutations: &[Mutation] = &[
        ("add a property to Rule", |d| {
            d["Rule"]["properties"]["fromRequires"] = json!({ "type": "array" });
        }),
        ("drop a property from EgressRule", |d| {
            d["EgressRule"]["properties"]
                .as_object_mut()
                .expect("properties")
                .remove("toFQDNs");
        }),
        ("drop a property from PortRuleHTTP", |d| {
            d["PortRuleHTTP"]["properties"]
                .as_object_mut()
                .expect("properties")
                .remove("headerMatches");
        }),
        ("add a property to EnvoyConfigSpec", |d| {
            d["EnvoyConfigSpec"]["properties"]["listeners"] = json!({ "type": "array" });
        }),
        ("add an ObjectMeta field", |d| {
            d["ObjectMeta"]["properties"]["nmae"] = json!({ "type": "string" });
        }),
        ("change a kept enum", |d| {
            d["Authentication"]["properties"]["mode"]["enum"] = json!(["disabled", "required"]);
        }),
        ("drop a kept enum", |d| {
            d["PortRuleKafka"]["properties"]["role"]
                .as_object_mut()
                .expect("role")
                .remove("enum");
        }),
        ("add an omitted enum back, even verbatim", |d| {
            d["PortProtocol"]["properties"]["protocol"]["enum"] =
                json!(["TCP", "UDP", "SCTP", "VRRP", "IGMP", "ANY"]);
        }),
        ("add an omitted maxItems back", |d| {
            d["ICMPRule"]["properties"]["fields"]["maxItems"] = json!(40);
        }),
        ("drop a kept bound", |d| {
            d["Listener"]["properties"]["priority"]
                .as_object_mut()
                .expect("priority")
                .remove("maximum");
        }),
        ("change a type", |d| {
            d["PortProtocol"]["properties"]["endPort"]["type"] = json!("string");
        }),
        ("change required", |d| {
            d["TLSContext"]["required"] = json!([]);
        }),
        ("open a closed object", |d| {
            d["CIDRRule"]
                .as_object_mut()
                .expect("CIDRRule")
                .remove("additionalProperties");
        }),
        ("drop a kept pattern", |d| {
            d["CIDRRule"]["properties"]["cidrGroupRef"]
                .as_object_mut()
                .expect("cidrGroupRef")
                .remove("pattern");
        }),
        ("change a kept default", |d| {
            d["ICMPField"]["properties"]["family"]["default"] = json!("IPv6");
        }),
        ("drop a kept length bound", |d| {
            d["LogConfig"]["properties"]["value"]
                .as_object_mut()
                .expect("value")
                .remove("maxLength");
        }),
        ("drop minItems from serverNames", |d| {
            d["PortRule"]["properties"]["serverNames"]
                .as_object_mut()
                .expect("serverNames")
                .remove("minItems");
        }),
        ("add a property to a deny port rule", |d| {
            d["PortDenyRule"]["properties"]["rules"] = json!({ "$ref": "#/$defs/L7Rules" });
        }),
        ("add a property deep in L7", |d| {
            d["HeaderMatch"]["properties"]["regex"] = json!({ "type": "string" });
        }),
        ("add a keyword the CRD lacks", |d| {
            d["Secret"]["properties"]["name"]["minLength"] = json!(1);
        }),
        ("add a oneOf back", |d| {
            d["FQDNSelector"]["oneOf"] =
                json!([{ "required": ["matchName"] }, { "required": ["matchPattern"] }]);
        }),
        ("turn a map into a closed object", |d| {
            d["EndpointSelector"]["properties"]["matchLabels"] =
                json!({ "type": "object", "additionalProperties": false });
        }),
    ];
    for (what, mutate) in mutations {
        let mut ward = load_ward();
        mutate(ward["$defs"].as_object_mut().expect("$defs"));
        let problems = crosscheck(&ward);
        assert!(!problems.is_empty(), "cross-check did not notice: {what}");
    }
}

// ---------------------------------------------------------------------------------------------
// Convention tests over the whole ward schema (CiliumConfig included)
// ---------------------------------------------------------------------------------------------

/// Calls `f` on every schema node reachable through `$defs`, `properties`, `items`,
/// `additionalProperties` and the composition keywords, with its JSON-pointer path.
fn visit_schema(node: &Value, path: &str, f: &mut dyn FnMut(&str, &Map<String, Value>)) {
    let Some(m) = node.as_object() else {
        return;
    };
    f(path, m);
    for key in ["$defs", "properties"] {
        if let Some(children) = m.get(key).and_then(Value::as_object) {
            for (name, child) in children {
                visit_schema(child, &format!("{path}/{key}/{name}"), f);
            }
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = m.get(key) {
            visit_schema(child, &format!("{path}/{key}"), f);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = m.get(key).and_then(Value::as_array) {
            for (i, child) in list.iter().enumerate() {
                visit_schema(child, &format!("{path}/{key}/{i}"), f);
            }
        }
    }
}

#[test]
fn ward_schema_conventions() {
    let ward = load_ward();
    assert_eq!(
        ward["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let defs = defs(&ward);
    let mut problems = Vec::new();

    for kind in ALL_KINDS {
        if !defs.contains_key(*kind) {
            problems.push(format!("$defs/{kind} is missing"));
        }
    }
    for (name, def) in defs {
        let described = def
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.trim().is_empty() && !d.contains('\n'));
        if !described {
            problems.push(format!("$defs/{name} needs a one-line description"));
        }
    }

    // Top level of the policy kinds: exactly these names, closed, metadata required, and in
    // particular no top-level `description` (ward flags that one itself).
    for kind in ["CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"] {
        let names = key_set(defs[kind].get("properties"));
        let expected: BTreeSet<String> =
            ["apiVersion", "kind", "metadata", "spec", "specs", "status"]
                .map(str::to_owned)
                .into();
        if names != expected {
            problems.push(format!(
                "{kind} top-level properties {names:?}, expected {expected:?}"
            ));
        }
    }
    // CiliumCIDRGroup's CRD requires `spec` and NetworkPolicy's OpenAPI nothing at the top;
    // the envelope reports a missing metadata or name for them as for every kind.
    for kind in ALL_KINDS
        .iter()
        .filter(|k| !["CiliumCIDRGroup", "NetworkPolicy"].contains(k))
    {
        let def = &defs[*kind];
        if def["required"] != json!(["metadata"]) {
            problems.push(format!(
                "{kind}: only metadata must be required at top level"
            ));
        }
        for key in ["apiVersion", "kind"] {
            if def["properties"][key] != json!({ "type": "string" }) {
                problems.push(format!("{kind}.{key} must be plain `type: string`"));
            }
        }
    }

    let mut check = |path: &str, m: &Map<String, Value>| {
        if let Some(r) = m.get("$ref") {
            let target = r.as_str().and_then(|r| r.strip_prefix("#/$defs/"));
            if !target.is_some_and(|t| defs.contains_key(t)) {
                problems.push(format!(
                    "{path}: $ref {r} is not a resolvable local #/$defs/ pointer"
                ));
            }
        }
        if m.contains_key("properties")
            && m.get("additionalProperties") != Some(&Value::Bool(false))
        {
            problems.push(format!(
                "{path}: has properties but not additionalProperties: false"
            ));
        }
        for kw in [
            "oneOf",
            "anyOf",
            "allOf",
            "not",
            "if",
            "patternProperties",
            "$id",
            "$dynamicRef",
        ] {
            if m.contains_key(kw) {
                problems.push(format!("{path}: `{kw}` is not used in ward.schema.json"));
            }
        }
        if m.get("type") == Some(&json!("object"))
            && !m.contains_key("properties")
            && !m.contains_key("additionalProperties")
        {
            // Only these are deliberately free-form.
            let free_form = ["/$defs/PolicyStatus", "/$defs/EnvoyResource"];
            let owner_refs =
                path.ends_with("/ownerReferences/items") || path.ends_with("/managedFields/items");
            if !free_form.contains(&path) && !owner_refs {
                problems.push(format!(
                    "{path}: object with neither properties nor additionalProperties"
                ));
            }
        }
    };
    visit_schema(&ward, "", &mut check);
    assert_no_problems(&problems);
}

#[test]
fn objectmeta_lists_standard_fields() {
    let ward = load_ward();
    let meta = &defs(&ward)["ObjectMeta"];
    let names = key_set(meta.get("properties"));
    let expected: BTreeSet<String> = OBJECT_META_FIELDS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(names, expected);
    for field in ["name", "namespace", "generateName"] {
        assert_eq!(
            meta["properties"][field],
            json!({ "type": "string" }),
            "metadata.{field} must be a plain string (ward checks names itself)"
        );
    }
}

/// `fromRequires` / `toRequires` do nothing in Cilium 1.19: ward has neither, and the CRDs have
/// them only as deprecated lists that must stay empty (`maxItems: 0`). Before 1.19 they are
/// lists of endpoint selectors, in the CRDs and in ward's schemas for those releases.
#[test]
fn requires_fields_follow_the_release() {
    for release in releases() {
        if release.at_least("1.19") {
            requires_fields_are_deprecated_and_empty(&release);
        } else {
            requires_fields_are_selectors(&release);
        }
    }
}

fn requires_fields_are_selectors(release: &Release) {
    let mut in_ward = 0;
    visit_schema(&load_ward_for(release), "", &mut |_, m| {
        if let Some(props) = m.get("properties").and_then(Value::as_object) {
            for r in ["fromRequires", "toRequires"] {
                if let Some(node) = props.get(r) {
                    in_ward += 1;
                    assert_eq!(
                        node["items"]["$ref"],
                        "#/$defs/EndpointSelector",
                        "{}: {r}",
                        release.schema_file()
                    );
                }
            }
        }
    });
    // ingress, ingressDeny, egress and egressDeny rules.
    assert_eq!(in_ward, 4, "{}: requires fields", release.schema_file());
    let mut in_crds = 0;
    for (_, file) in CRD_KINDS {
        visit_schema(&load_crd(release, file), "", &mut |path, m| {
            if let Some(props) = m.get("properties").and_then(Value::as_object) {
                for r in ["fromRequires", "toRequires"] {
                    if let Some(node) = props.get(r) {
                        in_crds += 1;
                        assert!(
                            node["items"]["properties"].get("matchLabels").is_some(),
                            "crds/{}/{file}{path}: {r} is not a selector list",
                            release.minor
                        );
                    }
                }
            }
        });
    }
    assert_eq!(in_crds, 16, "Cilium {}: requires fields", release.version);
}

fn requires_fields_are_deprecated_and_empty(release: &Release) {
    let deprecated = ["fromRequires", "toRequires"];
    let expected = json!({
        "description": "Deprecated.",
        "items": { "type": "string" },
        "maxItems": 0,
        "type": "array",
    });
    let mut in_ward = Vec::new();
    visit_schema(&load_ward_for(release), "", &mut |path, m| {
        if let Some(props) = m.get("properties").and_then(Value::as_object) {
            for r in deprecated {
                if props.contains_key(r) {
                    in_ward.push(format!("{path}: {r}"));
                }
            }
        }
    });
    assert!(in_ward.is_empty(), "ward.schema.json has {in_ward:?}");
    let mut seen = 0;
    for (_, file) in CRD_KINDS {
        visit_schema(&load_crd(release, file), "", &mut |path, m| {
            if let Some(props) = m.get("properties").and_then(Value::as_object) {
                for r in deprecated {
                    if let Some(node) = props.get(r) {
                        seen += 1;
                        assert_eq!(node, &expected, "crds/{}/{file}{path}: {r}", release.minor);
                    }
                }
            }
        });
    }
    // ingress, ingressDeny, egress and egressDeny under spec and specs[], in CNP and CCNP.
    assert_eq!(seen, 16, "deprecated fields in the CRDs");
}

/// `crds/<minor>/` holds exactly the CRDs that `ci/crds/fetch.sh` takes from Cilium's Go module
/// at each pinned release, byte for byte (regenerate them with `ci/crds/fetch.sh --update`).
#[test]
fn vendored_crds_are_ciliums() {
    let Some(root) = support::cilium_crd_root("vendored_crds_are_ciliums") else {
        return;
    };
    let dirs = |dir: &std::path::Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect()
    };
    let minors: BTreeSet<String> = releases().into_iter().map(|r| r.minor).collect();
    assert_eq!(
        dirs(&crate_dir().join("crds")),
        minors,
        "crds/ has one folder per release"
    );
    assert_eq!(
        dirs(&root),
        minors,
        "{} has one folder per release",
        root.display()
    );
    for release in releases() {
        vendored_crds_are_those_of(&release, &root.join(&release.minor));
    }
}

fn vendored_crds_are_those_of(release: &Release, fetched: &std::path::Path) {
    let yaml_names = |dir: &std::path::Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("cilium") && n.ends_with(".yaml"))
            .collect()
    };
    let ours = yaml_names(&release.crds());
    let theirs = yaml_names(fetched);
    assert_eq!(
        ours,
        theirs,
        "crds/ and {} hold different CRDs; run ci/crds/fetch.sh --update",
        fetched.display()
    );
    for file in &ours {
        let a = std::fs::read(release.crds().join(file)).expect("vendored CRD");
        let b = std::fs::read(fetched.join(file)).expect("fetched CRD");
        assert!(
            a == b,
            "crds/{}/{file} differs from {}; run ci/crds/fetch.sh --update",
            release.minor,
            fetched.join(file).display()
        );
    }
}

/// `crds/README.md` names every Cilium release that `ci/crds/releases` pins.
#[test]
fn crds_readme_names_the_pinned_releases() {
    let readme =
        std::fs::read_to_string(crate_dir().join("crds/README.md")).expect("crds/README.md");
    for release in releases() {
        let version = &release.version;
        assert!(
            readme.contains(&format!("`{version}`")),
            "crds/README.md does not name Cilium `{version}`, a release ci/crds/releases pins"
        );
    }
    assert!(
        CRD_KINDS
            .iter()
            .filter(|(_, f)| f.ends_with(".yaml"))
            .all(|(_, f)| readme.contains(f)),
        "crds/README.md must list every CRD file"
    );
}

/// `openapi/README.md` names the Kubernetes release `ci/kube/build.sh` pins, whose OpenAPI
/// spec `openapi/` holds NetworkPolicy's schema from.
#[test]
fn openapi_readme_names_the_pinned_release() {
    let build = std::fs::read_to_string(crate_dir().join("../ci/kube/build.sh")).expect("build.sh");
    let version = build
        .lines()
        .find_map(|l| l.strip_prefix("K8S_VERSION=${K8S_VERSION:-"))
        .and_then(|v| v.strip_suffix('}'))
        .expect("ci/kube/build.sh pins K8S_VERSION");
    let readme =
        std::fs::read_to_string(crate_dir().join("openapi/README.md")).expect("openapi/README.md");
    assert!(
        readme.contains(&format!("`{version}`")) && readme.contains(OPENAPI_NETWORK_POLICY),
        "openapi/README.md must name Kubernetes `{version}` and {OPENAPI_NETWORK_POLICY}"
    );
}

/// `openapi/` holds what `ci/crds/k8s-openapi.sh` takes from Kubernetes, byte for byte.
#[test]
fn vendored_openapi_is_kubernetes() {
    let Ok(dir) = std::env::var("WARD_K8S_OPENAPI") else {
        ward_testkit::skip(
            "vendored_openapi_is_kubernetes",
            "WARD_K8S_OPENAPI is not set (export WARD_K8S_OPENAPI=$(ci/crds/k8s-openapi.sh))",
        );
        return;
    };
    let fetched = std::fs::read(std::path::Path::new(&dir).join(OPENAPI_NETWORK_POLICY))
        .expect("the fetched OpenAPI schema");
    let ours = std::fs::read(crate_dir().join("openapi").join(OPENAPI_NETWORK_POLICY))
        .expect("the vendored OpenAPI schema");
    assert!(
        ours == fetched,
        "openapi/{OPENAPI_NETWORK_POLICY} differs from {dir}; run ci/crds/k8s-openapi.sh --update"
    );
}

// ---------------------------------------------------------------------------------------------
// Compiling with the jsonschema crate and validating instances
// ---------------------------------------------------------------------------------------------

fn validator(kind: &str) -> jsonschema::Validator {
    let mut schema = load_ward();
    schema
        .as_object_mut()
        .expect("schema object")
        .insert("$ref".into(), json!(format!("#/$defs/{kind}")));
    jsonschema::options()
        .build(&schema)
        .unwrap_or_else(|e| panic!("ward.schema.json does not compile for {kind}: {e}"))
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("test YAML")
}

fn assert_valid(kind: &str, what: &str, instance: &Value) {
    let v = validator(kind);
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind} ({what}) should be valid, got: {errors:#?}"
    );
}

/// Asserts `instance` is invalid and that some error names `needle` (a keyword or a value).
fn assert_invalid(kind: &str, what: &str, instance: &Value, keyword: &str) {
    let v = validator(kind);
    let errors: Vec<(String, String)> = v
        .iter_errors(instance)
        .map(|e| {
            (
                e.kind().keyword().to_owned(),
                format!("{} at {}", e, e.instance_path()),
            )
        })
        .collect();
    assert!(!errors.is_empty(), "{kind} ({what}) should be invalid");
    assert!(
        errors.iter().any(|(k, _)| k == keyword),
        "{kind} ({what}): expected a `{keyword}` error, got {errors:#?}"
    );
}

/// Returns `base` with the JSON value at `pointer` replaced (the parent must exist).
fn with(base: &Value, pointer: &str, value: Value) -> Value {
    let mut out = base.clone();
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target = out.pointer_mut(parent).expect("parent exists");
    match target {
        Value::Object(m) => {
            m.insert(key.to_owned(), value);
        }
        Value::Array(a) => {
            let i: usize = key.parse().expect("index");
            a[i] = value;
        }
        _ => panic!("cannot set {pointer}"),
    }
    out
}

fn cnp() -> Value {
    yaml(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web
  namespace: prod
  labels: {team: web}
  creationTimestamp: null
spec:
  description: web tier
  endpointSelector:
    matchLabels: {app: web}
    matchExpressions:
      - {key: tier, operator: In, values: [frontend]}
  labels:
    - {key: owner, value: web-team}
  enableDefaultDeny: {ingress: true, egress: false}
  log: {value: web-policy}
  ingress:
    - fromEndpoints:
        - matchLabels: {"k8s:app": frontend}
      toPorts:
        - ports: [{port: "80", protocol: TCP}, {port: "8000", endPort: 8080}]
          rules:
            http:
              - method: GET
                path: "/api/.*"
                host: ".*\\.example\\.com"
                headers: [X-Trace]
                headerMatches:
                  - {name: X-Token, secret: {name: token}, mismatch: REPLACE}
      authentication: {mode: required}
    - fromCIDRSet:
        - {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
        - {cidrGroupRef: office-nets}
      icmps:
        - fields: [{type: 8}, {family: IPv6, type: EchoRequest}]
  ingressDeny:
    - fromEntities: [world]
      toPorts: [{ports: [{port: "22"}]}]
  egress:
    - toFQDNs: [{matchName: api.example.com}, {matchPattern: "*.example.com"}]
      toPorts:
        - ports: [{port: "443", protocol: TCP}]
          serverNames: [api.example.com, "*.example.com"]
          terminatingTLS: {secret: {name: tls-in}}
          originatingTLS: {secret: {namespace: prod, name: tls-out}, trustedCA: ca.crt}
    - toEndpoints:
        - matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, "k8s:k8s-app": kube-dns}
      toPorts:
        - ports: [{port: "53", protocol: ANY}]
          rules:
            dns: [{matchPattern: "*"}]
    - toServices:
        - k8sService: {serviceName: db, namespace: prod}
        - k8sServiceSelector: {selector: {matchLabels: {tier: cache}}, namespace: prod}
      toPorts:
        - ports: [{port: "9092"}]
          rules:
            kafka: [{role: produce, topic: events}]
    - toGroups:
        - aws: {labels: {env: prod}, securityGroupsIds: [sg-1], securityGroupsNames: [web], region: eu-west-1}
    - toPorts:
        - ports: [{port: "8080"}]
          listener: {envoyConfig: {kind: CiliumEnvoyConfig, name: envoy-lb}, name: lb, priority: 10}
    - toPorts:
        - ports: [{port: "9000"}]
          rules:
            l7proto: r2d2
            l7: [{cmd: READ, file: "/public/.*"}]
  egressDeny:
    - toCIDR: [192.0.2.0/24]
    - toNodes: [{}]
status:
  conditions: [{type: Valid, status: "True"}]
"#,
    )
}

#[test]
fn cnp_valid_instances() {
    let kind = "CiliumNetworkPolicy";
    let base = cnp();
    assert_valid(kind, "full example", &base);
    let specs = yaml(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-all}
specs:
  - endpointSelector: {}
    ingress: [{}]
  - endpointSelector: {}
    egress: [{}]
"#,
    );
    assert_valid(kind, "specs list", &specs);

    // Problems ward reports itself, in Cilium's words, must NOT be schema errors.
    let semantic_only: &[(&str, &str, Value)] = &[
        (
            "lower-case protocol",
            "/spec/ingress/0/toPorts/0/ports/0/protocol",
            json!("tcp"),
        ),
        (
            "ICMP in protocol",
            "/spec/ingress/0/toPorts/0/ports/0/protocol",
            json!("ICMP"),
        ),
        (
            "half-anchored port",
            "/spec/ingress/0/toPorts/0/ports/0/port",
            json!("80abc"),
        ),
        (
            "unknown entity",
            "/spec/ingressDeny/0/fromEntities",
            json!(["world-ipv4", "everything"]),
        ),
        (
            "41 ports",
            "/spec/ingress/0/toPorts/0/ports",
            json!(vec![json!({"port": "80"}); 41]),
        ),
        (
            "ICMP family",
            "/spec/ingress/1/icmps/0/fields/0/family",
            json!("IPv5"),
        ),
        (
            "ICMP type name",
            "/spec/ingress/1/icmps/0/fields/0/type",
            json!("ExtendedEchoReply"),
        ),
        (
            "ICMP type out of range",
            "/spec/ingress/1/icmps/0/fields/0/type",
            json!(300),
        ),
        (
            "two CIDR forms",
            "/spec/ingress/1/fromCIDRSet/0/cidrGroupRef",
            json!("also-this"),
        ),
        (
            "bad CIDR",
            "/spec/egressDeny/0/toCIDR",
            json!(["not-a-cidr"]),
        ),
        (
            "bad FQDN",
            "/spec/egress/0/toFQDNs/0/matchName",
            json!("bad name!"),
        ),
        (
            "both FQDN fields",
            "/spec/egress/0/toFQDNs/0/matchPattern",
            json!("*.x"),
        ),
        (
            "operator",
            "/spec/endpointSelector/matchExpressions/0/operator",
            json!("Includes"),
        ),
        (
            "label value",
            "/spec/endpointSelector/matchLabels/app",
            json!("not a label value!"),
        ),
        (
            "two L7 families",
            "/spec/egress/1/toPorts/0/rules/http",
            json!([{}]),
        ),
        ("no selector", "/spec/endpointSelector", Value::Null),
    ];
    for (what, pointer, value) in semantic_only {
        let mut instance = with(&base, pointer, value.clone());
        if value.is_null() {
            // remove instead of null
            instance["spec"]
                .as_object_mut()
                .expect("spec")
                .remove("endpointSelector");
        }
        assert_valid(kind, what, &instance);
    }
    let rule_level = yaml(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: odd}
spec:
  endpointSelector: {}
  nodeSelector: {}
"#,
    );
    assert_valid(kind, "both selectors, no direction", &rule_level);
}

#[test]
fn cnp_invalid_instances() {
    let kind = "CiliumNetworkPolicy";
    let base = cnp();
    let mut top_description = base.clone();
    top_description["description"] = json!("misplaced");
    assert_invalid(
        kind,
        "top-level description",
        &top_description,
        "additionalProperties",
    );

    let mut no_metadata = base.clone();
    no_metadata
        .as_object_mut()
        .expect("object")
        .remove("metadata");
    assert_invalid(kind, "missing metadata", &no_metadata, "required");

    let cases: &[(&str, &str, Value, &str)] = &[
        (
            "typo in rule",
            "/spec/ingres",
            json!([]),
            "additionalProperties",
        ),
        (
            "removed fromRequires",
            "/spec/ingress/0/fromRequires",
            json!([{}]),
            "additionalProperties",
        ),
        (
            "typo in metadata",
            "/metadata/nmae",
            json!("x"),
            "additionalProperties",
        ),
        ("spec not an object", "/spec", json!("x"), "type"),
        (
            "numeric port",
            "/spec/ingress/0/toPorts/0/ports/0/port",
            json!(80),
            "type",
        ),
        (
            "endPort too big",
            "/spec/ingress/0/toPorts/0/ports/1/endPort",
            json!(70000),
            "maximum",
        ),
        (
            "auth mode",
            "/spec/ingress/0/authentication/mode",
            json!("sometimes"),
            "enum",
        ),
        (
            "auth without mode",
            "/spec/ingress/0/authentication",
            json!({}),
            "required",
        ),
        (
            "mismatch action",
            "/spec/ingress/0/toPorts/0/rules/http/0/headerMatches/0/mismatch",
            json!("DROP"),
            "enum",
        ),
        (
            "empty header name",
            "/spec/ingress/0/toPorts/0/rules/http/0/headerMatches/0/name",
            json!(""),
            "minLength",
        ),
        (
            "secret without name",
            "/spec/egress/0/toPorts/0/terminatingTLS/secret",
            json!({"namespace": "x"}),
            "required",
        ),
        (
            "TLS without secret",
            "/spec/egress/0/toPorts/0/originatingTLS",
            json!({"trustedCA": "ca.crt"}),
            "required",
        ),
        (
            "empty serverNames",
            "/spec/egress/0/toPorts/0/serverNames",
            json!([]),
            "minItems",
        ),
        (
            "bad server name",
            "/spec/egress/0/toPorts/0/serverNames/0",
            json!("a b"),
            "pattern",
        ),
        (
            "listener kind",
            "/spec/egress/4/toPorts/0/listener/envoyConfig/kind",
            json!("Envoy"),
            "enum",
        ),
        (
            "listener priority",
            "/spec/egress/4/toPorts/0/listener/priority",
            json!(0),
            "minimum",
        ),
        (
            "listener empty name",
            "/spec/egress/4/toPorts/0/listener/name",
            json!(""),
            "minLength",
        ),
        (
            "kafka role",
            "/spec/egress/2/toPorts/0/rules/kafka/0/role",
            json!("admin"),
            "enum",
        ),
        (
            "l7 non-string value",
            "/spec/egress/5/toPorts/0/rules/l7/0/cmd",
            json!(1),
            "type",
        ),
        (
            "log too long",
            "/spec/log/value",
            json!("x".repeat(33)),
            "maxLength",
        ),
        (
            "log control char",
            "/spec/log/value",
            json!("bell\u{7}"),
            "pattern",
        ),
        (
            "label without key",
            "/spec/labels/0",
            json!({"value": "v"}),
            "required",
        ),
        (
            "expression without operator",
            "/spec/endpointSelector/matchExpressions/0",
            json!({"key": "k"}),
            "required",
        ),
        (
            "matchLabels non-string",
            "/spec/endpointSelector/matchLabels/app",
            json!(1),
            "type",
        ),
        (
            "toFQDNs on deny",
            "/spec/egressDeny/0/toFQDNs",
            json!([{"matchName": "x"}]),
            "additionalProperties",
        ),
        (
            "L7 on deny",
            "/spec/ingressDeny/0/toPorts/0/rules",
            json!({"http": [{}]}),
            "additionalProperties",
        ),
        (
            "auth on deny",
            "/spec/ingressDeny/0/authentication",
            json!({"mode": "required"}),
            "additionalProperties",
        ),
        (
            "cidrGroupRef format",
            "/spec/ingress/1/fromCIDRSet/1/cidrGroupRef",
            json!("Office_Nets"),
            "pattern",
        ),
        (
            "ICMP without type",
            "/spec/ingress/1/icmps/0/fields/0",
            json!({"family": "IPv4"}),
            "required",
        ),
        (
            "ICMP type bool",
            "/spec/ingress/1/icmps/0/fields/0/type",
            json!(true),
            "type",
        ),
        (
            "AWS typo",
            "/spec/egress/3/toGroups/0/aws/securityGroupIds",
            json!([]),
            "additionalProperties",
        ),
        (
            "service selector missing",
            "/spec/egress/2/toServices/1/k8sServiceSelector",
            json!({"namespace": "x"}),
            "required",
        ),
        (
            "default deny non-bool",
            "/spec/enableDefaultDeny/ingress",
            json!("yes"),
            "type",
        ),
        ("status not object", "/status", json!([]), "type"),
    ];
    for (what, pointer, value, keyword) in cases {
        assert_invalid(kind, what, &with(&base, pointer, value.clone()), keyword);
    }
}

#[test]
fn ccnp_instances() {
    let kind = "CiliumClusterwideNetworkPolicy";
    let base = yaml(
        r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: host-fw}
spec:
  nodeSelector: {matchLabels: {"node-role.kubernetes.io/worker": ""}}
  ingress:
    - fromEntities: [cluster, health]
    - fromNodes: [{matchLabels: {zone: a}}]
      toPorts: [{ports: [{port: "10250", protocol: TCP}]}]
specs:
  - endpointSelector: {}
    egress:
      - toEntities: [kube-apiserver]
      - toPorts:
          - ports: [{port: "53", protocol: UDP}]
            rules: {dns: [{matchName: kubernetes.default.svc.cluster.local}]}
            listener: {envoyConfig: {kind: CiliumClusterwideEnvoyConfig, name: dns}, name: dns}
"#,
    );
    assert_valid(kind, "host firewall + specs", &base);
    assert_invalid(
        kind,
        "specs not a list",
        &with(&base, "/specs", json!({})),
        "type",
    );
    assert_invalid(
        kind,
        "typo in rule",
        &with(&base, "/spec/nodeSelectr", json!({})),
        "additionalProperties",
    );
    assert_invalid(
        kind,
        "listener without envoyConfig",
        &with(
            &base,
            "/specs/0/egress/1/toPorts/0/listener",
            json!({"name": "dns"}),
        ),
        "required",
    );
    assert_invalid(
        kind,
        "envoyConfig without name",
        &with(
            &base,
            "/specs/0/egress/1/toPorts/0/listener/envoyConfig",
            json!({"kind": "CiliumClusterwideEnvoyConfig"}),
        ),
        "required",
    );
}

fn cec(kind: &str) -> Value {
    yaml(&format!(
        r#"
apiVersion: cilium.io/v2
kind: {kind}
metadata: {{name: envoy-lb, namespace: prod}}
spec:
  services:
    - {{name: web, namespace: prod, ports: [80, 8080], listener: lb}}
  backendServices:
    - {{name: web-v2, number: ["8080"]}}
  nodeSelector:
    matchExpressions: [{{key: ingress-ready, operator: Exists}}]
  resources:
    - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
      name: lb
      filter_chains: [{{filters: [{{name: envoy.filters.network.http_connection_manager}}]}}]
    - "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
      name: prod/web-v2
      connect_timeout: 5s
"#
    ))
}

#[test]
fn envoy_config_instances() {
    for kind in ["CiliumEnvoyConfig", "CiliumClusterwideEnvoyConfig"] {
        let base = cec(kind);
        assert_valid(kind, "listener + cluster", &base);
        let mut no_resources = base.clone();
        no_resources["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("resources");
        assert_invalid(kind, "missing resources", &no_resources, "required");
        assert_invalid(
            kind,
            "service without name",
            &with(&base, "/spec/services/0", json!({"ports": [80]})),
            "required",
        );
        assert_invalid(
            kind,
            "backend ports spelled ports",
            &with(&base, "/spec/backendServices/0/ports", json!([8080])),
            "additionalProperties",
        );
        assert_invalid(
            kind,
            "resource not an object",
            &with(&base, "/spec/resources/0", json!("listener")),
            "type",
        );
        assert_invalid(
            kind,
            "status is not a CEC field",
            &with(&base, "/status", json!({})),
            "additionalProperties",
        );
        assert_invalid(
            kind,
            "service port as string",
            &with(&base, "/spec/services/0/ports", json!(["80"])),
            "type",
        );
    }
}

/// The exact document from the project brief must be accepted as written.
const CILIUM_CONFIG: &str = "\
apiVersion: cilium.io/v1.12
kind: CiliumConfig
metadata: {name: cilium-config}
spec:
  enable-encryption: true
  encryption: {type: wireguard, wireguard: {enabled: true, interface: eth0}}
";

#[test]
fn cilium_config_instances() {
    let kind = "CiliumConfig";
    let base = yaml(CILIUM_CONFIG);
    assert_valid(kind, "reference document", &base);

    let full = yaml(
        r#"
apiVersion: cilium.io/v1.12
kind: CiliumConfig
metadata: {name: cilium-config}
spec:
  enable-encryption: true
  encryption:
    type: wireguard
    wireguard: {enabled: true, interface: eth0, listen-port: 51871, key-rotation-interval: 1h30m, persistent-keepalive: 0s}
  policy-enforcement-mode: always
  enable-node-selector-labels: true
  enable-icmp-rules: false
  enable-l7-proxy: false
  enable-non-default-deny-policies: false
  cluster-name: eu-1
"#,
    );
    assert_valid(kind, "every key", &full);
    for duration in ["24h", "90m", "1.5h", "250ms", "10us", "3µs", "1h2m3s"] {
        let instance = with(
            &base,
            "/spec/encryption/wireguard/key-rotation-interval",
            json!(duration),
        );
        assert_valid(kind, duration, &instance);
    }
    // Unknown encryption types are reported by ward, not the schema.
    assert_valid(
        kind,
        "unknown encryption type",
        &with(&base, "/spec/encryption/type", json!("ztunnel-ish")),
    );

    let cases: &[(&str, &str, Value, &str)] = &[
        (
            "enforcement mode",
            "/spec/policy-enforcement-mode",
            json!("sometimes"),
            "enum",
        ),
        (
            "listen port 0",
            "/spec/encryption/wireguard/listen-port",
            json!(0),
            "minimum",
        ),
        (
            "listen port too big",
            "/spec/encryption/wireguard/listen-port",
            json!(65536),
            "maximum",
        ),
        (
            "duration words",
            "/spec/encryption/wireguard/key-rotation-interval",
            json!("1 day"),
            "pattern",
        ),
        (
            "duration days",
            "/spec/encryption/wireguard/persistent-keepalive",
            json!("1d"),
            "pattern",
        ),
        (
            "duration number",
            "/spec/encryption/wireguard/persistent-keepalive",
            json!(25),
            "type",
        ),
        (
            "empty interface",
            "/spec/encryption/wireguard/interface",
            json!(""),
            "minLength",
        ),
        (
            "enabled string",
            "/spec/encryption/wireguard/enabled",
            json!("true"),
            "type",
        ),
        (
            "agent key name",
            "/spec/enable-wireguard",
            json!(true),
            "additionalProperties",
        ),
        (
            "typo in encryption",
            "/spec/encryption/wiregaurd",
            json!({}),
            "additionalProperties",
        ),
        (
            "typo in wireguard",
            "/spec/encryption/wireguard/port",
            json!(51871),
            "additionalProperties",
        ),
        ("top-level typo", "/sepc", json!({}), "additionalProperties"),
        (
            "boolean as string",
            "/spec/enable-l7-proxy",
            json!("no"),
            "type",
        ),
    ];
    for (what, pointer, value, keyword) in cases {
        assert_invalid(kind, what, &with(&base, pointer, value.clone()), keyword);
    }
}

#[test]
fn cilium_config_defaults() {
    let ward = load_ward();
    let d = defs(&ward);
    let spec = &d["CiliumConfigSpec"]["properties"];
    let wg = &d["WireguardConfig"]["properties"];
    let expected = [
        (&spec["policy-enforcement-mode"], json!("default")),
        (&spec["enable-node-selector-labels"], json!(false)),
        (&spec["enable-icmp-rules"], json!(true)),
        (&spec["enable-l7-proxy"], json!(true)),
        (&spec["enable-non-default-deny-policies"], json!(true)),
        (&spec["cluster-name"], json!("default")),
        (&wg["listen-port"], json!(51871)),
        (&wg["key-rotation-interval"], json!("24h")),
        (&wg["persistent-keepalive"], json!("0s")),
    ];
    for (node, default) in expected {
        assert_eq!(node["default"], default, "default of {node}");
    }
}

#[test]
fn every_kind_compiles() {
    for kind in ALL_KINDS {
        let _ = validator(kind);
    }
}

// ---------------------------------------------------------------------------------------------
// Generating json/ward.schema.json from the CRDs and json/ward.overlay.json
// ---------------------------------------------------------------------------------------------
//
// The overlay is ward.schema.json without what the CRDs already say: it keeps every `$defs`
// entry, every property ward accepts (in ward's order), ward's descriptions, its closedness
// (`additionalProperties: false`), its own kinds (CiliumConfig, LabTopology, PolicyTest) and
// every keyword value ward states differently from the CRD. The generator walks the overlay
// and the CRDs side by side as the cross-check does and fills each keyword of
// `CONSTRAINT_KEYWORDS`, `type` and `required` that the overlay leaves out from the CRD node,
// except where `OMITTED` says ward leaves it out on purpose. A `$defs` entry is filled from
// the first CRD node that reaches it (crds in `CRD_KINDS` order, properties in overlay order);
// the cross-check then holds it against every other one.

use serde_yaml_ng::Value as Y;

const OVERLAY: &str = "json/ward.overlay.json";
const SCHEMA: &str = "json/ward.schema.json";

/// Keywords the generator takes from the CRDs.
fn filled_keywords() -> impl Iterator<Item = &'static str> {
    ["type", "required"]
        .into_iter()
        .chain(CONSTRAINT_KEYWORDS.iter().copied())
}

/// A keyword's value as the CRD node gives it to ward (`x-kubernetes-int-or-string` is ward's
/// `type: [integer, string]`).
fn crd_keyword(c: &Y, kw: &str) -> Option<Y> {
    if kw == "type" && c.get("x-kubernetes-int-or-string") == Some(&Y::Bool(true)) {
        return Some(Y::Sequence(vec![
            Y::String("integer".into()),
            Y::String("string".into()),
        ]));
    }
    c.get(kw).cloned()
}

/// One change to the overlay: at `ptr` (keys from the root), set or remove `kw`.
struct Edit {
    ptr: Vec<String>,
    kw: &'static str,
    value: Option<Y>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Add the CRD's keywords the overlay leaves out (generating the schema).
    Fill,
    /// Remove the keywords whose value is the CRD's (what `Fill` would add back).
    Strip,
}

fn lookup<'a>(root: &'a Y, ptr: &[String]) -> &'a Y {
    ptr.iter().fold(root, |v, k| {
        v.get(k.as_str())
            .unwrap_or_else(|| panic!("overlay: no {ptr:?}"))
    })
}

/// How [`plan`] edits the overlay, and which keywords it leaves out.
struct How {
    mode: Mode,
    omitted: Vec<&'static Omitted>,
}

fn plan(
    how: &How,
    root: &Y,
    ptr: Vec<String>,
    path: &str,
    c: &Y,
    seen: &mut BTreeSet<String>,
    edits: &mut Vec<Edit>,
) {
    let w = lookup(root, &ptr);
    if let Some(r) = w.get("$ref").and_then(Y::as_str) {
        let name = r
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("overlay: non-local $ref {r}"))
            .to_owned();
        if seen.insert(name.clone()) {
            plan(how, root, vec!["$defs".into(), name], path, c, seen, edits);
        }
        return;
    }
    let int_or_string = c.get("x-kubernetes-int-or-string") == Some(&Y::Bool(true));
    for kw in filled_keywords() {
        // An int-or-string's anyOf (integer | string) is ward's `type: [integer, string]`.
        if kw == "anyOf" && int_or_string {
            continue;
        }
        if how
            .omitted
            .iter()
            .any(|o| o.keyword == kw && glob(o.path, path))
        {
            continue;
        }
        let from_crd = crd_keyword(c, kw);
        match (how.mode, w.get(kw), from_crd) {
            (Mode::Fill, None, Some(v)) => edits.push(Edit {
                ptr: ptr.clone(),
                kw,
                value: Some(v),
            }),
            (Mode::Strip, Some(ours), Some(v)) if *ours == v => edits.push(Edit {
                ptr: ptr.clone(),
                kw,
                value: None,
            }),
            _ => {}
        }
    }
    if let (Some(Y::Mapping(wp)), Some(cp)) = (w.get("properties"), c.get("properties")) {
        for name in wp.keys().filter_map(Y::as_str) {
            if let Some(cc) = cp.get(name) {
                let mut p = ptr.clone();
                p.extend(["properties".to_owned(), name.to_owned()]);
                plan(how, root, p, &child(path, name), cc, seen, edits);
            }
        }
    }
    if let (Some(_), Some(ci)) = (w.get("items"), c.get("items")) {
        let mut p = ptr.clone();
        p.push("items".into());
        plan(how, root, p, &format!("{path}[]"), ci, seen, edits);
    }
    if let (Some(Y::Mapping(_)), Some(ca @ Y::Mapping(_))) =
        (w.get("additionalProperties"), c.get("additionalProperties"))
    {
        let mut p = ptr.clone();
        p.push("additionalProperties".into());
        plan(how, root, p, &format!("{path}{{}}"), ca, seen, edits);
    }
}

fn load_crd_y(release: &Release, file: &str) -> Y {
    serde_yaml_ng::to_value(load_crd(release, file)).expect("a schema converts to YAML")
}

fn load_overlay() -> Y {
    let text = std::fs::read_to_string(crate_dir().join(OVERLAY)).expect("read the overlay");
    serde_json::from_str(&text).expect("the overlay is valid JSON")
}

/// The overlay for `release`: [`OVERLAY`] with, for each newer release, the JSON merge patch
/// (RFC 7386: `null` removes) `json/ward.overlay.before-<minor>.json` saying what ward states
/// differently before that release, newest first.
fn load_overlay_for(release: &Release) -> Y {
    let mut overlay = load_overlay();
    for newer in releases()
        .iter()
        .rev()
        .filter(|r| !release.at_least(&r.minor))
    {
        let file = format!("json/ward.overlay.before-{}.json", newer.minor);
        let text = std::fs::read_to_string(crate_dir().join(&file))
            .unwrap_or_else(|e| panic!("read {file}: {e}"));
        let patch: Y = serde_json::from_str(&text).expect("the patch is valid JSON");
        merge_patch(&mut overlay, patch);
    }
    overlay
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Y, patch: Y) {
    let Y::Mapping(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_mapping() {
        *target = Y::Mapping(Default::default());
    }
    let map = target.as_mapping_mut().expect("just made a mapping");
    for (k, v) in patch {
        if v.is_null() {
            map.shift_remove(&k);
        } else {
            merge_patch(map.entry(k).or_insert(Y::Null), v);
        }
    }
}

/// Applies `mode` to `overlay` against the CRDs; returns the result and how many keywords it
/// changed.
fn apply(mode: Mode, mut overlay: Y, release: &Release) -> (Y, usize) {
    let mut edits = Vec::new();
    let mut seen = BTreeSet::new();
    let how = How {
        mode,
        omitted: omitted(release),
    };
    for (kind, file) in CRD_KINDS {
        seen.insert((*kind).to_owned());
        let ptr = vec!["$defs".to_owned(), (*kind).to_owned()];
        plan(
            &how,
            &overlay,
            ptr,
            "",
            &load_crd_y(release, file),
            &mut seen,
            &mut edits,
        );
    }
    let n = edits.len();
    for e in edits {
        let node = e.ptr.iter().fold(&mut overlay, |v, k| {
            v.get_mut(k.as_str()).expect("planned node")
        });
        let map = node.as_mapping_mut().expect("schema node is an object");
        match e.value {
            Some(v) => {
                map.insert(Y::String(e.kw.into()), v);
            }
            None => {
                map.remove(e.kw);
            }
        }
    }
    (overlay, n)
}

/// The text of `release`'s schema: the overlay filled from its CRDs, with the Cilium release in
/// `$comment`.
fn generate_ward_schema(release: &Release) -> String {
    let (mut schema, _) = apply(Mode::Fill, load_overlay_for(release), release);
    schema.as_mapping_mut().expect("root object").insert(
        Y::String("$comment".into()),
        Y::String(format!(
            "Generated from the CRDs of Cilium {} (schema/crds/{}) and json/ward.overlay*.json by \
             schema/tests/crd_crosscheck.rs; do not edit: edit the overlay and run \
             WARD_WRITE_SCHEMA=1 cargo test -p ward-schema --test crd_crosscheck ward_schema_is_generated",
            release.version,
            release.minor
        )),
    );
    let mut out = Vec::new();
    emit(&schema, Node::Schema, 0, "", "", &mut out);
    out.join("\n") + "\n"
}

// The layout of the generated file: two-space indents, a value on one line when it fits in
// 100 columns, schema keywords in one fixed order, property and $defs names in overlay order.

const WIDTH: usize = 100;

/// Schema keywords in the order they are written.
const KEYWORD_ORDER: &[&str] = &[
    "$schema",
    "$comment",
    "title",
    "description",
    "$ref",
    "type",
    "format",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "nullable",
    "default",
    "x-kubernetes-preserve-unknown-fields",
    "additionalProperties",
    "required",
    "properties",
    "items",
    "oneOf",
    "anyOf",
    "allOf",
    "not",
    "$defs",
];

#[derive(Clone, Copy, PartialEq)]
enum Node {
    /// A schema object: keywords in `KEYWORD_ORDER`.
    Schema,
    /// `properties` / `$defs`: names in overlay order, each a schema.
    Names,
    /// Any other value (enum lists, defaults): as it is.
    Data,
}

fn entries(v: &Y, node: Node) -> Vec<(String, &Y, Node)> {
    let map = v.as_mapping().expect("mapping");
    let mut out: Vec<(String, &Y, Node)> = map
        .iter()
        .map(|(k, x)| {
            let k = k.as_str().expect("string keys").to_owned();
            let child = match (node, k.as_str()) {
                (Node::Names, _) => Node::Schema,
                (Node::Schema, "properties" | "$defs") => Node::Names,
                (Node::Schema, "items" | "additionalProperties" | "not") => Node::Schema,
                _ => Node::Data,
            };
            (k, x, child)
        })
        .collect();
    if node == Node::Schema {
        out.sort_by_key(|(k, _, _)| {
            KEYWORD_ORDER
                .iter()
                .position(|o| o == k)
                .unwrap_or_else(|| panic!("keyword `{k}` has no place in KEYWORD_ORDER"))
        });
    }
    out
}

fn scalar(v: &Y) -> String {
    match v {
        Y::Null => "null".into(),
        Y::Bool(b) => b.to_string(),
        Y::Number(n) => n.to_string(),
        Y::String(s) => serde_json::to_string(s).expect("string"),
        other => panic!("not a JSON scalar: {other:?}"),
    }
}

fn inline(v: &Y, node: Node) -> String {
    match v {
        Y::Mapping(m) if m.is_empty() => "{}".into(),
        Y::Mapping(_) => {
            let parts: Vec<String> = entries(v, node)
                .into_iter()
                .map(|(k, x, n)| format!("{}: {}", scalar(&Y::String(k)), inline(x, n)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Y::Sequence(s) => {
            let parts: Vec<String> = s.iter().map(|x| inline(x, node)).collect();
            format!("[{}]", parts.join(", "))
        }
        other => scalar(other),
    }
}

fn emit(v: &Y, node: Node, indent: usize, prefix: &str, suffix: &str, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    let one = inline(v, node);
    let expandable = match v {
        Y::Mapping(m) => !m.is_empty(),
        Y::Sequence(s) => !s.is_empty(),
        _ => false,
    };
    if !expandable || pad.len() + prefix.len() + one.chars().count() + suffix.len() <= WIDTH {
        out.push(format!("{pad}{prefix}{one}{suffix}"));
        return;
    }
    match v {
        Y::Mapping(_) => {
            out.push(format!("{pad}{prefix}{{"));
            let items = entries(v, node);
            let last = items.len() - 1;
            for (i, (k, x, n)) in items.into_iter().enumerate() {
                let key = format!("{}: ", scalar(&Y::String(k)));
                emit(x, n, indent + 2, &key, if i < last { "," } else { "" }, out);
            }
            out.push(format!("{pad}}}{suffix}"));
        }
        Y::Sequence(s) => {
            out.push(format!("{pad}{prefix}["));
            for (i, x) in s.iter().enumerate() {
                let sep = if i + 1 < s.len() { "," } else { "" };
                emit(x, node, indent + 2, "", sep, out);
            }
            out.push(format!("{pad}]{suffix}"));
        }
        _ => unreachable!(),
    }
}

/// Each release's schema (json/ward.schema.json for the newest) is exactly what the generator
/// makes of the overlay and that release's CRDs.
#[test]
fn ward_schema_is_generated() {
    for release in releases() {
        schema_is_generated(&release);
    }
}

fn schema_is_generated(release: &Release) {
    let generated = generate_ward_schema(release);
    let name = release.schema_file();
    let path = crate_dir().join(&name);
    if std::env::var("WARD_WRITE_SCHEMA").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("write {name}: {e}"));
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {name}: {e}"));
    if current != generated {
        let line = current
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(generated.lines().count()));
        panic!(
            "{name} is not the generator's output (first difference at line {}: \
             {:?} vs generated {:?}); edit json/ward.overlay*.json, not the schema, and run \
             WARD_WRITE_SCHEMA=1 cargo test -p ward-schema --test crd_crosscheck ward_schema_is_generated",
            line + 1,
            current.lines().nth(line).unwrap_or(""),
            generated.lines().nth(line).unwrap_or("")
        );
    }
}

/// The overlay states nothing the CRDs already say (so a CRD update reaches the schema), and
/// it is a file of its own, not a copy of the schema.
#[test]
fn overlay_is_minimal() {
    let (_, n) = apply(Mode::Strip, load_overlay(), &newest());
    assert_eq!(
        n, 0,
        "json/ward.overlay.json repeats {n} keyword(s) the CRDs give; remove them"
    );
    let (_, filled) = apply(Mode::Fill, load_overlay(), &newest());
    assert!(filled >= 200, "only {filled} keywords come from the CRDs");
}
