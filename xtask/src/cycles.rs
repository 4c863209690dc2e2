//! `cargo xtask cycles`: finds files that import each other in a circle, in every crate of the
//! workspace. A file's imports are the `crate::…` and `super::…` paths it names (in `use` or in
//! code, `use` trees expanded) and the `use child::…` of its own child modules; each resolves to
//! the deepest file module it reaches. The crate root (`lib.rs`/`main.rs`), which declares every
//! module and re-exports items, is left out, as are `mod x;` declarations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside one crate: `["fast_conv", "passes"]`; the root is empty.
type ModPath = Vec<String>;

/// Each crate's circles of files, as module paths joined with `::`, for every `src` folder
/// under `root/crates/*` and `root/xtask`.
pub fn find(root: &Path) -> std::io::Result<BTreeMap<PathBuf, Vec<Vec<String>>>> {
    let mut srcs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))?
        .filter_map(|e| e.ok().map(|e| e.path().join("src")))
        .filter(|p| p.is_dir())
        .collect();
    srcs.push(root.join("xtask/src"));
    srcs.sort();
    let mut found = BTreeMap::new();
    for src in srcs {
        let files = rust_files(&src)?;
        let sources = files
            .iter()
            .map(|f| Ok((f.clone(), std::fs::read_to_string(f)?)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let graph = imports(&src, &sources);
        found.insert(src, circles(&graph));
    }
    Ok(found)
}

fn rust_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(out)
}

/// The module path of `file` under `src`, before `#[path]` attributes are applied.
fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: ModPath = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// Which file modules each file module imports.
fn imports(src: &Path, sources: &[(PathBuf, String)]) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mut modules: BTreeMap<PathBuf, ModPath> = sources.iter().map(|(f, _)| (f.clone(), module_of(src, f))).collect();
    // `#[path = "x.rs"] mod name;` makes x.rs the module `name` of the file that says so.
    for (file, text) in sources {
        let clean = strip(text);
        let mut rest = clean.as_str();
        while let Some(at) = rest.find("#[path") {
            let (literal, after) = (&text[text.len() - rest.len() + at..], &rest[at..]);
            let path = literal.split('"').nth(1).unwrap_or_default();
            let name = after
                .split("mod")
                .nth(1)
                .and_then(|s| s.split(';').next())
                .map(str::trim);
            if let (Some(name), Some(dir)) = (name, file.parent()) {
                let target = dir.join(path);
                let mut module = modules[file].clone();
                module.push(name.to_string());
                modules.insert(target, module);
            }
            rest = &rest[at + 6..];
        }
    }
    let known: BTreeSet<ModPath> = modules.values().cloned().collect();
    let mut graph = BTreeMap::new();
    for (file, text) in sources {
        let me = modules[file].clone();
        let mut deps = BTreeSet::new();
        for path in paths(&strip(text), &me, &known) {
            let reach = (1..=path.len())
                .rev()
                .map(|k| path[..k].to_vec())
                .find(|p| known.contains(p));
            if let Some(dep) = reach.filter(|d| *d != me) {
                deps.insert(dep);
            }
        }
        graph.insert(me, deps);
    }
    graph
}

/// `text` with comments, strings and character literals blanked out (same length).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        let end = if b[i..].starts_with(b"//") {
            b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p)
        } else if b[i..].starts_with(b"/*") {
            text[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2)
        } else if b[i] == b'"' || (b[i] == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#'))) {
            let hashes = b[i..].iter().skip(1).take_while(|&&c| c == b'#').count();
            let raw = b[i] == b'r';
            let open = i + usize::from(raw) + hashes + 1;
            if raw && b.get(open - 1) != Some(&b'"') {
                i += 1;
                continue;
            }
            let mut j = open;
            while j < b.len() {
                if !raw && b[j] == b'\\' {
                    j += 2;
                } else if b[j] == b'"' && b[j + 1..].iter().take(hashes).filter(|&&c| c == b'#').count() == hashes {
                    break;
                } else {
                    j += 1;
                }
            }
            j + 1 + hashes
        } else if b[i] == b'\'' && (b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\')) {
            text[i + 1..].find('\'').map_or(b.len(), |p| i + 1 + p + 1)
        } else {
            i += 1;
            continue;
        };
        blank(&mut out, i, end);
        i = end;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Every module path named from the file module `me` (inline `mod x { … }` blocks followed, so
/// `super` in a test module means the file itself).
fn paths(text: &str, me: &ModPath, known: &BTreeSet<ModPath>) -> Vec<ModPath> {
    let tokens = tokenize(text);
    let mut out = Vec::new();
    let (mut inline, mut depth): (Vec<(String, usize)>, usize) = (Vec::new(), 0);
    let mut i = 0;
    while i < tokens.len() {
        let here: ModPath = me
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        match tokens[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((tokens[i + 1].clone(), depth));
                depth += 1;
                i += 3;
                continue;
            }
            "crate" | "super" if tokens.get(i + 1).is_some_and(|t| t == "::") => {
                let mut base = if tokens[i] == "crate" {
                    Vec::new()
                } else {
                    parent(&here)
                };
                let mut j = i + 2;
                while tokens.get(j).is_some_and(|t| t == "super") && tokens.get(j + 1).is_some_and(|t| t == "::") {
                    base = parent(&base);
                    j += 2;
                }
                let (trees, next) = tree(&tokens, j);
                out.extend(trees.into_iter().map(|t| base.iter().cloned().chain(t).collect()));
                i = next;
                continue;
            }
            "use" => {
                if let Some(name) = tokens.get(i + 1) {
                    let child: ModPath = here.iter().cloned().chain([name.clone()]).collect();
                    if known.contains(&child) && tokens.get(i + 2).is_some_and(|t| t == "::") {
                        out.push(child);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn parent(path: &ModPath) -> ModPath {
    path[..path.len().saturating_sub(1)].to_vec()
}

/// The paths of a `use` tree (or a plain path) starting at `tokens[i]`, and the index after it.
fn tree(tokens: &[String], mut i: usize) -> (Vec<ModPath>, usize) {
    let mut prefix = Vec::new();
    loop {
        match tokens.get(i).map(String::as_str) {
            Some("{") => {
                let mut all = Vec::new();
                i += 1;
                while tokens.get(i).is_some_and(|t| t != "}") {
                    let (inner, next) = tree(tokens, i);
                    all.extend(inner.into_iter().map(|t| prefix.iter().cloned().chain(t).collect()));
                    i = next;
                    if tokens.get(i).is_some_and(|t| t == ",") {
                        i += 1;
                    }
                }
                return (all, i + 1);
            }
            Some(t) if is_ident(t) => {
                if t != "self" {
                    prefix.push(t.to_string());
                }
                if tokens.get(i + 1).is_some_and(|t| t == "::") {
                    i += 2;
                } else {
                    return (vec![prefix], i + 1);
                }
            }
            _ => return (vec![prefix], i + 1),
        }
    }
}

fn is_ident(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::` and single punctuation characters.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut end = at + c.len_utf8();
            while let Some(&(i, d)) = chars.peek() {
                if !(d.is_alphanumeric() || d == '_') {
                    break;
                }
                end = i + d.len_utf8();
                chars.next();
            }
            tokens.push(text[at..end].to_string());
        } else if c == ':' && chars.peek().is_some_and(|&(_, d)| d == ':') {
            chars.next();
            tokens.push("::".into());
        } else if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    tokens
}

/// The strongly connected groups of more than one module (Tarjan's algorithm).
fn circles(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'g ModPath, (usize, usize)>,
        stack: Vec<&'g ModPath>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g ModPath) {
        let n = s.index.len();
        s.index.insert(v, (n, n));
        s.stack.push(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let Some((w, _)) = s.graph.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.index[w].1.min(s.index[v].1);
                s.index.get_mut(v).unwrap().1 = low;
            } else if s.stack.contains(&w) {
                let low = s.index[w].0.min(s.index[v].1);
                s.index.get_mut(v).unwrap().1 = low;
            }
        }
        if s.index[v].0 == s.index[v].1 {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                group.push(if w.is_empty() { "(root)".into() } else { w.join("::") });
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.found.push(group);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys().filter(|v| !v.is_empty()) {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

/// `cargo xtask cycles`: prints each circle; fails when there is one.
pub fn run(root: &Path) -> std::process::ExitCode {
    match find(root) {
        Ok(found) => {
            let mut any = false;
            for (src, groups) in &found {
                for group in groups {
                    any = true;
                    println!("{}: {}", src.display(), group.join(" ↔ "));
                }
            }
            let files: usize = found.len();
            if any {
                std::process::ExitCode::FAILURE
            } else {
                println!("no circle of files in {files} source folders");
                std::process::ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: reading the sources: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_of(files: &[(&str, &str)]) -> Vec<Vec<String>> {
        let src = Path::new("/src");
        let sources: Vec<(PathBuf, String)> = files.iter().map(|(f, t)| (src.join(f), t.to_string())).collect();
        circles(&imports(src, &sources))
    }

    #[test]
    fn a_circle_through_use_trees_and_super_is_found_and_test_modules_count_as_their_file() {
        let files = [
            ("lib.rs", "mod a; mod b; pub use a::X;"),
            (
                "a/mod.rs",
                "mod inner; use crate::b::{self, Y}; // crate::c is a comment\n",
            ),
            (
                "a/inner.rs",
                "fn f() { let s = \"crate::b\"; crate::a::helper(); }\n#[cfg(test)] mod tests { use super::*; }",
            ),
            ("b.rs", "fn g() { super::a::inner::f(); }"),
        ];
        assert_eq!(
            graph_of(&files),
            vec![vec!["a".to_string(), "a::inner".into(), "b".into()]]
        );
        // Without b → a::inner, or with the import only in a comment or a string, no circle.
        let acyclic = [
            ("lib.rs", "mod a; mod b;"),
            ("a/mod.rs", "use crate::b::Y;"),
            ("a/inner.rs", "mod tests { use super::super::b; }"),
            (
                "b.rs",
                "/* crate::a */ fn g() { let _ = 'x'; let s = r#\"super::a\"#; }",
            ),
        ];
        assert!(graph_of(&acyclic).is_empty());
    }

    #[test]
    fn no_file_of_the_workspace_imports_a_file_that_imports_it_back() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let found = find(root).unwrap();
        assert!(found.len() >= 8, "{} source folders", found.len());
        let circles: Vec<_> = found.iter().filter(|(_, g)| !g.is_empty()).collect();
        assert!(circles.is_empty(), "{circles:?}");
    }
}
