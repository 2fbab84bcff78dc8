//! Just enough Markdown for tests/docs.rs: fenced blocks, headings and GitHub's anchors for
//! them, inline code spans, and `[text](target)` links outside code.

use std::collections::{BTreeMap, BTreeSet};

pub struct Heading {
    pub level: usize,
    pub text: String,
    pub line: usize,
}

/// Lines with their number, counted from 0.
pub type NumberedLines<'a> = Vec<(usize, &'a str)>;

/// Lines outside fenced code blocks, numbered from 0, and the fenced ones apart.
pub fn split_fences(md: &str) -> (NumberedLines<'_>, NumberedLines<'_>) {
    let (mut prose, mut code) = (Vec::new(), Vec::new());
    let mut fenced = false;
    for (i, line) in md.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            code.push((i, line));
        } else {
            prose.push((i, line));
        }
    }
    (prose, code)
}

pub fn headings(md: &str) -> Vec<Heading> {
    split_fences(md)
        .0
        .into_iter()
        .filter_map(|(i, line)| {
            let level = line.chars().take_while(|c| *c == '#').count();
            let text = line[level..].strip_prefix(' ')?;
            (level > 0).then(|| Heading {
                level,
                text: text.trim().to_string(),
                line: i,
            })
        })
        .collect()
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped (letters, digits, `-` and `_`
/// stay), spaces to `-`; repeats get `-1`, `-2`, ….
pub fn anchors(md: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for h in headings(md) {
        let slug: String = h
            .text
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// The text outside fenced code blocks, with the fenced lines blanked (line numbers kept).
pub fn prose(md: &str) -> String {
    let keep: BTreeSet<usize> = split_fences(md).0.into_iter().map(|(i, _)| i).collect();
    md.lines()
        .enumerate()
        .map(|(i, l)| if keep.contains(&i) { l } else { "" })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The inline code spans of `text` as (byte range of the whole span, content, line from 1): a
/// run of N backticks up to the next run of exactly N, within one paragraph (CommonMark).
pub fn code_spans(text: &str) -> Vec<(std::ops::Range<usize>, String, usize)> {
    let bytes = text.as_bytes();
    let run_at = |i: usize| bytes[i..].iter().take_while(|b| **b == b'`').count();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let n = run_at(i);
        let open_end = i + n;
        let paragraph_end = text[open_end..]
            .find("\n\n")
            .map_or(text.len(), |e| open_end + e);
        let mut j = open_end;
        let mut close = None;
        while j < paragraph_end {
            if bytes[j] == b'`' {
                let m = run_at(j);
                if m == n {
                    close = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match close {
            Some(c) => {
                let content = text[open_end..c].replace('\n', " ");
                let line = text[..i].matches('\n').count() + 1;
                out.push((i..c + n, content.trim().to_string(), line));
                i = c + n;
            }
            None => i = open_end,
        }
    }
    out
}

/// `(target, line)` of every `[text](target)` outside code.
pub fn links(md: &str) -> Vec<(String, usize)> {
    let mut text = prose(md);
    for (range, _, _) in code_spans(&text).into_iter().rev() {
        let blank: String = text[range.clone()]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        text.replace_range(range, &blank);
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((after[..end].trim().to_string(), i + 1));
            rest = &after[end..];
        }
    }
    out
}
