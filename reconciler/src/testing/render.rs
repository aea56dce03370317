//! Text and JUnit output for `ward test`, text output for `ward explain` (both also print
//! JSON, straight from their serialisable results).

use super::explain::Explanation;
use super::outcome::Side;
use super::run::{ExpectationResult, Status, TestRun};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::fmt::Write;

use crate::paint::{BOLD, DIM, GREEN, Paint, RED, YELLOW};

/// `ward test` as text: each test, then ✓ or ✗ per expectation; a failure shows what
/// decided and each direction's reason.
pub fn test_text(run: &TestRun, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    for t in &run.tests {
        let desc = t
            .description
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {}{desc}",
            p.on(BOLD, &format!("PolicyTest {}", t.name)),
            p.on(DIM, &format!("({})", t.origin))
        );
        for e in &t.expectations {
            expectation_text(&mut out, e, &p);
        }
    }
    let (total, failed) = (run.total(), run.failed());
    let verdict = if failed == 0 {
        p.on(GREEN, "ok")
    } else {
        p.on(RED, "FAILED")
    };
    let _ = writeln!(
        out,
        "\n{verdict}: {total} expectation(s) in {} test(s): {} passed, {failed} failed ({} endpoint(s), {} polic{})",
        run.tests.len(),
        total - failed,
        run.endpoints,
        run.policies,
        if run.policies == 1 { "y" } else { "ies" }
    );
    out
}

fn expectation_text(out: &mut String, e: &ExpectationResult, p: &Paint) {
    if e.status == Status::Pass {
        let actual = l7_refusal(e)
            .or_else(|| {
                e.outcome
                    .as_ref()
                    .map(|o| o.verdict.as_str())
                    .filter(|v| *v != e.expect.to_string())
                    .map(|v| format!(" ({v})"))
            })
            .unwrap_or_default();
        let by = e
            .decided_by
            .as_deref()
            .map(|d| format!(", decided by {d}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {}: {}{actual}{by}",
            p.on(GREEN, "✓"),
            e.flow,
            e.expect
        );
        unresolved_text(out, e, p);
        return;
    }
    let by = e
        .decided_by
        .as_deref()
        .map(|d| format!(", decidedBy {d}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {} {}: expect {}{by}  {}",
        p.on(RED, "✗"),
        e.flow,
        e.expect,
        p.on(DIM, &format!("(spec.expectations[{}])", e.index))
    );
    if let Some(d) = &e.description {
        let _ = writeln!(out, "      {d}");
    }
    if let Some(m) = &e.message {
        let _ = writeln!(out, "      {}", p.on(RED, m));
    }
    unresolved_text(out, e, p);
    if let Some(o) = &e.outcome {
        for s in o.sides() {
            let _ = writeln!(out, "      {}", side_line(s));
        }
        if o.sides().next().is_none() {
            let _ = writeln!(
                out,
                "      neither end is a managed endpoint: nothing restricts the flow"
            );
        }
    }
    for s in e.l7.iter().flat_map(|o| o.sides.iter()) {
        let side = if s.direction == "egress" {
            "egress of the source"
        } else {
            "ingress of the destination"
        };
        let _ = writeln!(out, "      L7 {side}: {}", s.explanation);
    }
}

/// ` (L7: 403 Forbidden)` when a proxy refused the request.
fn l7_refusal(e: &ExpectationResult) -> Option<String> {
    let o = e.l7.as_ref()?;
    o.denied_by()?;
    Some(
        if o.request.starts_with("DNS") {
            " (L7: REFUSED)"
        } else {
            " (L7: 403 Forbidden)"
        }
        .to_owned(),
    )
}

/// One line per unresolved rule on the flow's path, and per side not evaluated, beside
/// its verdict.
fn unresolved_text(out: &mut String, e: &ExpectationResult, p: &Paint) {
    for u in &e.unresolved {
        let _ = writeln!(out, "      {} {u}", p.on(YELLOW, "unresolved:"));
    }
    for u in &e.not_evaluated {
        let _ = writeln!(out, "      {} {u}", p.on(YELLOW, "not evaluated:"));
    }
}

/// The engine's sentence for a side, with the deciding rule's file and line.
fn side_line(s: &Side) -> String {
    match s.rule.as_ref().and_then(|r| r.origin.as_ref()) {
        Some(o) => format!("{} ({o})", s.explanation),
        None => s.explanation.clone(),
    }
}

/// `ward test` as JUnit XML: a test suite per PolicyTest, a test case per expectation; a
/// failure's message says what was expected, what happened and which rule decided.
pub fn test_junit(run: &TestRun) -> String {
    let mut report = Report::new("ward test");
    for t in &run.tests {
        let mut suite = TestSuite::new(t.name.as_str());
        suite.extra.insert("file".into(), t.file.as_str().into());
        for e in &t.expectations {
            let status = if e.status == Status::Pass {
                TestCaseStatus::success()
            } else {
                let kind = if e.status == Status::Error {
                    "error"
                } else {
                    "verdict"
                };
                let mut body: Vec<String> = e.description.iter().cloned().collect();
                body.extend(e.unresolved.iter().map(|u| format!("unresolved: {u}")));
                if let Some(o) = &e.outcome {
                    body.extend(o.sides().map(side_line));
                }
                body.push(format!("at {} spec.expectations[{}]", t.origin, e.index));
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(e.message.as_deref().unwrap_or("failed"))
                    .set_type(kind)
                    .set_description(body.join("\n"));
                status
            };
            let mut case = TestCase::new(format!("{}: {}", e.flow, e.expect), status);
            case.set_classname(format!("ward.test.{}", t.name));
            case.extra.insert("file".into(), t.file.as_str().into());
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .unwrap_or_else(|e| unreachable!("writing XML into memory cannot fail: {e}"))
}

/// `ward test` as GitHub Actions workflow commands: an `::error` at the file and line of
/// each expectation that did not pass, then a summary line.
pub fn test_github(run: &TestRun) -> String {
    use crate::report::github::{escape_data, escape_property};
    let mut out = String::new();
    for (t, e) in run.results().filter(|(_, e)| e.status != Status::Pass) {
        let mut props = format!("file={}", escape_property(&t.file));
        let line = e.line.unwrap_or_else(|| t.origin_line());
        if line > 0 {
            let _ = write!(props, ",line={line}");
        }
        let title = format!("ward test {}", t.name);
        let mut msg = format!("{}: {}", e.flow, e.message.as_deref().unwrap_or("failed"));
        for u in &e.unresolved {
            msg.push_str("\nunresolved: ");
            msg.push_str(u);
        }
        if let Some(o) = &e.outcome {
            for side in o.sides() {
                msg.push('\n');
                msg.push_str(&side_line(side));
            }
        }
        let _ = writeln!(
            out,
            "::error {props},title={}::{}",
            escape_property(&title),
            escape_data(&msg)
        );
    }
    let _ = writeln!(
        out,
        "ward test: {} expectation(s) in {} test(s): {} passed, {} failed",
        run.total(),
        run.tests.len(),
        run.total() - run.failed(),
        run.failed()
    );
    out
}

/// `ward explain` as text: the verdict and deciding rule, then per direction the rules that
/// select the endpoint, whether default deny is on and why, and the decision.
pub fn explain_text(x: &Explanation, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let verdict = if x.outcome.allowed {
        p.on(GREEN, &x.outcome.verdict)
    } else {
        p.on(RED, &x.outcome.verdict)
    };
    let _ = writeln!(
        out,
        "{} → {} {}/{}: {verdict}",
        p.on(BOLD, &x.from.heading()),
        p.on(BOLD, &x.to.heading()),
        x.protocol,
        x.port
    );
    match &x.outcome.decided_by {
        Some(r) => {
            let _ = writeln!(out, "decided by {}", r.located());
        }
        None if x.outcome.allowed => {
            let _ = writeln!(out, "no rule is involved: nothing restricts this flow");
        }
        None => {
            let _ = writeln!(
                out,
                "dropped by default deny (policy-enforcement-mode: always)"
            );
        }
    }
    for (dir, end) in [("egress", &x.from), ("ingress", &x.to)] {
        let _ = writeln!(out);
        let Some(c) = x.chain.iter().find(|c| c.direction == dir) else {
            let _ = writeln!(
                out,
                "{dir} of {}: not evaluated ({} is not a managed endpoint)",
                end.name,
                end.kind_phrase()
            );
            continue;
        };
        let _ = writeln!(out, "{dir} of {} (identity {}):", c.endpoint, c.identity);
        if c.selected_by.is_empty() {
            let _ = writeln!(
                out,
                "  rules:        none (no policy selects this endpoint)"
            );
        } else if c.rules.is_empty() {
            let _ = writeln!(
                out,
                "  rules:        none for {dir} ({} selecting rule(s) have no {dir} part)",
                c.selected_by.len()
            );
        }
        for (i, r) in c.rules.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {}{}",
                if i == 0 {
                    "rules:        "
                } else {
                    "              "
                },
                r.located()
            );
        }
        let dd = match (&c.default_deny, &c.default_deny_by) {
            (true, Some(r)) => format!("on ({} enables {dir} default deny)", r.rule),
            (true, None) => "on (policy-enforcement-mode: always)".to_owned(),
            (false, _) => "off".to_owned(),
        };
        let _ = writeln!(out, "  default deny: {dd}");
        let reason = c
            .decision
            .explanation
            .split_once("): ")
            .map_or(c.decision.explanation.as_str(), |(_, r)| r);
        let at = c
            .decision
            .rule
            .as_ref()
            .and_then(|r| r.origin.as_ref())
            .map(|o| format!(" ({o})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  decision:     {} {reason}{at}",
            verdict_mark(&c.decision, &p)
        );
    }
    if let Some(l7) = &x.l7 {
        let mark = if l7.allowed {
            p.on(GREEN, "passes")
        } else {
            p.on(RED, "refused")
        };
        let _ = writeln!(out, "\nL7 {}: {mark}", l7.request);
        for s in &l7.sides {
            let _ = writeln!(out, "  {} proxy: {}", s.direction, s.explanation);
        }
        if l7.sides.is_empty() {
            let _ = writeln!(out, "  no direction sends the flow to a proxy");
        }
    }
    if !x.notes.is_empty() {
        let _ = writeln!(out, "\nnotes:");
        for n in &x.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }
    out
}

fn verdict_mark(s: &Side, p: &Paint) -> String {
    if s.verdict == "allow" {
        p.on(GREEN, "✓")
    } else {
        p.on(RED, "✗")
    }
}

impl super::explain::End {
    /// The name, with the address an entity stands for (`world (203.0.113.10)`).
    fn heading(&self) -> String {
        match (&self.address, self.kind) {
            (Some(a), "entity") => format!("{} ({a})", self.name),
            _ => self.name.clone(),
        }
    }

    fn kind_phrase(&self) -> &'static str {
        match self.kind {
            "address" => "an address outside the declared endpoints",
            _ => "an entity",
        }
    }
}
