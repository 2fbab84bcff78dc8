//! Keeps the user docs true mechanically:
//! - `docs/reference.md` documents exactly the flags the `skiff` binary accepts: for every command
//!   `skiff --help` lists (recursively), the flag table of its `skiff COMMAND` section names every
//!   flag of `skiff COMMAND --help` and nothing else (a section that links to another section's
//!   flag table, as `skiff server` does to "Node flags", takes that table's flags too);
//! - every `skiff COMMAND … --flag` written in `docs/*.md` or README.md, in inline code or a code
//!   block, names a flag that command has;
//! - every `skiff.dev/` label or annotation key in the sources is in the reference, and every
//!   key the reference names is in the sources;
//! - every relative link in `docs/*.md` points at a file that exists, and at a heading of it
//!   when it has a `#fragment`.
//!
//! Commands a section documents but the binary does not list are reported and skipped, so the
//! docs may describe a command before it lands; once `skiff --help` lists it, it is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

// ---- the binary's help ----

/// What `skiff PATH --help` lists.
#[derive(Debug, Default)]
struct Help {
    commands: Vec<String>,
    flags: BTreeSet<String>,
}

fn help(path: &[String]) -> Result<Help> {
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(path)
        .arg("--help")
        .output()
        .context("cannot run skiff")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "skiff {} --help failed: {}{}",
        path.join(" "),
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(parse_help(&text))
}

/// Clap's help: a `Commands:` section of `  name  about` lines and an `Options:` section whose
/// entries start (indented at most 6 spaces) with `-x, --long <VALUE>` or `--long`; long help
/// puts each description on its own lines, indented further.
fn parse_help(text: &str) -> Help {
    let mut h = Help::default();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') {
            section = line.trim_end_matches(':');
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body = line.trim();
        if section == "Commands" && indent <= 2 {
            if let Some(name) = body.split_whitespace().next() {
                if name != "help" {
                    h.commands.push(name.to_string());
                }
            }
        } else if section == "Options" && indent <= 6 && body.starts_with('-') {
            let spec = body.split("  ").next().unwrap_or_default();
            h.flags.extend(long_flags(spec));
        }
    }
    h
}

/// The `--long` flags in `text`, without `=value` or trailing punctuation.
fn long_flags(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '`' || c == '|' || c == '[')
        .filter_map(flag_name)
        .collect()
}

fn flag_name(token: &str) -> Option<String> {
    let rest = token.strip_prefix("--")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    let name = name.trim_end_matches('-');
    (!name.is_empty()).then(|| format!("--{name}"))
}

/// Every command path (`[]` is `skiff` itself) with its help, depth first.
fn command_tree() -> Result<BTreeMap<Vec<String>, Help>> {
    let mut tree = BTreeMap::new();
    let mut todo = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let h = help(&path)?;
        for c in &h.commands {
            let mut p = path.clone();
            p.push(c.clone());
            todo.push(p);
        }
        tree.insert(path, h);
    }
    Ok(tree)
}

/// The flags a command has of its own: its help's, less `--help` and the global flags
/// (those `skiff --help` lists, which every subcommand's help repeats).
fn own_flags(tree: &BTreeMap<Vec<String>, Help>, path: &[String]) -> BTreeSet<String> {
    let global = &tree[&Vec::new()].flags;
    let mut flags = tree[path].flags.clone();
    flags.remove("--help");
    if !path.is_empty() {
        flags.retain(|f| !global.contains(f));
    }
    flags
}

#[path = "docs/markdown.rs"]
mod markdown;

use markdown::{anchors, code_spans, headings, links, prose, split_fences, Heading};

// ---- reference.md's flag tables ----

/// Per `skiff …` section of reference.md: its command path, the flags its tables' first column
/// names, and the anchors it links to.
struct Section {
    path: Vec<String>,
    flags: BTreeSet<String>,
    links: BTreeSet<String>,
}

/// The flags named in the first cell of the table rows of lines `from..to`.
fn table_flags(lines: &[&str], from: usize, to: usize) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for line in &lines[from..to] {
        let Some(row) = line.trim().strip_prefix('|') else {
            continue;
        };
        // Cells split on `|` not escaped as `\|`.
        let first = row.replace("\\|", "/");
        let first = first.split('|').next().unwrap_or_default().trim();
        if first.starts_with("`-") {
            flags.extend(long_flags(first));
        }
    }
    flags
}

/// Where the section of heading `k` ends: the next heading of the same or a higher level.
fn section_end(hs: &[Heading], k: usize, total: usize) -> usize {
    hs[k + 1..]
        .iter()
        .find(|h| h.level <= hs[k].level)
        .map_or(total, |h| h.line)
}

fn reference_sections(md: &str) -> Vec<Section> {
    let lines: Vec<&str> = md.lines().collect();
    let hs = headings(md);
    let slug_of = |h: &Heading| anchors(&format!("# {}", h.text)).into_iter().next();
    let mut by_anchor: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (k, h) in hs.iter().enumerate() {
        if let Some(a) = slug_of(h) {
            by_anchor.insert(
                a,
                table_flags(&lines, h.line, section_end(&hs, k, lines.len())),
            );
        }
    }
    let mut out = Vec::new();
    for (k, h) in hs.iter().enumerate() {
        let words: Vec<&str> = h.text.split_whitespace().collect();
        if words.first() != Some(&"skiff")
            || !words[1..]
                .iter()
                .all(|w| w.chars().all(|c| c.is_ascii_lowercase()))
        {
            continue;
        }
        let end = section_end(&hs, k, lines.len());
        let mut flags = table_flags(&lines, h.line, end);
        let mut linked = BTreeSet::new();
        for (target, _) in links(&lines[h.line..end].join("\n")) {
            if let Some(anchor) = target.strip_prefix('#') {
                if let Some(f) = by_anchor.get(anchor) {
                    flags.extend(f.iter().cloned());
                    linked.insert(anchor.to_string());
                }
            }
        }
        out.push(Section {
            path: words[1..].iter().map(|w| w.to_string()).collect(),
            flags,
            links: linked,
        });
    }
    out
}

#[test]
fn reference_documents_exactly_the_flags_of_every_command() -> Result<()> {
    let tree = command_tree()?;
    let md = read(&repo().join("docs/reference.md"))?;
    let sections = reference_sections(&md);
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    for s in &sections {
        let name = format!("skiff {}", s.path.join(" ")).trim().to_string();
        if !tree.contains_key(&s.path) {
            eprintln!("note: reference.md documents `{name}`, which `skiff --help` does not list (yet): not checked");
            continue;
        }
        documented.insert(s.path.clone());
        let have = own_flags(&tree, &s.path);
        for f in s.flags.difference(&have) {
            problems.push(format!(
                "reference.md, `{name}`: {f} is not a flag of `{name} --help` (linked: {:?})",
                s.links
            ));
        }
        for f in have.difference(&s.flags) {
            problems.push(format!(
                "reference.md, `{name}`: {f} (in `{name} --help`) is not documented"
            ));
        }
    }
    for (path, h) in &tree {
        let needs_section = h.commands.is_empty() || !own_flags(&tree, path).is_empty();
        if needs_section && !documented.contains(path) {
            problems.push(format!(
                "reference.md has no section `skiff {}`",
                path.join(" ")
            ));
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    ensure!(
        documented.contains(&vec!["server".to_string()]) && documented.len() >= 4,
        "too few sections found: {documented:?}"
    );
    Ok(())
}

/// Every `skiff CMD … --flag` in `text`: (command path, flag).
fn invocations(text: &str, tree: &BTreeMap<Vec<String>, Help>) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let tokens: Vec<&str> = text.split_whitespace().collect();
    for (i, t) in tokens.iter().enumerate() {
        if !(*t == "skiff" || t.ends_with("/skiff")) {
            continue;
        }
        let mut path = Vec::new();
        let mut j = i + 1;
        while let Some(word) = tokens.get(j) {
            let mut p = path.clone();
            p.push(word.to_string());
            if tree.contains_key(&p) {
                path = p;
                j += 1;
            } else {
                break;
            }
        }
        if path.is_empty() {
            continue; // prose ("skiff runs …") or a command the binary does not have yet
        }
        for word in &tokens[j..] {
            if matches!(*word, "|" | "&&" | ";" | "#" | "\\|") || *word == "skiff" {
                break;
            }
            if let Some(f) = flag_name(word) {
                out.push((path.clone(), f));
            }
        }
    }
    out
}

#[test]
fn every_skiff_command_line_in_the_docs_uses_real_flags() -> Result<()> {
    let tree = command_tree()?;
    let global = tree[&Vec::new()].flags.clone();
    let mut files = doc_files()?;
    files.push(repo().join("README.md"));
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let md = read(file)?;
        let (_, code) = split_fences(&md);
        let mut texts: Vec<(usize, String)> =
            code.iter().map(|(i, l)| (i + 1, l.to_string())).collect();
        texts.extend(
            code_spans(&prose(&md))
                .into_iter()
                .map(|(_, s, line)| (line, s)),
        );
        for (line, text) in texts {
            for (path, flag) in invocations(&text, &tree) {
                checked += 1;
                if !tree[&path].flags.contains(&flag) && !global.contains(&flag) {
                    problems.push(format!(
                        "{}:{line}: `skiff {}` has no flag {flag}",
                        file.display(),
                        path.join(" ")
                    ));
                }
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    ensure!(
        checked >= 10,
        "only {checked} skiff flags found in the docs: is the parser broken?"
    );
    Ok(())
}

// ---- labels and annotations ----

/// The `[prefix.]skiff.dev/name` keys in `text` (only those opened by `open`, when given).
fn skiff_keys(text: &str, open: Option<char>) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (at, _) in text.match_indices("skiff.dev/") {
        let start = text[..at]
            .rfind(|c: char| !(c.is_ascii_lowercase() || c == '.'))
            .map_or(0, |i| i + 1);
        let before = text[..start].chars().next_back();
        if open.is_some() && before != open {
            continue;
        }
        let tail = &text[at + "skiff.dev/".len()..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        if !name.is_empty() {
            keys.insert(format!("{}{name}", &text[start..at + "skiff.dev/".len()]));
        }
    }
    keys
}

/// The non-test Rust sources of the binary and both libraries.
fn rust_sources() -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = ["src", "control-plane/src", "node-runtime/src"]
        .iter()
        .map(|d| repo().join(d))
        .collect();
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let p = entry?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if p.is_dir() {
                if name != "tests" {
                    todo.push(p);
                }
            } else if name.ends_with(".rs") && !name.ends_with("tests.rs") {
                out.push(p);
            }
        }
    }
    Ok(out)
}

#[test]
fn reference_names_every_skiff_label_and_annotation_the_code_uses() -> Result<()> {
    let mut code = BTreeSet::new();
    for file in rust_sources()? {
        let text = read(&file)?;
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        code.extend(skiff_keys(text, Some('"')));
    }
    ensure!(
        code.len() >= 10,
        "only {code:?} found in the sources: is the scan broken?"
    );
    let md = read(&repo().join("docs/reference.md"))?;
    let documented = skiff_keys(&md, Some('`'));
    let missing: Vec<_> = code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&code).collect();
    ensure!(
        missing.is_empty() && unknown.is_empty(),
        "keys the code uses but docs/reference.md does not name: {missing:?}\n\
         keys docs/reference.md names but no source uses: {unknown:?}"
    );
    Ok(())
}

// ---- links ----

fn doc_files() -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo().join("docs"))? {
        let p = entry?.path();
        if p.extension().and_then(|e| e.to_str()) == Some("md") {
            files.push(p);
        }
    }
    files.sort();
    ensure!(files.len() >= 2, "no docs found: {files:?}");
    Ok(files)
}

fn check_link(from: &Path, target: &str) -> Result<()> {
    let (file, fragment) = match target.split_once('#') {
        Some((f, a)) => (f, Some(a)),
        None => (target, None),
    };
    let path = if file.is_empty() {
        from.to_path_buf()
    } else {
        from.parent().unwrap_or(Path::new(".")).join(file)
    };
    if !path.exists() {
        bail!("{target}: {} does not exist", path.display());
    }
    if let Some(fragment) = fragment {
        if path.extension().and_then(|e| e.to_str()) != Some("md") {
            bail!("{target}: a #fragment into a file that is not markdown");
        }
        let have = anchors(&read(&path)?);
        if !have.contains(fragment) {
            bail!("{target}: {} has no heading #{fragment}", path.display());
        }
    }
    Ok(())
}

#[test]
fn every_relative_link_in_the_docs_resolves() -> Result<()> {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in doc_files()? {
        let md = read(&file)?;
        for (target, line) in links(&md) {
            let target = target.split_whitespace().next().unwrap_or_default();
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            if let Err(e) = check_link(&file, target) {
                problems.push(format!("{}:{line}: {e:#}", file.display()));
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    ensure!(
        checked >= 20,
        "only {checked} links found: is the parser broken?"
    );
    Ok(())
}

#[test]
fn the_parsers_read_what_they_are_given() -> Result<()> {
    let h = parse_help(
        "Usage: skiff x\n\nCommands:\n  a  about a\n  help  Print\n\nOptions:\n      --data-dir <DIR>\n          \
         Where (--not-a-flag)\n  -n, --namespace <NS>  ns\n  -h, --help  Print help\n",
    );
    ensure!(h.commands == ["a"], "{h:?}");
    let want: BTreeSet<String> = ["--data-dir", "--namespace", "--help"]
        .map(String::from)
        .into();
    ensure!(h.flags == want, "{h:?}");
    let a = anchors("# A `b` c\n```\n# not a heading\n```\n## skiff.toml\n## Admission errors (422, 400)\n## X\n## X\n");
    let want: BTreeSet<String> = ["a-b-c", "skifftoml", "admission-errors-422-400", "x", "x-1"]
        .map(String::from)
        .into();
    ensure!(a == want, "{a:?}");
    ensure!(
        skiff_keys(
            "\"autoscaling.skiff.dev/min-scale\" `skiff.dev/node=x` skiff.dev/",
            Some('"')
        ) == BTreeSet::from(["autoscaling.skiff.dev/min-scale".to_string()])
    );
    let l = links("see [a](b.md#c) and `[x](y)`\n```\n[z](w)\n```\n``[q](r) `s` ``\n");
    ensure!(l == vec![("b.md#c".to_string(), 1)], "{l:?}");
    let spans: Vec<(String, usize)> =
        code_spans("a `skiff agent\n--node-ip` b ``x `y` z``\n\n`open\n\nc`")
            .into_iter()
            .map(|(_, s, l)| (s, l))
            .collect();
    ensure!(
        spans
            == [
                ("skiff agent --node-ip".to_string(), 1),
                ("x `y` z".to_string(), 2)
            ],
        "{spans:?}"
    );
    Ok(())
}
