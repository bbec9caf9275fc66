//! The docs hold together: every relative link in the repository's Markdown points at a
//! file or folder inside the repository, the book's table of contents names every
//! chapter, and the README stays a front page.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository").to_path_buf()
}

/// The Markdown files that are documentation (not vendored or generated ones).
fn markdown(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a folder entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() {
                let skipped = name.starts_with('.') || ["target", "node_modules", "pkg", "out"].contains(&name);
                if !skipped {
                    dirs.push(path);
                }
            } else if name.ends_with(".md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The targets of `[text](target)` links in `text`, outside code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Code spans may show link syntax without being links.
        let plain: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].split_whitespace().next().unwrap_or_default().to_owned());
            rest = &after[end..];
        }
    }
    out
}

fn is_relative(target: &str) -> bool {
    !(target.is_empty() || target.starts_with('#') || target.contains("://") || target.starts_with("mailto:"))
}

#[test]
fn every_relative_link_in_the_docs_points_inside_the_repository() {
    let root = repo().canonicalize().expect("the repository");
    let mut broken = Vec::new();
    let files = markdown(&root);
    assert!(files.len() >= 10, "found only {files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a Markdown file");
        for target in links(&text).into_iter().filter(|t| is_relative(t)) {
            let path = target.split('#').next().unwrap_or_default();
            let resolved = file.parent().expect("a folder").join(path);
            let inside = resolved.canonicalize().ok().filter(|p| p.starts_with(&root));
            if inside.is_none() {
                broken.push(format!("{}: {target}", file.strip_prefix(&root).unwrap_or(file).display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing, or outside the repository:\n{}", broken.join("\n"));
}

#[test]
fn the_link_finder_finds_links_and_skips_code() {
    let text = "see [a](docs/a.md) and [b](../b.md#x)\n`[c](no.md)` here\n```\n[d](no.md)\n```\n[e](https://x.y)";
    assert_eq!(links(text), ["docs/a.md", "../b.md#x", "https://x.y"]);
    assert!(!is_relative("https://x.y") && !is_relative("#top") && is_relative("../b.md"));
}

#[test]
fn the_book_lists_every_chapter_and_the_readme_is_a_front_page() {
    let root = repo();
    let summary = std::fs::read_to_string(root.join("docs/SUMMARY.md")).expect("docs/SUMMARY.md");
    let listed = links(&summary);
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let name = entry.expect("an entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && name != "SUMMARY.md" {
            assert!(listed.iter().any(|l| l == &name), "docs/SUMMARY.md does not list {name}");
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 200, "README.md has {lines} lines; the rest belongs in docs/");
    for command in ["scripts/quickstart", "scripts/test"] {
        assert!(readme.contains(command), "README.md no longer shows {command}");
    }
}

#[test]
fn user_docs_name_no_issue_numbers() {
    let root = repo();
    let mut files = vec![root.join("README.md")];
    files.extend(markdown(&root.join("docs")));
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a Markdown file");
        let lower = text.to_lowercase();
        let found = lower
            .match_indices("issue ")
            .find(|(at, _)| lower[at + 6..].chars().next().is_some_and(|c| c.is_ascii_digit()));
        assert!(
            found.is_none(),
            "{} names an issue number: {:?}",
            file.display(),
            found.map(|(at, _)| lower[at..].chars().take(10).collect::<String>())
        );
    }
}
