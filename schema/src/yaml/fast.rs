//! The fast path: a line-based parser for the YAML that Kubernetes and Cilium manifests
//! actually use, several times faster than the general event-based path.
//!
//! It produces exactly what the saphyr-based path produces (same [`Node`] trees, positions,
//! document indexes), or `None` when the file strays from the subset below, and then the
//! caller parses the whole file again with saphyr. `None` is always a safe answer, so
//! everything unusual, ambiguous or erroneous is `None`: the fast path never reports
//! findings, it leaves them to the general path.
//!
//! Supported:
//! - `---` and `...` lines (with nothing but a comment after them);
//! - full-line comments and trailing ` #` comments;
//! - block mappings and block sequences, compact forms (`- key: value`, `- - a`), and
//!   sequences at the same indentation as their parent key;
//! - one-line plain, single-quoted and double-quoted scalars (common escapes only);
//! - flow sequences and mappings of one-line scalars and flow collections (`[a, b]`,
//!   `{name: x}`, `[]`, `{}`), over several lines too;
//! - empty values (`key:` is null);
//! - LF and CRLF line ends.
//!
//! Not supported (`None`): tabs, control characters, byte order marks, directives, anchors,
//! aliases, tags, block scalars, multi-line scalars, explicit keys (`?`), empty values in
//! flow collections, trailing commas, duplicate keys, very long keys, and anything
//! near [`Limits`] (so the general path reports it).
//!
//! The scanner first splits the text into lines, dropping blank and comment-only ones. The
//! parser then walks those lines with a cursor: each block collection owns the lines
//! indented like its first entry, and a scalar must be followed by a line indented no more
//! than its parent collection (otherwise it would continue on that line).
//! Recursion follows nesting, which is capped by [`MAX_RECURSION`] and [`Limits::max_depth`].

use super::{Entry, Limits, Node, NodeValue, Parsed, Pos, YamlDoc, key_text, resolve_plain};
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

/// Deepest nesting the fast path follows, whatever [`Limits::max_depth`] allows.
const MAX_RECURSION: usize = 100;

/// Longest mapping key accepted, in bytes. YAML limits implicit keys to 1024 characters.
const MAX_KEY_BYTES: usize = 512;

/// Mappings with more entries than this look for duplicate keys by hash, not by scanning.
const LINEAR_DUPLICATE_SCAN: usize = 16;

/// Parses `text` if it stays within the supported subset; `None` otherwise.
pub(super) fn parse(text: &str, limits: &Limits) -> Option<Parsed> {
    let mut scratch = SCRATCH.with(Cell::take);
    let parsed = parse_with(text, limits, &mut scratch);
    scratch.recycle();
    SCRATCH.with(|cell| cell.set(scratch));
    parsed
}

thread_local! {
    /// This thread's buffers, between two files.
    static SCRATCH: Cell<Scratch> = Cell::default();
}

/// Buffers reused from one file to the next on a thread, so that parsing a file makes no
/// large allocations (they are slow among many small ones).
#[derive(Default)]
struct Scratch {
    lines: Vec<Line>,
    entries: Vec<Entry>,
    items: Vec<Node>,
}

impl Scratch {
    /// Most elements a buffer keeps room for between files.
    const KEEP: usize = 1 << 14;

    /// Empties the buffers, and frees those that grew large.
    fn recycle(&mut self) {
        if self.lines.capacity() > Self::KEEP
            || self.entries.capacity() > Self::KEEP
            || self.items.capacity() > Self::KEEP
        {
            *self = Scratch::default();
        }
        self.lines.clear();
        self.entries.clear();
        self.items.clear();
    }
}

/// [`parse`] with buffers to use.
fn parse_with(text: &str, limits: &Limits, scratch: &mut Scratch) -> Option<Parsed> {
    let ascii = check_characters(text)?;
    split_lines(text, &mut scratch.lines)?;
    let mut parser = FastParser {
        text,
        bytes: text.as_bytes(),
        lines: std::mem::take(&mut scratch.lines),
        li: 0,
        ascii,
        nodes: 0,
        entry_stack: std::mem::take(&mut scratch.entries),
        item_stack: std::mem::take(&mut scratch.items),
        max_nodes: limits.max_nodes,
        max_depth: limits.max_depth.min(MAX_RECURSION),
        max_documents: limits.max_documents,
    };
    let docs = parser.documents();
    scratch.lines = parser.lines;
    scratch.entries = parser.entry_stack;
    scratch.items = parser.item_stack;
    Some(Parsed {
        docs: docs?,
        diagnostics: Vec::new(),
    })
}

/// Refuses characters the fast path leaves to saphyr: control characters other than line
/// feeds and the CR of CRLF, DEL, and outside ASCII the C1 controls, BOMs, Unicode line
/// separators and non-characters. Returns whether the text is pure ASCII.
fn check_characters(text: &str) -> Option<bool> {
    let bytes = text.as_bytes();
    // Branch-free accumulation, so that the loop vectorizes.
    let (mut control, mut cr, mut high) = (0u8, 0u8, 0u8);
    for &b in bytes {
        control |= u8::from((b < 0x20 && b != b'\n' && b != b'\r') || b == 0x7f);
        cr |= u8::from(b == b'\r');
        high |= b >> 7;
    }
    if control != 0 {
        return None;
    }
    if cr != 0
        && bytes
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
    {
        return None;
    }
    if high != 0
        && text.chars().any(|c| {
            matches!(
                c,
                '\u{80}'
                    ..='\u{9f}' | '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'
            )
        })
    {
        return None;
    }
    Some(high == 0)
}

/// What a kept line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Something to parse.
    Content,
    /// A `---` line.
    DocStart,
    /// A `...` line.
    DocEnd,
}

/// A line that is neither blank nor only a comment.
#[derive(Debug, Clone, Copy)]
struct Line {
    /// 1-based line number.
    no: usize,
    /// Byte offset of the line's first character.
    start: usize,
    /// Byte offset of the line break (or the end of the text); a CR before LF excluded.
    end: usize,
    /// Number of leading spaces.
    indent: usize,
    kind: Kind,
}

impl Line {
    /// Byte offset of the first character after the indentation.
    fn content(&self) -> usize {
        self.start + self.indent
    }
}

/// Splits `text` into its non-blank, non-comment lines, into `lines`; `None` for a
/// directive, or for a document marker followed by anything but a comment.
fn split_lines(text: &str, lines: &mut Vec<Line>) -> Option<()> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut no = 0;
    while start < bytes.len() {
        no += 1;
        let (end, next) = match find_newline(bytes, start) {
            Some(nl) => (nl, nl + 1),
            None => (bytes.len(), bytes.len()),
        };
        let line = &bytes[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let kind = match line.get(indent) {
            None | Some(b'#') => None,
            Some(b'%') if indent == 0 => return None,
            Some(b'-') if indent == 0 && is_marker(line, b"---")? => Some(Kind::DocStart),
            Some(b'.') if indent == 0 && is_marker(line, b"...")? => Some(Kind::DocEnd),
            Some(_) => Some(Kind::Content),
        };
        if let Some(kind) = kind {
            lines.push(Line {
                no,
                start,
                end: start + line.len(),
                indent,
                kind,
            });
        }
        start = next;
    }
    Some(())
}

/// The offset of the first line feed at or after `from`, looking at 8 bytes at a time
/// (lines are short: this beats a general-purpose memchr).
fn find_newline(bytes: &[u8], from: usize) -> Option<usize> {
    let end = find_either(bytes, from, bytes.len(), b'\n', b'\n');
    (end < bytes.len()).then_some(end)
}

/// The offset of the first `a` or `b` in `bytes[from..end]`, or `end` when there is none,
/// looking at 8 bytes at a time.
fn find_either(bytes: &[u8], from: usize, end: usize, a: u8, b: u8) -> usize {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8).filter(|_| i + 8 <= end) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(word);
        let hits = byte_marks(word, a) | byte_marks(word, b);
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    bytes
        .get(i..end)
        .and_then(|rest| rest.iter().position(|&c| c == a || c == b))
        .map_or(end, |p| i + p)
}

/// Sets the high bit of the bytes of `word` that equal `byte` (the classic zero-byte test on
/// `word ^ byte…`). Only the lowest mark is reliable: a borrow may also mark bytes above a
/// true match, never below one, which is all a search for the first match needs.
fn byte_marks(word: u64, byte: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Whether `line` is the document marker `marker`: `Some(false)` when it is not one,
/// `None` when it is one followed by more than a comment.
fn is_marker(line: &[u8], marker: &[u8]) -> Option<bool> {
    let Some(rest) = line.strip_prefix(marker) else {
        return Some(false);
    };
    match rest.first() {
        None => Some(true),
        Some(b' ') => {
            let after = rest.iter().position(|&b| b != b' ');
            (after.is_none_or(|i| rest[i] == b'#')).then_some(true)
        }
        Some(_) => Some(false),
    }
}

/// Whether `b` may start a plain scalar, given the byte after it. Deliberately narrower than
/// YAML: indicators, quotes, and `-` followed by anything but a digit, a letter or `.` are
/// left to saphyr.
fn plain_start(b: u8, next: Option<u8>) -> bool {
    match b {
        b'-' => next.is_some_and(|n| n.is_ascii_alphanumeric() || n == b'.'),
        b'/' | b'.' | b'_' | b'+' | b'~' | b'(' | b')' | b'$' | b'^' | b'=' | b';' | b'\\' => true,
        _ => b.is_ascii_alphanumeric() || b >= 0x80,
    }
}

/// A scalar token on one line.
struct Scalar<'t> {
    /// Byte offset of its first character (the quote, if quoted).
    start: usize,
    /// Byte offset just past it (the closing quote, if quoted; trailing spaces excluded).
    end: usize,
    /// Its text, unescaped.
    text: Cow<'t, str>,
    /// Whether it was quoted (quoted scalars are always strings).
    quoted: bool,
}

impl Scalar<'_> {
    /// The scalar's value, resolved like the saphyr path resolves untagged scalars.
    fn value(self) -> NodeValue {
        if self.quoted {
            NodeValue::String(self.text.into_owned())
        } else {
            resolve_plain(self.text)
        }
    }
}

/// The parser's state: the kept lines and a cursor on them.
struct FastParser<'t> {
    text: &'t str,
    bytes: &'t [u8],
    lines: Vec<Line>,
    /// Index in `lines` of the line being parsed.
    li: usize,
    /// Whether the whole text is ASCII (columns are then byte offsets).
    ascii: bool,
    /// Nodes made so far, counted like the saphyr path counts them.
    nodes: usize,
    /// Entries of the mappings being built, innermost last. Collecting them here and moving
    /// them out at the end makes one exact-size allocation per mapping.
    entry_stack: Vec<Entry>,
    /// Items of the sequences being built, innermost last.
    item_stack: Vec<Node>,
    max_nodes: usize,
    max_depth: usize,
    max_documents: usize,
}

impl<'t> FastParser<'t> {
    /// Parses every document.
    fn documents(&mut self) -> Option<Vec<YamlDoc>> {
        let mut docs = Vec::new();
        let mut index = 0;
        while let Some(line) = self.lines.get(self.li).copied() {
            match line.kind {
                Kind::DocEnd => {
                    self.li += 1;
                    continue;
                }
                Kind::DocStart => self.li += 1,
                Kind::Content => {}
            }
            if index + 1 >= self.max_documents {
                return None;
            }
            let root = match self.content_line() {
                Some(first) => self.block_node(first.content(), -1, 0)?,
                None => self.null(Pos::default())?, // `---` with nothing after it
            };
            if self.content_line().is_some() {
                return None; // more content after the root: an error, or something exotic
            }
            if root.value != NodeValue::Null {
                docs.push(YamlDoc { index, root });
            }
            index += 1;
        }
        Some(docs)
    }

    // ----------------------------------------------------------------------- block nodes

    /// Parses the block node starting at byte `off` of the current line. `parent` is the
    /// indentation of the enclosing block collection (-1 for a document root).
    fn block_node(&mut self, off: usize, parent: isize, depth: usize) -> Option<Node> {
        let line = self.line()?;
        if self.is_entry(off, line.end) {
            return self.block_seq(off, false, depth);
        }
        let (scalar, colon) = match self.bytes.get(off)? {
            b'[' | b'{' => return self.flow_value(off, parent, depth),
            _ => self.block_scalar(off, line.end)?,
        };
        match colon {
            Some(colon) => self.block_map(scalar, colon, depth),
            None => self.scalar_value(scalar, parent),
        }
    }

    /// Parses a value written after `key: `: a scalar or a flow collection, never a key.
    fn inline_value(&mut self, off: usize, parent: isize, depth: usize) -> Option<Node> {
        let line = self.line()?;
        match self.bytes.get(off)? {
            b'[' | b'{' => self.flow_value(off, parent, depth),
            _ => match self.block_scalar(off, line.end)? {
                (scalar, None) => self.scalar_value(scalar, parent),
                (_, Some(_)) => None, // `a: b: c`
            },
        }
    }

    /// Finishes a scalar that makes up a whole block node.
    fn scalar_value(&mut self, scalar: Scalar<'t>, parent: isize) -> Option<Node> {
        let line = self.line()?;
        let pos = self.pos(&line, scalar.start);
        self.end_of_node_line(scalar.end, parent)?;
        self.count(1)?;
        Some(Node {
            pos,
            value: scalar.value(),
        })
    }

    /// Parses a one-line flow collection that makes up a whole block node.
    fn flow_value(&mut self, off: usize, parent: isize, depth: usize) -> Option<Node> {
        let (node, end) = self.flow(off, parent, depth)?;
        self.end_of_node_line(end, parent)?;
        Some(node)
    }

    /// After a scalar or flow node ending at `end`: checks that only a comment follows on the
    /// line, moves to the next line, and checks that it does not continue the node (a line
    /// indented more than `parent` would).
    fn end_of_node_line(&mut self, end: usize, parent: isize) -> Option<()> {
        let line = self.line()?;
        if !self.rest_is_blank(end, line.end) {
            return None;
        }
        self.li += 1;
        match self.content_line() {
            Some(next) if next.indent as isize > parent => None,
            _ => Some(()),
        }
    }

    /// Parses a block mapping whose first key has been scanned.
    fn block_map(&mut self, first: Scalar<'t>, colon: usize, depth: usize) -> Option<Node> {
        self.open(depth)?;
        let line = self.line()?;
        let indent = first.start - line.start;
        let pos = self.pos(&line, first.start);
        let mark = self.entry_stack.len();
        let mut seen = KeySet::default();
        let (mut key, mut colon) = (first, colon);
        loop {
            let line = self.line()?;
            let key_pos = self.pos(&line, key.start);
            self.count(1)?;
            let text = key_text(key.value())?;
            if seen.contains_or_insert(&self.entry_stack[mark..], &text) {
                return None; // the general path reports duplicates
            }
            let value = self.map_value(colon, indent, depth)?;
            self.entry_stack.push(Entry {
                key: text,
                key_pos,
                value,
            });

            let Some(next) = self.content_line() else {
                break;
            };
            if next.indent < indent {
                break;
            }
            if next.indent > indent || self.is_entry(next.content(), next.end) {
                return None;
            }
            let (scalar, next_colon) = match self.bytes.get(next.content())? {
                b'[' | b'{' => return None,
                _ => self.block_scalar(next.content(), next.end)?,
            };
            (key, colon) = (scalar, next_colon?);
        }
        Some(Node {
            pos,
            value: NodeValue::Map(self.entry_stack.split_off(mark)),
        })
    }

    /// Parses the value of the mapping entry whose `:` is at `colon`, in a mapping indented
    /// by `indent`: on the same line, on the following lines, or nothing (null).
    fn map_value(&mut self, colon: usize, indent: usize, depth: usize) -> Option<Node> {
        let line = self.line()?;
        let off = skip_spaces(self.bytes, colon + 1, line.end);
        if !self.rest_is_blank(off, line.end) {
            return self.inline_value(off, indent as isize, depth + 1);
        }
        let null_pos = self.pos(&line, colon);
        self.li += 1;
        match self.content_line() {
            Some(next) if next.indent > indent => {
                self.block_node(next.content(), indent as isize, depth + 1)
            }
            Some(next) if next.indent == indent && self.is_entry(next.content(), next.end) => {
                self.block_seq(next.content(), true, depth + 1)
            }
            _ => self.null(null_pos),
        }
    }

    /// Parses a block sequence whose first `-` is at `first` on the current line.
    /// `indentless` is for a sequence at the same indentation as its parent key, whose
    /// position is that of its first entry's content.
    fn block_seq(&mut self, first: usize, indentless: bool, depth: usize) -> Option<Node> {
        self.open(depth)?;
        let line = self.line()?;
        let indent = first - line.start;
        let pos = if indentless {
            // Where saphyr's scanner stands after the first `-`: at the entry's content, or at
            // the end of the line (comment included) when the entry starts on the next line.
            let item = skip_spaces(self.bytes, first + 1, line.end);
            let at = if self.rest_is_blank(item, line.end) {
                line.end
            } else {
                item
            };
            self.pos(&line, at)
        } else {
            self.pos(&line, first)
        };
        let mark = self.item_stack.len();
        let mut dash = first;
        loop {
            let item = self.seq_entry(dash, indent, depth)?;
            self.item_stack.push(item);
            let Some(next) = self.content_line() else {
                break;
            };
            if next.indent < indent {
                break;
            }
            if next.indent > indent {
                return None;
            }
            if !self.is_entry(next.content(), next.end) {
                break; // the parent mapping goes on, if it is at this indentation
            }
            dash = next.content();
        }
        Some(Node {
            pos,
            value: NodeValue::Seq(self.item_stack.split_off(mark)),
        })
    }

    /// Parses the entry whose `-` is at `dash`, in a sequence indented by `indent`.
    fn seq_entry(&mut self, dash: usize, indent: usize, depth: usize) -> Option<Node> {
        let line = self.line()?;
        let off = skip_spaces(self.bytes, dash + 1, line.end);
        if !self.rest_is_blank(off, line.end) {
            return self.block_node(off, indent as isize, depth + 1);
        }
        // An empty entry's null is placed at the end of the `-` line, comment included.
        let null_pos = self.pos(&line, line.end);
        self.li += 1;
        match self.content_line() {
            Some(next) if next.indent > indent => {
                self.block_node(next.content(), indent as isize, depth + 1)
            }
            _ => self.null(null_pos),
        }
    }

    // ----------------------------------------------------------------------- scalars

    /// Scans a scalar at `off` in block context, and the `:` after it if it is a key.
    fn block_scalar(&self, off: usize, end: usize) -> Option<(Scalar<'t>, Option<usize>)> {
        let b = self.bytes;
        let scalar = match *b.get(off)? {
            b'"' | b'\'' => self.quoted(off, end)?,
            _ => return self.plain_block(off, end),
        };
        let after = skip_spaces(b, scalar.end, end);
        let colon =
            (b.get(after) == Some(&b':') && is_blank_or_end(b, after + 1, end)).then_some(after);
        if colon.is_some() && scalar.end - scalar.start > MAX_KEY_BYTES {
            return None;
        }
        Some((scalar, colon))
    }

    /// Scans a plain scalar in block context: up to a `: ` (then it is a key), a ` #`
    /// comment, or the end of the line.
    fn plain_block(&self, off: usize, end: usize) -> Option<(Scalar<'t>, Option<usize>)> {
        let b = self.bytes;
        if !plain_start(
            *b.get(off)?,
            b.get(off + 1).copied().filter(|_| off + 1 < end),
        ) {
            return None;
        }
        let mut i = off + 1;
        let mut colon = None;
        loop {
            // Only a `:` or a `#` can end the scalar before the line does.
            i = find_either(b, i, end, b':', b'#');
            if i >= end {
                break;
            }
            if b[i] == b':' && is_blank_or_end(b, i + 1, end) {
                colon = Some(i);
                break;
            }
            if b[i] == b'#' && b[i - 1] == b' ' {
                break;
            }
            i += 1;
        }
        let text_end = trim_spaces_end(b, off, i);
        if colon.is_some() && text_end - off > MAX_KEY_BYTES {
            return None;
        }
        let text = Cow::Borrowed(self.text.get(off..text_end)?);
        Some((
            Scalar {
                start: off,
                end: text_end,
                text,
                quoted: false,
            },
            colon,
        ))
    }

    /// Scans a plain scalar in flow context: up to `,`, `]`, `}`, or a `:` followed by a
    /// space or one of those (a `:` followed by anything else belongs to the scalar, as in
    /// `k8s:app`). `None` when it would need more than that (a comment, a flow indicator or
    /// a quote inside, a line end).
    fn plain_flow(&self, off: usize, end: usize) -> Option<Scalar<'t>> {
        let b = self.bytes;
        if !plain_start(
            *b.get(off)?,
            b.get(off + 1).copied().filter(|_| off + 1 < end),
        ) {
            return None;
        }
        let mut i = off + 1;
        loop {
            match *b.get(i).filter(|_| i < end)? {
                b',' | b']' | b'}' => break,
                b':' if i + 1 >= end
                    || matches!(b[i + 1], b' ' | b',' | b'[' | b']' | b'{' | b'}') =>
                {
                    break;
                }
                b'[' | b'{' | b'#' | b'"' | b'\'' => return None,
                _ => i += 1,
            }
        }
        let text_end = trim_spaces_end(b, off, i);
        let text = Cow::Borrowed(self.text.get(off..text_end)?);
        Some(Scalar {
            start: off,
            end: text_end,
            text,
            quoted: false,
        })
    }

    /// Scans a quoted scalar that closes on its line.
    fn quoted(&self, off: usize, end: usize) -> Option<Scalar<'t>> {
        let (text, close) = match self.bytes.get(off)? {
            b'\'' => self.single_quoted(off + 1, end)?,
            _ => self.double_quoted(off + 1, end)?,
        };
        Some(Scalar {
            start: off,
            end: close + 1,
            text,
            quoted: true,
        })
    }

    /// The text of a single-quoted scalar starting at `from`, and where its closing quote is.
    fn single_quoted(&self, from: usize, end: usize) -> Option<(Cow<'t, str>, usize)> {
        let b = self.bytes;
        let mut owned: Option<String> = None;
        let (mut run, mut i) = (from, from);
        while i < end {
            if b[i] == b'\'' {
                if i + 1 < end && b[i + 1] == b'\'' {
                    // `''` is one quote: keep the first, skip the second.
                    owned
                        .get_or_insert_with(String::new)
                        .push_str(self.text.get(run..=i)?);
                    i += 2;
                    run = i;
                    continue;
                }
                return Some((self.finish_text(owned, run, i)?, i));
            }
            i += 1;
        }
        None
    }

    /// The text of a double-quoted scalar starting at `from`, and where its closing quote is.
    fn double_quoted(&self, from: usize, end: usize) -> Option<(Cow<'t, str>, usize)> {
        let b = self.bytes;
        let mut owned: Option<String> = None;
        let (mut run, mut i) = (from, from);
        while i < end {
            match b[i] {
                b'"' => return Some((self.finish_text(owned, run, i)?, i)),
                b'\\' => {
                    let (c, len) = unescape(b, i + 1, end)?;
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(self.text.get(run..i)?);
                    s.push(c);
                    i += 1 + len;
                    run = i;
                }
                _ => i += 1,
            }
        }
        None
    }

    /// The text `run..close`, after what `owned` holds if anything.
    fn finish_text(&self, owned: Option<String>, run: usize, close: usize) -> Option<Cow<'t, str>> {
        let tail = self.text.get(run..close)?;
        Some(match owned {
            Some(mut s) => {
                s.push_str(tail);
                Cow::Owned(s)
            }
            None => Cow::Borrowed(tail),
        })
    }

    // ----------------------------------------------------------------------- flow

    /// Parses a flow collection that opens at `off` on the current line. It may go on over
    /// the following lines if they are indented more than `parent`; the cursor is left on
    /// the line where it closes. Returns it and the offset just past its closing bracket.
    fn flow(&mut self, off: usize, parent: isize, depth: usize) -> Option<(Node, usize)> {
        self.open(depth)?;
        let b = self.bytes;
        let pos = self.pos(&self.line()?, off);
        let is_seq = *b.get(off)? == b'[';
        let close = if is_seq { b']' } else { b'}' };
        let (items, entries) = (self.item_stack.len(), self.entry_stack.len());
        let mut seen = KeySet::default();
        let mut i = self.flow_space(off + 1, parent)?;
        if b[i] != close {
            loop {
                if is_seq {
                    let (item, next) = self.flow_item(i, parent, depth)?;
                    self.item_stack.push(item);
                    i = next;
                } else {
                    let (entry, next) = self.flow_entry(i, parent, depth)?;
                    if seen.contains_or_insert(&self.entry_stack[entries..], &entry.key) {
                        return None;
                    }
                    self.entry_stack.push(entry);
                    i = next;
                }
                i = self.flow_space(i, parent)?;
                match b[i] {
                    b',' => {
                        i = self.flow_space(i + 1, parent)?;
                        if b[i] == close {
                            return None; // trailing comma
                        }
                    }
                    c if c == close => break,
                    _ => return None,
                }
            }
        }
        let value = if is_seq {
            NodeValue::Seq(self.item_stack.split_off(items))
        } else {
            NodeValue::Map(self.entry_stack.split_off(entries))
        };
        Some((Node { pos, value }, i + 1))
    }

    /// Skips the spaces, comments and line breaks inside a flow collection from `off`, and
    /// returns the offset of the next token, moving the cursor to its line. `None` if the
    /// collection would run into a line indented no more than `parent`, or past the document.
    fn flow_space(&mut self, off: usize, parent: isize) -> Option<usize> {
        let mut line = self.line()?;
        let mut off = skip_spaces(self.bytes, off, line.end);
        while off >= line.end || (self.bytes[off] == b'#' && self.bytes[off - 1] == b' ') {
            self.li += 1;
            line = self
                .content_line()
                .filter(|next| next.indent as isize > parent)?;
            off = line.content();
        }
        Some(off)
    }

    /// Parses one `key: value` entry of a flow mapping at `off`. The key, the `:` and the
    /// start of the value must be on one line.
    fn flow_entry(&mut self, off: usize, parent: isize, depth: usize) -> Option<(Entry, usize)> {
        let b = self.bytes;
        let line = self.line()?;
        let key = match *b.get(off)? {
            b'"' | b'\'' => self.quoted(off, line.end)?,
            _ => self.plain_flow(off, line.end)?,
        };
        if key.end - key.start > MAX_KEY_BYTES {
            return None;
        }
        let colon = skip_spaces(b, key.end, line.end);
        if colon + 1 >= line.end || b[colon] != b':' || b[colon + 1] != b' ' {
            return None;
        }
        let key_pos = self.pos(&line, key.start);
        self.count(1)?;
        let key = key_text(key.value())?;
        let value_off = skip_spaces(b, colon + 1, line.end);
        if self.rest_is_blank(value_off, line.end) {
            return None; // an empty value, or one on the next line
        }
        let (value, next) = self.flow_item(value_off, parent, depth)?;
        Some((
            Entry {
                key,
                key_pos,
                value,
            },
            next,
        ))
    }

    /// Parses one flow node at `off`: a nested flow collection or a one-line scalar.
    fn flow_item(&mut self, off: usize, parent: isize, depth: usize) -> Option<(Node, usize)> {
        let line = self.line()?;
        let scalar = match *self.bytes.get(off)? {
            b'[' | b'{' => return self.flow(off, parent, depth + 1),
            b'"' | b'\'' => self.quoted(off, line.end)?,
            _ => self.plain_flow(off, line.end)?,
        };
        self.count(1)?;
        let (pos, end) = (self.pos(&line, scalar.start), scalar.end);
        Some((
            Node {
                pos,
                value: scalar.value(),
            },
            end,
        ))
    }

    // ----------------------------------------------------------------------- helpers

    /// The current line.
    fn line(&self) -> Option<Line> {
        self.lines.get(self.li).copied()
    }

    /// The current line if it is content (not a document marker, not the end).
    fn content_line(&self) -> Option<Line> {
        self.line().filter(|l| l.kind == Kind::Content)
    }

    /// Whether a block sequence entry (`-` then a space or the line end) is at `off`.
    fn is_entry(&self, off: usize, end: usize) -> bool {
        off < end && self.bytes[off] == b'-' && is_blank_or_end(self.bytes, off + 1, end)
    }

    /// Whether nothing but spaces and a comment lies between `off` and `end`. `off` must
    /// follow a space or a token: `#` right after a token does not start a comment.
    fn rest_is_blank(&self, off: usize, end: usize) -> bool {
        let i = skip_spaces(self.bytes, off, end);
        i >= end || (self.bytes[i] == b'#' && i > 0 && self.bytes[i - 1] == b' ')
    }

    /// The 1-based line and character column of byte `off` on `line`.
    fn pos(&self, line: &Line, off: usize) -> Pos {
        let column = if self.ascii {
            off - line.start
        } else {
            self.text
                .get(line.start..off)
                .map_or(0, |s| s.chars().count())
        };
        Pos {
            line: line.no,
            column: column + 1,
        }
    }

    /// A null for an empty value at `pos`.
    fn null(&mut self, pos: Pos) -> Option<Node> {
        self.count(1)?;
        Some(Node {
            pos,
            value: NodeValue::Null,
        })
    }

    /// Accounts for `n` nodes; `None` near [`Limits::max_nodes`].
    fn count(&mut self, n: usize) -> Option<()> {
        self.nodes += n;
        (self.nodes < self.max_nodes).then_some(())
    }

    /// Accounts for a collection opened inside `depth` others; `None` near
    /// [`Limits::max_depth`].
    fn open(&mut self, depth: usize) -> Option<()> {
        if depth + 1 >= self.max_depth {
            return None;
        }
        self.count(1)
    }
}

/// The keys of a mapping being built: small mappings are scanned, large ones also keep
/// hashes of their keys.
#[derive(Default)]
struct KeySet {
    hashes: HashSet<u64, BuildHasherDefault<DefaultHasher>>,
}

impl KeySet {
    /// Whether `key` is already among `entries` (or, for large mappings, shares a hash with
    /// one of them, which the caller treats as a duplicate too); otherwise remembers it.
    fn contains_or_insert(&mut self, entries: &[Entry], key: &str) -> bool {
        if entries.len() < LINEAR_DUPLICATE_SCAN {
            return entries.iter().any(|e| e.key == key);
        }
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        if self.hashes.is_empty() {
            self.hashes
                .extend(entries.iter().map(|e| hasher.hash_one(e.key.as_str())));
        }
        !self.hashes.insert(hasher.hash_one(key))
    }
}

/// Decodes the double-quoted escape whose letter is at `at` (just after the backslash).
/// Returns the character and how many bytes the escape takes after the backslash. Only the
/// common escapes are supported.
fn unescape(b: &[u8], at: usize, end: usize) -> Option<(char, usize)> {
    if at >= end {
        return None; // a line continuation
    }
    let c = match b[at] {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'n' => '\n',
        b't' => '\t',
        b'r' => '\r',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'u' => {
            let hex = b.get(at + 1..at + 5).filter(|_| at + 5 <= end)?;
            let mut code = 0u32;
            for &h in hex {
                code = code * 16 + char::from(h).to_digit(16)?;
            }
            return Some((char::from_u32(code)?, 5));
        }
        _ => return None,
    };
    Some((c, 1))
}

/// The first offset at or after `off` (and before `end`) that is not a space.
fn skip_spaces(b: &[u8], mut off: usize, end: usize) -> usize {
    while off < end && b[off] == b' ' {
        off += 1;
    }
    off
}

/// `end` moved back over the spaces before it, not below `start`.
fn trim_spaces_end(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && b[end - 1] == b' ' {
        end -= 1;
    }
    end
}

/// Whether `off` is the line end or a space.
fn is_blank_or_end(b: &[u8], off: usize, end: usize) -> bool {
    off >= end || b[off] == b' '
}
