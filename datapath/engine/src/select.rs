//! The selector cache: each distinct peer selector is evaluated once against every peer
//! identity and shared by all rules that use it (Cilium's `SelectorCache`, in small).

use super::identity::Identity;
use super::index::{FxMap, LabelIndex};
use super::labels::LabelSet;
use super::selector::Selector;
use std::sync::{Arc, Weak};

/// A selector with the peer identities it matches, ascending.
#[derive(Debug)]
pub(crate) struct CachedSelector {
    pub selector: Selector,
    pub identities: Box<[Identity]>,
}

/// Peer identities (every identity a remote end can have) and the selectors evaluated on
/// them. Dead entries (no rule uses the selector any more) are dropped from time to time.
#[derive(Debug, Default)]
pub(crate) struct SelectorCache {
    index: LabelIndex,
    ids: Vec<Identity>,
    cache: FxMap<Selector, Weak<CachedSelector>>,
    live_after_gc: usize,
}

impl SelectorCache {
    /// A cache over these peers.
    pub fn new(peers: Vec<(Identity, LabelSet)>) -> SelectorCache {
        let (ids, sets): (Vec<Identity>, Vec<LabelSet>) = peers.into_iter().unzip();
        SelectorCache {
            index: LabelIndex::new(sets),
            ids,
            cache: FxMap::default(),
            live_after_gc: 0,
        }
    }

    /// The shared, evaluated form of `sel`.
    pub fn intern(&mut self, sel: Selector) -> Arc<CachedSelector> {
        if let Some(live) = self.cache.get(&sel).and_then(Weak::upgrade) {
            return live;
        }
        let mut identities: Vec<Identity> = self
            .index
            .select(&sel)
            .into_iter()
            .map(|p| self.ids[p as usize])
            .collect();
        identities.sort_unstable();
        let cached = Arc::new(CachedSelector {
            selector: sel.clone(),
            identities: identities.into(),
        });
        self.cache.insert(sel, Arc::downgrade(&cached));
        if self.cache.len() > 2 * self.live_after_gc + 1024 {
            self.cache.retain(|_, w| w.strong_count() > 0);
            self.live_after_gc = self.cache.len();
        }
        cached
    }

    /// Every peer identity with its labels.
    pub fn peers(&self) -> impl Iterator<Item = (Identity, &LabelSet)> {
        self.ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| u32::try_from(i).ok().map(|p| (*id, self.index.get(p))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_selectors_share_one_evaluation() {
        let set = |s: &str| LabelSet::parse([s], "k8s").unwrap();
        let mut cache = SelectorCache::new(vec![
            (Identity(256), set("app=a")),
            (Identity(257), set("app=b")),
        ]);
        let sel = || {
            Selector::from_model(
                &serde_json::from_value(json!({"matchLabels": {"app": "b"}})).unwrap(),
            )
        };
        let one = cache.intern(sel());
        let two = cache.intern(sel());
        assert!(Arc::ptr_eq(&one, &two));
        assert_eq!(&*one.identities, &[Identity(257)]);
        assert_eq!(one.selector.to_string(), "any:app = b");
        assert_eq!(cache.peers().count(), 2);
    }
}
