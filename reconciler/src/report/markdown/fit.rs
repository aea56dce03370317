//! Fitting a comment into a character limit by leaving out whole items.
//!
//! A comment is a head (never cut) and sections. A section is an intro, items and an outro;
//! it is cut only between items, and each item is whole markdown (a table row, a closed
//! `<details>` block with its closed code fence), so whatever is cut, the rest renders.
//! Sections are given room in priority order, each at most its share of the limit, then
//! what is left goes to the cut ones in the same order; they are shown in display order; a cut section ends with a line that says how much was left out
//! and where the whole report is.

use std::fmt::Write;

/// A part of the comment that can be cut between its items.
#[derive(Debug, Default)]
pub(super) struct Section {
    /// What its items are, plural (`object diffs`), for the cut line.
    pub what: &'static str,
    /// Text before the items (a heading, a table header); kept whenever an item is.
    pub intro: String,
    /// The items, each whole markdown.
    pub items: Vec<String>,
    /// Text after the items (a closing blank line).
    pub outro: String,
    /// When room is handed out: lower first.
    pub priority: u8,
    /// The most of the limit it may take, in thirds (3: all that is left).
    pub thirds: usize,
}

impl Section {
    fn len(&self) -> usize {
        chars(&self.intro) + self.items.iter().map(|i| chars(i)).sum::<usize>() + chars(&self.outro)
    }

    fn whole(&self) -> String {
        let mut s = self.intro.clone();
        s.extend(self.items.iter().map(String::as_str));
        s.push_str(&self.outro);
        s
    }
}

/// A section as it fits: its text, and what was left out.
#[derive(Debug, Default)]
struct Fitted {
    text: String,
    left_out: usize,
    left_out_chars: usize,
}

/// `head` and `sections` (in display order) in at most `limit` characters (0: no limit).
/// `command` names the command in the cut line.
pub(super) fn fit(head: String, sections: Vec<Section>, limit: usize, command: &str) -> String {
    let whole = chars(&head) + sections.iter().map(Section::len).sum::<usize>();
    if limit == 0 || whole <= limit {
        return sections.iter().fold(head, |s, sec| s + &sec.whole());
    }
    // Room for a cut line under every section, at its longest.
    let reserve: usize = sections
        .iter()
        .map(|s| chars(&cut_line(s.what, s.items.len(), s.len(), limit, command)))
        .sum();
    let mut room = limit.saturating_sub(chars(&head) + reserve);
    let mut order: Vec<usize> = (0..sections.len()).collect();
    order.sort_by_key(|&i| sections[i].priority);
    let mut fitted: Vec<Fitted> = sections.iter().map(|_| Fitted::default()).collect();
    for &i in &order {
        let share = if sections[i].thirds >= 3 {
            room
        } else {
            room.min(limit * sections[i].thirds / 3)
        };
        fitted[i] = fit_section(&sections[i], share);
        room -= chars(&fitted[i].text);
    }
    // Room the others did not need goes to the cut sections, in the same order.
    for &i in &order {
        if fitted[i].left_out > 0 && room > 0 {
            let used = chars(&fitted[i].text);
            fitted[i] = fit_section(&sections[i], used + room);
            room -= chars(&fitted[i].text) - used;
        }
    }
    let mut out = head;
    for (s, f) in sections.iter().zip(fitted) {
        out.push_str(&f.text);
        if f.left_out > 0 {
            out.push_str(&cut_line(
                s.what,
                f.left_out,
                f.left_out_chars,
                limit,
                command,
            ));
        }
    }
    out
}

/// The items of `s` that fit in `room`, in order, stopping at the first that does not.
fn fit_section(s: &Section, room: usize) -> Fitted {
    let frame = chars(&s.intro) + chars(&s.outro);
    let mut used = frame;
    let mut taken = 0;
    for item in &s.items {
        let n = chars(item);
        if used + n > room {
            break;
        }
        used += n;
        taken += 1;
    }
    let left: &[String] = &s.items[taken..];
    let left_out_chars = left.iter().map(|i| chars(i)).sum::<usize>();
    if taken == 0 && !s.items.is_empty() || frame > room {
        // Nothing of it fits: leave out the frame too.
        return Fitted {
            text: String::new(),
            left_out: s.items.len(),
            left_out_chars: s.len(),
        };
    }
    let mut text = s.intro.clone();
    s.items[..taken].iter().for_each(|i| text.push_str(i));
    text.push_str(&s.outro);
    Fitted {
        text,
        left_out: left.len(),
        left_out_chars,
    }
}

/// The line under a cut section.
fn cut_line(what: &str, n: usize, chars: usize, limit: usize, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n> ✂️ **{} {what} left out** ({} characters) to keep this under {} characters. \
         The whole report: the CI job log, or `ward {command}` again with \
         `--markdown-limit 0`.\n",
        thousands(n),
        thousands(chars),
        thousands(limit)
    );
    s
}

/// Characters, as a comment's limit counts them.
pub(super) fn chars(s: &str) -> usize {
    s.chars().count()
}

/// `60,000`.
pub(super) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(what: &'static str, n: usize, size: usize, priority: u8, thirds: usize) -> Section {
        Section {
            what,
            intro: format!("## {what}\n"),
            items: (0..n).map(|i| format!("{i:0>size$}\n")).collect(),
            outro: "\n".into(),
            priority,
            thirds,
        }
    }

    #[test]
    fn what_fits_is_whole() {
        let out = fit(
            "head\n".into(),
            vec![section("rows", 3, 9, 0, 1)],
            1000,
            "diff",
        );
        assert_eq!(out, "head\n## rows\n000000000\n000000001\n000000002\n\n");
        assert_eq!(
            fit(
                "h\n".into(),
                vec![section("rows", 300, 99, 0, 1)],
                0,
                "diff"
            )
            .len(),
            2 + 8 + 30_000 + 1
        );
    }

    #[test]
    fn a_cut_keeps_the_first_items_and_says_how_much_is_left_out() {
        let out = fit(
            "head\n".into(),
            vec![section("object diffs", 400, 499, 1, 3)],
            60_000,
            "diff",
        );
        assert!(chars(&out) <= 60_000, "{}", chars(&out));
        assert!(out.contains(&format!("{:0>499}\n", 0)), "the first item");
        let kept = out.lines().filter(|l| l.len() == 499).count();
        assert!(kept > 100, "{kept} items kept");
        assert!(out.contains(&format!(
            "**{} object diffs left out** ({} characters) to keep this under 60,000 characters",
            400 - kept,
            thousands((400 - kept) * 500)
        )));
        assert!(out.contains("`ward diff` again with `--markdown-limit 0`"));
    }

    #[test]
    fn a_section_takes_at_most_its_share_and_the_rest_goes_on() {
        let findings = section("findings", 1000, 99, 0, 1);
        let diffs = section("object diffs", 1000, 99, 1, 3);
        let out = fit(String::new(), vec![findings, diffs], 30_000, "plan");
        assert!(chars(&out) <= 30_000);
        let findings_kept = out[..out.find("## object diffs").unwrap_or(0)]
            .lines()
            .filter(|l| l.len() == 99)
            .count();
        assert!(
            (90..=100).contains(&findings_kept),
            "a third of 30,000 is about 100 rows of 100: {findings_kept}"
        );
        assert!(out.contains("findings left out") && out.contains("object diffs left out"));
        assert!(
            out.find("## findings") < out.find("## object diffs"),
            "display order kept"
        );
    }

    #[test]
    fn room_the_others_leave_goes_to_a_cut_section() {
        let findings = section("findings", 1000, 99, 0, 1);
        let diffs = section("object diffs", 2, 99, 1, 3);
        let out = fit(String::new(), vec![findings, diffs], 30_000, "validate");
        let len = chars(&out);
        assert!((29_000..=30_000).contains(&len), "{len}");
        assert!(out.contains("## object diffs\n"), "the small section whole");
        let kept = out.lines().filter(|l| l.len() == 99).count();
        assert!(kept > 280, "{kept} rows: more than a third of the limit");
    }

    #[test]
    fn a_section_with_nothing_that_fits_is_left_out_whole() {
        let big = section("object diffs", 2, 5000, 0, 3);
        let out = fit("head\n".into(), vec![big], 3000, "diff");
        assert!(!out.contains("## object diffs"), "no empty frame");
        assert!(out.contains("**2 object diffs left out** (10,"));
        assert!(chars(&out) <= 3000);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(60_000), "60,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
