//! Bounded YAML loading that keeps where everything came from.
//!
//! [`parse_documents`] turns the text of one file into [`Node`] trees, one per YAML document,
//! in which every value and every mapping key remembers its line and column. It is built on
//! saphyr-parser's event stream and never recurses on input structure, so hostile input meets
//! a limit and an error instead of a stack overflow:
//! - nesting deeper than [`Limits::max_depth`] is an error, also where an alias copies a
//!   deep anchor into a deep place;
//! - every alias expansion counts the nodes it copies against [`Limits::max_nodes`], so an
//!   alias bomb ("billion laughs") stops after a bounded amount of work and memory;
//! - a key defined twice in one mapping is an error (Kubernetes' strict decoding agrees);
//! - mapping keys must be plain strings.
//!
//! Scalars resolve like the YAML 1.2 core schema (what Kubernetes tooling reads): `null`,
//! `~` and the empty scalar are null, `true`/`false` are booleans, decimal, `0x` and `0o`
//! numbers are numbers, anything quoted or tagged `!!str` is a string.
//!
//! Two parsers produce the same [`Parsed`]: a hand-written fast path (`fast`) for the plain
//! subset of YAML that real manifests use, and the general saphyr-based path, which takes over
//! for the whole file as soon as the fast path meets anything it does not fully support
//! (anchors, tags, block scalars, multi-line scalars, limits, duplicate keys, errors...).

mod fast;
#[cfg(test)]
mod tests;

use crate::diagnostic::{Diagnostic, codes};
use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl Pos {
    fn from_marker(m: saphyr_parser::Marker) -> Self {
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// Bounds on what one file may make the loader do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most nodes one file may produce, alias expansions included.
    pub max_nodes: usize,
    /// Most documents in one file.
    pub max_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 4 << 20,
            max_depth: 64,
            max_nodes: 500_000,
            max_documents: 10_000,
        }
    }
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub value: NodeValue,
}

/// A mapping entry: the key, where the key is written, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key text.
    pub key: String,
    /// Where the key is written.
    pub key_pos: Pos,
    /// The value.
    pub value: Node,
}

/// The shapes a YAML value can take.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in the order written.
    Map(Vec<Entry>),
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl From<&str> for Seg {
    fn from(s: &str) -> Self {
        Seg::Key(s.to_owned())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// Renders a path the way users write it: `spec.ingress[0].toPorts[1]`.
pub fn path_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

impl Node {
    /// The entries of a mapping, or `None`.
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            NodeValue::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// The entry for `key` in a mapping.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.as_map()?.iter().find(|e| e.key == key)
    }

    /// The string value, or `None`.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// Where `path` points: the value's position, or for the last step the key's position
    /// when `at_key`. A path that leaves the tree stops at the deepest node it reached, so a
    /// finding about a missing field points at the object that lacks it.
    pub fn locate(&self, path: &[Seg], at_key: bool) -> Pos {
        let mut node = self;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            match (seg, &node.value) {
                (Seg::Key(k), NodeValue::Map(entries)) => {
                    match entries.iter().find(|e| &e.key == k) {
                        Some(e) if last && at_key => return e.key_pos,
                        Some(e) => node = &e.value,
                        None => return node.pos,
                    }
                }
                (Seg::Index(idx), NodeValue::Seq(items)) => match items.get(*idx) {
                    Some(item) => node = item,
                    None => return node.pos,
                },
                _ => return node.pos,
            }
        }
        node.pos
    }

    /// Converts to JSON, leaving the tree as it is; [`Node::take_json`] spares the copy.
    pub fn to_json(&self) -> Value {
        self.clone().take_json()
    }

    /// Moves the value out as JSON for schema validation and the typed model, without copying
    /// the strings. What stays behind is the tree's shape, keys and positions (all that
    /// [`Node::locate`] needs), with every scalar turned into null. Depth is bounded by the
    /// loader, so the recursion here is too.
    pub fn take_json(&mut self) -> Value {
        match &mut self.value {
            NodeValue::Seq(items) => Value::Array(items.iter_mut().map(Node::take_json).collect()),
            NodeValue::Map(entries) => {
                let mut map = Map::new();
                for e in entries {
                    map.insert(e.key.clone(), e.value.take_json());
                }
                Value::Object(map)
            }
            scalar => match std::mem::replace(scalar, NodeValue::Null) {
                NodeValue::Bool(b) => Value::Bool(b),
                NodeValue::Number(n) => Value::Number(n),
                NodeValue::String(s) => Value::String(s),
                _ => Value::Null,
            },
        }
    }

    /// How many nodes this tree holds, and how many collections deep it nests (a scalar: 0),
    /// for alias accounting. A loop, not recursion: it measures trees before they are known
    /// to be shallow.
    fn shape(&self) -> (usize, usize) {
        let mut total = 0;
        let mut height = 0;
        let mut stack = vec![(self, 0)];
        while let Some((n, depth)) = stack.pop() {
            total += 1;
            match &n.value {
                NodeValue::Seq(items) => {
                    height = height.max(depth + 1);
                    stack.extend(items.iter().map(|i| (i, depth + 1)));
                }
                NodeValue::Map(entries) => {
                    height = height.max(depth + 1);
                    stack.extend(entries.iter().map(|e| (&e.value, depth + 1)));
                }
                _ => {}
            }
        }
        (total, height)
    }
}

/// One YAML document of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlDoc {
    /// 0-based index of the document in its file.
    pub index: usize,
    /// The document's root value.
    pub root: Node,
}

/// The result of reading one file: the documents that parsed, and findings. Documents read
/// before a syntax error are kept so their own problems are reported too.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// Documents in file order (empty documents are dropped).
    pub docs: Vec<YamlDoc>,
    /// Syntax, limit and duplicate-key findings.
    pub diagnostics: Vec<Diagnostic>,
}

/// Checks size and encoding, then parses. `file` is only used to label findings.
pub fn parse_bytes(file: &str, bytes: &[u8], limits: &Limits) -> Parsed {
    if bytes.len() as u64 > limits.max_file_bytes {
        return fail(file, too_large(bytes.len() as u64, limits));
    }
    if let Some(pos) = memchr::memchr(0, bytes) {
        return fail(
            file,
            Diagnostic::error(
                codes::NOT_UTF8,
                format!("binary file (NUL byte at offset {pos})"),
            )
            .with_hint("only YAML text files belong in the policy folders; add it to .wardignore"),
        );
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_documents(file, text, limits),
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            fail(
                file,
                Diagnostic::error(codes::NOT_UTF8, format!("not UTF-8 text: {e}"))
                    .with_hint("save the file as UTF-8")
                    .at(file, line, 1),
            )
        }
    }
}

/// The finding for a file over [`Limits::max_file_bytes`].
pub fn too_large(size: u64, limits: &Limits) -> Diagnostic {
    Diagnostic::error(
        codes::FILE_UNREADABLE,
        format!(
            "file is {size} bytes, more than the limit of {} bytes",
            limits.max_file_bytes
        ),
    )
    .with_hint(
        "split it into smaller files; a Kubernetes object cannot exceed about 1.5 MiB anyway",
    )
}

fn fail(file: &str, mut d: Diagnostic) -> Parsed {
    if d.file.is_empty() {
        d.file = file.to_owned();
    }
    Parsed {
        docs: Vec::new(),
        diagnostics: vec![d],
    }
}

/// Parses every document of `text`: with the fast path when it supports the whole file,
/// otherwise with saphyr. Both give the same result wherever the fast path answers.
pub fn parse_documents(file: &str, text: &str, limits: &Limits) -> Parsed {
    fast::parse(text, limits).unwrap_or_else(|| parse_saphyr(file, text, limits))
}

/// The fast path alone: `None` when `text` leaves the subset it supports (or meets a limit,
/// a duplicate key or an error), in which case [`parse_saphyr`] gives the answer. Exposed for
/// tests and benchmarks; use [`parse_documents`].
pub fn parse_fast(text: &str, limits: &Limits) -> Option<Parsed> {
    fast::parse(text, limits)
}

/// The general saphyr-based path alone, whatever the fast path would say. Exposed for tests
/// and benchmarks; use [`parse_documents`].
pub fn parse_saphyr(file: &str, text: &str, limits: &Limits) -> Parsed {
    let mut builder = Builder::new(file, limits);
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        match next {
            Ok((event, span)) => {
                if let Err(d) = builder.event(event, Pos::from_marker(span.start)) {
                    builder.out.diagnostics.push(d);
                    break;
                }
            }
            Err(e) => {
                let pos = within(text, Pos::from_marker(*e.marker()));
                // saphyr's scanner runs ahead of the events and stops at 255 open flow
                // collections, before the builder meets its own depth limit: the same limit.
                let d = if e.info() == SAPHYR_FLOW_LIMIT {
                    located(file, codes::YAML_LIMIT, pos, depth_message(limits))
                } else {
                    Diagnostic::error(
                        codes::YAML_SYNTAX,
                        format!("YAML syntax error: {}", e.info()),
                    )
                    .at(file, pos.line, pos.column)
                    .with_hint("check indentation and quoting around this position")
                };
                builder.out.diagnostics.push(d);
                break;
            }
        }
    }
    let mut out = builder.out;
    if !text.ends_with(['\n', '\r']) {
        keep_within(text, &mut out);
    }
    out
}

/// Without a final line break, saphyr places what it meets at the end of the text (an empty
/// explicit key `? `, an error) on the line after the last one; those positions move to the
/// end of the last line.
fn keep_within(text: &str, parsed: &mut Parsed) {
    let end = within(
        text,
        Pos {
            line: usize::MAX,
            column: 1,
        },
    );
    let clamp = |pos: &mut Pos| {
        if pos.line > end.line {
            *pos = end;
        }
    };
    for d in &mut parsed.diagnostics {
        let mut pos = Pos {
            line: d.line,
            column: d.column,
        };
        clamp(&mut pos);
        (d.line, d.column) = (pos.line, pos.column);
    }
    let mut stack: Vec<&mut Node> = parsed.docs.iter_mut().map(|d| &mut d.root).collect();
    while let Some(node) = stack.pop() {
        clamp(&mut node.pos);
        match &mut node.value {
            NodeValue::Seq(items) => stack.extend(items.iter_mut()),
            NodeValue::Map(entries) => {
                for e in entries {
                    clamp(&mut e.key_pos);
                    stack.push(&mut e.value);
                }
            }
            _ => {}
        }
    }
}

/// What saphyr's scanner says past 255 nested flow collections.
const SAPHYR_FLOW_LIMIT: &str = "recursion limit exceeded";

fn depth_message(limits: &Limits) -> String {
    format!("nesting deeper than {} levels", limits.max_depth)
}

/// `pos`, or the nearest place in `text` when `pos` lies past the end of its line or of the
/// text: saphyr reports some errors past the end (on the line after the last one when the
/// final line break is missing, two columns past a byte order mark at the end of a line),
/// where no editor or annotation can show them.
fn within(text: &str, pos: Pos) -> Pos {
    // Lines as YAML counts them: ended by `\n`, `\r` or `\r\n`.
    let normalized = text.replace("\r\n", "\n");
    let lines: Vec<&str> = normalized.split(['\n', '\r']).collect();
    let line = pos.line.clamp(1, lines.len());
    let end = lines[line - 1].chars().count() + 1;
    let column = if line < pos.line {
        end
    } else {
        pos.column.clamp(1, end)
    };
    Pos { line, column }
}

/// A collection being built: a sequence, or a mapping with a pending key.
enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<PendingKey>,
    },
}

/// A mapping key waiting for its value; `keep` is false for a duplicate, whose value is
/// read (so the rest of the mapping still loads) and then dropped.
struct PendingKey {
    text: String,
    pos: Pos,
    keep: bool,
}

struct Builder<'a> {
    file: &'a str,
    limits: &'a Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    doc_index: usize,
    out: Parsed,
}

// A finding ends the file's parse: the large `Err` is the cold path.
#[allow(clippy::result_large_err)]
impl<'a> Builder<'a> {
    fn new(file: &'a str, limits: &'a Limits) -> Self {
        Builder {
            file,
            limits,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            doc_index: 0,
            out: Parsed::default(),
        }
    }

    fn err(&self, code: &'static str, pos: Pos, msg: String) -> Diagnostic {
        located(self.file, code, pos, msg)
    }

    fn event(&mut self, event: Event<'_>, pos: Pos) -> Result<(), Diagnostic> {
        match event {
            Event::DocumentStart(_) => {
                self.anchors.clear();
                if self.doc_index >= self.limits.max_documents {
                    return Err(self.err(
                        codes::YAML_LIMIT,
                        pos,
                        format!(
                            "more than {} documents in one file",
                            self.limits.max_documents
                        ),
                    ));
                }
            }
            Event::DocumentEnd => {}
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    pos,
                    value: resolve_scalar(text, style, tag.as_deref()),
                };
                self.count(1, pos)?;
                self.finish(node, anchor)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(pos)?;
                self.stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                self.open(pos)?;
                self.stack.push(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => (
                        Node {
                            pos,
                            value: NodeValue::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            pos,
                            value: NodeValue::Map(entries),
                        },
                        anchor,
                    ),
                    None => {
                        return Err(self.err(
                            codes::YAML_SYNTAX,
                            pos,
                            "unbalanced collection end".into(),
                        ));
                    }
                };
                self.finish(node, anchor)?;
            }
            Event::Alias(id) => {
                let Some((size, height)) = self.anchors.get(&id).map(Node::shape) else {
                    return Err(self.err(
                        codes::YAML_SYNTAX,
                        pos,
                        "alias to an unknown anchor".into(),
                    ));
                };
                // The copy nests where the alias stands: aliases of deep anchors inside deep
                // collections would otherwise build trees far deeper than the limit, and every
                // recursive walk of them (clone, drop, JSON, schema) overflows the stack.
                if self.stack.len() + height > self.limits.max_depth {
                    return Err(self.err(
                        codes::YAML_LIMIT,
                        pos,
                        format!(
                            "nesting deeper than {} levels (alias expansion included)",
                            self.limits.max_depth
                        ),
                    ));
                }
                // Count before cloning: the limit must stop the copy, not follow it.
                self.count(size, pos)?;
                let mut node = self.anchors[&id].clone();
                node.pos = pos;
                self.finish(node, 0)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn open(&mut self, pos: Pos) -> Result<(), Diagnostic> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.err(codes::YAML_LIMIT, pos, depth_message(self.limits)));
        }
        self.count(1, pos)
    }

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), Diagnostic> {
        self.nodes += n;
        if self.nodes > self.limits.max_nodes {
            return Err(self
                .err(
                    codes::YAML_LIMIT,
                    pos,
                    format!("more than {} YAML nodes in one file (alias expansion included)", self.limits.max_nodes),
                )
                .with_hint("this looks like an alias bomb or a generated file; split it or remove the aliases"));
        }
        Ok(())
    }

    /// Places a finished node into its parent, or ends the document.
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let file = self.file;
        match self.stack.last_mut() {
            None => {
                if node.value != NodeValue::Null {
                    self.out.docs.push(YamlDoc {
                        index: self.doc_index,
                        root: node,
                    });
                }
                self.doc_index += 1;
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let Some(key_text) = key_text(node.value) else {
                        return Err(located(
                            file,
                            codes::NON_STRING_KEY,
                            node.pos,
                            "a mapping key must be a plain string, not a sequence or mapping"
                                .into(),
                        ));
                    };
                    if let Some(first) = entries.iter().find(|e| e.key == key_text) {
                        let first_line = first.key_pos.line;
                        let d = located(
                            file,
                            codes::DUPLICATE_KEY,
                            node.pos,
                            format!("duplicate key \"{key_text}\""),
                        )
                        .with_hint(format!(
                            "it is already defined on line {first_line}; keep one"
                        ));
                        // Record and keep going: later entries of this mapping still load.
                        self.out.diagnostics.push(d);
                        *key = Some(PendingKey {
                            text: key_text,
                            pos: node.pos,
                            keep: false,
                        });
                    } else {
                        *key = Some(PendingKey {
                            text: key_text,
                            pos: node.pos,
                            keep: true,
                        });
                    }
                }
                Some(PendingKey { text, pos, keep }) => {
                    if keep {
                        entries.push(Entry {
                            key: text,
                            key_pos: pos,
                            value: node,
                        });
                    }
                }
            },
        }
        Ok(())
    }
}

fn located(file: &str, code: &'static str, pos: Pos, msg: String) -> Diagnostic {
    Diagnostic::error(code, msg).at(file, pos.line, pos.column)
}

fn resolve_scalar(text: Cow<'_, str>, style: ScalarStyle, tag: Option<&Tag>) -> NodeValue {
    if let Some(tag) = tag.filter(|t| t.is_yaml_core_schema()) {
        return match tag.suffix.as_str() {
            "str" => NodeValue::String(text.into_owned()),
            "null" => NodeValue::Null,
            "bool" => parse_bool(&text)
                .map_or_else(|| NodeValue::String(text.into_owned()), NodeValue::Bool),
            "int" | "float" => parse_number(&text)
                .map_or_else(|| NodeValue::String(text.into_owned()), NodeValue::Number),
            _ => NodeValue::String(text.into_owned()),
        };
    }
    if style != ScalarStyle::Plain {
        return NodeValue::String(text.into_owned());
    }
    resolve_plain(text)
}

/// The text a scalar key stands for: strings as written, other scalars as JSON prints them
/// (`true`, `80`, `1000.0`), null as the empty string. `None` for a collection.
fn key_text(value: NodeValue) -> Option<String> {
    match value {
        NodeValue::String(s) => Some(s),
        NodeValue::Bool(b) => Some(b.to_string()),
        NodeValue::Number(n) => Some(n.to_string()),
        NodeValue::Null => Some(String::new()),
        NodeValue::Seq(_) | NodeValue::Map(_) => None,
    }
}

/// Resolves an untagged plain scalar: null, boolean, number, or else string.
fn resolve_plain(text: Cow<'_, str>) -> NodeValue {
    // Most scalars are words: skip the checks below, none of which a word can pass.
    if text.as_bytes().first().is_some_and(|b| {
        !matches!(
            b,
            b'~' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'0'..=b'9' | b'-' | b'+' | b'.'
        )
    }) {
        return NodeValue::String(text.into_owned());
    }
    match text.as_ref() {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        _ => {}
    }
    if let Some(b) = parse_bool(&text) {
        return NodeValue::Bool(b);
    }
    if let Some(n) = parse_number(&text) {
        return NodeValue::Number(n);
    }
    NodeValue::String(text.into_owned())
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_number(s: &str) -> Option<Number> {
    let first = *s.as_bytes().first()?;
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    // Digits only after `0x` and `0o` (from_str_radix would take another sign), and the
    // range of Go's strconv.ParseInt: -0x8000000000000000 is a number, its negation is not.
    let radix_int = |body: &str, radix| {
        if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        let v = i128::from_str_radix(body, radix).ok()?;
        i64::try_from(if neg { -v } else { v }).ok()
    };
    if let Some(hex) = digits.strip_prefix("0x") {
        return radix_int(hex, 16).map(Number::from);
    }
    if let Some(oct) = digits.strip_prefix("0o") {
        return radix_int(oct, 8).map(Number::from);
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) && !digits.is_empty() {
        return s
            .parse::<i64>()
            .ok()
            .map(Number::from)
            .or_else(|| s.parse::<f64>().ok().and_then(Number::from_f64));
    }
    let is_float = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit());
    if is_float {
        return s.parse::<f64>().ok().and_then(Number::from_f64);
    }
    None
}
