//! Go's `regexp.Compile` syntax check (§3 rule 30), with Go's error text.
//!
//! Cilium compiles HTTP `path` and `method` with Go's RE2 parser. `regex_syntax` accepts
//! nearly the same language; the differences that matter are handled here before it runs:
//! in Go a `{` that does not start a valid repeat (`/users/{id}`) is a literal, stacked
//! repetition operators (`a**`) are an error, repeat counts are at most 1000, `[` inside a
//! class is a literal and `\Q…\E` quotes. `regex_syntax` errors are then translated into Go's
//! error codes and fragments.

use regex_syntax::ast::ErrorKind as AstKind;
use regex_syntax::hir::ErrorKind as HirKind;
use std::cell::RefCell;
use std::collections::HashMap;

/// Go's largest repeat count.
const MAX_REPEAT: i64 = 1000;

/// `Some("error parsing regexp: <code>: `<expr>`")` when Go's `regexp.Compile` rejects `re`.
pub(crate) fn check(re: &str) -> Option<String> {
    // The same few paths and methods recur across a repository's policies, and a full parse
    // (with Unicode class translation) costs microseconds: remember the answers per thread.
    thread_local! {
        static SEEN: RefCell<HashMap<String, Option<String>>> = RefCell::new(HashMap::new());
    }
    if let Some(hit) = SEEN.with(|m| m.borrow().get(re).cloned()) {
        return hit;
    }
    let verdict = check_uncached(re);
    SEEN.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= CACHE_ENTRIES {
            m.clear();
        }
        m.insert(re.to_owned(), verdict.clone());
    });
    verdict
}

/// How many patterns each thread remembers before it starts over.
const CACHE_ENTRIES: usize = 4096;

fn check_uncached(re: &str) -> Option<String> {
    let err = |code: &str, expr: &str| Some(format!("error parsing regexp: {code}: `{expr}`"));
    let (rewritten, map) = match rewrite(re) {
        Ok(r) => r,
        Err((code, expr)) => return err(code, &expr),
    };
    let e = regex_syntax::Parser::new().parse(&rewritten).err()?;
    // Map a span of the rewritten pattern back to the original.
    let orig = |span: &regex_syntax::ast::Span| {
        let (s, e) = (
            map[span.start.offset.min(map.len() - 1)],
            map[span.end.offset.min(map.len() - 1)],
        );
        (s, e.max(s))
    };
    let (code, expr) = match &e {
        regex_syntax::Error::Parse(a) => {
            let (s, end) = orig(a.span());
            let fragment = re[s..end].to_owned();
            match a.kind() {
                AstKind::GroupUnclosed => ("missing closing )", re.to_owned()),
                AstKind::GroupUnopened => ("unexpected )", re.to_owned()),
                AstKind::ClassUnclosed => ("missing closing ]", re[s..].to_owned()),
                AstKind::ClassRangeInvalid
                | AstKind::ClassRangeLiteral
                | AstKind::UnicodeClassInvalid => ("invalid character class range", fragment),
                AstKind::ClassEscapeInvalid
                | AstKind::EscapeHexEmpty
                | AstKind::EscapeHexInvalid
                | AstKind::EscapeHexInvalidDigit
                | AstKind::EscapeUnexpectedEof
                | AstKind::EscapeUnrecognized
                | AstKind::UnsupportedBackreference
                | AstKind::SpecialWordBoundaryUnclosed
                | AstKind::SpecialWordBoundaryUnrecognized => ("invalid escape sequence", fragment),
                AstKind::FlagDanglingNegation
                | AstKind::FlagDuplicate { .. }
                | AstKind::FlagRepeatedNegation { .. }
                | AstKind::FlagUnexpectedEof
                | AstKind::FlagUnrecognized
                | AstKind::UnsupportedLookAround => {
                    // Go quotes from the "(?" that opened the group through the bad flag.
                    let open = if re[s..].starts_with("(?") {
                        s
                    } else {
                        re[..s].rfind("(?").unwrap_or(s)
                    };
                    (
                        "invalid or unsupported Perl syntax",
                        re[open..end].to_owned(),
                    )
                }
                AstKind::GroupNameDuplicate { .. }
                | AstKind::GroupNameEmpty
                | AstKind::GroupNameInvalid
                | AstKind::GroupNameUnexpectedEof => ("invalid named capture", fragment),
                AstKind::RepetitionMissing => ("missing argument to repetition operator", fragment),
                AstKind::DecimalEmpty
                | AstKind::DecimalInvalid
                | AstKind::RepetitionCountInvalid
                | AstKind::RepetitionCountDecimalEmpty
                | AstKind::RepetitionCountUnclosed => ("invalid repeat count", fragment),
                AstKind::NestLimitExceeded(_) => ("expression nests too deeply", re.to_owned()),
                AstKind::CaptureLimitExceeded => ("expression too large", re.to_owned()),
                other => return err(&other.to_string(), re),
            }
        }
        regex_syntax::Error::Translate(h) => {
            let (s, end) = orig(h.span());
            match h.kind() {
                HirKind::UnicodePropertyNotFound | HirKind::UnicodePropertyValueNotFound => {
                    ("invalid character class range", re[s..end].to_owned())
                }
                other => return err(&other.to_string(), re),
            }
        }
        other => return err(&other.to_string(), re),
    };
    err(code, &expr)
}

/// Rewrites `re` into what `regex_syntax` reads the way Go does, returning it with a map from
/// each byte offset of the rewrite (plus its end) to the original offset; or Go's error for
/// the problems `regex_syntax` would not see (code and fragment).
fn rewrite(re: &str) -> Result<(String, Vec<usize>), (&'static str, String)> {
    let mut out = String::with_capacity(re.len() + 8);
    let mut map = Vec::with_capacity(re.len() + 8);
    let b = re.as_bytes();
    let mut i = 0;
    // Whether something precedes that a repetition operator can apply to.
    let mut has_atom = false;
    // Where the repetition operator just before started, if the last thing was one.
    let mut last_repeat: Option<usize> = None;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' if b.get(i + 1) == Some(&b'Q') => {
                let body_start = i + 2;
                let body_end = re[body_start..]
                    .find("\\E")
                    .map_or(re.len(), |n| body_start + n);
                for (k, ch) in re[body_start..body_end].char_indices() {
                    push(
                        &mut out,
                        &mut map,
                        &regex_syntax::escape(&ch.to_string()),
                        body_start + k,
                        ch.len_utf8(),
                    );
                }
                has_atom |= body_end > body_start;
                last_repeat = None;
                i = (body_end + 2).min(re.len());
            }
            b'\\' => {
                let Some(next) = re[i + 1..].chars().next() else {
                    return Err(("trailing backslash at end of expression", String::new()));
                };
                let mut end = i + 1 + next.len_utf8();
                // `\p{Greek}`, `\P{Greek}` and `\x{263a}` take their braces with them.
                if matches!(next, 'p' | 'P' | 'x') && re[end..].starts_with('{') {
                    end = re[end..].find('}').map_or(re.len(), |n| end + n + 1);
                }
                push(&mut out, &mut map, &re[i..end], i, end - i);
                i = end;
                has_atom = true;
                last_repeat = None;
            }
            b'[' => {
                i = copy_class(re, i, &mut out, &mut map);
                has_atom = true;
                last_repeat = None;
            }
            b'(' if b.get(i + 1) == Some(&b'?') => {
                // A group with flags or a name: the `?` is not a repetition operator.
                push(&mut out, &mut map, "(?", i, 2);
                i += 2;
                has_atom = false;
                last_repeat = None;
            }
            b'*' | b'+' | b'?' | b'{' => {
                let end = if c == b'{' {
                    let Some((len, min, max)) = parse_repeat(&re[i..]) else {
                        // Not a repeat: a literal brace in Go.
                        push(&mut out, &mut map, "\\{", i, 1);
                        i += 1;
                        has_atom = true;
                        last_repeat = None;
                        continue;
                    };
                    if !(0..=MAX_REPEAT).contains(&min)
                        || max > MAX_REPEAT
                        || (max >= 0 && min > max)
                    {
                        return Err(("invalid repeat count", re[i..i + len].to_owned()));
                    }
                    i + len
                } else {
                    i + 1
                };
                // A lazy `?` belongs to the operator.
                let end = if b.get(end) == Some(&b'?') {
                    end + 1
                } else {
                    end
                };
                if let Some(prev) = last_repeat {
                    return Err((
                        "invalid nested repetition operator",
                        re[prev..end].to_owned(),
                    ));
                }
                if !has_atom {
                    return Err((
                        "missing argument to repetition operator",
                        re[i..end].to_owned(),
                    ));
                }
                push(&mut out, &mut map, &re[i..end], i, end - i);
                last_repeat = Some(i);
                i = end;
            }
            _ => {
                let ch = re[i..].chars().next().unwrap_or_default();
                push(
                    &mut out,
                    &mut map,
                    &re[i..i + ch.len_utf8()],
                    i,
                    ch.len_utf8(),
                );
                i += ch.len_utf8();
                has_atom = !matches!(c, b'(' | b'|');
                last_repeat = None;
            }
        }
    }
    map.push(re.len());
    Ok((out, map))
}

/// Appends `s` to the rewrite. It stands for `orig_len` bytes of the original at `at`; any
/// extra bytes (an inserted escape) come first and map to `at`.
fn push(out: &mut String, map: &mut Vec<usize>, s: &str, at: usize, orig_len: usize) {
    let inserted = s.len().saturating_sub(orig_len);
    out.push_str(s);
    map.extend((0..s.len()).map(|k| at + k.saturating_sub(inserted)));
}

/// Copies a bracketed class starting at `start` (`[`), escaping what Go reads literally but
/// `regex_syntax` would not (`[` that does not open a POSIX class, `&&`, `~~`). Returns the
/// offset after the class, or the end of the input if it is unclosed.
fn copy_class(re: &str, start: usize, out: &mut String, map: &mut Vec<usize>) -> usize {
    let b = re.as_bytes();
    push(out, map, "[", start, 1);
    let mut i = start + 1;
    if b.get(i) == Some(&b'^') {
        push(out, map, "^", i, 1);
        i += 1;
    }
    // A `]` right after `[` or `[^` is a literal.
    if b.get(i) == Some(&b']') {
        push(out, map, "\\]", i, 1);
        i += 1;
    }
    while i < b.len() {
        match b[i] {
            b']' => {
                push(out, map, "]", i, 1);
                return i + 1;
            }
            b'\\' => {
                let len = re[i + 1..].chars().next().map_or(0, char::len_utf8);
                push(out, map, &re[i..i + 1 + len], i, 1 + len);
                i += 1 + len;
            }
            b'[' if re[i..].starts_with("[:") => {
                let end = re[i + 2..].find(":]").map_or(i + 1, |n| i + 2 + n + 2);
                push(out, map, &re[i..end], i, end - i);
                i = end;
            }
            b'[' | b'&' | b'~' => {
                push(out, map, &format!("\\{}", b[i] as char), i, 1);
                i += 1;
            }
            _ => {
                let len = re[i..].chars().next().map_or(1, char::len_utf8);
                push(out, map, &re[i..i + len], i, len);
                i += len;
            }
        }
    }
    i
}

/// Go's `parseRepeat`: `{n}`, `{n,}` or `{n,m}` at the start of `s`, as (length, min, max)
/// with Go's conventions: max -1 for `{n,}`, and -1 for a number too large to count (a
/// too-large max makes min -1 too). `None` when the brace does not start a repeat, which
/// makes it a literal; leading zeros do that too.
fn parse_repeat(s: &str) -> Option<(usize, i64, i64)> {
    fn int(s: &str) -> Option<(usize, i64)> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || (digits >= 2 && s.starts_with('0')) {
            return None;
        }
        let mut n: i64 = 0;
        for d in s[..digits].bytes() {
            if n >= 100_000_000 {
                return Some((digits, -1));
            }
            n = n * 10 + i64::from(d - b'0');
        }
        Some((digits, n))
    }
    let rest = s.strip_prefix('{')?;
    let (n, mut min) = int(rest)?;
    let mut rest = &rest[n..];
    let max = match rest.strip_prefix(',') {
        Some(r) if r.starts_with('}') => {
            rest = r;
            -1
        }
        Some(r) => {
            let (m, max) = int(r)?;
            rest = &r[m..];
            if max < 0 {
                min = -1;
            }
            max
        }
        None => min,
    };
    let rest = rest.strip_prefix('}')?;
    Some((s.len() - rest.len(), min, max))
}

#[cfg(test)]
mod tests {
    use super::check;

    fn go(code: &str, expr: &str) -> Option<String> {
        Some(format!("error parsing regexp: {code}: `{expr}`"))
    }

    #[test]
    fn valid_patterns() {
        for re in [
            "/public/.*",
            "GET|POST",
            "/api/v1/users/{id}",
            "/a{2}b{1,}c{1,3}",
            "a{,5}",
            "a{01}",
            "x{",
            "}",
            "[[]",
            "[]a]",
            "[^]a]",
            "[[:alpha:]_-]+",
            "a*?",
            "\\Q*.+\\E",
            "(?i)get",
            "(?P<id>[0-9]+)",
            "/caf\u{e9}/{x}",
        ] {
            assert_eq!(check(re), None, "{re}");
        }
    }

    #[test]
    fn go_error_text() {
        assert_eq!(check("/api/(v1"), go("missing closing )", "/api/(v1"));
        assert_eq!(check("a)"), go("unexpected )", "a)"));
        assert_eq!(check("GET["), go("missing closing ]", "["));
        assert_eq!(check("x[a-"), go("missing closing ]", "[a-"));
        assert_eq!(check("[z-a]"), go("invalid character class range", "z-a"));
        assert_eq!(check("a\\q"), go("invalid escape sequence", "\\q"));
        assert_eq!(
            check("a\\"),
            go("trailing backslash at end of expression", "")
        );
        assert_eq!(check("a**"), go("invalid nested repetition operator", "**"));
        assert_eq!(
            check("a*?+"),
            go("invalid nested repetition operator", "*?+")
        );
        assert_eq!(
            check("*a"),
            go("missing argument to repetition operator", "*")
        );
        assert_eq!(
            check("(+)"),
            go("missing argument to repetition operator", "+")
        );
        assert_eq!(check("a{1001}"), go("invalid repeat count", "{1001}"));
        assert_eq!(check("a{2,1}"), go("invalid repeat count", "{2,1}"));
        assert_eq!(
            check("(?=x)"),
            go("invalid or unsupported Perl syntax", "(?=")
        );
        assert_eq!(
            check("\\p{Foo}"),
            go("invalid character class range", "\\p{Foo}")
        );
    }

    #[test]
    fn never_panics() {
        let alphabet = [
            "(", ")", "?", "*", "{", "}", "1", ",", "[", "]", "\\", "Q", "E", "p", ":", "^", "|",
            "\u{e9}", "a", "-",
        ];
        for x in alphabet {
            for y in alphabet {
                for z in alphabet {
                    let _ = check(&format!("{x}{y}{z}"));
                    let _ = check(&format!("(?{x}{y}{z}"));
                }
            }
        }
    }
}
