//! `--verify-signatures`: commits and tags signed by real `git` with real SSH and OpenPGP
//! keys. A revision signed by a trusted key plans and applies; an unsigned one, one signed by
//! a key that is not trusted, or one whose key the allowed signers restrict, is refused with
//! the full commit and the reason, exit 1, and the state directory stays as it was.
#![allow(clippy::unwrap_used, reason = "tests")]

mod util;

use std::path::{Path, PathBuf};
use util::sign::{Keys, Signer};
use util::{EXIT_ERROR, EXIT_OK, Env, Repo, cnp, snapshot};

/// `None` when ssh-keygen, gpg and git are all here; else what to install.
fn tools_missing() -> Option<&'static str> {
    let has = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok()
    };
    let ssh = std::process::Command::new("ssh-keygen")
        .arg("-?")
        .output()
        .is_ok();
    (!(ssh && has("gpg") && has("git")))
        .then_some("needs ssh-keygen, gpg and git (apt-get install openssh-client gnupg git)")
}

/// A sandbox with keys and a repository of the example policies.
struct Setup {
    env: Env,
    keys: Keys,
    repo: Repo,
}

fn setup(test: &str) -> Option<Setup> {
    if !ward_testkit::can_run(test, tools_missing()) {
        return None;
    }
    let env = Env::new();
    let keys = Keys::new(&env.path().join("keys"));
    let repo = env.repo("repo");
    repo.copy_fixtures();
    // The state directory lives in the working tree; `git add -A` must not take it.
    std::fs::write(repo.path.join(".git/info/exclude"), ".ward/\n").unwrap();
    Some(Setup { env, keys, repo })
}

/// `ward <command> --rev <rev> --verify-signatures <trust…>` in the repository.
fn ward_verified(s: &Setup, command: &[&str], rev: &str, trust: &[(&str, &Path)]) -> util::Run {
    let mut args: Vec<String> = command.iter().map(|a| a.to_string()).collect();
    args.extend(["--rev".into(), rev.into(), "--verify-signatures".into()]);
    for (flag, file) in trust {
        args.push(flag.to_string());
        args.push(file.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.repo.ward(&args)
}

fn signers(s: &Setup, alice: &Signer) -> PathBuf {
    s.keys
        .allowed_signers("allowed_signers", &[("alice@ward.invalid", "", alice)])
}

#[test]
fn ssh_signed_commits_by_listed_keys_apply_and_others_are_refused() {
    let Some(s) = setup("ssh_signed_commits_by_listed_keys_apply_and_others_are_refused") else {
        return;
    };
    let alice = s.keys.ssh("alice");
    let mallory = s.keys.ssh("mallory");
    let allowed = signers(&s, &alice);
    let trust = [("--allowed-signers", allowed.as_path())];

    let signed = s.keys.commit(&s.repo.path, &alice, "policies, signed");
    let run = ward_verified(&s, &["apply"], "HEAD", &trust);
    run.code(EXIT_OK).stdout_has("13 to create");
    let applied = snapshot(&s.repo.state());
    assert_eq!(
        util::inventory(&s.repo.state())["applied_revision"],
        signed.as_str()
    );

    // Unsigned: refused, nothing written.
    s.repo
        .write("policies/extra.yaml", cnp("shop", "extra", 81));
    let unsigned = s.keys.commit(&s.repo.path, &Signer::None, "unsigned");
    let run = ward_verified(&s, &["apply"], "HEAD", &trust);
    run.code(EXIT_ERROR)
        .stderr_has(&format!("commit {unsigned} is not signed"))
        .stderr_has("refused (--verify-signatures), nothing was read or applied; sign it with a trusted key");
    assert_eq!(
        snapshot(&s.repo.state()),
        applied,
        "the state directory changed"
    );
    ward_verified(&s, &["plan"], "HEAD", &trust)
        .code(EXIT_ERROR)
        .stderr_has(&format!("commit {unsigned} is not signed"));

    // Signed, but by a key the allowed signers do not list.
    let by_mallory = s.keys.commit(&s.repo.path, &mallory, "signed by mallory");
    let fp = s.keys.ssh_fingerprint(&mallory);
    ward_verified(&s, &["apply"], "HEAD", &trust)
        .code(EXIT_ERROR)
        .stderr_has(&format!(
            "commit {by_mallory} is signed by SSH key {fp} which is not in the allowed signers ({})",
            allowed.display()
        ));
    assert_eq!(
        snapshot(&s.repo.state()),
        applied,
        "the state directory changed"
    );

    // A copy of the signed commit with another message keeps the signature, which no longer
    // matches: a bad signature by a listed key.
    let tampered = tamper(&s.repo, &signed, "policies, signed", "policies, altered");
    ward_verified(&s, &["plan"], &tampered, &trust)
        .code(EXIT_ERROR)
        .stderr_has(&format!(
            "commit {tampered} has a bad SSH signature by key {}",
            s.keys.ssh_fingerprint(&alice)
        ));

    // The signed commit still applies by id; without the flag nothing is checked.
    ward_verified(&s, &["plan"], &signed, &trust).code(EXIT_OK);
    s.repo.ward(&["plan", "--rev", "HEAD"]).code(EXIT_OK);
}

/// Writes a copy of commit `id` whose text has `from` replaced by `to` (its signature header
/// kept as it was); returns the new commit's id.
fn tamper(repo: &Repo, id: &str, from: &str, to: &str) -> String {
    let odb = repo.git.odb().unwrap();
    let raw = odb.read(git2::Oid::from_str(id).unwrap()).unwrap();
    let text = String::from_utf8(raw.data().to_vec()).unwrap();
    assert!(text.contains("gpgsig"), "the commit is signed: {text}");
    let altered = text.replace(from, to);
    assert_ne!(altered, text, "{from:?} is in the commit");
    odb.write(git2::ObjectType::Commit, altered.as_bytes())
        .unwrap()
        .to_string()
}

#[test]
fn allowed_signers_options_are_honoured() {
    let Some(s) = setup("allowed_signers_options_are_honoured") else {
        return;
    };
    let alice = s.keys.ssh("alice");
    let commit = s.keys.commit(&s.repo.path, &alice, "signed");
    let fp = s.keys.ssh_fingerprint(&alice);
    let only_files = s.keys.allowed_signers(
        "files_only",
        &[("alice@ward.invalid", "namespaces=\"file\"", &alice)],
    );
    ward_verified(&s, &["validate"], "HEAD", &[("--allowed-signers", &only_files)])
        .code(EXIT_ERROR)
        .stderr_has(&format!(
            "commit {commit} is signed by SSH key {fp}, which the allowed signers allow only for namespaces \"file\", not \"git\""
        ));
    // Valid only after 2100: the commit (made now) is too early.
    let later = s.keys.allowed_signers(
        "later",
        &[("alice@ward.invalid", "valid-after=\"21000101\"", &alice)],
    );
    ward_verified(&s, &["validate"], "HEAD", &[("--allowed-signers", &later)])
        .code(EXIT_ERROR)
        .stderr_has("accept only from 2100-01-01T00:00:00Z");
    let git_too = s.keys.allowed_signers(
        "git_too",
        &[(
            "alice@ward.invalid",
            "namespaces=\"file,git\",valid-after=\"20000101\"",
            &alice,
        )],
    );
    ward_verified(
        &s,
        &["validate"],
        "HEAD",
        &[("--allowed-signers", &git_too)],
    )
    .code(EXIT_OK);
}

#[test]
fn openpgp_signed_commits_by_trusted_keys_plan_and_others_are_refused() {
    let Some(s) = setup("openpgp_signed_commits_by_trusted_keys_plan_and_others_are_refused")
    else {
        return;
    };
    let gina = s.keys.pgp("Gina <gina@ward.invalid>");
    let eve = s.keys.pgp("Eve <eve@ward.invalid>");
    let trusted = s.keys.trusted_keys("trusted.asc", &[&gina]);
    let trust = [("--trusted-keys", trusted.as_path())];

    let signed = s.keys.commit(&s.repo.path, &gina, "signed by gina");
    ward_verified(&s, &["apply"], "main", &trust).code(EXIT_OK);
    assert_eq!(
        util::inventory(&s.repo.state())["applied_revision"],
        signed.as_str()
    );
    let applied = snapshot(&s.repo.state());

    s.repo
        .write("policies/extra.yaml", cnp("shop", "extra", 81));
    let by_eve = s.keys.commit(&s.repo.path, &eve, "signed by eve");
    let Signer::Pgp(eve_fpr) = &eve else {
        unreachable!()
    };
    ward_verified(&s, &["apply"], "main", &trust)
        .code(EXIT_ERROR)
        .stderr_has(&format!(
            "commit {by_eve} is signed by OpenPGP key {eve_fpr} which is not among the trusted keys"
        ));
    assert_eq!(
        snapshot(&s.repo.state()),
        applied,
        "the state directory changed"
    );

    let tampered = tamper(&s.repo, &signed, "signed by gina", "signed by gina!");
    let Signer::Pgp(gina_fpr) = &gina else {
        unreachable!()
    };
    ward_verified(&s, &["plan"], &tampered, &trust)
        .code(EXIT_ERROR)
        .stderr_has(&format!(
            "commit {tampered} has a bad OpenPGP signature by key {gina_fpr}"
        ));

    // An SSH signature with only OpenPGP keys trusted says which flag is missing.
    let alice = s.keys.ssh("alice");
    s.keys.commit(&s.repo.path, &alice, "signed by alice");
    ward_verified(&s, &["plan"], "main", &trust)
        .code(EXIT_ERROR)
        .stderr_has(
            "which is not in the allowed signers (none were given: pass --allowed-signers)",
        );
    // Both kinds of trust at once.
    let allowed = signers(&s, &alice);
    ward_verified(
        &s,
        &["plan"],
        "main",
        &[
            ("--trusted-keys", &trusted),
            ("--allowed-signers", &allowed),
        ],
    )
    .code(EXIT_OK);
}

#[test]
fn a_signing_subkey_of_a_trusted_key_counts_and_blocks_of_keys_may_follow_each_other() {
    let Some(s) =
        setup("a_signing_subkey_of_a_trusted_key_counts_and_blocks_of_keys_may_follow_each_other")
    else {
        return;
    };
    let gina = s.keys.pgp("Gina <gina@ward.invalid>");
    let sam = s.keys.pgp("Sam <sam@ward.invalid>");
    s.keys.pgp_signing_subkey(&sam);
    // Two exports one after the other, as `cat gina.asc sam.asc` makes them.
    let mut both = std::fs::read(s.keys.trusted_keys("gina.asc", &[&gina])).unwrap();
    both.extend(std::fs::read(s.keys.trusted_keys("sam.asc", &[&sam])).unwrap());
    let trusted = s.env.path().join("both.asc");
    std::fs::write(&trusted, both).unwrap();
    let trust = [("--trusted-keys", trusted.as_path())];

    let commit = s.keys.commit(&s.repo.path, &sam, "signed by sam's subkey");
    let issuer = s.keys.git(
        &s.repo.path,
        &Signer::None,
        &["log", "-1", "--format=%GF %GP"],
    );
    let issuer = String::from_utf8_lossy(&issuer.stdout).into_owned();
    let Signer::Pgp(sam_primary) = &sam else {
        unreachable!()
    };
    let (signing, primary) = issuer.trim().split_once(' ').unwrap();
    assert_eq!(primary, sam_primary.as_str(), "git names sam's primary key");
    assert_ne!(signing, primary, "gpg signed with the subkey");
    ward_verified(&s, &["validate"], &commit, &trust).code(EXIT_OK);
    // Without Sam's key the subkey is nobody's.
    let gina_only = s.keys.trusted_keys("gina-only.asc", &[&gina]);
    ward_verified(
        &s,
        &["validate"],
        &commit,
        &[("--trusted-keys", &gina_only)],
    )
    .code(EXIT_ERROR)
    .stderr_has(&format!(
        "commit {commit} is signed by OpenPGP key {signing} which is not among the trusted keys"
    ));
}

#[test]
fn an_annotated_tag_is_verified_by_its_own_signature() {
    let Some(s) = setup("an_annotated_tag_is_verified_by_its_own_signature") else {
        return;
    };
    let alice = s.keys.ssh("alice");
    let allowed = signers(&s, &alice);
    let trust = [("--allowed-signers", allowed.as_path())];
    let commit = s
        .keys
        .commit(&s.repo.path, &Signer::None, "unsigned commit");
    s.keys.git(
        &s.repo.path,
        &alice,
        &["tag", "-s", "-m", "release 1", "v1"],
    );
    s.keys.git(
        &s.repo.path,
        &Signer::None,
        &["tag", "-a", "-m", "release 2", "v2"],
    );
    s.keys.git(&s.repo.path, &Signer::None, &["tag", "v3"]);

    ward_verified(&s, &["plan", "-o", "json"], "v1", &trust).code(EXIT_OK);
    ward_verified(&s, &["plan"], "v2", &trust)
        .code(EXIT_ERROR)
        .stderr_has("tag v2 (")
        .stderr_has(&format!("of commit {commit}) is not signed"));
    // A lightweight tag names the commit, which is unsigned.
    ward_verified(&s, &["plan"], "v3", &trust)
        .code(EXIT_ERROR)
        .stderr_has(&format!("commit {commit} is not signed"));
}

#[test]
fn where_no_revision_is_read_or_the_base_of_a_diff() {
    let Some(mut s) = setup("where_no_revision_is_read_or_the_base_of_a_diff") else {
        return;
    };
    let alice = s.keys.ssh("alice");
    let allowed = signers(&s, &alice);
    let allowed_arg = allowed.display().to_string();
    let base = s.repo.commit("unsigned base");
    s.repo
        .write("policies/extra.yaml", cnp("shop", "extra", 81));
    let head = s.keys.commit(&s.repo.path, &alice, "signed head");

    // The working tree has no signature: refused, and the message says what to do.
    for cmd in [&["plan"][..], &["validate"], &["validate", "policies"]] {
        let mut args = cmd.to_vec();
        args.extend(["--verify-signatures", "--allowed-signers", &allowed_arg]);
        s.repo
            .ward(&args)
            .code(EXIT_ERROR)
            .stderr_has("the working tree has no signature; pass --rev");
    }
    // A diff verifies its head only.
    s.repo
        .ward(&[
            "diff",
            "--base",
            &base,
            "--head",
            &head,
            "--verify-signatures",
            "--allowed-signers",
            &allowed_arg,
        ])
        .code(EXIT_OK);
    s.repo
        .ward(&[
            "diff",
            "--base",
            &head,
            "--head",
            &base,
            "--verify-signatures",
            "--allowed-signers",
            &allowed_arg,
        ])
        .code(EXIT_ERROR)
        .stderr_has(&format!(
            "reading --head {base}: commit {base} is not signed"
        ));
    // Flags that need each other.
    s.repo
        .ward(&["plan", "--rev", "HEAD", "--verify-signatures"])
        .code(EXIT_ERROR)
        .stderr_has("--verify-signatures needs the keys to trust");
    s.repo
        .ward(&["plan", "--rev", "HEAD", "--allowed-signers", &allowed_arg])
        .code(EXIT_ERROR)
        .stderr_has("--verify-signatures");
}

#[test]
fn a_repository_url_is_verified_after_the_fetch() {
    let Some(s) = setup("a_repository_url_is_verified_after_the_fetch") else {
        return;
    };
    let alice = s.keys.ssh("alice");
    let allowed = signers(&s, &alice);
    let signed = s.keys.commit(&s.repo.path, &alice, "signed");
    let url = format!("file://{}", s.repo.path.display());
    let state = s.env.path().join("state");
    let cache = s.env.path().join("cache");
    let run = |rev: &str| {
        s.env.ward(
            s.env.path(),
            &[
                "apply",
                "--repo",
                &url,
                "--rev",
                rev,
                "--state",
                state.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
                "--verify-signatures",
                "--allowed-signers",
                allowed.to_str().unwrap(),
            ],
        )
    };
    run("main").code(EXIT_OK);
    assert_eq!(util::inventory(&state)["applied_revision"], signed.as_str());
    s.repo
        .write("policies/extra.yaml", cnp("shop", "extra", 81));
    let unsigned = s.keys.commit(&s.repo.path, &Signer::None, "unsigned");
    let before = snapshot(&state);
    run("main")
        .code(EXIT_ERROR)
        .stderr_has(&format!("commit {unsigned} is not signed"));
    assert_eq!(snapshot(&state), before, "the state directory changed");
}
