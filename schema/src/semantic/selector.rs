//! Label selectors (§3 rule 4): Kubernetes' LabelSelector validation, applied to the keys as
//! Cilium rewrites them (`k8s:app` becomes `k8s.app`, a bare `app` becomes `any.app`).

use super::Checker;
use crate::diagnostic::codes;
use serde_json::Value;

const OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// Validates one EndpointSelector / LabelSelector at the checker's current path.
pub(crate) fn check_selector(c: &mut Checker, sel: &Value) {
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        c.at("matchLabels", |c| {
            for (key, value) in labels {
                c.at(key.clone(), |c| {
                    if let Err(e) = validate_key(key) {
                        c.error_at_key(
                            codes::SELECTOR,
                            format!(
                                "invalid label selector: matchLabels: Invalid value: \"{key}\": {e}"
                            ),
                        );
                    }
                    if let Some(v) = value.as_str()
                        && let Err(e) = validate_value(v)
                    {
                        c.error(
                            codes::SELECTOR,
                            format!(
                                "invalid label selector: matchLabels: Invalid value: \"{v}\": {e}"
                            ),
                        );
                    }
                });
            }
        });
    }
    c.each(sel, "matchExpressions", check_requirement);
}

fn check_requirement(c: &mut Checker, req: &Value) {
    let idx = match c.path.last() {
        Some(super::PathSeg::Index(i)) => *i,
        _ => 0,
    };
    let field = format!("matchExpressions[{idx}]");
    if let Some(key) = req.get("key").and_then(Value::as_str)
        && let Err(e) = validate_key(key)
    {
        c.at("key", |c| {
            c.error(
                codes::SELECTOR,
                format!("invalid label selector: {field}.key: Invalid value: \"{key}\": {e}"),
            );
        });
    }
    let values = req.get("values").and_then(Value::as_array);
    // None when `values` has the wrong type (null included): the schema reports that.
    let has_values = match req.get("values") {
        None => Some(false),
        Some(v) => v.as_array().map(|v| !v.is_empty()),
    };
    match req.get("operator").and_then(Value::as_str) {
        Some(op @ ("In" | "NotIn")) if has_values == Some(false) => {
            let _ = op;
            c.error(
                codes::SELECTOR,
                format!("invalid label selector: {field}.values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
            )
            .hint("list the values, or use operator Exists");
        }
        Some("Exists" | "DoesNotExist") if has_values == Some(true) => {
            c.at("values", |c| {
                c.error_at_key(
                    codes::SELECTOR,
                    format!("invalid label selector: {field}.values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
                )
                .hint("remove `values`, or use operator In");
            });
        }
        Some(op) if !OPERATORS.contains(&op) => {
            let hint = did_you_mean(op, &OPERATORS).map_or_else(
                || "use one of In, NotIn, Exists, DoesNotExist".to_owned(),
                |s| format!("did you mean \"{s}\"? (operators are case-sensitive)"),
            );
            c.at("operator", |c| {
                c.error(
                    codes::SELECTOR,
                    format!("invalid label selector: {field}.operator: Invalid value: \"{op}\": not a valid selector operator"),
                )
                .hint(hint);
            });
        }
        _ => {}
    }
    if let Some(values) = values {
        c.at("values", |c| {
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v.as_str()
                    && let Err(e) = validate_value(v)
                {
                    c.at(i, |c| {
                        c.error(codes::SELECTOR, format!("invalid label selector: {field}.values[{i}]: Invalid value: \"{v}\": {e}"));
                    });
                }
            }
        });
    }
}

/// The closest of `options` to `s`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(s: &str, options: &[&'a str]) -> Option<&'a str> {
    let lower = s.to_ascii_lowercase();
    options
        .iter()
        .map(|o| (strsim::jaro_winkler(&lower, &o.to_ascii_lowercase()), *o))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, o)| o)
}

/// Cilium's key as the agent stores it: `source:key` becomes `source.key`, a bare key
/// becomes `any.key`, `$host` is `reserved.host`.
pub(crate) fn cilium_key(key: &str) -> String {
    if key == "$host" {
        return "reserved.host".to_owned();
    }
    // Built by hand: this runs for every label of every selector, and `format!` costs more.
    let (source, rest) = match key.split_once(':') {
        Some((source, rest)) if !source.is_empty() && !source.contains('/') => (source, rest),
        _ => ("any", key),
    };
    let mut out = String::with_capacity(source.len() + 1 + rest.len());
    out.push_str(source);
    out.push('.');
    out.push_str(rest);
    out
}

const NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// Kubernetes' qualified-name check on the rewritten key.
pub(crate) fn validate_key(key: &str) -> Result<(), String> {
    let full = cilium_key(key);
    let (prefix, name) = match full.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, full.as_str()),
    };
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    if !is_label_token(name) {
        return Err(NAME_MSG.into());
    }
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                let b = l.as_bytes();
                !b.is_empty()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                    && b[0] != b'-'
                    && b[b.len() - 1] != b'-'
            });
        if !ok {
            return Err("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into());
        }
    }
    Ok(())
}

/// Kubernetes' label-value check.
pub(crate) fn validate_value(v: &str) -> Result<(), String> {
    if v.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    if !v.is_empty() && !is_label_token(v) {
        return Err("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into());
    }
    Ok(())
}

fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Whether a subject selector selects `reserved:init` endpoints.
pub(crate) fn selects_reserved_init(sel: &Value) -> bool {
    let by_label = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_some_and(|m| {
            m.keys()
                .any(|k| k == "reserved:init" || k == "reserved.init")
        });
    let by_expr = sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_some_and(|exprs| {
            exprs.iter().any(|e| {
                let key = e.get("key").and_then(Value::as_str);
                let op = e.get("operator").and_then(Value::as_str);
                matches!(key, Some("reserved:init" | "reserved.init"))
                    && matches!(op, Some("Exists" | "In"))
            })
        });
    by_label || by_expr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_after_the_source_prefix() {
        assert_eq!(cilium_key("k8s:app"), "k8s.app");
        assert_eq!(cilium_key("app"), "any.app");
        assert_eq!(cilium_key("$host"), "reserved.host");
        assert!(validate_key("k8s:io.kubernetes.pod.namespace").is_ok());
        assert!(validate_key("app.kubernetes.io/name").is_ok());
        assert!(validate_key("bad key").is_err());
        // 60 characters fit on their own, but not after "any." is added.
        assert!(validate_key(&"a".repeat(60)).is_err());
    }

    #[test]
    fn values() {
        assert!(validate_value("").is_ok());
        assert!(validate_value("front-end_1.0").is_ok());
        assert!(validate_value("-bad").is_err());
        assert!(validate_value(&"v".repeat(64)).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("exists", &OPERATORS), Some("Exists"));
        assert_eq!(did_you_mean("zzz", &OPERATORS), None);
    }
}
