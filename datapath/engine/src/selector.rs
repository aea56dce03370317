//! Compiled endpoint selectors (reference §2 EndpointSelector, §4.4).
//!
//! A [`Selector`] is a conjunction of [`Requirement`]s: every `matchLabels` entry becomes an
//! `In` with one value, every `matchExpressions` entry keeps its operator. A key written
//! `source:key` only matches labels of that source; a bare key (source `any`) matches the key
//! from any source; `$host` is `reserved:host`.

use super::labels::{self, LabelSet, SOURCE_ANY, split_source};
use std::fmt;
use ward_schema::model;

/// A set-based operator of a requirement (§4.4).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// The key is present with one of the values.
    In(Vec<String>),
    /// The key is absent, or present with none of the values.
    NotIn(Vec<String>),
    /// The key is present.
    Exists,
    /// The key is absent.
    DoesNotExist,
    /// An operator Cilium does not know (validation reports it); matches nothing.
    Invalid(String),
}

/// One requirement on one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    /// The label source the key must come from; `any` matches every source.
    pub source: String,
    /// The label key.
    pub key: String,
    /// What the label's value must satisfy.
    pub op: Operator,
}

impl Requirement {
    /// A requirement from parts; `In`/`NotIn` values are sorted and deduplicated.
    pub fn new(source: &str, key: &str, op: Operator) -> Requirement {
        let op = match op {
            Operator::In(v) => Operator::In(sorted(v)),
            Operator::NotIn(v) => Operator::NotIn(sorted(v)),
            other => other,
        };
        Requirement {
            source: source.to_owned(),
            key: key.to_owned(),
            op,
        }
    }

    /// Whether `labels` satisfies this requirement.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        let value = labels
            .get(&self.key)
            .filter(|l| self.source == SOURCE_ANY || l.source == self.source)
            .map(|l| l.value.as_str());
        match (&self.op, value) {
            (Operator::In(values), Some(v)) => {
                values.binary_search_by(|x| x.as_str().cmp(v)).is_ok()
            }
            (Operator::In(_), None) => false,
            (Operator::NotIn(values), Some(v)) => {
                values.binary_search_by(|x| x.as_str().cmp(v)).is_err()
            }
            (Operator::NotIn(_), None) => true,
            (Operator::Exists, v) => v.is_some(),
            (Operator::DoesNotExist, v) => v.is_none(),
            (Operator::Invalid(_), _) => false,
        }
    }

    /// Whether the requirement names this key (any source, or the given source).
    fn names(&self, source: &str, key: &str) -> bool {
        self.key == key
            && (self.source == source || self.source == SOURCE_ANY || source == SOURCE_ANY)
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// A compiled label selector: every requirement must hold. The empty selector matches every
/// label set.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches everything.
    pub fn wildcard() -> Selector {
        Selector::default()
    }

    /// Compiles a policy's selector; keys get their source as Cilium parses them.
    pub fn from_model(sel: &model::EndpointSelector) -> Selector {
        let mut out = Selector::default();
        for (key, value) in &sel.match_labels {
            let (source, key) = split_source(key, SOURCE_ANY);
            out.push(Requirement::new(
                source,
                key,
                Operator::In(vec![value.clone()]),
            ));
        }
        for expr in &sel.match_expressions {
            let (source, key) = split_source(&expr.key, SOURCE_ANY);
            let op = match expr.operator.as_str() {
                "In" => Operator::In(expr.values.clone()),
                "NotIn" => Operator::NotIn(expr.values.clone()),
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => Operator::Invalid(other.to_owned()),
            };
            out.push(Requirement::new(source, key, op));
        }
        out
    }

    /// Adds a requirement (keeping the list sorted so equal selectors compare equal).
    pub fn push(&mut self, req: Requirement) {
        let at = self.reqs.binary_search(&req).unwrap_or_else(|i| i);
        if self.reqs.get(at) != Some(&req) {
            self.reqs.insert(at, req);
        }
    }

    /// Removes every `In` requirement on exactly this source and key (used to overwrite the
    /// namespace of a CNP subject, §4.3).
    pub fn remove_in(&mut self, source: &str, key: &str) {
        self.reqs
            .retain(|r| !(r.source == source && r.key == key && matches!(r.op, Operator::In(_))));
    }

    /// Whether any requirement names `key` from `source` (`any` on either side matches).
    pub fn has_key(&self, source: &str, key: &str) -> bool {
        self.reqs.iter().any(|r| r.names(source, key))
    }

    /// Whether any requirement's key starts with `prefix` (and its source is `source`, or
    /// `any` for any source).
    pub fn has_key_prefix(&self, source: &str, prefix: &str) -> bool {
        self.reqs
            .iter()
            .any(|r| r.key.starts_with(prefix) && (source == SOURCE_ANY || r.source == source))
    }

    /// Whether any requirement is on a `reserved:` key.
    pub fn has_reserved_key(&self) -> bool {
        self.reqs
            .iter()
            .any(|r| r.source == labels::SOURCE_RESERVED)
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.reqs.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no requirement (selects everything).
    pub fn is_wildcard(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The requirements, sorted.
    pub fn requirements(&self) -> &[Requirement] {
        &self.reqs
    }
}

impl fmt::Display for Selector {
    /// `k8s:app in (web), any:tier exists`; `{}` for the wildcard.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reqs.is_empty() {
            return f.write_str("{}");
        }
        for (i, r) in self.reqs.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}:{} ", r.source, r.key)?;
            match &r.op {
                Operator::In(v) if v.len() == 1 => write!(f, "= {}", v[0])?,
                Operator::In(v) => write!(f, "in ({})", v.join(","))?,
                Operator::NotIn(v) => write!(f, "notin ({})", v.join(","))?,
                Operator::Exists => f.write_str("exists")?,
                Operator::DoesNotExist => f.write_str("doesnotexist")?,
                Operator::Invalid(op) => write!(f, "<invalid operator {op:?}>")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn sel(v: serde_json::Value) -> Selector {
        Selector::from_model(&serde_json::from_value(v).unwrap())
    }

    fn set(labels: &[&str]) -> LabelSet {
        LabelSet::parse(labels.iter().copied(), "k8s").unwrap()
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let s = sel(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "team", "operator": "Exists"}
            ]
        }));
        assert!(s.matches(&set(&["app=web", "tier=a", "team=x"])));
        assert!(s.matches(&set(&["app=web", "tier=b", "team=x", "env=prod"])));
        assert!(!s.matches(&set(&["app=web", "tier=c", "team=x"])), "In");
        assert!(
            !s.matches(&set(&["app=web", "tier=a", "team=x", "canary=1"])),
            "DoesNotExist"
        );
        assert!(
            !s.matches(&set(&["app=web", "tier=a", "team=x", "env=dev"])),
            "NotIn"
        );
        assert!(!s.matches(&set(&["app=web", "tier=a"])), "Exists");
        assert!(
            !s.matches(&set(&["app=api", "tier=a", "team=x"])),
            "matchLabels"
        );
    }

    #[test]
    fn sources_any_versus_specific() {
        let any = sel(json!({"matchLabels": {"app": "web"}}));
        let k8s = sel(json!({"matchLabels": {"k8s:app": "web"}}));
        let container = set(&["container:app=web"]);
        assert!(any.matches(&container));
        assert!(!k8s.matches(&container));
        assert!(k8s.matches(&set(&["app=web"])));
        // A specific-source DoesNotExist holds when the key comes from another source.
        let none =
            sel(json!({"matchExpressions": [{"key": "k8s:app", "operator": "DoesNotExist"}]}));
        assert!(none.matches(&container));
        let host = sel(json!({"matchLabels": {"$host": ""}}));
        assert!(host.matches(&LabelSet::from_labels([labels::Label::reserved("host")])));
        assert!(sel(json!({})).is_wildcard());
        assert!(
            !sel(json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}))
                .matches(&set(&[]))
        );
    }

    #[test]
    fn key_queries_used_by_scoping() {
        let s = sel(
            json!({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "a", "reserved:host": ""}}),
        );
        assert!(s.has_key("k8s", labels::NAMESPACE_KEY));
        assert!(s.has_key("any", labels::NAMESPACE_KEY));
        assert!(s.has_reserved_key());
        let mut t = s.clone();
        t.remove_in("k8s", labels::NAMESPACE_KEY);
        assert!(!t.has_key("any", labels::NAMESPACE_KEY));
        assert_eq!(t.to_string(), "reserved:host = ");
    }
}
