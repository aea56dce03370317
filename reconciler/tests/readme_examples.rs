//! The README's console examples are real: every ```` ```console ```` block is run and its
//! output compared with what the README shows.
//!
//! A block is a series of `$ command` lines, each followed by what it prints (stdout and
//! stderr as a terminal shows them). A line `...` (indented or not) in the README stands for
//! any number of lines, and blank lines at the end of an output do not count, so an example may show the beginning and the end of a long output. Commit ids (12
//! to 40 hex digits) compare equal whatever their value, so the README need not change when
//! the example policies do; everything else must match line for line (trailing blanks aside).
//!
//! Each block runs in a fresh Git repository holding a copy of this repository's
//! `policies/`, `cluster-config/` and `ci/testdata/`, committed once, after the setup that
//! the HTML comment just before the block names (`<!-- readme-example: NAME -->`); [`setup`]
//! lists them. A console block without such a comment fails the test, so no example goes
//! unchecked.

mod util;

use util::{BAD, Env, Repo, flip_first_expectation, workspace};

/// One ```` ```console ```` block of the README.
#[derive(Debug)]
struct Example {
    /// The name in the `<!-- readme-example: NAME -->` comment before it.
    name: Option<String>,
    /// The README line the block starts on.
    line: usize,
    /// `(command, expected output lines)` in order.
    steps: Vec<(String, Vec<String>)>,
}

/// The console blocks of `readme`.
fn examples(readme: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut name = None;
    let mut block: Option<Example> = None;
    for (i, line) in readme.lines().enumerate() {
        if let Some(b) = block.as_mut() {
            if line.trim_end() == "```" {
                out.push(block.take().expect("a block"));
            } else if let Some(cmd) = line.strip_prefix("$ ") {
                b.steps.push((cmd.to_owned(), Vec::new()));
            } else if let Some((_, expected)) = b.steps.last_mut() {
                expected.push(line.to_owned());
            } else {
                panic!(
                    "README.md:{}: a console block starts with `$ command`",
                    i + 1
                );
            }
            continue;
        }
        if let Some(n) = line
            .trim()
            .strip_prefix("<!-- readme-example:")
            .and_then(|r| r.strip_suffix("-->"))
        {
            name = Some(n.trim().to_owned());
        } else if line.trim_end() == "```console" {
            block = Some(Example {
                name: name.take(),
                line: i + 1,
                steps: Vec::new(),
            });
        } else if !line.trim().is_empty() {
            name = None;
        }
    }
    assert!(block.is_none(), "README.md: a console block is not closed");
    out
}

/// Prepares the repository for the example `name`: files and commits on top of the copy of
/// the examples. Panics on a name it does not know, so a new example gets a setup.
fn setup(name: &str, repo: &mut Repo) {
    match name {
        // The repository as it is.
        "examples" => {}
        // A broken policy beside the examples.
        "bad-file" => {
            repo.write("bad.yaml", BAD);
        }
        // A second commit that lets `app: admin` reach the backend on port 80.
        "admin-reaches-backend" => {
            let path = "policies/namespaces/shop/backend-ingress.yaml";
            let policy = repo.read(path);
            let peer = "        - matchLabels:\n            app: frontend\n";
            let opened = policy.replacen(
                peer,
                &format!("{peer}{}", peer.replace("frontend", "admin")),
                1,
            );
            assert_ne!(opened, policy, "{path} no longer allows app: frontend");
            repo.write(path, opened);
            repo.commit("let the admin pod reach the backend");
        }
        // The first expectation of the shop's PolicyTest flipped to deny.
        "flipped-expectation" => flip_first_expectation(repo),
        other => panic!(
            "README.md: no setup for the example `{other}`; add one to {}",
            file!()
        ),
    }
}

/// A line of output with commit ids replaced, trailing blanks trimmed.
fn normal(line: &str) -> String {
    let mut out = String::new();
    let mut hex = String::new();
    for c in line.trim_end().chars().chain(std::iter::once('\n')) {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            hex.push(c);
            continue;
        }
        if (12..=40).contains(&hex.len()) && hex.chars().any(|c| c.is_ascii_digit()) {
            out.push_str("<commit>");
        } else {
            out.push_str(&hex);
        }
        hex.clear();
        if c != '\n' {
            out.push(c);
        }
    }
    out
}

/// Whether `actual` matches `expected`, where an expected line `...` (indented or not)
/// matches any number of lines.
fn matches(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e.trim() == "..." => {
            (0..=actual.len()).any(|i| matches(rest, &actual[i..]))
        }
        Some((e, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| a == e && matches(rest, more)),
    }
}

/// Runs one example; on a mismatch, returns the README's and the real output side by side.
fn run(example: &Example) -> Result<(), String> {
    let name = example.name.as_deref().ok_or_else(|| {
        format!(
            "README.md:{}: a console block without `<!-- readme-example: NAME -->` before it",
            example.line
        )
    })?;
    let env = Env::new();
    let mut repo = env.repo("repo");
    repo.copy_fixtures()
        .copy_tree(&workspace().join("ci/testdata"), "ci/testdata");
    repo.commit("example policies");
    setup(name, &mut repo);

    // One script, so `echo $?` sees the command before it; a marker line per step.
    const MARK: &str = "\u{1}step";
    let mut script = String::from("exec 2>&1\n");
    for (cmd, _) in &example.steps {
        script.push_str(&format!("echo '{MARK}'\n{cmd}\n"));
    }
    let out = env.runner().shell(&repo.path, &script);
    let mut outputs: Vec<Vec<String>> = Vec::new();
    for line in out.stdout.lines() {
        if line == MARK {
            outputs.push(Vec::new());
        } else if let Some(last) = outputs.last_mut() {
            last.push(normal(line));
        }
    }
    if outputs.len() != example.steps.len() {
        return Err(format!(
            "README.md:{} ({name}): the script ran {} of {} commands:\n{}",
            example.line,
            outputs.len(),
            example.steps.len(),
            out.stdout
        ));
    }
    for ((cmd, expected), actual) in example.steps.iter().zip(&mut outputs) {
        let mut expected: Vec<String> = expected.iter().map(|l| normal(l)).collect();
        // Blank lines at the end are layout, not output.
        for lines in [&mut expected, actual] {
            while lines.last().is_some_and(|l| l.is_empty()) {
                lines.pop();
            }
        }
        if !matches(&expected, actual) {
            return Err(format!(
                "README.md:{} ({name}): `$ {cmd}` printed something else.\n\
                 --- README\n{}\n--- real output\n{}\n",
                example.line,
                expected.join("\n"),
                actual.join("\n")
            ));
        }
    }
    Ok(())
}

#[test]
fn every_console_example_in_the_readme_is_real() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let examples = examples(&readme);
    assert!(
        examples.len() >= 5,
        "README.md has {} console examples; the parser lost some",
        examples.len()
    );
    let failures: Vec<String> = examples.iter().filter_map(|e| run(e).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} README examples differ from the real output:\n\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
}

#[test]
fn the_matcher_takes_ellipses_and_commit_ids() {
    let lines = |s: &str| s.lines().map(normal).collect::<Vec<_>>();
    assert!(matches(&lines("a\n...\nd"), &lines("a\nb\nc\nd")));
    assert!(matches(&lines("a\n...\nd"), &lines("a\nd")));
    assert!(!matches(&lines("a\n...\nd"), &lines("a\nb\nc")));
    assert!(!matches(&lines("a\nb"), &lines("a\nb\nc")));
    assert!(matches(
        &lines("Plan for 2e8fd069fd1f: 1 to create"),
        &lines("Plan for 0123456789abcdef0123456789abcdef01234567: 1 to create")
    ));
    // Short hex words and words without digits stay as they are.
    assert!(!matches(&lines("deadbeef"), &lines("deadbeaf")));
    assert!(!matches(
        &lines("decaffeebeadcafe"),
        &lines("effacedbeadcafee")
    ));
}
