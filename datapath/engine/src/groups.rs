//! CiliumCIDRGroups of one revision, and what `cidrGroupRef`/`cidrGroupSelector` resolve to
//! (reference: knp-and-cidrgroup-semantics §3).
//!
//! Since Cilium 1.17 every group's prefixes are world identities labelled
//! `cidrgroup:io.cilium.policy.cidrgroupname/<name>` and `cidrgroup:<k>=<v>` per metadata
//! label (cilium/cilium pkg/policy/k8s/cilium_cidr_group.go `applyCIDRGroup`). A reference
//! selects the group by name, a selector by those labels; either matches the group's prefixes
//! minus the rule's `except`. A reference to a group that does not exist matches nothing (no
//! error upstream); the engine says so in a [`super::Note`] marked unresolved.

use super::cidr::Prefix;
use super::labels::{Label, LabelSet};
use super::selector::Selector;
use serde::Deserialize;
use std::collections::BTreeMap;
use ward_schema::model::LabelSelector;
use ward_schema::{Kind, Resource};

/// The label source of CIDR group labels.
pub const SOURCE_CIDR_GROUP: &str = "cidrgroup";

/// One group: its labels and the prefixes Cilium accepts (invalid entries are skipped, as
/// the agent does: "CIDRGroup has invalid CIDR").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrGroup {
    labels: LabelSet,
    /// The group's prefixes.
    pub prefixes: Vec<Prefix>,
}

/// Every CiliumCIDRGroup of a revision, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrGroups {
    groups: BTreeMap<String, CidrGroup>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Object {
    metadata: Meta,
    spec: Spec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Meta {
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Spec {
    #[serde(rename = "externalCIDRs")]
    external_cidrs: Vec<String>,
}

impl CidrGroups {
    /// Adds or replaces the group `res` (a CiliumCIDRGroup); returns whether it was one.
    pub fn upsert(&mut self, res: &Resource) -> bool {
        if res.key.kind != Kind::CiliumCIDRGroup {
            return false;
        }
        let obj = Object::deserialize(&res.object).unwrap_or_default();
        let mut labels = LabelSet::new();
        for (k, v) in &obj.metadata.labels {
            labels.insert(Label::new(SOURCE_CIDR_GROUP, k, v));
        }
        let prefixes = obj
            .spec
            .external_cidrs
            .iter()
            .filter_map(|c| c.contains('/').then(|| Prefix::parse(c).ok()).flatten())
            .collect();
        self.groups
            .insert(res.key.name.clone(), CidrGroup { labels, prefixes });
        true
    }

    /// Removes a group; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.groups.remove(name).is_some()
    }

    /// The group called `name`.
    pub fn get(&self, name: &str) -> Option<&CidrGroup> {
        self.groups.get(name)
    }

    /// The groups whose labels `sel` (a plain Kubernetes selector) matches, by name.
    pub fn select<'a>(&'a self, sel: &LabelSelector) -> Vec<(&'a str, &'a CidrGroup)> {
        let sel = Selector::from_model(sel);
        self.groups
            .iter()
            .filter(|(_, g)| sel.matches(&g.labels))
            .map(|(n, g)| (n.as_str(), g))
            .collect()
    }

    /// How many groups there are.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use ward_schema::{Origin, ResourceKey};

    fn group(name: &str, labels: serde_json::Value, cidrs: &[&str]) -> Resource {
        Resource {
            key: ResourceKey::new(Kind::CiliumCIDRGroup, None, name),
            object: json!({"metadata": {"name": name, "labels": labels}, "spec": {"externalCIDRs": cidrs}}),
            origin: Origin::default(),
        }
    }

    /// Labels select groups; an invalid CIDR is skipped as the agent does.
    #[test]
    fn groups_by_name_and_label() {
        let mut g = CidrGroups::default();
        assert!(g.upsert(&group(
            "vpn",
            json!({"role": "vpn"}),
            &["192.0.2.0/24", "bogus", "198.51.100.7"]
        )));
        g.upsert(&group(
            "partners",
            json!({"role": "partner"}),
            &["203.0.113.0/24"],
        ));
        assert_eq!(
            g.get("vpn").unwrap().prefixes,
            vec![Prefix::parse("192.0.2.0/24").unwrap()],
            "entries without a prefix length or that do not parse are skipped"
        );
        let sel: LabelSelector =
            serde_json::from_value(json!({"matchLabels": {"role": "vpn"}})).unwrap();
        let names: Vec<&str> = g.select(&sel).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["vpn"]);
        let all: LabelSelector = serde_json::from_value(json!({})).unwrap();
        assert_eq!(
            g.select(&all).len(),
            2,
            "an empty selector selects every group"
        );
        assert!(g.remove("vpn") && g.get("vpn").is_none());
    }
}
