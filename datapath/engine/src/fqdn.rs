//! `toFQDNs` against DNS answers (reference §2 FQDNSelector): which names a selector matches.
//! Cilium learns the addresses from the DNS answers its proxy sees; ward takes them from the
//! answers a PolicyTest declares (`spec.dns`), so a rule's destinations are exactly those
//! addresses.
//!
//! - `matchName`: the literal name, case-insensitive; a trailing dot is implied.
//! - `matchPattern`: `*` is zero or more DNS characters within one label; a bare `*` (or `**`,
//!   `*.`) matches every name; a `**.` prefix matches one or more whole labels (Cilium 1.19;
//!   before, it behaved like `*.`).

use ward_schema::model::FqdnSelector;

/// Whether the `toFQDNs` selector `sel` matches the DNS name `name`.
pub fn matches(sel: &FqdnSelector, name: &str) -> bool {
    let name = normalize(name);
    if let Some(n) = &sel.match_name {
        return normalize(n) == name;
    }
    let Some(pattern) = &sel.match_pattern else {
        return false;
    };
    let pattern = normalize(pattern);
    if matches!(pattern.as_str(), "*." | "**." | ".") {
        return true;
    }
    if let Some(rest) = pattern.strip_prefix("**.") {
        // One or more whole labels, then the rest.
        return name
            .char_indices()
            .filter(|(_, c)| *c == '.')
            .any(|(i, _)| i > 0 && labels_match(rest, &name[i + 1..]));
    }
    labels_match(&pattern, &name)
}

/// Lower case with one trailing dot (`*` becomes `*.`).
fn normalize(s: &str) -> String {
    let mut s = s.trim().to_ascii_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// Label by label: the same number of labels, each matching its pattern label.
fn labels_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), name.split('.').collect());
    p.len() == n.len() && p.iter().zip(&n).all(|(p, n)| label_matches(p, n))
}

/// One label: `*` stands for zero or more characters.
fn label_matches(pattern: &str, label: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == label,
        Some((head, tail)) => {
            label.len() >= head.len()
                && label.starts_with(head)
                && (0..=label.len() - head.len())
                    .any(|i| label_matches(tail, &label[head.len() + i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> FqdnSelector {
        FqdnSelector {
            match_name: Some(n.into()),
            ..FqdnSelector::default()
        }
    }

    fn pattern(p: &str) -> FqdnSelector {
        FqdnSelector {
            match_pattern: Some(p.into()),
            ..FqdnSelector::default()
        }
    }

    #[test]
    fn names_and_patterns() {
        assert!(matches(&name("API.example.com"), "api.example.com."));
        assert!(!matches(&name("api.example.com"), "www.api.example.com"));
        for p in ["*", "*.", "**"] {
            assert!(matches(&pattern(p), "anything.example.org"), "{p}");
        }
        assert!(matches(&pattern("*.example.com"), "api.example.com"));
        assert!(!matches(&pattern("*.example.com"), "example.com"));
        assert!(!matches(&pattern("*.example.com"), "a.b.example.com"));
        assert!(matches(&pattern("api-*.example.com"), "api-eu.example.com"));
        assert!(matches(&pattern("api-*.example.com"), "api-.example.com"));
        assert!(!matches(
            &pattern("api-*.example.com"),
            "web-eu.example.com"
        ));
        assert!(matches(&pattern("**.example.com"), "a.b.example.com"));
        assert!(matches(&pattern("**.example.com"), "a.example.com"));
        assert!(!matches(&pattern("**.example.com"), "example.com"));
        assert!(matches(&pattern("*a*b*"), "xaxxbx"));
        assert!(!matches(&pattern("*a*b*"), "xbxxax"));
    }
}
