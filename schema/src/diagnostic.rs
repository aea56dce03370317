//! Findings about the input: one [`Diagnostic`] type for YAML, schema and semantic problems.
//!
//! Every finding names the file, the 1-based line and column, and the field path
//! (`spec.ingress[0].toPorts[0].ports[0].port`) it is about, carries a stable code that
//! tools can filter on, and usually a hint that says what to do.

use serde::Serialize;
use std::fmt;

/// How bad a finding is. Any [`Severity::Error`] stops `ward apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never blocks.
    Warning,
    /// The revision is invalid and will not be applied.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One finding, pinned to a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable code such as `WARD-S007`; see [`codes`].
    pub code: &'static str,
    /// What is wrong, in Cilium's own words where ward mirrors a Cilium check.
    pub message: String,
    /// The file, relative to the repository root where there is one.
    pub file: String,
    /// 1-based line; 0 when the finding is about the file as a whole.
    pub line: usize,
    /// 1-based column; 0 when the finding is about the file as a whole.
    pub column: usize,
    /// Dotted field path inside the document, empty for file-level findings.
    pub path: String,
    /// What to do about it, when ward knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error with no location yet; see [`Diagnostic::at`].
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }

    /// A warning with no location yet; see [`Diagnostic::at`].
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, message)
    }

    fn new(severity: Severity, code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            file: String::new(),
            line: 0,
            column: 0,
            path: String::new(),
            hint: None,
        }
    }

    /// Places the finding in `file` at `line`:`column` (both 1-based).
    #[must_use]
    pub fn at(mut self, file: impl Into<String>, line: usize, column: usize) -> Self {
        self.file = file.into();
        self.line = line;
        self.column = column;
        self
    }

    /// Sets the field path.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Adds a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column`, or just the file for file-level findings.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}[{}]: {}",
            self.location(),
            self.severity,
            self.code,
            self.message
        )?;
        if !self.path.is_empty() {
            write!(f, " (at {})", self.path)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// Sorts findings by file, line, column and code, the order every report prints them in.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.code, &a.message)
            .cmp(&(&b.file, b.line, b.column, b.code, &b.message))
    });
}

/// The stable diagnostic codes. `Y` = reading the file, `K` = document envelope (kind,
/// apiVersion, metadata), `J` = JSON Schema, `S` = Cilium's semantic rules, `D` = the set of
/// documents as a whole.
pub mod codes {
    /// The file cannot be read (I/O error, too large, a symlink out of the repository).
    pub const FILE_UNREADABLE: &str = "WARD-Y001";
    /// The file is not UTF-8 text (binary, or another encoding).
    pub const NOT_UTF8: &str = "WARD-Y002";
    /// The YAML does not parse.
    pub const YAML_SYNTAX: &str = "WARD-Y003";
    /// A limit (nesting depth, alias expansion, node count) was exceeded.
    pub const YAML_LIMIT: &str = "WARD-Y004";
    /// The same key twice in one mapping.
    pub const DUPLICATE_KEY: &str = "WARD-Y005";
    /// A mapping key that is not a plain string.
    pub const NON_STRING_KEY: &str = "WARD-Y006";
    /// A path named on the command line does not exist (and Git does not know it as deleted).
    pub const PATH_NOT_FOUND: &str = "WARD-Y007";
    /// A document is not a mapping.
    pub const NOT_AN_OBJECT: &str = "WARD-K001";
    /// `apiVersion` or `kind` missing.
    pub const MISSING_TYPE: &str = "WARD-K002";
    /// An apiVersion that does not serve this kind.
    pub const WRONG_API_VERSION: &str = "WARD-K003";
    /// A kind ward does not manage.
    pub const UNKNOWN_KIND: &str = "WARD-K004";
    /// `metadata.name` missing or invalid.
    pub const BAD_NAME: &str = "WARD-K005";
    /// Namespace on a cluster-scoped kind, or an invalid namespace.
    pub const BAD_NAMESPACE: &str = "WARD-K006";
    /// A namespaced kind without `metadata.namespace` (a warning: it lands in `default`).
    pub const NO_NAMESPACE: &str = "WARD-K007";
    /// A field the schema does not know.
    pub const UNKNOWN_FIELD: &str = "WARD-J001";
    /// Any other JSON Schema violation (type, enum, pattern, required, bounds).
    pub const SCHEMA: &str = "WARD-J002";
    /// A top-level `description` beside `spec`.
    pub const TOP_LEVEL_DESCRIPTION: &str = "WARD-J003";
    /// Neither `spec` nor `specs`.
    pub const EMPTY_POLICY: &str = "WARD-S001";
    /// Rule-level selector and direction problems (§3 rules 1–5).
    pub const RULE: &str = "WARD-S002";
    /// An invalid label selector (§3 rule 4).
    pub const SELECTOR: &str = "WARD-S003";
    /// Two peer families in one rule (§3 rule 7).
    pub const PEER_COMBINATION: &str = "WARD-S004";
    /// fromNodes/toNodes without the node-selector-labels flag (§3 rule 8).
    pub const NODE_PEERS: &str = "WARD-S005";
    /// An entity Cilium does not know (§3 rule 9).
    pub const ENTITY: &str = "WARD-S006";
    /// CIDR and CIDRSet problems (§3 rules 10–11).
    pub const CIDR: &str = "WARD-S007";
    /// FQDN selector problems (§3 rule 12).
    pub const FQDN: &str = "WARD-S008";
    /// Port and protocol problems (§3 rules 13–17).
    pub const PORT: &str = "WARD-S009";
    /// ICMP problems (§3 rules 18–20).
    pub const ICMP: &str = "WARD-S010";
    /// L7 problems (§3 rules 21–33).
    pub const L7: &str = "WARD-S011";
    /// A CNP whose subject selects reserved:init.
    pub const RESERVED_INIT: &str = "WARD-S012";
    /// CiliumConfig problems.
    pub const CONFIG: &str = "WARD-S013";
    /// PolicyTest problems (unknown endpoints, impossible ports, bad labels).
    pub const POLICY_TEST: &str = "WARD-S014";
    /// A Kubernetes NetworkPolicy peer the API server refuses (empty, or ipBlock beside a selector).
    pub const KNP_PEER: &str = "WARD-S015";
    /// A Kubernetes NetworkPolicy's policyTypes the API server refuses; rules of a direction
    /// policyTypes leaves out (a warning).
    pub const KNP_POLICY_TYPES: &str = "WARD-S016";
    /// A field the selected Cilium release deprecates (`fromRequires`/`toRequires` before 1.19).
    pub const DEPRECATED: &str = "WARD-S017";
    /// The same object defined twice across files.
    pub const DUPLICATE_OBJECT: &str = "WARD-D001";
}
