//! What a target holds: its live objects and ward's inventory of what it applied there. The
//! plan compares desired objects with these; every target produces them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use ward_schema::ResourceKey;

/// One object as the target holds it.
///
/// An object ward wrote and nobody changed since is kept as its canonical bytes and parsed
/// only when something asks for it: a plan over 10,000 unchanged objects reads no JSON.
#[derive(Debug, Clone)]
pub struct LiveObject {
    /// Fingerprint of the normalised object.
    pub fingerprint: String,
    /// The canonical bytes, when the object has not been parsed yet.
    canonical: Option<Box<[u8]>>,
    /// The object, normalised (parsed from `canonical` on first use).
    parsed: OnceLock<Value>,
}

impl LiveObject {
    /// An object already parsed and normalised.
    pub fn new(object: Value, fingerprint: String) -> Self {
        LiveObject {
            fingerprint,
            canonical: None,
            parsed: OnceLock::from(object),
        }
    }

    /// An object known by canonical bytes whose hash is `fingerprint`: bytes that
    /// [`crate::normalize::canonical_bytes`] produced, so they parse to a normalised object.
    pub fn from_canonical(bytes: Vec<u8>, fingerprint: String) -> Self {
        LiveObject {
            fingerprint,
            canonical: Some(bytes.into_boxed_slice()),
            parsed: OnceLock::new(),
        }
    }

    /// The object, normalised.
    pub fn object(&self) -> &Value {
        self.parsed
            .get_or_init(|| parse_canonical(self.canonical.as_deref().unwrap_or_default()))
    }

    /// The object, normalised, by value.
    pub fn into_object(self) -> Value {
        match self.parsed.into_inner() {
            Some(v) => v,
            None => parse_canonical(self.canonical.as_deref().unwrap_or_default()),
        }
    }
}

/// Parses bytes that hash to a fingerprint computed over serde_json's own output, so they are
/// JSON unless SHA-256 collides; `null` stands in if that impossible case ever happens.
/// A desired object held as its JSON bytes, parsed only when it is sent, written or shown.
///
/// A parsed object of a few fields costs kilobytes (every JSON object is a B-tree node); its
/// bytes cost a few hundred. A plan of 10,000 creates holds its bodies this way, so a first
/// apply does not hold every object as a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body(Box<[u8]>);

impl Body {
    /// The body of `object`.
    pub fn new(object: &Value) -> Body {
        Body::from_bytes(crate::normalize::canonical_bytes(object))
    }

    /// A body from bytes that hold one JSON value (as [`Body::bytes`] gave them, or
    /// [`crate::normalize::canonical_bytes`]).
    pub fn from_bytes(bytes: Vec<u8>) -> Body {
        Body(bytes.into_boxed_slice())
    }

    /// The object, parsed.
    pub fn value(&self) -> Value {
        parse_canonical(&self.0)
    }

    /// The JSON bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Body {
    /// As the object itself.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

fn parse_canonical(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

impl PartialEq for LiveObject {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

/// What a target holds now.
#[derive(Debug, Clone, Default)]
pub struct LiveSet {
    /// Every object the target has, ward's or not.
    pub objects: BTreeMap<ResourceKey, LiveObject>,
    /// What ward applied last.
    pub inventory: Inventory,
}

/// The record of what ward applied: which objects, with which content, from which revision.
/// Pruning deletes only what is listed here, never what merely looks like ward's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// The revision whose apply completed last.
    #[serde(default)]
    pub applied_revision: Option<String>,
    /// The revision of the last attempt, complete or not.
    #[serde(default)]
    pub attempted_revision: Option<String>,
    /// When the last apply completed (RFC 3339, UTC).
    #[serde(default)]
    pub applied_at: Option<String>,
    /// Applied objects and the fingerprint of what ward wrote.
    #[serde(default)]
    pub entries: BTreeMap<String, InventoryEntry>,
}

/// One applied object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// The object's key.
    pub key: ResourceKey,
    /// Fingerprint of the normalised object ward applied.
    pub fingerprint: String,
    /// Where it was defined (`file:line`).
    #[serde(default)]
    pub origin: String,
}

impl Inventory {
    /// The inventory's key for an object (`Kind/namespace/name`).
    pub fn id(key: &ResourceKey) -> String {
        key.to_string()
    }

    /// The entry for `key`.
    pub fn get(&self, key: &ResourceKey) -> Option<&InventoryEntry> {
        self.entries.get(&Self::id(key))
    }
}
