//! ward's JSON Schemas (`schema/json/ward.schema.json`), compiled once per kind, and the
//! translation of schema violations into findings with a field path, a message in plain
//! words and, for unknown fields, a did-you-mean.

use crate::diagnostic::{Severity, codes};
use crate::release::CiliumVersion;
use crate::resource::Kind;
use crate::semantic::{Finding, did_you_mean};
use crate::yaml::Seg;
use jsonschema::Validator;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;
use std::sync::OnceLock;

/// The schema document of the newest Cilium release (the default), as shipped in the repository.
pub const WARD_SCHEMA: &str = include_str!("../json/ward.schema.json");

/// The schema document generated from `version`'s CRDs.
pub fn schema_text(version: CiliumVersion) -> &'static str {
    match version {
        CiliumVersion::V1_17 => include_str!("../json/ward-1.17.schema.json"),
        CiliumVersion::V1_18 => include_str!("../json/ward-1.18.schema.json"),
        CiliumVersion::V1_19 => WARD_SCHEMA,
    }
}

/// The Cilium release (`v1.19.7`) whose CRDs `version`'s schema was generated from, as the
/// schema's own header records it; `unknown` if the header says none.
pub fn cilium_release(version: CiliumVersion) -> &'static str {
    header_release(schema_text(version)).unwrap_or("unknown")
}

/// The `v1.2.3` after the first "Cilium v" of a generated schema (its header).
fn header_release(schema: &str) -> Option<&str> {
    let at = schema.find("Cilium v")? + "Cilium ".len();
    let rest = &schema[at..];
    let end = rest[1..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(rest.len(), |i| i + 1);
    let v = rest[..end].trim_end_matches('.');
    (v.len() > 1).then_some(v)
}

/// Compiled validators, one per kind, and the schema document they were built from.
///
/// Each kind's validator is compiled when a document of that kind is first validated:
/// compiling all six costs more than validating a small repository.
pub struct Schemas {
    document: Value,
    /// The Cilium release the document was generated for.
    version: CiliumVersion,
    validators: Vec<(Kind, OnceLock<Validator>)>,
}

impl Schemas {
    /// The process-wide schemas of the default Cilium release (each kind compiled on first use).
    pub fn get() -> &'static Schemas {
        Schemas::for_version(CiliumVersion::default())
    }

    /// The process-wide schemas of `version` (each kind compiled on first use).
    pub fn for_version(version: CiliumVersion) -> &'static Schemas {
        // One slot per version, in declaration order (the enum's discriminants).
        static SCHEMAS: [OnceLock<Schemas>; CiliumVersion::ALL.len()] =
            [const { OnceLock::new() }; CiliumVersion::ALL.len()];
        SCHEMAS[version as usize].get_or_init(|| {
            Schemas::parse(schema_text(version), version)
                .expect("the embedded schemas parse (tested)")
        })
    }

    /// Compiles `text` for every kind now, reporting the first kind that fails.
    pub fn compile(text: &str, version: CiliumVersion) -> Result<Schemas, String> {
        let schemas = Schemas::parse(text, version)?;
        for (kind, cell) in &schemas.validators {
            let _ = cell.set(build(&schemas.document, *kind)?);
        }
        Ok(schemas)
    }

    /// Parses `text`; validators are compiled later, on first use.
    fn parse(text: &str, version: CiliumVersion) -> Result<Schemas, String> {
        let document: Value =
            serde_json::from_str(text).map_err(|e| format!("ward.schema.json: {e}"))?;
        Ok(Schemas {
            document,
            version,
            validators: Kind::ALL
                .into_iter()
                .map(|k| (k, OnceLock::new()))
                .collect(),
        })
    }

    fn validator(&self, kind: Kind) -> &Validator {
        let cell = &self
            .validators
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("every kind has a slot")
            .1;
        cell.get_or_init(|| {
            build(&self.document, kind)
                .expect("the embedded ward.schema.json compiles for every kind (tested)")
        })
    }

    /// Validates one document of `kind`.
    pub fn validate(&self, kind: Kind, doc: &Value) -> Vec<Finding> {
        let validator = self.validator(kind);
        if validator.is_valid(doc) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for err in validator.iter_errors(doc) {
            let path = pointer_to_path(doc, err.instance_path().as_str());
            let schema_path = err.schema_path().as_str().to_owned();
            out.extend(self.describe(err.kind(), path, &schema_path, doc));
        }
        out
    }

    /// Turns one violation into findings (an additionalProperties error with several unknown
    /// fields becomes one finding per field).
    fn describe(
        &self,
        kind: &ValidationErrorKind,
        path: Vec<Seg>,
        schema_path: &str,
        doc: &Value,
    ) -> Vec<Finding> {
        let make = |path: Vec<Seg>,
                    at_key: bool,
                    code: &'static str,
                    message: String,
                    hint: Option<String>| Finding {
            severity: Severity::Error,
            code,
            message,
            path,
            at_key,
            hint,
            unless: None,
        };
        let field = path_label(&path);
        match kind {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known = self.known_properties(schema_path);
                unexpected
                    .iter()
                    .map(|name| {
                        let mut p = path.clone();
                        p.push(Seg::Key(name.clone()));
                        if path.is_empty() && name == "description" {
                            return make(
                                p,
                                true,
                                codes::TOP_LEVEL_DESCRIPTION,
                                "top-level description field is no longer supported".into(),
                                Some(
                                    "move `description` inside `spec` (or each item of `specs`)"
                                        .into(),
                                ),
                            );
                        }
                        let refs: Vec<&str> = known.iter().map(String::as_str).collect();
                        let other = self.releases_knowing(name, schema_path);
                        let hint = match did_you_mean(name, &refs) {
                            _ if !other.is_empty() => {
                                Some(release_hint(name, &other, self.version))
                            }
                            Some(s) => Some(format!("did you mean \"{s}\"?")),
                            None if !refs.is_empty() => {
                                Some(format!("known fields here: {}", refs.join(", ")))
                            }
                            None => None,
                        };
                        let at = if field.is_empty() {
                            String::new()
                        } else {
                            format!(" in {field}")
                        };
                        make(
                            p,
                            true,
                            codes::UNKNOWN_FIELD,
                            format!("unknown field \"{name}\"{at}"),
                            hint,
                        )
                    })
                    .collect()
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                if path.is_empty() && name == "metadata" {
                    // The envelope reports this in Cilium's words ("<Kind> must have name").
                    return Vec::new();
                }
                let target = if field.is_empty() {
                    String::new()
                } else {
                    format!(" in {field}")
                };
                let at_key = !path.is_empty();
                vec![make(
                    path,
                    at_key,
                    codes::SCHEMA,
                    format!("missing required field \"{name}\"{target}"),
                    None,
                )]
            }
            ValidationErrorKind::Type { kind: expected } => {
                let actual = lookup(doc, &path);
                let want = type_names(expected);
                let hint = match (actual, want.as_str()) {
                    (Some(Value::Number(n)), "string") => Some(format!("quote it: \"{n}\"")),
                    (Some(Value::Bool(b)), "string") => Some(format!("quote it: \"{b}\"")),
                    (Some(Value::Null), _) => {
                        Some("the value is empty; give one or remove the key".into())
                    }
                    _ => None,
                };
                let got = actual.map_or("nothing", json_type);
                vec![make(
                    path,
                    false,
                    codes::SCHEMA,
                    format!("{field}: expected {want}, got {got}"),
                    hint,
                )]
            }
            ValidationErrorKind::Enum { options } => {
                let opts: Vec<String> = options
                    .as_array()
                    .map(|a| a.iter().map(|v| v.to_string()).collect())
                    .unwrap_or_default();
                let actual = lookup(doc, &path).map(Value::to_string).unwrap_or_default();
                vec![make(
                    path,
                    false,
                    codes::SCHEMA,
                    format!("{field}: unsupported value {actual}"),
                    Some(format!("supported values: {}", opts.join(", "))),
                )]
            }
            _ => {
                let message = match kind {
                    ValidationErrorKind::MaxItems { limit } => {
                        format!("{field}: must have at most {limit} items")
                    }
                    ValidationErrorKind::MinItems { limit } => {
                        format!("{field}: must have at least {limit} item(s)")
                    }
                    ValidationErrorKind::MaxLength { limit } => {
                        format!("{field}: must be at most {limit} characters")
                    }
                    ValidationErrorKind::MinLength { limit } => {
                        format!("{field}: must be at least {limit} character(s)")
                    }
                    ValidationErrorKind::Maximum { limit } => {
                        format!("{field}: must be at most {limit}")
                    }
                    ValidationErrorKind::Minimum { limit } => {
                        format!("{field}: must be at least {limit}")
                    }
                    ValidationErrorKind::Pattern { pattern } => {
                        format!("{field}: does not match {pattern}")
                    }
                    ValidationErrorKind::UniqueItems => format!("{field}: items must be unique"),
                    other => format!("{field}: {}", describe_other(other)),
                };
                vec![make(path, false, codes::SCHEMA, message, None)]
            }
        }
    }

    /// The other Cilium releases whose schema allows the property `name` at `schema_path`.
    fn releases_knowing(&self, name: &str, schema_path: &str) -> Vec<CiliumVersion> {
        CiliumVersion::ALL
            .into_iter()
            .filter(|v| *v != self.version)
            .filter(|v| {
                Schemas::for_version(*v)
                    .known_properties(schema_path)
                    .iter()
                    .any(|k| k == name)
            })
            .collect()
    }

    /// The property names allowed next to the `additionalProperties` keyword at `schema_path`.
    fn known_properties(&self, schema_path: &str) -> Vec<String> {
        let parent = schema_path
            .strip_suffix("/additionalProperties")
            .unwrap_or(schema_path);
        self.document
            .pointer(parent)
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// The hint for a field that another Cilium release has here.
fn release_hint(name: &str, releases: &[CiliumVersion], current: CiliumVersion) -> String {
    let list: Vec<&str> = releases.iter().map(|v| v.minor()).collect();
    let nearest = releases
        .iter()
        .min_by_key(|v| (**v as i32 - current as i32).abs())
        .map_or("", |v| v.minor());
    format!(
        "\"{name}\" is a field of Cilium {} but not of {current} (--cilium-version); if the cluster runs {nearest}, pass --cilium-version {nearest}",
        list.join(" and ")
    )
}

fn describe_other(kind: &ValidationErrorKind) -> String {
    match kind {
        ValidationErrorKind::OneOfNotValid { .. } => {
            "must match exactly one of the allowed shapes".into()
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            "matches more than one of the allowed shapes".into()
        }
        ValidationErrorKind::AnyOf { .. } => "does not match any of the allowed shapes".into(),
        ValidationErrorKind::FalseSchema => "is not allowed here".into(),
        _ => format!("{kind:?}"),
    }
}

fn type_names(kind: &TypeKind) -> String {
    let name = |t: &jsonschema::JsonType| t.to_string();
    match kind {
        TypeKind::Single(t) => name(t),
        TypeKind::Multiple(ts) => ts.iter().map(|t| name(&t)).collect::<Vec<_>>().join(" or "),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn lookup<'v>(doc: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    path.iter().try_fold(doc, |v, seg| match seg {
        Seg::Key(k) => v.get(k.as_str()),
        Seg::Index(i) => v.get(*i),
    })
}

fn path_label(path: &[Seg]) -> String {
    crate::yaml::path_string(path)
}

/// Converts a JSON pointer (`/spec/ingress/0`) into path segments, reading `doc` to tell an
/// array index from a numeric object key.
fn pointer_to_path(doc: &Value, ptr: &str) -> Vec<Seg> {
    let mut node = Some(doc);
    ptr.split('/')
        .skip(1)
        .map(|raw| {
            let s = raw.replace("~1", "/").replace("~0", "~");
            let seg = match (node, s.parse::<usize>()) {
                (Some(Value::Array(_)), Ok(i)) => Seg::Index(i),
                _ => Seg::Key(s),
            };
            node = node.and_then(|n| match &seg {
                Seg::Key(k) => n.get(k.as_str()),
                Seg::Index(i) => n.get(*i),
            });
            seg
        })
        .collect()
}

/// Compiles the schema document for one kind: the document with a root `$ref` to the kind.
fn build(document: &Value, kind: Kind) -> Result<Validator, String> {
    let mut root = document.clone();
    if let Some(obj) = root.as_object_mut() {
        obj.insert("$ref".into(), Value::String(format!("#/$defs/{kind}")));
    }
    jsonschema::options()
        .build(&root)
        .map_err(|e| format!("ward.schema.json for {kind}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Schemas::get` compiles lazily and panics on failure; this is the test it relies on.
    #[test]
    fn the_embedded_schemas_compile_for_every_kind() {
        for version in CiliumVersion::ALL {
            let schemas = Schemas::compile(schema_text(version), version)
                .unwrap_or_else(|e| panic!("Cilium {version}: {e}"));
            assert_eq!(schemas.validators.len(), Kind::ALL.len());
            assert!(schemas.validators.iter().all(|(_, v)| v.get().is_some()));
        }
    }

    #[test]
    fn the_release_comes_from_the_schema_header() {
        assert_eq!(
            header_release(
                r#"{"$comment": "Generated from the CRDs of Cilium v1.19.7 (schema/crds)"}"#
            ),
            Some("v1.19.7")
        );
        assert_eq!(
            header_release(r#"{"$comment": "of Cilium v1.18."}"#),
            Some("v1.18")
        );
        assert_eq!(header_release("{}"), None);
        for version in CiliumVersion::ALL {
            let release = cilium_release(version);
            assert!(
                release.starts_with(&format!("v{}.", version.minor())),
                "{version}: {release}"
            );
        }
    }

    /// Each embedded schema is the one generated from its release's CRDs.
    #[test]
    fn each_version_has_its_own_schema() {
        for version in CiliumVersion::ALL {
            let text = schema_text(version);
            assert!(
                text.contains(&format!("(schema/crds/{})", version.minor())),
                "the schema for Cilium {version} names other CRDs"
            );
        }
    }

    /// The schema document is itself a valid JSON Schema (the validators skip no check, but
    /// this names the problem plainly when someone breaks it).
    #[test]
    fn the_embedded_schemas_are_valid_json_schemas() {
        for version in CiliumVersion::ALL {
            let doc: Value = serde_json::from_str(schema_text(version)).expect("JSON");
            assert!(
                jsonschema::meta::is_valid(&doc),
                "the schema for Cilium {version} does not validate against its meta-schema"
            );
        }
    }
}
