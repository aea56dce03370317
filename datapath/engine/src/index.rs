//! Fast selector evaluation over a fixed universe of label sets, and a small fast hasher.
//!
//! [`LabelIndex`] answers "which of these label sets does this selector match" without
//! testing every set: it starts from the smallest candidate list given by one `In` or
//! `Exists` requirement (most CNP selectors carry a namespace `In`), then checks the full
//! selector on the candidates only.

use super::labels::LabelSet;
use super::selector::{Operator, Selector};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rustc's hasher): much faster than SipHash for small integer keys; the keys here
/// are identities and label strings from the project's own input, not attacker-chosen.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// An index over a list of label sets, addressed by position.
#[derive(Debug, Default)]
pub struct LabelIndex {
    sets: Vec<LabelSet>,
    /// key → value → positions having that label (any source).
    by_key: FxMap<String, FxMap<String, Vec<u32>>>,
}

impl LabelIndex {
    /// Indexes `sets`; positions are their order.
    pub fn new(sets: Vec<LabelSet>) -> LabelIndex {
        let mut by_key: FxMap<String, FxMap<String, Vec<u32>>> = FxMap::default();
        for (i, set) in sets.iter().enumerate() {
            for l in set.iter() {
                let pos = u32::try_from(i).unwrap_or(u32::MAX);
                by_key
                    .entry(l.key.clone())
                    .or_default()
                    .entry(l.value.clone())
                    .or_default()
                    .push(pos);
            }
        }
        LabelIndex { sets, by_key }
    }

    /// The label set at `pos`.
    pub fn get(&self, pos: u32) -> &LabelSet {
        &self.sets[pos as usize]
    }

    /// Positions of every label set `sel` matches, ascending.
    pub fn select(&self, sel: &Selector) -> Vec<u32> {
        let mut out: Vec<u32> = match self.candidates(sel) {
            Some(c) => c
                .into_iter()
                .filter(|p| sel.matches(&self.sets[*p as usize]))
                .collect(),
            None => (0..self.sets.len())
                .filter(|p| sel.matches(&self.sets[*p]))
                .filter_map(|p| u32::try_from(p).ok())
                .collect(),
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The smallest candidate list one `In` or `Exists` requirement gives; `None` when no
    /// requirement narrows the search.
    fn candidates(&self, sel: &Selector) -> Option<Vec<u32>> {
        let mut best: Option<Vec<u32>> = None;
        for req in sel.requirements() {
            let values = self.by_key.get(&req.key);
            let list: Vec<u32> = match (&req.op, values) {
                (Operator::In(vs), Some(m)) => vs
                    .iter()
                    .filter_map(|v| m.get(v))
                    .flatten()
                    .copied()
                    .collect(),
                (Operator::Exists, Some(m)) => m.values().flatten().copied().collect(),
                (Operator::In(_) | Operator::Exists | Operator::Invalid(_), None) => {
                    return Some(Vec::new());
                }
                (Operator::Invalid(_), Some(_)) => return Some(Vec::new()),
                _ => continue,
            };
            if best.as_ref().is_none_or(|b| list.len() < b.len()) {
                best = Some(list);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn select_agrees_with_a_full_scan() {
        let sets: Vec<LabelSet> = (0..50)
            .map(|i| {
                let labels = [
                    format!("app=a{}", i % 7),
                    format!("ns=n{}", i % 3),
                    format!("k{}=x", i % 2),
                ];
                LabelSet::parse(labels.iter().map(String::as_str), "k8s").unwrap()
            })
            .collect();
        let index = LabelIndex::new(sets.clone());
        for v in [
            json!({"matchLabels": {"app": "a3"}}),
            json!({"matchLabels": {"app": "a3", "ns": "n1"}}),
            json!({"matchExpressions": [{"key": "k0", "operator": "Exists"}]}),
            json!({"matchExpressions": [{"key": "k0", "operator": "DoesNotExist"}, {"key": "app", "operator": "NotIn", "values": ["a1"]}]}),
            json!({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}),
            json!({}),
        ] {
            let sel = Selector::from_model(&serde_json::from_value(v).unwrap());
            let scan: Vec<u32> = (0..50)
                .filter(|i| sel.matches(&sets[*i as usize]))
                .collect();
            assert_eq!(index.select(&sel), scan, "{sel}");
        }
    }

    #[test]
    fn fx_map_works() {
        let mut m: FxMap<u32, u32> = FxMap::default();
        for i in 0..1000 {
            m.insert(i, i * 2);
        }
        assert_eq!(m.get(&500), Some(&1000));
    }
}
