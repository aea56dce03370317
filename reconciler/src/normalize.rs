//! One canonical form for objects on both sides of a diff.
//!
//! Desired objects (from Git) and live objects (from a target) go through the same
//! [`normalize`]: fields a server owns are dropped, Cilium's schema defaults are filled in,
//! keys are sorted. Two objects are the same exactly when their canonical JSON bytes are, and
//! [`fingerprint`] hashes those bytes. [`to_yaml`] renders the canonical form for diffs.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Metadata fields written by servers, never by users.
const SERVER_METADATA: [&str; 8] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The canonical form of an object: sorted keys, no status, no server-owned metadata, no
/// empty label or annotation maps, CRD defaults applied.
pub fn normalize(object: &Value) -> Value {
    normalize_owned(object.clone())
}

/// [`normalize`] for an object the caller no longer needs: no copy is made.
///
/// Keys come out sorted because serde_json's `Map` is a `BTreeMap` in this build (the
/// `preserve_order` feature is off; `maps_iterate_in_key_order` fails if that ever changes).
pub fn normalize_owned(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in SERVER_METADATA {
                meta.remove(f);
            }
            for f in ["labels", "annotations"] {
                if meta
                    .get(f)
                    .is_some_and(|m| m.as_object().is_some_and(Map::is_empty) || m.is_null())
                {
                    meta.remove(f);
                }
            }
        }
    }
    apply_defaults(&mut v);
    v
}

/// CRD defaults the API server would add: ICMP `family: IPv4`.
fn apply_defaults(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(fields)) = m.get_mut("fields") {
                for f in fields.iter_mut().filter_map(Value::as_object_mut) {
                    if f.contains_key("type") && !f.contains_key("family") {
                        f.insert("family".into(), Value::String("IPv4".into()));
                    }
                }
            }
            m.values_mut().for_each(apply_defaults);
        }
        Value::Array(a) => a.iter_mut().for_each(apply_defaults),
        _ => {}
    }
}

/// The canonical bytes of an already-normalised object.
pub fn canonical_bytes(normalized: &Value) -> Vec<u8> {
    serde_json::to_vec(normalized).expect("a JSON value serialises")
}

/// SHA-256 of the canonical bytes, hex-encoded.
pub fn fingerprint(normalized: &Value) -> String {
    hex(&Sha256::digest(canonical_bytes(normalized)))
}

/// What identifies a revision that has no commit (a folder outside Git): `sha256:` and the
/// first 16 hex digits of the SHA-256 over every applied object's key and content, in key
/// order. The same files give the same digest on every machine; any change to an object
/// changes it.
pub fn content_digest(resources: &ward_schema::ResourceSet) -> String {
    let mut hasher = Sha256::new();
    for r in resources.iter().filter(|r| r.key.kind.is_applied()) {
        hasher.update(r.key.to_string().as_bytes());
        hasher.update([0]);
        // serde_json's maps are sorted: the bytes depend on the content only.
        serde_json::to_writer(&mut hasher, &r.object).expect("a JSON value serialises");
        hasher.update([0]);
    }
    format!("sha256:{}", &hex(&hasher.finalize())[..16])
}

/// SHA-256 of arbitrary bytes, hex-encoded.
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Renders a value as block-style YAML with two-space indents; strings are quoted whenever a
/// plain scalar would read back as something else.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                out.push_str(&pad);
                out.push_str(&scalar_str(k));
                out.push(':');
                emit_child(val, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                out.push_str(&pad);
                out.push('-');
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        // First key on the dash line, the rest indented under it.
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(inner.trim_start());
                    }
                    _ => emit_child(item, indent, out),
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn emit_child(val: &Value, indent: usize, out: &mut String) {
    match val {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit(val, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            emit(val, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_str(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// A string as a YAML scalar: plain when that reads back as the same string, else JSON-quoted
/// (valid YAML double-quoted style).
fn scalar_str(s: &str) -> String {
    let plain_ok = !s.is_empty()
        && !s.starts_with(|c: char| c.is_whitespace() || "-?:,[]{}#&*!|>'\"%@`~".contains(c))
        && !s.ends_with(char::is_whitespace)
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.contains('\n')
        && !s.ends_with(':')
        && s.chars().all(|c| !c.is_control())
        && !looks_typed(s);
    if plain_ok {
        s.to_owned()
    } else {
        serde_json::to_string(s).expect("a string serialises")
    }
}

/// Whether a plain scalar would resolve to a non-string (YAML 1.1 or 1.2).
fn looks_typed(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "null"
            | "~"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".inf"
            | "-.inf"
            | ".nan"
    ) || s.parse::<f64>().is_ok()
        || s.starts_with("0x")
        || s.starts_with("0o")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `normalize` relies on serde_json's map iterating in key order (no `preserve_order`).
    #[test]
    fn maps_iterate_in_key_order() {
        let v = serde_json::from_str::<Value>(r#"{"b": 1, "a": {"d": 2, "c": 3}}"#).expect("JSON");
        assert_eq!(
            canonical_bytes(&normalize(&v)),
            br#"{"a":{"c":3,"d":2},"b":1}"#
        );
    }

    #[test]
    fn normal_form_ignores_key_order_and_server_fields() {
        let a = json!({"spec": {"b": 1, "a": 2}, "metadata": {"name": "x", "uid": "u", "labels": {}}, "status": {"x": 1}});
        let b = json!({"metadata": {"name": "x"}, "spec": {"a": 2, "b": 1}});
        assert_eq!(fingerprint(&normalize(&a)), fingerprint(&normalize(&b)));
        let c = json!({"metadata": {"name": "x"}, "spec": {"a": 2, "b": 2}});
        assert_ne!(fingerprint(&normalize(&b)), fingerprint(&normalize(&c)));
    }

    #[test]
    fn icmp_family_defaults_to_ipv4() {
        let a = normalize(&json!({"icmps": [{"fields": [{"type": 8}]}]}));
        assert_eq!(
            a,
            json!({"icmps": [{"fields": [{"family": "IPv4", "type": 8}]}]})
        );
    }

    #[test]
    fn yaml_rendering_is_stable_and_quotes_what_it_must() {
        let v = normalize(&json!({
            "kind": "X", "spec": {"ports": [{"port": "80", "protocol": "TCP"}], "empty": [], "m": {}, "on": "yes"},
            "list": [["a"], "b: c"]
        }));
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "kind: X\nlist:\n  -\n    - a\n  - \"b: c\"\nspec:\n  empty: []\n  m: {}\n  \"on\": \"yes\"\n  ports:\n    - port: \"80\"\n      protocol: TCP\n"
        );
        // What ward prints reads back as the same object.
        let parsed =
            ward_schema::yaml::parse_documents("t.yaml", &y, &ward_schema::yaml::Limits::default());
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        assert_eq!(parsed.docs[0].root.to_json(), v);
    }
}
