//! The exit codes `ward --help` documents are the ones ward returns, and bad usage is a
//! non-zero exit with a usage message.

mod util;

use util::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Env};

#[test]
fn help_documents_the_exit_codes() {
    let env = Env::new();
    for flag in ["--help", "-h"] {
        let run = env.ward(env.path(), &[flag]);
        run.code(EXIT_OK)
            .stdout_has("Usage: ward [OPTIONS] <COMMAND>")
            .stdout_has("Exit codes:");
        let line = |code: &str| {
            run.stdout
                .lines()
                .find(|l| l.trim_start().starts_with(code))
                .map(str::to_owned)
                .unwrap_or_default()
        };
        run.check(line("0 ").contains("success"), "0 is success")
            .check(line("1 ").contains("error"), "1 is errors")
            .check(
                line("2 ").contains("changes") && line("2 ").contains("--detailed-exitcode"),
                "2 is changes with --detailed-exitcode",
            )
            .check(
                run.stdout.contains("drift") && run.stdout.contains("interrupted"),
                "status's 2 is documented too",
            );
    }
    env.ward(env.path(), &["--version"])
        .code(EXIT_OK)
        .stdout_has("ward ");
    for sub in ["plan", "apply", "diff"] {
        env.ward(env.path(), &[sub, "--help"])
            .code(EXIT_OK)
            .stdout_has("--detailed-exitcode")
            .stdout_has("Exit 2 when there are changes");
    }
}

#[test]
fn the_documented_codes_are_the_ones_returned() {
    let env = Env::new();
    let mut repo = env.fixture_repo();
    // 0: success.
    repo.ward(&["validate"]).code(EXIT_OK);
    repo.ward(&["plan"]).code(EXIT_OK);
    // 2: changes, only when asked for.
    repo.ward(&["plan", "--detailed-exitcode"])
        .code(EXIT_CHANGES);
    repo.ward(&["apply", "--detailed-exitcode"])
        .code(EXIT_CHANGES);
    // 0 again once there is nothing to do.
    repo.ward(&["plan", "--detailed-exitcode"]).code(EXIT_OK);
    repo.ward(&["apply", "--detailed-exitcode"]).code(EXIT_OK);
    repo.ward(&["status", "--detailed-exitcode"]).code(EXIT_OK);
    // 1: errors win over changes.
    repo.write(
        "policies/bad.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad}\n",
    );
    repo.ward(&["validate"]).code(EXIT_ERROR);
    repo.ward(&["plan", "--detailed-exitcode"]).code(EXIT_ERROR);
    repo.ward(&["apply", "--detailed-exitcode"])
        .code(EXIT_ERROR);
    repo.commit("bad");
    repo.ward(&["diff", "--base", "HEAD~1", "--detailed-exitcode"])
        .code(EXIT_ERROR);
    // 1: a failed command, one line on stderr.
    let run = repo.ward(&["diff", "--base", "no-such-rev"]);
    run.code(EXIT_ERROR)
        .stderr_has("ward: error: reading --base no-such-rev: unknown revision \"no-such-rev\"");
    run.check(
        run.stderr.lines().count() == 1,
        "the error chain on one line",
    );
    // 1: a path that does not exist is a finding.
    repo.ward(&["validate", "does/not/exist.yaml"])
        .code(EXIT_ERROR)
        .stdout_has("does/not/exist.yaml: error[WARD-Y007]: no such file or folder");
}

#[test]
fn unknown_flags_and_commands_are_usage_errors() {
    let env = Env::new();
    for args in [
        &["--frobnicate"][..],
        &["plan", "--frobnicate"],
        &["frobnicate"],
        &[],
    ] {
        let run = env.ward(env.path(), args);
        run.check(run.code.is_some_and(|c| c != 0), "a non-zero exit")
            .check(run.stdout.is_empty(), "nothing on stdout")
            .stderr_has("Usage: ward");
    }
    let run = env.ward(env.path(), &["plan", "--frobnicate"]);
    run.stderr_has("unexpected argument '--frobnicate'");
    let run = env.ward(env.path(), &["plan", "--format", "yaml"]);
    run.check(run.code == Some(EXIT_ERROR), "exit 1")
        .stderr_has("invalid value 'yaml'")
        .stderr_has("possible values: text, json")
        .stderr_has("try '--help'");
}
