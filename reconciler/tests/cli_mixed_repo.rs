//! A real repository keeps Deployments, Services, Kustomizations, Helm charts, Kubernetes
//! NetworkPolicies and other projects' policy kinds beside its Cilium policies: ward validates
//! the NetworkPolicies (a managed kind), skips and counts what it does not manage (an error
//! with --strict-kinds), skips Helm charts, hints at rendering a stray template, honours
//! `.wardignore` in every folder, and still catches a broken CNP among all of it.

mod util;

use util::{EXIT_ERROR, EXIT_OK, Env, Repo, cnp};

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n";
const SERVICES: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec: {ports: [{port: 8080}]}\n";
const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml, services.yaml]\n";
const KNP: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n";
/// Calico's NetworkPolicy: another project's kind of the same name, skipped.
const CALICO: &str = "apiVersion: crd.projectcalico.org/v1\nkind: NetworkPolicy\nmetadata: {name: calico, namespace: shop}\nspec: {selector: all()}\n";

/// The scratch repository, committed.
fn mixed(env: &Env) -> Repo {
    let mut repo = env.repo("mixed");
    repo.write("policies/apps/deployment.yaml", DEPLOYMENT)
        .write("policies/apps/services.yaml", SERVICES)
        .write("policies/apps/kustomization.yaml", KUSTOMIZATION)
        .write("policies/apps/netpol.yaml", KNP)
        .write("policies/apps/calico.yaml", CALICO)
        .write("policies/charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
        .write("policies/charts/web/values.yaml", "replicas: 2\n")
        .write(
            "policies/charts/web/templates/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n{{- if .Values.x }}\nspec: {}\n{{- end }}\n",
        )
        .write("policies/shop/backend.yaml", cnp("shop", "backend", 80))
        // A nested .wardignore: everything in legacy/ but keep.yaml is ignored.
        .write("policies/legacy/.wardignore", "*.yaml\n!keep.yaml\n")
        .write("policies/legacy/old.yaml", "this: [is not valid\n")
        .write("policies/legacy/keep.yaml", cnp("shop", "kept", 443));
    repo.commit("a mixed repository");
    repo
}

#[test]
fn other_kinds_and_charts_are_skipped_and_counted_and_a_broken_cnp_is_still_caught() {
    let env = Env::new();
    let mut repo = mixed(&env);
    let skipped = "7 file(s), 8 document(s), 0 error(s), 0 warning(s), 6 object(s) of other kinds skipped (Deployment: 1, Helm chart: 1, Kustomization: 1, NetworkPolicy: 1, Service: 2)";
    for rev in [None, Some("HEAD")] {
        let mut args = vec!["validate"];
        args.extend(rev.map(|r| ["--rev", r]).into_iter().flatten());
        repo.ward(&args)
            .code(EXIT_OK)
            .stdout_has(&format!("valid: {skipped}"));
    }
    let json = repo.ward(&["validate", "--format", "json"]);
    json.code(EXIT_OK);
    json.check(
        json.json()["skipped"]["Service"] == 2,
        "JSON counts the skipped kinds",
    );
    // The Kubernetes NetworkPolicy is validated like the Cilium policies (issue 13 counted it
    // as skipped); only Calico's kind of that name is skipped.
    repo.write(
        "policies/apps/netpol.yaml",
        KNP.replace(
            "{podSelector: {}}",
            "{podSelector: {}, policyTypes: [Ingres]}",
        ),
    );
    repo.ward(&["validate"])
        .code(EXIT_ERROR)
        .stdout_has("policies/apps/netpol.yaml:4:39: error[WARD-S016]: spec.policyTypes[0]: Unsupported value: \"Ingres\"");
    repo.write("policies/apps/netpol.yaml", KNP);

    // A broken CNP among them is still caught.
    repo.write(
        "policies/shop/broken.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: broken, namespace: shop}\nspec:\n  endpointSelecter: {}\n",
    );
    repo.commit("broken");
    repo.ward(&["validate", "--rev", "HEAD"])
        .code(EXIT_ERROR)
        .stdout_has("policies/shop/broken.yaml:5:3: error[WARD-J001]");
}

#[test]
fn strict_kinds_makes_other_kinds_errors_and_typos_of_ours_are_never_skipped() {
    let env = Env::new();
    let repo = mixed(&env);
    repo.ward(&["validate", "--strict-kinds"])
        .code(EXIT_ERROR)
        .stdout_has("policies/apps/deployment.yaml:2:7: error[WARD-K004]: kind \"Deployment\" is not one ward manages (--strict-kinds)")
        .stdout_has("policies/apps/calico.yaml:2:7: error[WARD-K004]: kind \"NetworkPolicy\" is not one ward manages (--strict-kinds)")
        .stdout_lacks("netpol.yaml");
    repo.write(
        "policies/shop/typo.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicies\nmetadata: {name: t, namespace: shop}\nspec: {endpointSelector: {}}\n",
    );
    repo.ward(&["validate"])
        .code(EXIT_ERROR)
        .stdout_has("error[WARD-K004]: unknown kind \"CiliumNetworkPolicies\"");
}

#[test]
fn a_template_outside_a_chart_gets_a_hint_to_render_it() {
    let env = Env::new();
    let repo = env.repo("t");
    repo.write(
        "policies/tmpl.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {{ .Values.name }}\n",
    );
    repo.ward(&["validate"]).code(EXIT_ERROR).stdout_has(
        "hint: this looks like a Helm or Go template: render it first (`helm template`)",
    );
}
