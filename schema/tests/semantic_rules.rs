//! One test per semantic rule of the Cilium reference (§3, rules 1–33), plus the envelope,
//! JSON-Schema and whole-revision checks that sit next to them (§4.3, §4.6).
//!
//! Every test loads a small YAML literal through the public API (`load_file` + `assemble`)
//! and pins the exact message, the code, the 1-based line and column, and the number of
//! errors, so that one problem is never reported twice (once by the JSON Schema and once by
//! the semantic rule).
//!
//! Layout of the literals: [`cnp`] puts its body after a five-line header and `spec:` on line
//! 6, so the first body line is line 7. [`ccnp`] has no namespace line: `spec:` is line 5 and
//! the first body line is line 6.

use ward_schema::diagnostic::codes;
use ward_schema::{Diagnostic, Limits, Severity, Validation, assemble, load_file};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const CNP_HEAD: &str = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: test
  namespace: shop
spec:
";

const CCNP_HEAD: &str = "\
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: test
spec:
";

/// A CNP whose `spec:` body is `body` (a leading newline is dropped). Body line 1 is line 7.
fn cnp(body: &str) -> String {
    format!("{CNP_HEAD}{}", body.strip_prefix('\n').unwrap_or(body))
}

/// A CCNP whose `spec:` body is `body` (a leading newline is dropped). Body line 1 is line 6.
fn ccnp(body: &str) -> String {
    format!("{CCNP_HEAD}{}", body.strip_prefix('\n').unwrap_or(body))
}

/// A CiliumConfig with one flag set.
fn config(flag: &str, value: bool) -> String {
    format!(
        "apiVersion: cilium.io/v1.12\nkind: CiliumConfig\nmetadata:\n  name: cilium-config\nspec:\n  {flag}: {value}\n"
    )
}

/// Cilium's wrapping of a CNP `spec:` error.
fn spec(msg: &str) -> String {
    format!("Invalid CiliumNetworkPolicy spec: {msg}")
}

/// Cilium's wrapping of a CCNP `spec:` error.
fn ccnp_spec(msg: &str) -> String {
    format!("Invalid CiliumClusterwideNetworkPolicy spec: {msg}")
}

/// Validates several files as one revision.
fn validate(files: &[(&str, &str)]) -> Validation {
    let limits = Limits::default();
    assemble(
        files
            .iter()
            .map(|(name, src)| load_file(name, src.as_bytes(), &limits))
            .collect(),
    )
}

/// Validates one file.
fn check(src: &str) -> Validation {
    validate(&[("policy.yaml", src)])
}

fn listing(v: &Validation) -> String {
    v.diagnostics.iter().map(|d| format!("\n  {d}")).collect()
}

/// Asserts the number of errors (warnings are not counted).
fn expect_errors(v: &Validation, n: usize) {
    assert_eq!(
        v.error_count(),
        n,
        "expected {n} error(s), got:{}",
        listing(v)
    );
}

/// Asserts that there is no diagnostic at all, not even a warning.
fn expect_clean(v: &Validation) {
    assert!(
        v.diagnostics.is_empty(),
        "expected no diagnostics, got:{}",
        listing(v)
    );
}

/// The one diagnostic with `code`.
fn find<'a>(v: &'a Validation, code: &str) -> &'a Diagnostic {
    let found: Vec<&Diagnostic> = v.diagnostics.iter().filter(|d| d.code == code).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {code}, got:{}",
        listing(v)
    );
    found[0]
}

/// The one diagnostic with `code` and exactly `message`.
fn find_msg<'a>(v: &'a Validation, code: &str, message: &str) -> &'a Diagnostic {
    let found: Vec<&Diagnostic> = v
        .diagnostics
        .iter()
        .filter(|d| d.code == code && d.message == message)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {code} \"{message}\", got:{}",
        listing(v)
    );
    found[0]
}

/// Line and column of a diagnostic.
fn at(d: &Diagnostic) -> (usize, usize) {
    (d.line, d.column)
}

// ---------------------------------------------------------------------------------------------
// Rule level (§3 rules 1–6)
// ---------------------------------------------------------------------------------------------

// Rule 1: a rule without ingress, ingressDeny, egress or egressDeny (empty lists count as none).
#[test]
fn rule01_no_direction() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress: []
"#));
    expect_errors(&v, 1);
    let d = find_msg(
        &v,
        codes::RULE,
        &spec("rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny"),
    );
    assert_eq!(at(d), (7, 3));
    assert_eq!(d.path, "spec");
}

// Rule 2: neither endpointSelector nor nodeSelector.
#[test]
fn rule02_no_selector() {
    let v = check(&cnp(r#"
  ingress:
  - fromEntities: [world]
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::RULE);
    assert_eq!(
        d.message,
        spec("rule must have one of EndpointSelector or NodeSelector")
    );
    assert_eq!(at(d), (7, 3));
}

// Rule 3: both selectors (in a CCNP; a CNP gets rule 5 instead).
#[test]
fn rule03_both_selectors() {
    let v = check(&ccnp(
        r#"
  endpointSelector: {}
  nodeSelector: {}
  ingress:
  - fromEntities: [world]
"#,
    ));
    expect_errors(&v, 1);
    let d = find(&v, codes::RULE);
    assert_eq!(
        d.message,
        ccnp_spec("rule cannot have both EndpointSelector and NodeSelector")
    );
    assert_eq!(at(d), (7, 3));
    assert_eq!(d.path, "spec.nodeSelector");
}

// Rule 4: invalid label selectors, one per Kubernetes message, all reported in one run.
#[test]
fn rule04_label_selectors() {
    let v = check(&cnp(r#"
  endpointSelector:
    matchLabels:
      bad key: x
      app: -front
    matchExpressions:
    - key: tier
      operator: In
    - key: env
      operator: Exists
      values: [prod]
    - key: zone
      operator: exists
  ingress:
  - {}
"#));
    expect_errors(&v, 5);
    let sel = |m: &str| spec(&format!("invalid label selector: {m}"));
    let key_msg = sel(
        "matchLabels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    );
    assert_eq!(at(find_msg(&v, codes::SELECTOR, &key_msg)), (9, 7));
    let value_msg = sel(
        "matchLabels: Invalid value: \"-front\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    );
    assert_eq!(at(find_msg(&v, codes::SELECTOR, &value_msg)), (10, 12));
    let in_msg = sel(
        "matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
    );
    assert_eq!(at(find_msg(&v, codes::SELECTOR, &in_msg)), (12, 7));
    let exists_msg = sel(
        "matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
    );
    assert_eq!(at(find_msg(&v, codes::SELECTOR, &exists_msg)), (16, 7));
    let op_msg = sel(
        "matchExpressions[2].operator: Invalid value: \"exists\": not a valid selector operator",
    );
    let d = find_msg(&v, codes::SELECTOR, &op_msg);
    assert_eq!(at(d), (18, 17));
    assert_eq!(
        d.hint.as_deref(),
        Some("did you mean \"Exists\"? (operators are case-sensitive)")
    );
}

// Rule 5: a CNP with nodeSelector, reported once and without the rule-3 message even when
// endpointSelector is there too.
#[test]
fn rule05_cnp_node_selector() {
    let v = check(&cnp(r#"
  nodeSelector:
    matchLabels:
      role: worker
  ingress:
  - fromEntities: [world]
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::RULE);
    assert_eq!(
        d.message,
        "Invalid CiliumNetworkPolicy spec: rule cannot have NodeSelector"
    );
    assert_eq!(at(d), (7, 3));
    assert!(
        d.hint
            .as_deref()
            .unwrap_or("")
            .contains("CiliumClusterwideNetworkPolicy")
    );

    let v = check(&cnp(r#"
  endpointSelector: {}
  nodeSelector: {}
  ingress:
  - fromEntities: [world]
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::RULE);
    assert_eq!(
        d.message,
        "Invalid CiliumNetworkPolicy spec: rule cannot have NodeSelector"
    );
    assert_eq!(at(d), (8, 3));
}

// Rule 6: errors are wrapped "Invalid <Kind> spec: " for `spec:` and "... specs: " for `specs:`.
#[test]
fn rule06_wrapping() {
    let src = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: test
  namespace: shop
spec:
  endpointSelector: {}
  egress:
  - toEntities: [wrld]
specs:
- endpointSelector: {}
  ingress:
  - fromEntities: [wrld]
"#;
    let v = check(src);
    expect_errors(&v, 2);
    let d = find_msg(
        &v,
        codes::ENTITY,
        "Invalid CiliumNetworkPolicy spec: unsupported entity: wrld",
    );
    assert_eq!(at(d), (9, 18));
    let d = find_msg(
        &v,
        codes::ENTITY,
        "Invalid CiliumNetworkPolicy specs: unsupported entity: wrld",
    );
    assert_eq!(at(d), (13, 20));
    assert_eq!(d.path, "specs[0].ingress[0].fromEntities[0]");

    let src = r#"apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: test
specs:
- endpointSelector: {}
  egress:
  - toEntities: [wrld]
"#;
    let v = check(src);
    expect_errors(&v, 1);
    let d = find(&v, codes::ENTITY);
    assert_eq!(
        d.message,
        "Invalid CiliumClusterwideNetworkPolicy specs: unsupported entity: wrld"
    );
    assert_eq!(at(d), (8, 18));
}

// §1: neither spec nor specs.
#[test]
fn empty_policy() {
    let v = check(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: test\n  namespace: shop\n",
    );
    expect_errors(&v, 1);
    let d = find(&v, codes::EMPTY_POLICY);
    assert_eq!(
        d.message,
        "Invalid CiliumNetworkPolicy spec(s): empty policy"
    );
    assert_eq!(at(d), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// Peers (§3 rules 7–12)
// ---------------------------------------------------------------------------------------------

// Rule 7: two peer families in one rule; ward names the first two present families in
// Cilium's declared order (not YAML order) and points at the second one.
#[test]
fn rule07_peer_combinations() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - fromCIDR: [10.0.0.0/8]
    fromEndpoints: [{}]
  - fromCIDRSet:
    - cidr: 10.0.0.0/8
    fromCIDR: [10.0.0.0/8]
  egress:
  - toFQDNs:
    - matchName: example.com
    toEndpoints: [{}]
"#));
    expect_errors(&v, 3);
    let d = find_msg(
        &v,
        codes::PEER_COMBINATION,
        &spec("combining FromEndpoints and FromCIDR is not supported yet"),
    );
    assert_eq!(at(d), (9, 5));
    assert_eq!(d.path, "spec.ingress[0].fromCIDR");
    let d = find_msg(
        &v,
        codes::PEER_COMBINATION,
        &spec("combining FromCIDR and FromCIDRSet is not supported yet"),
    );
    assert_eq!(at(d), (11, 5));
    let d = find_msg(
        &v,
        codes::PEER_COMBINATION,
        &spec("combining ToEndpoints and ToFQDNs is not supported yet"),
    );
    assert_eq!(at(d), (15, 5));
}

const NODES_BODY: &str = r#"
  endpointSelector: {}
  ingress:
  - fromNodes:
    - matchLabels:
        role: control-plane
  egress:
  - toNodes: [{}]
"#;

// Rule 8: fromNodes/toNodes need enable-node-selector-labels (default off).
#[test]
fn rule08_node_peers_need_flag() {
    let msg = spec(
        "FromNodes/ToNodes rules can only be applied when the \"enable-node-selector-labels\" flag is set",
    );
    let v = check(&cnp(NODES_BODY));
    expect_errors(&v, 2);
    let ds: Vec<&Diagnostic> = v
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::NODE_PEERS)
        .collect();
    assert_eq!(ds.len(), 2);
    assert!(ds.iter().all(|d| d.message == msg));
    assert_eq!(at(ds[0]), (9, 5));
    assert_eq!(at(ds[1]), (13, 5));

    // Explicitly off: still reported.
    let v = validate(&[
        ("policy.yaml", &cnp(NODES_BODY)),
        ("config.yaml", &config("enable-node-selector-labels", false)),
    ]);
    expect_errors(&v, 2);

    // On in the revision's CiliumConfig: not reported.
    let v = validate(&[
        ("policy.yaml", &cnp(NODES_BODY)),
        ("config.yaml", &config("enable-node-selector-labels", true)),
    ]);
    expect_clean(&v);
}

// Rule 9: an entity Cilium does not know.
#[test]
fn rule09_unknown_entity() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toEntities:
    - internet
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::ENTITY);
    assert_eq!(d.message, spec("unsupported entity: internet"));
    assert_eq!(at(d), (10, 7));
    assert_eq!(d.path, "spec.egress[0].toEntities[0]");
}

// Rule 10: fromCIDR/toCIDR entries: empty, unparsable (addresses and prefixes are both fine).
#[test]
fn rule10_cidr() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - fromCIDR:
    - ""
    - bogus
    - 10.0.0.1
    - 2001:db8::/32
"#));
    expect_errors(&v, 2);
    assert_eq!(
        at(find_msg(&v, codes::CIDR, &spec("IP must be specified"))),
        (10, 7)
    );
    let d = find_msg(
        &v,
        codes::CIDR,
        &spec("unable to parse CIDR: ParseAddr(\"bogus\"): unable to parse IP"),
    );
    assert_eq!(at(d), (11, 7));
}

// Rule 11: CIDRRule (fromCIDRSet/toCIDRSet), one item per message.
#[test]
fn rule11_cidr_rule() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toCIDRSet:
    - except: [10.1.0.0/16]
    - cidr: 10.0.0.0/8
      cidrGroupRef: corp
    - cidr: 10.0.0.1
    - cidr: 10.0.0.0/8
      except: [11.0.0.0/16]
    - cidrGroupSelector:
        matchExpressions:
        - key: team
          operator: NotIn
"#));
    expect_errors(&v, 5);
    let d = find_msg(
        &v,
        codes::CIDR,
        &spec("one of cidr, cidrGroupRef, or cidrGroupSelector is required"),
    );
    assert_eq!(at(d), (10, 7));
    let d = find_msg(
        &v,
        codes::CIDR,
        &spec("more than one of cidr, cidrGroupRef, or cidrGroupSelector may not be set"),
    );
    assert_eq!(at(d), (12, 7));
    let d = find_msg(
        &v,
        codes::CIDR,
        &spec("unable to parse CIDRRule \"10.0.0.1\": netip.ParsePrefix(\"10.0.0.1\"): no '/'"),
    );
    assert_eq!(at(d), (13, 13));
    let d = find_msg(
        &v,
        codes::CIDR,
        &spec("allow CIDR prefix 10.0.0.0/8 does not contain exclude CIDR prefix 11.0.0.0/16"),
    );
    assert_eq!(at(d), (15, 16));
    let d = find(&v, codes::SELECTOR);
    assert_eq!(
        d.message,
        spec(
            "failed to parse cidrGroupSelector: matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        )
    );
    assert_eq!(at(d), (18, 11));
}

// Rule 12: toFQDNs selectors, one item per message.
#[test]
fn rule12_fqdn() {
    let long = "a".repeat(256);
    let v = check(&cnp(&format!(
        r#"
  endpointSelector: {{}}
  egress:
  - toFQDNs:
    - matchName: example.com
      matchPattern: "*.example.com"
    - matchName: "*.example.com"
    - matchPattern: {long}
    - matchPattern: api/v1
"#
    )));
    expect_errors(&v, 4);
    let d = find_msg(
        &v,
        codes::FQDN,
        &spec("only one of MatchName or MatchPattern is allowed in an FQDNSelector"),
    );
    assert_eq!(at(d), (10, 7));
    let d = find_msg(
        &v,
        codes::FQDN,
        &spec(
            "Invalid characters in MatchName: \"*.example.com\". Only 0-9, a-z, A-Z and ., -, _ characters are allowed",
        ),
    );
    assert_eq!(at(d), (12, 18));
    assert_eq!(d.hint.as_deref(), Some("use matchPattern for wildcards"));
    let d = find_msg(
        &v,
        codes::FQDN,
        &spec(&format!(
            "Invalid MatchPattern: \"{long}\". Must be <= 255 characters long."
        )),
    );
    assert_eq!(at(d), (13, 21));
    let d = find_msg(
        &v,
        codes::FQDN,
        &spec(
            "Invalid characters in MatchPattern: \"api/v1\". Only 0-9, a-z, A-Z and ., -, _ and * characters are allowed",
        ),
    );
    assert_eq!(at(d), (14, 21));
}

// ---------------------------------------------------------------------------------------------
// L4 (§3 rules 13–20)
// ---------------------------------------------------------------------------------------------

// Rule 13: more than 40 ports in one list, in allow and in deny rules.
#[test]
fn rule13_too_many_ports() {
    let ports: String = (1..=41)
        .map(|i| format!("      - port: \"{}\"\n", 8000 + i))
        .collect();
    // ingress: lines 8-51 (toPorts 9, ports 10, 41 ports 11-51); ingressDeny from line 52.
    let v = check(&cnp(&format!(
        "  endpointSelector: {{}}\n  ingress:\n  - toPorts:\n    - ports:\n{ports}  ingressDeny:\n  - toPorts:\n    - ports:\n{ports}"
    )));
    expect_errors(&v, 2);
    let ds: Vec<&Diagnostic> = v
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::PORT)
        .collect();
    assert_eq!(ds.len(), 2, "{}", listing(&v));
    assert!(
        ds.iter()
            .all(|d| d.message == spec("too many ports, the max is 40"))
    );
    assert_eq!(at(ds[0]), (10, 7));
    assert_eq!(ds[0].path, "spec.ingress[0].toPorts[0].ports");
    assert_eq!(at(ds[1]), (54, 7));
    assert_eq!(ds[1].path, "spec.ingressDeny[0].toPorts[0].ports");
}

// Rule 14: an empty or missing port.
#[test]
fn rule14_port_must_be_specified() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: ""
        protocol: TCP
      - protocol: UDP
"#));
    expect_errors(&v, 2);
    let ds: Vec<&Diagnostic> = v
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::PORT)
        .collect();
    assert_eq!(ds.len(), 2);
    assert!(
        ds.iter()
            .all(|d| d.message == spec("port must be specified"))
    );
    assert_eq!(at(ds[0]), (11, 15));
    assert_eq!(at(ds[1]), (13, 9));
}

// Rule 15: a port that is neither a number nor an IANA service name. "0x50" parses as a
// name (letters), "http" is a named port.
#[test]
fn rule15_unparsable_port() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: "80abc!"
      - port: "-1"
      - port: "0x50"
      - port: "http"
"#));
    expect_errors(&v, 2);
    let d = find_msg(
        &v,
        codes::PORT,
        &spec("unable to parse port: strconv.ParseUint: parsing \"80abc!\": invalid syntax"),
    );
    assert_eq!(at(d), (11, 15));
    assert_eq!(d.path, "spec.ingress[0].toPorts[0].ports[0].port");
    let d = find_msg(
        &v,
        codes::PORT,
        &spec("unable to parse port: strconv.ParseUint: parsing \"-1\": invalid syntax"),
    );
    assert_eq!(at(d), (12, 15));
}

// Extra: ports above 65535 pass the CRD's regex, but not the agent's parser.
#[test]
fn ports_out_of_range() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "65536"
        protocol: TCP
      - port: "99999"
      - port: "65535"
"#));
    expect_errors(&v, 2);
    let d = find_msg(
        &v,
        codes::PORT,
        &spec("unable to parse port: strconv.ParseUint: parsing \"65536\": value out of range"),
    );
    assert_eq!(at(d), (11, 15));
    let d = find_msg(
        &v,
        codes::PORT,
        &spec("unable to parse port: strconv.ParseUint: parsing \"99999\": value out of range"),
    );
    assert_eq!(at(d), (13, 15));
}

// Extra: an unquoted port number is a schema type error (with a quoting hint), reported once.
#[test]
fn unquoted_port_is_a_type_error() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: 80
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::SCHEMA);
    assert_eq!(
        d.message,
        "spec.ingress[0].toPorts[0].ports[0].port: expected string, got integer"
    );
    assert_eq!(at(d), (11, 15));
    assert_eq!(d.hint.as_deref(), Some("quote it: \"80\""));
}

// Rule 16: VRRP and IGMP take no port (empty or "0").
#[test]
fn rule16_vrrp_igmp_port() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: VRRP
      - port: "0"
        protocol: IGMP
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::PORT);
    assert_eq!(d.message, spec("port must be empty or 0"));
    assert_eq!(at(d), (11, 15));
}

// Rule 17: a protocol outside { tcp | udp | sctp | vrrp | igmp | any }; a lower-case
// protocol passes the agent but not the CRD's enum.
#[test]
fn rule17_bad_protocol() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: ICMP
      - port: "81"
        protocol: tcp
"#));
    expect_errors(&v, 2);
    let d = find_msg(
        &v,
        codes::PORT,
        &spec("invalid protocol \"ICMP\", must be { tcp | udp | sctp | vrrp | igmp | any }"),
    );
    assert_eq!(at(d), (12, 19));
    assert_eq!(
        d.hint.as_deref(),
        Some("ICMP is not a port protocol; use an `icmps` block instead")
    );
    let d = find_msg(
        &v,
        codes::PORT,
        &spec(
            "protocol \"tcp\" is not in the CRD's enum (TCP, UDP, SCTP, VRRP, IGMP, ANY); the API server rejects it",
        ),
    );
    assert_eq!(at(d), (14, 19));
}

// Rule 18: icmps and toPorts in the same rule.
#[test]
fn rule18_icmps_with_ports() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - icmps:
    - fields:
      - type: 8
    toPorts:
    - ports:
      - port: "80"
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::ICMP);
    assert_eq!(
        d.message,
        spec(
            "the ICMPs block may only be present without ToPorts. Define a separate rule to use ToPorts"
        )
    );
    assert_eq!(at(d), (9, 5));
}

const ICMP_BODY: &str = r#"
  endpointSelector: {}
  egress:
  - icmps:
    - fields:
      - type: EchoRequest
        family: IPv4
"#;

// Rule 19: ICMP rules while enable-icmp-rules is off (default on).
#[test]
fn rule19_icmp_flag() {
    // Default: allowed.
    expect_clean(&check(&cnp(ICMP_BODY)));
    let v = validate(&[
        ("policy.yaml", &cnp(ICMP_BODY)),
        ("config.yaml", &config("enable-icmp-rules", true)),
    ]);
    expect_clean(&v);

    // Turned off by the CiliumConfig, in another file or in the same file.
    let v = validate(&[
        ("policy.yaml", &cnp(ICMP_BODY)),
        ("config.yaml", &config("enable-icmp-rules", false)),
    ]);
    expect_errors(&v, 1);
    let d = find(&v, codes::ICMP);
    assert_eq!(
        d.message,
        spec("ICMP rules can only be applied when the \"enable-icmp-rules\" flag is set")
    );
    assert_eq!(at(d), (9, 5));
    assert_eq!(d.file, "policy.yaml");

    let same_file = format!(
        "{}---\n{}",
        config("enable-icmp-rules", false),
        cnp(ICMP_BODY)
    );
    let v = check(&same_file);
    expect_errors(&v, 1);
    assert_eq!(at(find(&v, codes::ICMP)), (16, 5));
}

// Rule 20: more than 40 ICMP types; a family other than IPv4/IPv6 (case-sensitive).
#[test]
fn rule20_icmp_fields() {
    let fields: String = (0..41)
        .map(|i| format!("      - type: {}\n", i % 16))
        .collect();
    // icmps[0]: fields on line 10, 41 items on lines 11-51; icmps[1] on line 52.
    let v = check(&cnp(&format!(
        "  endpointSelector: {{}}\n  ingress:\n  - icmps:\n    - fields:\n{fields}    - fields:\n      - type: 8\n        family: IPv5\n      - type: 8\n        family: ipv6\n"
    )));
    expect_errors(&v, 3);
    let d = find_msg(&v, codes::ICMP, &spec("too many types, the max is 40"));
    assert_eq!(at(d), (10, 7));
    assert_eq!(
        at(find_msg(&v, codes::ICMP, &spec("wrong family: IPv5"))),
        (54, 17)
    );
    assert_eq!(
        at(find_msg(&v, codes::ICMP, &spec("wrong family: ipv6"))),
        (56, 17)
    );
}

// ---------------------------------------------------------------------------------------------
// L7 (§3 rules 21–33)
// ---------------------------------------------------------------------------------------------

// Rule 21: L7 rules on a host-policy (nodeSelector) ingress rule.
#[test]
fn rule21_l7_on_host_ingress() {
    let v = check(&ccnp(
        r#"
  nodeSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: "8080"
        protocol: TCP
      rules:
        http:
        - method: GET
"#,
    ));
    expect_errors(&v, 1);
    let d = find(&v, codes::L7);
    assert_eq!(
        d.message,
        ccnp_spec("L7 policy is not supported on host ingress yet")
    );
    assert_eq!(at(d), (13, 9));
    assert_eq!(d.path, "spec.ingress[0].toPorts[0].rules");
}

const L7_BODY: &str = r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules:
        http:
        - method: GET
          path: /public/.*
"#;

// Rule 22: L7 rules while enable-l7-proxy is off (default on).
#[test]
fn rule22_l7_proxy_flag() {
    expect_clean(&check(&cnp(L7_BODY)));
    let v = validate(&[
        ("policy.yaml", &cnp(L7_BODY)),
        ("config.yaml", &config("enable-l7-proxy", true)),
    ]);
    expect_clean(&v);

    let v = validate(&[
        ("policy.yaml", &cnp(L7_BODY)),
        ("config.yaml", &config("enable-l7-proxy", false)),
    ]);
    expect_errors(&v, 1);
    let d = find(&v, codes::L7);
    assert_eq!(
        d.message,
        spec("L7 policy is not supported since L7 proxy is not enabled")
    );
    assert_eq!(at(d), (14, 9));
}

// Rule 23: DNS rules on ingress. Cilium stops at "L7 protocol DNS is not supported on ingress
// yet" before its port-rule check ("DNS rules are not allowed on ingress") can run, so ward
// reports the first message only, once.
#[test]
fn rule23_dns_on_ingress() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: "53"
        protocol: UDP
      rules:
        dns:
        - matchPattern: "*"
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::L7);
    assert_eq!(
        d.message,
        spec("L7 protocol DNS is not supported on ingress yet")
    );
    assert_eq!(at(d), (14, 9));
}

// Rule 24: HTTP and Kafka rules on host-policy egress; DNS is allowed there.
#[test]
fn rule24_l7_on_host_egress() {
    let v = check(&ccnp(
        r#"
  nodeSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules:
        http:
        - method: GET
  - toPorts:
    - ports:
      - port: "9092"
        protocol: TCP
      rules:
        kafka:
        - topic: orders
  - toPorts:
    - ports:
      - port: "53"
        protocol: ANY
      rules:
        dns:
        - matchPattern: "*.cluster.local"
"#,
    ));
    expect_errors(&v, 2);
    let d = find_msg(
        &v,
        codes::L7,
        &ccnp_spec("L7 protocol HTTP is not supported on host egress yet"),
    );
    assert_eq!(at(d), (13, 9));
    let d = find_msg(
        &v,
        codes::L7,
        &ccnp_spec("L7 protocol Kafka is not supported on host egress yet"),
    );
    assert_eq!(at(d), (20, 9));
}

// Rule 25: L7 rules other than DNS on a non-TCP port (no protocol = ANY fails too); DNS may
// use UDP.
#[test]
fn rule25_l7_needs_tcp() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: UDP
      - port: "8080"
      rules:
        http:
        - method: GET
  - toPorts:
    - ports:
      - port: "53"
        protocol: UDP
      rules:
        dns:
        - matchName: example.com
"#));
    expect_errors(&v, 2);
    let d = find_msg(
        &v,
        codes::L7,
        &spec("L7 rules can only apply to TCP (not UDP) except for DNS rules"),
    );
    assert_eq!(at(d), (11, 9));
    let d = find_msg(
        &v,
        codes::L7,
        &spec("L7 rules can only apply to TCP (not ANY) except for DNS rules"),
    );
    assert_eq!(at(d), (13, 9));
}

// Rule 26: L7 rules with port "0".
#[test]
fn rule26_l7_port_zero() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "0"
        protocol: TCP
      rules:
        http:
        - method: GET
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::L7);
    assert_eq!(d.message, spec("L7 rules can not be used when a port is 0"));
    assert_eq!(at(d), (11, 15));
}

// Rule 27: DNS rules need a port, and no port range.
#[test]
fn rule27_dns_ports() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - rules:
        dns:
        - matchPattern: "*"
  - toPorts:
    - ports:
      - port: "53"
        endPort: 60
        protocol: ANY
      rules:
        dns:
        - matchPattern: "*"
"#));
    expect_errors(&v, 2);
    let d = find_msg(
        &v,
        codes::L7,
        &spec("port 53 must be specified for DNS rules"),
    );
    assert_eq!(at(d), (10, 7));
    let d = find_msg(&v, codes::L7, &spec("DNS rules do not support port ranges"));
    assert_eq!(at(d), (16, 18));
}

// Rule 28: more than one L7 family in one toPorts entry.
#[test]
fn rule28_multiple_l7_families() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules:
        http:
        - method: GET
        kafka:
        - topic: orders
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::L7);
    assert_eq!(
        d.message,
        spec("multiple L7 protocol rule types specified in single rule")
    );
    assert_eq!(at(d), (14, 9));
}

// Rule 29: generic L7 rules: `l7` without `l7proto`, and an empty key.
#[test]
fn rule29_generic_l7() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "9000"
        protocol: TCP
      rules:
        l7:
        - cmd: READ
  - toPorts:
    - ports:
      - port: "9000"
        protocol: TCP
      rules:
        l7proto: r2d2
        l7:
        - "": READ
"#));
    expect_errors(&v, 2);
    let d = find_msg(
        &v,
        codes::L7,
        &spec("'l7' may only be specified when a 'l7proto' is also specified"),
    );
    assert_eq!(at(d), (14, 9));
    let d = find_msg(&v, codes::L7, &spec("Empty key not allowed"));
    assert_eq!(at(d), (23, 11));
}

// Rule 30: HTTP rules. Path and method are Go regular expressions, reported with Go's error
// text; `{` that does not start a repeat is a literal in Go. The header checks (name missing,
// mismatch action, secret name) are CRD constraints, so the JSON Schema reports them (the API
// server rejects these before the agent's own messages could appear).
#[test]
fn rule30_http() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules:
        http:
        - path: /api/(v1
        - method: GET[
        - path: /api/v1/users/{id}
        - path: /a**
        - path: /b{1001}
        - headerMatches:
          - name: ""
          - name: X-Token
            mismatch: DROP
          - name: X-Secret
            secret:
              namespace: shop
"#));
    expect_errors(&v, 7);
    let d = find_msg(
        &v,
        codes::L7,
        &spec("error parsing regexp: missing closing ): `/api/(v1`"),
    );
    assert_eq!(at(d), (15, 17));
    assert_eq!(d.path, "spec.egress[0].toPorts[0].rules.http[0].path");
    let d = find_msg(
        &v,
        codes::L7,
        &spec("error parsing regexp: missing closing ]: `[`"),
    );
    assert_eq!(at(d), (16, 19));
    let d = find_msg(
        &v,
        codes::L7,
        &spec("error parsing regexp: invalid nested repetition operator: `**`"),
    );
    assert_eq!(at(d), (18, 17));
    let d = find_msg(
        &v,
        codes::L7,
        &spec("error parsing regexp: invalid repeat count: `{1001}`"),
    );
    assert_eq!(at(d), (19, 17));
    let d = find_msg(
        &v,
        codes::SCHEMA,
        "spec.egress[0].toPorts[0].rules.http[5].headerMatches[0].name: must be at least 1 character(s)",
    );
    assert_eq!(at(d), (21, 19));
    let d = find_msg(
        &v,
        codes::SCHEMA,
        "spec.egress[0].toPorts[0].rules.http[5].headerMatches[1].mismatch: unsupported value \"DROP\"",
    );
    assert_eq!(at(d), (23, 23));
    let d = find_msg(
        &v,
        codes::SCHEMA,
        "missing required field \"name\" in spec.egress[0].toPorts[0].rules.http[5].headerMatches[2].secret",
    );
    assert_eq!(at(d), (25, 13));
}

// Rule 31: Kafka rules, one message each. The role enum is a CRD constraint (JSON Schema).
#[test]
fn rule31_kafka() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: "9092"
        protocol: TCP
      rules:
        kafka:
        - role: produce
          apiKey: fetch
        - apiKey: frobnicate
        - apiKey: DeleteRecords
        - role: admin
        - apiVersion: x
        - apiVersion: "-1"
        - apiVersion: "12"
        - topic: "bad topic!"
"#));
    expect_errors(&v, 6);
    let d = find_msg(
        &v,
        codes::L7,
        &spec("cannot set both Role \"produce\" and APIKey \"fetch\" together"),
    );
    assert_eq!(at(d), (15, 11));
    let d = find_msg(&v, codes::L7, &spec("invalid Kafka APIKey \"frobnicate\""));
    assert_eq!(at(d), (17, 19));
    let d = find_msg(
        &v,
        codes::SCHEMA,
        "spec.ingress[0].toPorts[0].rules.kafka[3].role: unsupported value \"admin\"",
    );
    assert_eq!(at(d), (19, 17));
    assert_eq!(
        at(find_msg(
            &v,
            codes::L7,
            &spec("invalid Kafka APIVersion \"x\"")
        )),
        (20, 23)
    );
    assert_eq!(
        at(find_msg(
            &v,
            codes::L7,
            &spec("invalid Kafka APIVersion \"-1\"")
        )),
        (21, 23)
    );
    assert_eq!(
        at(find_msg(
            &v,
            codes::L7,
            &spec("invalid Kafka Topic name \"bad topic!\"")
        )),
        (23, 18)
    );
}

// Rule 31: a topic longer than 255 characters is reported once. (Fails while
// json/ward.schema.json keeps the CRD's `maxLength: 255` on kafka[].topic as well.)
#[test]
fn rule31_kafka_topic_too_long_reported_once() {
    let topic = "t".repeat(256);
    let v = check(&cnp(&format!(
        r#"
  endpointSelector: {{}}
  ingress:
  - toPorts:
    - ports:
      - port: "9092"
        protocol: TCP
      rules:
        kafka:
        - topic: {topic}
"#
    )));
    expect_errors(&v, 1);
    let d = find_msg(
        &v,
        codes::L7,
        &spec("kafka topic exceeds maximum len of 255"),
    );
    assert_eq!(at(d), (15, 18));
}

// Rule 32: serverNames with L7 rules but without terminatingTLS.
#[test]
fn rule32_server_names_with_l7() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "443"
        protocol: TCP
      serverNames: [api.example.com]
      rules:
        http:
        - method: GET
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::L7);
    assert_eq!(
        d.message,
        spec("ServerNames are not allowed with L7 rules without TLS termination")
    );
    assert_eq!(at(d), (13, 7));
}

// Rule 32: an empty server name is reported once. (Fails while json/ward.schema.json keeps
// the CRD's `pattern` on serverNames[] as well, which "" does not match.)
#[test]
fn rule32_empty_server_name_reported_once() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "443"
        protocol: TCP
      serverNames: [""]
"#));
    // The CRD's pattern rejects "" before the agent's "empty server name is not allowed"
    // could; the schema finding is reported, once.
    expect_errors(&v, 1);
    let d = find(&v, codes::SCHEMA);
    assert!(
        d.message
            .starts_with("spec.egress[0].toPorts[0].serverNames[0]: does not match"),
        "{}",
        d.message
    );
    assert_eq!(at(d), (13, 21));
}

// Rule 33: listeners: not on ingress, not with L7 rules, and a CCNP cannot use a namespaced
// CiliumEnvoyConfig.
#[test]
fn rule33_listeners() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      listener:
        name: in-listener
        envoyConfig:
          kind: CiliumEnvoyConfig
          name: proxy
  egress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      listener:
        name: out-listener
        envoyConfig:
          name: proxy
      rules:
        http:
        - method: GET
"#));
    expect_errors(&v, 2);
    let d = find_msg(
        &v,
        codes::L7,
        &spec("Listener is not allowed on ingress (in-listener)"),
    );
    assert_eq!(at(d), (13, 7));
    let d = find_msg(
        &v,
        codes::L7,
        &spec("Listener is not allowed with L7 rules (out-listener)"),
    );
    assert_eq!(at(d), (23, 7));

    let v = check(&ccnp(
        r#"
  endpointSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      listener:
        name: my-listener
        envoyConfig:
          kind: CiliumEnvoyConfig
          name: proxy
"#,
    ));
    expect_errors(&v, 1);
    let d = find(&v, codes::L7);
    assert_eq!(
        d.message,
        ccnp_spec("Listener \"my-listener\" in CCNP can not use Kind CiliumEnvoyConfig")
    );
    assert_eq!(at(d), (15, 17));
}

// ---------------------------------------------------------------------------------------------
// Envelope, JSON Schema, CRD-only and whole-revision checks
// ---------------------------------------------------------------------------------------------

// Envelope: the common cilium.io/v1alpha1 mistake.
#[test]
fn wrong_api_version() {
    let src = r#"apiVersion: cilium.io/v1alpha1
kind: CiliumNetworkPolicy
metadata:
  name: test
  namespace: shop
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [world]
"#;
    let v = check(src);
    expect_errors(&v, 1);
    let d = find(&v, codes::WRONG_API_VERSION);
    assert_eq!(
        d.message,
        "no matches for kind \"CiliumNetworkPolicy\" in version \"cilium.io/v1alpha1\""
    );
    assert_eq!(at(d), (1, 13));
    assert!(
        d.hint
            .as_deref()
            .unwrap_or("")
            .starts_with("use cilium.io/v2"),
        "{d}"
    );
}

// JSON Schema: an unknown field gets a did-you-mean. Without a selector the rule also has
// none (rule 2), which Cilium would say too once the unknown field is dropped.
#[test]
fn unknown_field_did_you_mean() {
    let v = check(&cnp(r#"
  endpointSelecter:
    matchLabels:
      app: web
  ingress:
  - fromEntities: [world]
"#));
    expect_errors(&v, 2);
    let d = find(&v, codes::UNKNOWN_FIELD);
    assert_eq!(d.message, "unknown field \"endpointSelecter\" in spec");
    assert_eq!(
        d.hint.as_deref(),
        Some("did you mean \"endpointSelector\"?")
    );
    assert_eq!(at(d), (7, 3));
    assert_eq!(d.path, "spec.endpointSelecter");
    assert_eq!(
        find(&v, codes::RULE).message,
        spec("rule must have one of EndpointSelector or NodeSelector")
    );
}

// §4.6: a top-level description (it belongs inside spec).
#[test]
fn top_level_description() {
    let src = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
description: allow the frontend
metadata:
  name: test
  namespace: shop
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [world]
"#;
    let v = check(src);
    expect_errors(&v, 1);
    let d = find(&v, codes::TOP_LEVEL_DESCRIPTION);
    assert_eq!(
        d.message,
        "top-level description field is no longer supported"
    );
    assert_eq!(at(d), (3, 1));
    assert!(
        d.hint.as_deref().unwrap_or("").contains("inside `spec`"),
        "{d}"
    );

    // Inside spec it is fine.
    let v = check(&cnp(
        "  description: allow the frontend\n  endpointSelector: {}\n  ingress:\n  - fromEntities: [world]\n",
    ));
    expect_clean(&v);
}

// A value of the wrong type (null included) is the JSON Schema's finding alone: the rule that
// would otherwise see the field as missing (metadata, rules 1, 2 and 4) stays quiet. A missing
// metadata is reported once, in Cilium's words.
#[test]
fn wrong_types_are_reported_once() {
    let v = check(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: 123\n  namespace: shop\nspec:\n  endpointSelector: {}\n  ingress: [{}]\n",
    );
    expect_errors(&v, 1);
    let d = find(&v, codes::SCHEMA);
    assert_eq!(d.message, "metadata.name: expected string, got integer");
    assert_eq!(at(d), (4, 9));

    let v = check(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nspec:\n  endpointSelector: {}\n  ingress: [{}]\n",
    );
    expect_errors(&v, 1);
    let d = find(&v, codes::BAD_NAME);
    assert_eq!(d.message, "CiliumNetworkPolicy must have name");
    assert_eq!(at(d), (1, 1));

    let v = check(&cnp("  endpointSelector: {}\n  ingress: {}\n"));
    expect_errors(&v, 1);
    let d = find(&v, codes::SCHEMA);
    assert_eq!(d.message, "spec.ingress: expected array, got object");
    assert_eq!(at(d), (8, 12));

    // An empty value sits where its key ends.
    let v = check(&cnp("  endpointSelector:\n  ingress: [{}]\n"));
    expect_errors(&v, 1);
    let d = find(&v, codes::SCHEMA);
    assert_eq!(
        d.message,
        "spec.endpointSelector: expected object, got null"
    );
    assert_eq!(at(d), (7, 19));

    let v = check(&cnp(r#"
  endpointSelector:
    matchExpressions:
    - key: app
      operator: In
      values: web
  ingress: [{}]
"#));
    expect_errors(&v, 1);
    let d = find(&v, codes::SCHEMA);
    assert_eq!(
        d.message,
        "spec.endpointSelector.matchExpressions[0].values: expected array, got string"
    );
    assert_eq!(at(d), (11, 15));
}

// CRD enum: world-ipv4 is known to the agent but not to the CRD; "World" is case-sensitive.
#[test]
fn entities_outside_the_crd_enum() {
    let v = check(&cnp(r#"
  endpointSelector: {}
  ingress:
  - fromEntities:
    - world-ipv4
    - World
"#));
    expect_errors(&v, 2);
    let d = find_msg(
        &v,
        codes::ENTITY,
        &spec(
            "entity \"world-ipv4\" is accepted by the agent but not by the CRD's enum, so the API server rejects it",
        ),
    );
    assert_eq!(at(d), (10, 7));
    assert_eq!(
        d.hint.as_deref(),
        Some("use \"world\", which covers both IPv4 and IPv6")
    );
    let d = find_msg(&v, codes::ENTITY, &spec("unsupported entity: World"));
    assert_eq!(at(d), (11, 7));
    assert_eq!(d.hint.as_deref(), Some("did you mean \"world\"?"));
}

// §4.3: a CNP subject must not select reserved:init (a CCNP may).
#[test]
fn reserved_init_subject() {
    let body = r#"
  endpointSelector:
    matchLabels:
      reserved:init: ""
  egress:
  - toEntities: [host]
"#;
    let v = check(&cnp(body));
    expect_errors(&v, 1);
    let d = find(&v, codes::RESERVED_INIT);
    assert_eq!(
        d.message,
        spec("CiliumNetworkPolicy incorrectly matches reserved:init label")
    );
    assert_eq!(at(d), (8, 5));
    assert_eq!(d.path, "spec.endpointSelector");

    let v = check(&cnp(r#"
  endpointSelector:
    matchExpressions:
    - key: reserved:init
      operator: Exists
  egress:
  - toEntities: [host]
"#));
    expect_errors(&v, 1);
    assert_eq!(at(find(&v, codes::RESERVED_INIT)), (8, 5));

    expect_clean(&check(&ccnp(body)));
}

// Whole revision: the same (kind, namespace, name) in two files. Same name in another
// namespace, or as another kind, is a different object.
#[test]
fn duplicate_object_across_files() {
    let body = "  endpointSelector: {}\n  ingress:\n  - fromEntities: [world]\n";
    let other_ns = cnp(body).replace("namespace: shop", "namespace: billing");
    let b = format!(
        "{}---\n{}",
        cnp(body).replace("name: test", "name: other"),
        cnp(body)
    );
    let v = validate(&[
        ("a.yaml", &cnp(body)),
        ("b.yaml", &b),
        ("c.yaml", &other_ns),
        ("d.yaml", &ccnp(body)),
    ]);
    expect_errors(&v, 1);
    let d = find(&v, codes::DUPLICATE_OBJECT);
    assert_eq!(
        d.message,
        "CiliumNetworkPolicy/shop/test is defined more than once"
    );
    assert_eq!(d.file, "b.yaml");
    assert_eq!(at(d), (11, 1));
    assert_eq!(
        d.hint.as_deref(),
        Some("it is first defined at a.yaml:1; rename one or delete it")
    );
    assert_eq!(v.resources.len(), 4);
}

// Three definitions of one object: the first in file order is kept, each later one is
// reported against it, whatever order the keys sort in.
#[test]
fn duplicate_object_keeps_the_first_definition() {
    let body = "  endpointSelector: {}\n  ingress:\n  - fromEntities: [world]\n";
    let named = |n: &str| cnp(body).replace("name: test", &format!("name: {n}"));
    let c = format!("{}---\n{}", named("zz"), cnp(body));
    let v = validate(&[
        ("a.yaml", &named("aa")),
        ("b.yaml", &cnp(body)),
        ("c.yaml", &c),
        ("d.yaml", &cnp(body)),
    ]);
    let dups: Vec<_> = v
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::DUPLICATE_OBJECT)
        .collect();
    assert_eq!(
        dups.iter().map(|d| d.file.as_str()).collect::<Vec<_>>(),
        ["c.yaml", "d.yaml"]
    );
    assert!(
        dups.iter().all(|d| d.hint.as_deref()
            == Some("it is first defined at b.yaml:1; rename one or delete it"))
    );
    let kept: Vec<_> = v
        .resources
        .iter()
        .map(|r| (r.key.name.as_str(), r.origin.file.as_str()))
        .collect();
    assert_eq!(
        kept,
        [("aa", "a.yaml"), ("test", "b.yaml"), ("zz", "c.yaml")]
    );
}

// A realistic CNP and CCNP without any finding, not even a warning.
#[test]
fn valid_policies_are_clean() {
    let cnp_src = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: backend
  namespace: shop
  labels:
    app.kubernetes.io/part-of: shop
spec:
  description: Backend accepts the frontend and talks to its database, DNS and the payment API.
  endpointSelector:
    matchLabels:
      app: backend
    matchExpressions:
    - key: tier
      operator: In
      values: [api, worker]
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: frontend
    toPorts:
    - ports:
      - port: "8080"
        protocol: TCP
      - port: http-alt
        protocol: TCP
      rules:
        http:
        - method: GET|POST
          path: /api/v1/orders(/.*)?
          headerMatches:
          - name: X-Request-Id
        - method: GET
          path: /healthz
  - fromEntities: [cluster]
    icmps:
    - fields:
      - type: EchoRequest
      - type: 128
        family: IPv6
  ingressDeny:
  - fromCIDRSet:
    - cidr: 192.168.0.0/16
      except: [192.168.10.0/24]
    toPorts:
    - ports:
      - port: "22"
  egress:
  - toEndpoints:
    - matchLabels:
        k8s:io.kubernetes.pod.namespace: kube-system
        k8s:k8s-app: kube-dns
    toPorts:
    - ports:
      - port: "53"
        protocol: ANY
      rules:
        dns:
        - matchPattern: "*.shop.svc.cluster.local"
        - matchName: api.payments.example.com
  - toEndpoints:
    - matchLabels:
        app: postgres
    toPorts:
    - ports:
      - port: "5432"
        endPort: 5433
        protocol: TCP
  - toFQDNs:
    - matchName: api.payments.example.com
    toPorts:
    - ports:
      - port: "443"
        protocol: TCP
  - toCIDR: [10.20.0.0/16, 10.30.0.1]
  egressDeny:
  - toEntities: [world]
    toPorts:
    - ports:
      - port: "25"
        protocol: TCP
"#;
    let ccnp_src = r#"apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: host-baseline
specs:
- description: Nodes accept SSH from the bastion network and kubelet traffic from the cluster.
  nodeSelector:
    matchLabels:
      node-role.kubernetes.io/worker: ""
  ingress:
  - fromCIDRSet:
    - cidr: 10.0.0.0/24
    toPorts:
    - ports:
      - port: "22"
        protocol: TCP
  - fromEntities: [cluster, remote-node, health]
    toPorts:
    - ports:
      - port: "10250"
        protocol: TCP
      - port: "4240"
        protocol: TCP
  egress:
  - toEntities: [world]
    toPorts:
    - ports:
      - port: "53"
        protocol: UDP
      rules:
        dns:
        - matchPattern: "*"
- endpointSelector: {}
  enableDefaultDeny:
    ingress: false
    egress: false
  egressDeny:
  - toCIDRSet:
    - cidr: 169.254.169.254/32
"#;
    let v = validate(&[("backend.yaml", cnp_src), ("host.yaml", ccnp_src)]);
    expect_clean(&v);
    assert_eq!(v.resources.len(), 2);
}

// One file with many different problems (in two documents) reports all of them in one run.
#[test]
fn all_problems_in_one_run() {
    let src = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: test
  namespace: shop
spec:
  endpointSelector:
    matchExpressions:
    - key: app
      operator: In
  ingress:
  - fromEntities: [wrld]
    fromCIDR: [10.0.0.0/8]
    toPorts:
    - ports:
      - port: "70000"
        protocl: TCP
  egress:
  - toCIDRSet:
    - cidr: 10.0.0.0/8
      except: [11.0.0.0/16]
  - toFQDNs:
    - matchName: "*.example.com"
---
apiVersion: cilium.io/v1alpha1
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: test
spec:
  nodeSelector: {}
  egress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules:
        http:
        - path: /x(
"#;
    let v = check(src);
    let got: Vec<(&str, usize, usize)> = v
        .diagnostics
        .iter()
        .map(|d| (d.code, d.line, d.column))
        .collect();
    assert_eq!(
        got,
        vec![
            (codes::SELECTOR, 9, 7),
            (codes::PEER_COMBINATION, 12, 5),
            (codes::ENTITY, 12, 20),
            (codes::PORT, 16, 15),
            (codes::UNKNOWN_FIELD, 17, 9),
            (codes::CIDR, 21, 16),
            (codes::FQDN, 23, 18),
            (codes::WRONG_API_VERSION, 25, 13),
            (codes::L7, 37, 9),
            (codes::L7, 38, 17),
        ],
        "{}",
        listing(&v)
    );
    assert!(v.diagnostics.iter().all(|d| d.severity == Severity::Error));
    assert_eq!(
        find(&v, codes::UNKNOWN_FIELD).hint.as_deref(),
        Some("did you mean \"protocol\"?")
    );
}
