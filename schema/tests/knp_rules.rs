//! Kubernetes NetworkPolicy and CiliumCIDRGroup validation: the API server's own checks
//! (kubernetes/kubernetes pkg/apis/networking/validation/validation.go), with its messages,
//! through the public loader so codes, lines and columns are pinned too; reference
//! knp-and-cidrgroup-semantics §2 and the cases of §4 (numbered as there).
//!
//! Layout: [`knp`] puts its body after a five-line header and `spec:` on line 6, so the first
//! body line is line 7.

use ward_schema::diagnostic::codes;
use ward_schema::{Limits, Severity, Validation, assemble, load_file};

const KNP_HEAD: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test
  namespace: shop
spec:
";

fn knp(body: &str) -> String {
    format!("{KNP_HEAD}{}", body.strip_prefix('\n').unwrap_or(body))
}

fn check(src: &str) -> Validation {
    assemble(vec![load_file(
        "np.yaml",
        src.as_bytes(),
        &Limits::default(),
    )])
}

/// `(code, line, column, message)` of every diagnostic.
fn found(v: &Validation) -> Vec<(String, usize, usize, String)> {
    v.diagnostics
        .iter()
        .map(|d| (d.code.to_string(), d.line, d.column, d.message.clone()))
        .collect()
}

fn one(v: &Validation, code: &str, line: usize, column: usize, message: &str) {
    assert_eq!(
        found(v),
        [(code.to_owned(), line, column, message.to_owned())],
        "{:#?}",
        v.diagnostics
    );
}

/// No error, and exactly one warning: `code` at `(line, column)` saying `message`.
fn one_warning(v: &Validation, code: &str, at: (usize, usize), message: &str) {
    assert_eq!(v.error_count(), 0, "{:#?}", v.diagnostics);
    let warnings: Vec<_> = v
        .diagnostics
        .iter()
        .map(|d| (d.severity, d.code, (d.line, d.column), d.message.as_str()))
        .collect();
    assert_eq!(warnings, [(Severity::Warning, code, at, message)]);
}

#[test]
fn a_valid_network_policy_is_clean_and_loaded() {
    let v = check(&knp(r#"
  podSelector:
    matchLabels: {app: api}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {team: ops}}
          podSelector: {matchExpressions: [{key: app, operator: In, values: [oncall]}]}
        - ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}
      ports:
        - {protocol: TCP, port: 8080, endPort: 8080}
        - {protocol: UDP, port: dns}
        - {protocol: SCTP}
  egress:
    - {}
"#));
    assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
    assert_eq!(v.resources.len(), 1);
    assert_eq!(
        v.resources
            .iter()
            .next()
            .map(|r| r.key.to_string())
            .as_deref(),
        Some("NetworkPolicy/shop/test")
    );
}

/// Case 20: an empty peer.
#[test]
fn an_empty_peer_is_required() {
    let v = check(&knp(
        "  podSelector: {}\n  ingress:\n    - from:\n        - {}\n",
    ));
    one(
        &v,
        codes::KNP_PEER,
        10,
        11,
        "spec.ingress[0].from[0]: Required value: must specify a peer",
    );
}

/// Case 20: an ipBlock beside a selector.
#[test]
fn ip_block_and_a_selector_are_forbidden_together() {
    let v = check(&knp(r#"
  podSelector: {}
  egress:
    - to:
        - ipBlock: {cidr: 10.0.0.0/8}
          podSelector: {}
"#));
    one(
        &v,
        codes::KNP_PEER,
        10,
        11,
        "spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer",
    );
}

/// Case 9: an except equal to cidr, or outside it.
#[test]
fn excepts_must_be_strict_subsets() {
    for except in ["10.0.0.0/24", "10.0.1.0/24", "2001:db8::/64"] {
        let v = check(&knp(&format!(
            "  podSelector: {{}}\n  ingress:\n    - from:\n        - ipBlock:\n            cidr: 10.0.0.0/24\n            except: [\"{except}\"]\n"
        )));
        one(
            &v,
            codes::CIDR,
            12,
            22,
            &format!(
                "spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"{except}\": must be a strict subset of `cidr`"
            ),
        );
    }
}

#[test]
fn ip_block_cidrs_must_parse() {
    let v = check(&knp(
        "  podSelector: {}\n  ingress:\n    - from:\n        - ipBlock: {cidr: 10.0.0.1}\n",
    ));
    one(
        &v,
        codes::CIDR,
        10,
        27,
        "spec.ingress[0].from[0].ipBlock.cidr: Invalid value: \"10.0.0.1\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
    );
}

/// Case 10: endPort below port is an error; equal is fine.
#[test]
fn end_port_must_not_be_below_port() {
    let v = check(&knp(
        "  podSelector: {}\n  ingress:\n    - ports:\n        - {port: 8080, endPort: 8079}\n",
    ));
    one(
        &v,
        codes::PORT,
        10,
        33,
        "spec.ingress[0].ports[0].endPort: Invalid value: 8079: must be greater than or equal to `port`",
    );
}

#[test]
fn end_port_needs_a_numeric_port() {
    let v = check(&knp(
        "  podSelector: {}\n  ingress:\n    - ports:\n        - {port: http, endPort: 90}\n        - {endPort: 90}\n",
    ));
    let messages: Vec<String> = found(&v).into_iter().map(|f| f.3).collect();
    assert_eq!(
        messages,
        [
            "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric",
            "spec.ingress[0].ports[1].endPort: Invalid value: 90: may not be specified when `port` is not specified",
        ]
    );
}

#[test]
fn port_numbers_are_between_1_and_65535() {
    let v = check(&knp(
        "  podSelector: {}\n  ingress:\n    - ports:\n        - {port: 0}\n",
    ));
    one(
        &v,
        codes::PORT,
        10,
        18,
        "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
    );
}

/// Case 11: a quoted number is a port name, and a name needs a letter.
#[test]
fn a_quoted_port_number_is_an_invalid_name() {
    let v = check(&knp(
        "  podSelector: {}\n  ingress:\n    - ports:\n        - {port: \"80\"}\n",
    ));
    one(
        &v,
        codes::PORT,
        10,
        18,
        "spec.ingress[0].ports[0].port: Invalid value: \"80\": must contain at least one letter (a-z)",
    );
    assert_eq!(
        v.diagnostics[0].hint.as_deref(),
        Some("a port number is written without quotes: port: 80")
    );
}

/// Case 12: protocols are case-sensitive.
#[test]
fn protocols_are_case_sensitive() {
    let v = check(&knp(
        "  podSelector: {}\n  ingress:\n    - ports:\n        - {protocol: tcp}\n",
    ));
    one(
        &v,
        codes::PORT,
        10,
        22,
        "spec.ingress[0].ports[0].protocol: Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
    );
    assert_eq!(
        v.diagnostics[0].hint.as_deref(),
        Some("protocols are upper case: TCP")
    );
}

/// Case 20: three policyTypes; an unknown one.
#[test]
fn policy_types() {
    let v = check(&knp(
        "  podSelector: {}\n  policyTypes: [Ingress, Egress, Ingress]\n",
    ));
    one(
        &v,
        codes::KNP_POLICY_TYPES,
        8,
        16,
        "spec.policyTypes: Invalid value: [\"Ingress\",\"Egress\",\"Ingress\"]: may not specify more than two policyTypes",
    );
    let v = check(&knp(
        "  podSelector: {}\n  policyTypes: [Ingress, ingress]\n",
    ));
    one(
        &v,
        codes::KNP_POLICY_TYPES,
        8,
        26,
        "spec.policyTypes[1]: Unsupported value: \"ingress\": supported values: \"Egress\", \"Ingress\"",
    );
    assert!(
        check(&knp(
            "  podSelector: {}\n  policyTypes: [Ingress, Ingress]\n"
        ))
        .diagnostics
        .is_empty()
    );
}

#[test]
fn selectors_are_label_selectors() {
    let v = check(&knp(
        "  podSelector:\n    matchExpressions: [{key: app, operator: Has}]\n",
    ));
    assert_eq!(v.error_count(), 1, "{:#?}", v.diagnostics);
    assert_eq!(v.diagnostics[0].code, codes::SELECTOR);
}

#[test]
fn unknown_fields_come_from_the_openapi_schema() {
    let v = check(&knp("  podSelector: {}\n  ingress:\n    - form: []\n"));
    assert_eq!(v.error_count(), 1, "{:#?}", v.diagnostics);
    let d = &v.diagnostics[0];
    assert_eq!((d.code, d.line), (codes::UNKNOWN_FIELD, 9));
    assert_eq!(d.hint.as_deref(), Some("did you mean \"from\"?"));
}

#[test]
fn cidr_groups_at_both_versions_and_their_invalid_cidrs() {
    for api in ["cilium.io/v2", "cilium.io/v2alpha1"] {
        let v = check(&format!(
            "apiVersion: {api}\nkind: CiliumCIDRGroup\nmetadata:\n  name: office\nspec:\n  externalCIDRs:\n    - 192.0.2.0/24\n    - 192.0.2.300/32\n"
        ));
        assert_eq!(v.resources.len(), 1);
        one_warning(
            &v,
            codes::CIDR,
            (8, 7),
            "CIDRGroup has invalid CIDR \"192.0.2.300/32\"; Cilium skips it",
        );
    }
    let v = check("apiVersion: cilium.io/v2\nkind: CiliumCIDRGroup\nmetadata:\n  name: office\n");
    assert_eq!(v.error_count(), 1, "{:#?}", v.diagnostics);
    assert_eq!(v.diagnostics[0].message, "missing required field \"spec\"");
}

/// Case 14: `[Egress]` with ingress rules: upstream ignores them, Cilium isolates ingress and
/// applies them; ward warns at the key.
#[test]
fn rules_outside_policy_types_are_a_warning() {
    let v = check(&knp(
        "  podSelector: {}\n  policyTypes: [Egress]\n  ingress:\n    - {}\n",
    ));
    one_warning(
        &v,
        codes::KNP_POLICY_TYPES,
        (9, 3),
        "spec.ingress has rules but spec.policyTypes does not list Ingress: Kubernetes ignores them, Cilium enforces them and isolates ingress (cilium/cilium#48703)",
    );
    assert!(
        check(&knp("  podSelector: {}\n  egress: [{}]\n"))
            .diagnostics
            .is_empty(),
        "no policyTypes: defaulted"
    );
}
