//! `--cilium-version`: each Cilium release ward supports validates with the schemas generated
//! from its own CRDs and its own rules, and the engine evaluates what that release enforces
//! (`fromRequires`, which 1.19 removed). The default is the newest release.

mod util;

use std::path::Path;
use util::{EXIT_ERROR, EXIT_OK, Env};

/// A policy that uses a field of each release: `log` (1.18 on), `fromRequires` (before 1.19)
/// and the VRRP protocol (1.19 on).
const MIXED: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: prod-only
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      env: prod
  log:
    value: prod
  ingress:
    - fromRequires:
        - matchLabels:
            env: prod
    - fromEndpoints:
        - matchLabels:
            app: keepalived
      toPorts:
        - ports:
            - port: "0"
              protocol: VRRP
"#;

#[test]
fn each_release_validates_with_its_own_schema_and_rules() {
    let env = Env::new();
    let repo = env.repo("mixed");
    repo.write("policies/prod-only.yaml", MIXED);
    let run = |version: &str| repo.ward(&["validate", "--cilium-version", version]);
    run("1.17")
        .code(EXIT_ERROR)
        .stdout_has("policies/prod-only.yaml:10:3: error[WARD-J001]: unknown field \"log\" in spec")
        .stdout_has("hint: \"log\" is a field of Cilium 1.18 and 1.19 but not of 1.17 (--cilium-version); if the cluster runs 1.18, pass --cilium-version 1.18")
        .stdout_has("policies/prod-only.yaml:13:7: warning[WARD-S017]: fromRequires is deprecated in Cilium 1.17 and removed in 1.19")
        .stdout_has("invalid protocol \"VRRP\", must be { tcp | udp | sctp | any }");
    run("1.18")
        .code(EXIT_ERROR)
        .stdout_lacks("\"log\"")
        .stdout_has("warning[WARD-S017]: fromRequires is deprecated in Cilium 1.18")
        .stdout_has("invalid protocol \"VRRP\"")
        .stdout_has("1 error(s), 1 warning(s)");
    // The default is 1.19; a patch release and a leading v are read as the minor version.
    for args in [
        &["validate"][..],
        &["validate", "--cilium-version", "v1.19.7"][..],
    ] {
        repo.ward(args)
            .code(EXIT_ERROR)
            .stdout_has("policies/prod-only.yaml:13:7: error[WARD-J001]: unknown field \"fromRequires\" in spec.ingress[0]")
            .stdout_has("hint: \"fromRequires\" is a field of Cilium 1.17 and 1.18 but not of 1.19 (--cilium-version); if the cluster runs 1.18, pass --cilium-version 1.18")
            .stdout_lacks("VRRP")
            .stdout_has("1 error(s), 0 warning(s)");
    }
    // The environment variable works as the flag does.
    env.runner()
        .run_with(
            &repo.path,
            &["validate"],
            &[("WARD_CILIUM_VERSION", Path::new("1.18"))],
        )
        .code(EXIT_ERROR)
        .stdout_has("fromRequires is deprecated in Cilium 1.18");
    repo.ward(&["validate", "--cilium-version", "1.16"])
        .code(EXIT_ERROR)
        .stderr_has("unsupported Cilium version \"1.16\": ward has schemas for 1.17, 1.18, 1.19");
}

/// The requirement policy and a PolicyTest that shows what it does, for Cilium 1.18.
const REQUIRES: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: prod-requires-prod
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      env: prod
  ingress:
    - fromRequires:
        - matchLabels:
            env: prod
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: backend-from-frontend
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      app: backend
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend
      toPorts:
        - ports:
            - port: "80"
              protocol: TCP
"#;

const REQUIRES_TEST: &str = r#"apiVersion: ward.dev/v1alpha1
kind: PolicyTest
metadata:
  name: requires
spec:
  endpoints:
    - {name: backend-prod, namespace: shop, labels: {app: backend, env: prod}, ip: 10.0.1.20}
    - {name: backend-dev, namespace: shop, labels: {app: backend, env: dev}, ip: 10.0.1.21}
    - {name: frontend-prod, namespace: shop, labels: {app: frontend, env: prod}, ip: 10.0.1.10}
    - {name: frontend-dev, namespace: shop, labels: {app: frontend, env: dev}, ip: 10.0.1.11}
  expectations:
    - {from: frontend-prod, to: backend-prod, port: 80, protocol: TCP, expect: allow}
    - {from: frontend-dev, to: backend-prod, port: 80, protocol: TCP, expect: deny}
    - {from: frontend-dev, to: backend-dev, port: 80, protocol: TCP, expect: allow}
"#;

#[test]
fn from_requires_narrows_every_peer_of_the_selected_endpoints() {
    let env = Env::new();
    let repo = env.repo("requires");
    repo.write("policies/requires.yaml", REQUIRES)
        .write("policies/tests/requires.yaml", REQUIRES_TEST);
    repo.ward(&["test", "--cilium-version", "1.18"])
        .code(EXIT_OK)
        .stdout_has("  ✓ frontend-dev → backend-prod TCP/80: deny")
        .stdout_has("3 passed, 0 failed");
    // Flip the one expectation that only the requirement decides: the test must fail.
    let flipped = REQUIRES_TEST.replace(
        "{from: frontend-dev, to: backend-prod, port: 80, protocol: TCP, expect: deny}",
        "{from: frontend-dev, to: backend-prod, port: 80, protocol: TCP, expect: allow}",
    );
    repo.write("policies/tests/requires.yaml", flipped);
    repo.ward(&["test", "--cilium-version", "1.18"])
        .code(EXIT_ERROR)
        .stdout_has("  ✗ frontend-dev → backend-prod TCP/80: expect allow")
        .stdout_has("2 passed, 1 failed");
    // Cilium 1.19 has no fromRequires: the same files do not validate.
    repo.ward(&["test"])
        .code(EXIT_ERROR)
        .stdout_has("unknown field \"fromRequires\"");
}

/// CiliumCIDRGroup is served at cilium.io/v2 from Cilium 1.18 on; 1.17 has v2alpha1 only.
#[test]
fn cidr_groups_are_served_at_v2_from_1_18() {
    let env = Env::new();
    let repo = env.repo("groups");
    let group = |api: &str| {
        format!(
            "apiVersion: {api}\nkind: CiliumCIDRGroup\nmetadata:\n  name: partners\nspec:\n  externalCIDRs:\n    - 192.0.2.0/24\n"
        )
    };
    repo.write("policies/partners.yaml", group("cilium.io/v2"));
    repo.ward(&["validate", "--cilium-version", "1.17"])
        .code(EXIT_ERROR)
        .stdout_has("policies/partners.yaml:1:13: error[WARD-K003]: Cilium 1.17 does not serve CiliumCIDRGroup at cilium.io/v2")
        .stdout_has("hint: use cilium.io/v2alpha1");
    repo.ward(&["validate", "--cilium-version", "1.18"])
        .code(EXIT_OK);
    repo.write("policies/partners.yaml", group("cilium.io/v2alpha1"));
    repo.ward(&["validate", "--cilium-version", "1.17"])
        .code(EXIT_OK);
}
