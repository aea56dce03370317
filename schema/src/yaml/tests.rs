//! Unit tests for the YAML loader: behaviour of [`parse_documents`], and the fast path
//! checked against the saphyr path on tricky inputs.

use super::*;

fn parse(text: &str) -> Parsed {
    parse_documents("t.yaml", text, &Limits::default())
}

#[test]
fn keeps_positions_of_keys_and_values() {
    let p = parse("a: 1\nb:\n  - x: \"80\"\n    y: true\n");
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let root = &p.docs[0].root;
    let path = [Seg::from("b"), Seg::from(0), Seg::from("y")];
    assert_eq!(root.locate(&path, true), Pos { line: 4, column: 5 });
    assert_eq!(root.locate(&path, false), Pos { line: 4, column: 8 });
    assert_eq!(
        root.to_json(),
        serde_json::json!({"a": 1, "b": [{"x": "80", "y": true}]})
    );
}

#[test]
fn missing_path_points_at_the_parent() {
    let p = parse("spec:\n  ingress: []\n");
    let root = &p.docs[0].root;
    assert_eq!(
        root.locate(&[Seg::from("spec"), Seg::from("egress")], true),
        Pos { line: 2, column: 3 }
    );
}

#[test]
fn multi_document_files_keep_indexes() {
    let p = parse("a: 1\n---\n---\nb: 2\n");
    assert_eq!(p.docs.len(), 2);
    assert_eq!(p.docs[1].index, 2);
    assert_eq!(p.docs[1].root.pos.line, 4);
}

#[test]
fn duplicate_keys_are_errors_with_both_lines() {
    let p = parse("a: 1\nb: 2\na: 3\n");
    assert_eq!(p.diagnostics.len(), 1);
    let d = &p.diagnostics[0];
    assert_eq!((d.code, d.line, d.column), (codes::DUPLICATE_KEY, 3, 1));
    assert!(d.hint.as_deref().unwrap_or("").contains("line 1"));
}

#[test]
fn scalars_resolve_like_the_core_schema() {
    let p = parse("a: '80'\nb: 80\nc: 0x50\nd: yes\ne: ~\nf: 1.5\ng: !!str 7\n");
    let v = p.docs[0].root.to_json();
    assert_eq!(
        v,
        serde_json::json!({"a": "80", "b": 80, "c": 80, "d": "yes", "e": null, "f": 1.5, "g": "7"})
    );
}

#[test]
fn signs_inside_hex_and_octal_numbers_are_strings() {
    // `-0x-8000000000000000` negated i64::MIN (a panic with overflow checks, i64::MIN
    // without); Go's strconv.ParseInt, which Kubernetes' YAML uses, reads it as no number.
    let p = parse(
        "a: -0x-8000000000000000\nb: 0x+1F\nc: -0o-7\nd: -0x1F\ne: +0o17\nf: 0x\ng: -0x8000000000000000\n",
    );
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    assert_eq!(
        p.docs[0].root.to_json(),
        serde_json::json!({
            "a": "-0x-8000000000000000", "b": "0x+1F", "c": "-0o-7", "d": -31, "e": 15,
            "f": "0x", "g": i64::MIN,
        })
    );
    assert_eq!(fast_agrees("a: -0x-8000000000000000\n").docs.len(), 1);
}

#[test]
fn alias_bomb_stops_at_the_node_limit() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let started = std::time::Instant::now();
    let p = parse(&text);
    assert!(started.elapsed().as_secs() < 1);
    assert_eq!(
        p.diagnostics[0].code,
        codes::YAML_LIMIT,
        "{:?}",
        p.diagnostics
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let flow = "[".repeat(10_000);
    let p = parse(&format!("a: {flow}"));
    assert_eq!(p.diagnostics.len(), 1);
    // saphyr's scanner stops at 256 open flow collections, ahead of the builder's limit: the
    // same finding as at 65.
    assert_eq!(p.diagnostics[0].code, codes::YAML_LIMIT);
    assert_eq!(p.diagnostics[0].message, "nesting deeper than 64 levels");
    let p = parse(&format!("a: {}1{}", "[".repeat(65), "]".repeat(65)));
    assert_eq!(p.diagnostics[0].code, codes::YAML_LIMIT);
    assert_eq!(p.diagnostics[0].message, "nesting deeper than 64 levels");
    let mut block = String::new();
    for depth in 0..200 {
        block.push_str(&" ".repeat(depth));
        block.push_str("k:\n");
    }
    let p = parse(&block);
    assert_eq!(p.diagnostics[0].code, codes::YAML_LIMIT);
}

#[test]
fn syntax_errors_at_the_end_point_into_the_file() {
    // No final line break: saphyr places the error on line 2, which does not exist.
    let p = parse("a: &a [x, x, # frontend");
    assert_eq!(p.diagnostics.len(), 1, "{:?}", p.diagnostics);
    let d = &p.diagnostics[0];
    assert_eq!(d.code, codes::YAML_SYNTAX);
    assert_eq!((d.line, d.column), (1, 24));
    // With the line break, line 2 exists (empty) and stays.
    let p = parse("a: &a [x, x, # frontend\n");
    assert_eq!((p.diagnostics[0].line, p.diagnostics[0].column), (2, 1));
    // CR line ends count as lines too.
    let p = parse("b: 1\r\na: [x,\r\n  y");
    assert_eq!((p.diagnostics[0].line, p.diagnostics[0].column), (3, 4));
    // An empty explicit key at the very end: saphyr places it on line 6 of 5.
    let p = parse("2\n---\n? expl\n?      \n?   ");
    assert_eq!(p.diagnostics.len(), 1, "{:?}", p.diagnostics);
    assert_eq!(p.diagnostics[0].code, codes::DUPLICATE_KEY);
    assert_eq!((p.diagnostics[0].line, p.diagnostics[0].column), (5, 5));
    let keys: Vec<Pos> = p.docs[1]
        .root
        .as_map()
        .unwrap_or_default()
        .iter()
        .map(|e| e.key_pos)
        .collect();
    assert!(keys.iter().all(|k| k.line <= 5), "{keys:?}");
    // A byte order mark ending a line of 36 characters, found by the fuzzer: saphyr says
    // column 38.
    let bytes = include_bytes!("../../tests/data/fuzz/syntax-error-past-a-byte-order-mark.yaml");
    let p = parse_bytes("t.yaml", bytes, &Limits::default());
    assert_eq!(p.diagnostics.len(), 1, "{:?}", p.diagnostics);
    assert!(p.diagnostics[0].message.contains("byte order mark"));
    assert_eq!((p.diagnostics[0].line, p.diagnostics[0].column), (1, 37));
}

#[test]
fn aliases_do_not_nest_past_the_depth_limit() {
    // Each anchor nests the one before 60 levels deeper: 120 aliases made a tree 7,000
    // levels deep in 17 KB, and `ward validate` overflowed its stack on it.
    let limits = Limits::default();
    let nest = |inner: &str| format!("{}{inner}{}", "[".repeat(60), "]".repeat(60));
    let mut text = format!("a0: &a0 {}\n", nest("x"));
    for i in 1..120 {
        text.push_str(&format!("a{i}: &a{i} {}\n", nest(&format!("*a{}", i - 1))));
    }
    let p = parse(&text);
    assert_eq!(p.diagnostics.len(), 1, "{:?}", p.diagnostics);
    let d = &p.diagnostics[0];
    assert_eq!(d.code, codes::YAML_LIMIT);
    assert_eq!(
        d.message,
        format!(
            "nesting deeper than {} levels (alias expansion included)",
            limits.max_depth
        )
    );
    // At the alias: line 2, after `a1: &a1 ` and 60 brackets.
    assert_eq!((d.line, d.column), (2, 69));

    // An alias whose copy fits stays an alias: 1 (the top mapping) + 3 + 60 levels.
    let p = parse(&format!("a: &a {}\nb: [[[*a]]]\n", nest("x")));
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    // One level more does not.
    let p = parse(&format!("a: &a {}\nb: [[[[*a]]]]\n", nest("x")));
    assert_eq!(p.diagnostics[0].code, codes::YAML_LIMIT);
}

#[test]
fn binary_and_non_utf8_input_is_refused() {
    let p = parse_bytes("b.bin", b"abc\0def", &Limits::default());
    assert_eq!(p.diagnostics[0].code, codes::NOT_UTF8);
    let p = parse_bytes("l.yaml", b"a: 1\nb: \xff\n", &Limits::default());
    assert_eq!(
        (p.diagnostics[0].code, p.diagnostics[0].line),
        (codes::NOT_UTF8, 2)
    );
}

#[test]
fn syntax_errors_point_at_the_problem() {
    let p = parse("a: 1\nb: [1, 2\n");
    assert_eq!(p.diagnostics[0].code, codes::YAML_SYNTAX);
    assert!(p.diagnostics[0].line >= 2);
}

// --------------------------------------------------------------------------- fast path

/// Asserts that the fast path handles `text` and gives exactly what saphyr gives.
fn fast_agrees(text: &str) -> Parsed {
    let limits = Limits::default();
    let slow = parse_saphyr("t.yaml", text, &limits);
    let fast =
        parse_fast(text, &limits).unwrap_or_else(|| panic!("fast path fell back on {text:?}"));
    assert_eq!(fast, slow, "fast path disagrees with saphyr on {text:?}");
    fast
}

/// Asserts that the fast path leaves `text` to saphyr, and that the combined entry point
/// then answers like saphyr.
fn falls_back(text: &str) {
    falls_back_with(text, &Limits::default());
}

fn falls_back_with(text: &str, limits: &Limits) {
    assert_eq!(
        parse_fast(text, limits),
        None,
        "fast path should fall back on {text:?}"
    );
    assert_eq!(
        parse_documents("t.yaml", text, limits),
        parse_saphyr("t.yaml", text, limits)
    );
}

fn json_of(p: &Parsed) -> serde_json::Value {
    p.docs[0].root.to_json()
}

#[test]
fn fast_path_quoted_scalars() {
    let p = fast_agrees("key: \"a: b\"\nk2: 'it''s'\nk3: '# not a comment' # a comment\n");
    assert_eq!(
        json_of(&p),
        serde_json::json!({"key": "a: b", "k2": "it's", "k3": "# not a comment"})
    );
    let p = fast_agrees("k: \"tab\\there \\\"q\\\" \\\\ \\/ \\u00e9 \\n end\"\n");
    assert_eq!(
        json_of(&p),
        serde_json::json!({"k": "tab\there \"q\" \\ / \u{e9} \n end"})
    );
    let p = fast_agrees("\"quoted key\": 1\n'single': 2\n\"a b\" : 3\n");
    assert_eq!(
        json_of(&p),
        serde_json::json!({"quoted key": 1, "single": 2, "a b": 3})
    );
    fast_agrees("k: ''\nl: \"\"\nm: '  padded  '\n");
}

#[test]
fn fast_path_sequences() {
    let p = fast_agrees("- - a\n  - b\n- c\n");
    assert_eq!(json_of(&p), serde_json::json!([["a", "b"], "c"]));
    let p = fast_agrees("a:\n- b\n- c\nd: 1\n");
    assert_eq!(json_of(&p), serde_json::json!({"a": ["b", "c"], "d": 1}));
    fast_agrees("- a:\n  - x\n  b: 1\n- c: [1]\n  d:\n    e: f\n");
    fast_agrees("a:\n  - x: 1\n    y: 2\n  -   z: 3\n  -\n    w: 4\n");
    fast_agrees("a:\n-    spaced\n- - deep\n  - - deeper\n");
    fast_agrees("- # comment\n  a: 1\n");
}

#[test]
fn fast_path_empty_sequence_entries() {
    // saphyr puts an empty entry's null, and an indentless sequence starting with one, at
    // the end of the `-` line, after any spaces and comment.
    let p = fast_agrees("-\n- \n-   # c  é\n- x\n-");
    assert_eq!(
        p.docs[0].root.locate(&[Seg::from(2)], false),
        Pos {
            line: 3,
            column: 11
        }
    );
    fast_agrees("k:\n-   \n- c\nl:\n-  # x\n  - x\nm:\n-\n  a: 1\n");
    fast_agrees("- k:\n  -\n  - x\n- - \n  - x\n- -\n- y\n");
    fast_agrees("k:\n  -\r\n\r\n  # x\r\n  - c\r\n");
}

#[test]
fn fast_path_empty_values_and_comments() {
    let p = fast_agrees("key:   # comment\nother:\nlast:");
    assert_eq!(
        json_of(&p),
        serde_json::json!({"key": null, "other": null, "last": null})
    );
    fast_agrees(
        "a: b   \nc:    \nd: e # trailing\n   # indented comment\nf:\n# column-0 comment\n  g: h\n",
    );
    fast_agrees("a:\n  b:\n  c: 1\n");
}

#[test]
fn fast_path_scalar_resolution() {
    let p = fast_agrees(
        "port: 080\nx: 1e3\ny: -.5\nz: 0x1F\nw: 0o17\nb: True\nn: ~\nm: NULL\ns: yes\nf: 1.\ni: -0\nbig: 99999999999999999999\nh: .inf\nq: +1\nu: 1_000\n",
    );
    let v = json_of(&p);
    assert_eq!(v["port"], 80);
    assert_eq!(v["x"], 1000.0);
    assert_eq!(v["y"], -0.5);
    assert_eq!(v["s"], "yes");
    fast_agrees("1: a\ntrue: b\n~: c\n0x10: d\n1.5: e\n1e3: f\n");
    fast_agrees("k: {k8s:app: web, a:b:c: [x:y, \"k:\"], 'q': k8s:io.kubernetes.pod.namespace}\n");
    fast_agrees("a: x[1]{2},y\nb: a#b # comment\nc: -5\ne: a:b\nf: /api/v[12]/.*\n");
}

/// Plain scalars are scanned 8 bytes at a time: `:` and `#` at every offset of a word, as
/// keys and values, ending the scalar or not.
#[test]
fn fast_path_plain_scalars_at_every_offset() {
    for pad in 0..18 {
        let p = "x".repeat(pad);
        let text = format!(
            "{p}key: {p}v:a#b # c\n{p}k#: {p}x\nk{p}:\n- {p}a:b:c\n- a{p} #c\n- a{p}#c:\nz{p}: {p}k8s:app # end\n"
        );
        fast_agrees(&text);
    }
}

#[test]
fn fast_path_flow_collections() {
    let p = fast_agrees("k: [a, \"b, c\"]\nl: []\nm: {}\nn: [ ]\no: {name: x, 'q': \"y\"}\n");
    assert_eq!(
        json_of(&p),
        serde_json::json!({"k": ["a", "b, c"], "l": [], "m": {}, "n": [], "o": {"name": "x", "q": "y"}})
    );
    fast_agrees("spec: {a: [1, 2, {b: c}], d: {}, e: [[]]}\n");
    fast_agrees("- [a, b]\n- {c: d}\n- [ 1 , 2 ]\n");
    fast_agrees("[a, b]\n");
    fast_agrees("{a: 1}\n");
}

#[test]
fn fast_path_flow_collections_over_several_lines() {
    let p = fast_agrees(
        "x:\n  - {from: a, to: b,\n     why: \"c, d\"}\n  - [1, # one\n\n     # more\n     2]\ny: [\n  ]\n",
    );
    assert_eq!(
        json_of(&p),
        serde_json::json!({"x": [{"from": "a", "to": "b", "why": "c, d"}, [1, 2]], "y": []})
    );
    fast_agrees("[a,\nb]\n");
    fast_agrees("k: {a: [1,\n    2], b: {c: d,\n    e: f}}\nl: 1\n");
    falls_back("k: [a,\nb]\n"); // a continuation line must be indented more than the key
    falls_back("k: [a\n  b]\n"); // a multi-line plain scalar
    falls_back("k: {a:\n  b}\n");
    falls_back("k: [a,\n---\n  b]\n");
}

#[test]
fn fast_path_counts_columns_in_characters() {
    let text = "name: \"héllo wörld\"\nlabel: 日本語 # コメント\nafter: {ключ: значение, x: y}\n\"ü\": [ä, b]\n";
    let p = fast_agrees(text);
    let root = &p.docs[0].root;
    assert_eq!(
        root.locate(&[Seg::from("after"), Seg::from("x")], true),
        Pos {
            line: 3,
            column: 25
        }
    );
    assert_eq!(
        root.locate(&[Seg::from("after"), Seg::from("x")], false),
        Pos {
            line: 3,
            column: 28
        }
    );
    assert_eq!(
        root.locate(&[Seg::from("ü"), Seg::from(1)], false),
        Pos {
            line: 4,
            column: 10
        }
    );
}

#[test]
fn fast_path_line_ends_and_documents() {
    fast_agrees("a: 1\r\nb:\r\n  - x\r\n  - 'y'\r\n");
    fast_agrees("a: 1\nb: [x]");
    let p = fast_agrees("");
    assert!(p.docs.is_empty());
    let p = fast_agrees("# only\n# comments\n");
    assert!(p.docs.is_empty());
    let p = fast_agrees("--- # first\na: 1\n--- # second\nb: 2\n...\n");
    assert_eq!(p.docs.len(), 2);
    let p = fast_agrees("a: 1\n---\n---\nb: 2\n---\n");
    assert_eq!((p.docs[1].index, p.docs[1].root.pos.line), (2, 4));
    fast_agrees("...\na: 1\n...\n...\nb: 2\n");
    fast_agrees("hello\n");
    fast_agrees("--- \n  a: 1\n  b: 2\n");
    fast_agrees("~\n---\nnull\n---\nx: 1\n");
}

#[test]
fn fast_path_falls_back_on_what_it_does_not_support() {
    for text in [
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: |\n  x\n",
        "a: >-\n  x\n",
        "a: b\n  c\n",
        "a: \"b\n  c\"\n",
        "- a\n  b\n",
        "? a\n: b\n",
        "a:\t1\n",
        "a:\n\t- 1\n",
        "%YAML 1.2\n---\na: 1\n",
        "\u{feff}a: 1\n",
        "a: 1\na: 2\n",
        "a: 1\nb: {x: 1, x: 2}\n",
        "a: b: c\n",
        "a: [1, 2\n",
        "a: [1, 2,]\n",
        "a: 1\rb: 2\n",
        "k: \"\\x41\"\n",
        "k: \"\\ud800\"\n",
        "a: 1\n... x\n",
        "--- a: 1\n",
        "  a: 1\nb: 2\n",
        "a: 1\n- b\n",
        "a: - b\n",
        "a: \"x\" y\n",
        "a: [x]]\n",
        "[a]: b\n",
        "@a: b\n",
        "a: `b`\n",
        "a: \"x\"#c\n",
    ] {
        falls_back(text);
    }
}

#[test]
fn fast_path_leaves_limits_to_the_general_path() {
    let deep = "a:\n  b:\n    c:\n      d: 1\n";
    falls_back_with(
        deep,
        &Limits {
            max_depth: 3,
            ..Limits::default()
        },
    );
    falls_back_with(
        "[[[[1]]]]\n",
        &Limits {
            max_depth: 3,
            ..Limits::default()
        },
    );
    falls_back_with(
        "a: 1\nb: 2\nc: 3\n",
        &Limits {
            max_nodes: 5,
            ..Limits::default()
        },
    );
    falls_back_with(
        "a: 1\n---\nb: 2\n---\nc: 3\n",
        &Limits {
            max_documents: 2,
            ..Limits::default()
        },
    );
    let p = parse_documents(
        "t.yaml",
        deep,
        &Limits {
            max_depth: 3,
            ..Limits::default()
        },
    );
    assert_eq!(p.diagnostics[0].code, codes::YAML_LIMIT);
}

#[test]
fn duplicate_keys_in_large_mappings_are_found() {
    let mut text: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
    fast_agrees(&text);
    text.push_str("k7: again\n");
    falls_back(&text);
    assert_eq!(parse(&text).diagnostics[0].code, codes::DUPLICATE_KEY);
}
