//! The layering of the crates: every import between modules runs one way. A parent module and its own
//! submodules may refer to each other; any other cycle between files fails here, with the files named.
//!
//! The check reads the `use` declarations of every file (a small parser: rustfmt keeps them regular) and
//! fails on an inline `crate::` path in code too, because such paths are what hid the cycles this check was
//! written for. Test modules (`#[cfg(test)] mod …`) are left out: tests may import the test doubles of
//! `testing`, which import what they fake.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's files: module path (`["engine", "batcher"]`; the root is `[]`) to source text.
type Files = BTreeMap<Vec<String>, (PathBuf, String)>;

/// What is wrong with one crate's imports: the cycles (each a list of files) and the inline paths.
#[derive(Debug, Default, PartialEq)]
struct Findings {
    cycles: Vec<Vec<String>>,
    inline: Vec<String>,
}

#[test]
fn no_import_cycles_and_no_inline_crate_paths() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crates = [
        ("ddb-pitr (library)", root.join("src"), "lib.rs"),
        ("ddb-pitr (command line)", root.join("src"), "main.rs"),
        (
            "ddb-pitr-bench-endpoint",
            root.join("bench/endpoint/src"),
            "lib.rs",
        ),
    ];
    let mut problems = Vec::new();
    for (name, dir, crate_root) in crates {
        let files = crate_files(&dir, crate_root);
        assert!(
            files.len() > 5,
            "{name}: found only {} files in {}",
            files.len(),
            dir.display()
        );
        let findings = check(&files);
        for cycle in findings.cycles {
            problems.push(format!("{name}: import cycle between {}", cycle.join(", ")));
        }
        for inline in findings.inline {
            problems.push(format!(
                "{name}: inline crate path (import it in the use block): {inline}"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The checker finds what it is for: a cycle between siblings, through three files, and an inline path;
/// a parent and its submodule referring to each other is not a cycle, nor are imports in test modules.
#[test]
fn the_checker_finds_cycles_and_inline_paths() {
    let file = |path: &str, text: &str| {
        let module: Vec<String> = path
            .trim_end_matches(".rs")
            .split('/')
            .filter(|s| *s != "lib" && *s != "mod")
            .map(str::to_owned)
            .collect();
        (module, (PathBuf::from(path), text.to_owned()))
    };
    let files: Files = [
        file("lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub mod p;\npub use a::A;\n"),
        file("a.rs", "use crate::b::B;\n"),
        file("b.rs", "use crate::{c::C, p};\n"),
        file("c.rs", "use super::a::{self, A};\nfn f() { let _ = crate::p::q::Q; }\n"),
        file("p/mod.rs", "pub mod q;\nuse self::q::Q;\n"),
        file(
            "p/q.rs",
            "use super::P;\n#[cfg(test)]\nmod tests {\n    use crate::a::A;\n    fn t() { crate::b::B; }\n}\n",
        ),
    ]
    .into_iter()
    .collect();
    let findings = check(&files);
    assert_eq!(
        findings,
        Findings {
            cycles: vec![vec!["a.rs".into(), "b.rs".into(), "c.rs".into()]],
            inline: vec!["c.rs:2: fn f() { let _ = crate::p::q::Q; }".into()],
        }
    );
}

/// The files of the crate whose root is `dir/crate_root`, found through its `mod` declarations; modules
/// declared under `#[cfg(test)]` are left out.
fn crate_files(dir: &Path, crate_root: &str) -> Files {
    let mut files = Files::new();
    let mut todo = vec![(Vec::<String>::new(), dir.join(crate_root))];
    while let Some((module, path)) = todo.pop() {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = declared_module(line) else {
                continue;
            };
            if i > 0 && lines[i - 1].trim() == "#[cfg(test)]" {
                continue;
            }
            // A root or `mod.rs` holds its submodules in its own folder; `a.rs` holds them in `a/`.
            let folder = match path.file_name().and_then(|f| f.to_str()) {
                Some("mod.rs") => path.parent().unwrap().to_path_buf(),
                _ if module.is_empty() => dir.to_path_buf(),
                _ => path.with_extension(""),
            };
            let flat = folder.join(format!("{name}.rs"));
            let child = if flat.exists() {
                flat
            } else {
                folder.join(name).join("mod.rs")
            };
            let mut child_module = module.clone();
            child_module.push(name.to_owned());
            todo.push((child_module, child));
        }
        let shown = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
        files.insert(module, (shown, text));
    }
    files
}

/// `name` of a `mod name;` line (any visibility).
fn declared_module(line: &str) -> Option<&str> {
    let line = line.trim();
    let rest = line
        .strip_prefix("pub ")
        .or_else(|| line.strip_prefix("pub(crate) "))
        .unwrap_or(line);
    let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then_some(name)
}

fn check(files: &Files) -> Findings {
    let modules: BTreeSet<&Vec<String>> = files.keys().collect();
    let mut edges: BTreeMap<&Vec<String>, BTreeSet<&Vec<String>>> = BTreeMap::new();
    let mut inline = Vec::new();
    for (module, (path, text)) in files {
        let (uses, code) = split_uses(text);
        // Inline paths are edges too (and findings of their own, below).
        let inline_paths = code.iter().flat_map(|(_, line)| inline_paths(line));
        for path_segments in uses.iter().flat_map(|u| expand(u)).chain(inline_paths) {
            let Some(absolute) = absolute(module, &path_segments, path) else {
                continue;
            };
            // The longest prefix that is a module of this crate is what the import depends on.
            let target = (0..=absolute.len())
                .rev()
                .map(|n| absolute[..n].to_vec())
                .find(|prefix| modules.contains(prefix))
                .expect("the root is a module");
            let target = *modules.get(&target).expect("a module");
            let related = target.starts_with(module) || module.starts_with(target);
            if !related {
                edges.entry(module).or_default().insert(target);
            }
        }
        for (n, line) in code {
            if line.contains("crate::") {
                inline.push(format!("{}:{n}: {}", path.display(), line.trim()));
            }
        }
    }
    let show = |m: &Vec<String>| files[m].0.display().to_string();
    let cycles = strongly_connected(&modules, &edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut names: Vec<String> = c.iter().map(|m| show(m)).collect();
            names.sort();
            names
        })
        .collect();
    Findings { cycles, inline }
}

/// The file's `use` declarations, each joined into one line, and its other code lines (numbered from 1,
/// comments removed); test modules are left out of both.
fn split_uses(text: &str) -> (Vec<String>, Vec<(usize, String)>) {
    let mut uses = Vec::new();
    let mut code = Vec::new();
    let mut current: Option<String> = None;
    let mut in_test: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, raw) in lines.iter().enumerate() {
        if let Some(indent) = &in_test {
            if raw.starts_with(&format!("{indent}}}")) && raw.trim() == "}" {
                in_test = None;
            }
            continue;
        }
        let line = match raw.find("//") {
            Some(at) => &raw[..at],
            None => raw,
        };
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && let Some(next) = lines.get(i + 1)
            && next.trim_start().starts_with("mod ")
            && next.trim_end().ends_with('{')
        {
            let indent = &next[..next.len() - next.trim_start().len()];
            in_test = Some(indent.to_owned());
            continue;
        }
        if let Some(u) = &mut current {
            u.push_str(trimmed);
        } else if let Some(rest) = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p))
        {
            current = Some(rest.to_owned());
        } else {
            if !trimmed.is_empty() {
                code.push((i + 1, line.to_owned()));
            }
            continue;
        }
        if current.as_ref().is_some_and(|u| u.ends_with(';')) {
            let u = current.take().unwrap();
            uses.push(u.trim_end_matches(';').replace(' ', ""));
        }
    }
    (uses, code)
}

/// The `crate::…` paths written in a line of code, e.g. `crate::a::b` in `crate::a::b(x)`.
fn inline_paths(line: &str) -> Vec<Vec<String>> {
    line.match_indices("crate::")
        .map(|(at, _)| {
            let path: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            path.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The paths of one use tree: `a::{b::c,d}` is `a::b::c` and `a::d`; `self` in a group is the prefix.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        return vec![
            path.split("::")
                .filter(|s| !s.is_empty() && *s != "*")
                .map(str::to_owned)
                .collect(),
        ];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').expect("a closed group")];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            expand(p).into_iter().map(|tail| {
                let mut path = prefix.clone();
                path.extend(tail.into_iter().filter(|s| s != "self"));
                path
            })
        })
        .collect()
}

/// The module path an import names, from the crate root; `None` for other crates.
fn absolute(module: &[String], path: &[String], file: &Path) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut base = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module[..module
            .len()
            .checked_sub(1)
            .unwrap_or_else(|| panic!("{}: super:: at the crate root", file.display()))]
            .to_vec(),
        _ => return None,
    };
    let mut rest = rest;
    while let Some(("super", tail)) = rest.split_first().map(|(s, t)| (s.as_str(), t)) {
        base.pop();
        rest = tail;
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Tarjan's strongly connected components.
fn strongly_connected<'a>(
    nodes: &BTreeSet<&'a Vec<String>>,
    edges: &BTreeMap<&'a Vec<String>, BTreeSet<&'a Vec<String>>>,
) -> Vec<Vec<&'a Vec<String>>> {
    struct State<'a> {
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<&'a Vec<String>>>,
    }
    fn visit<'a>(
        v: &'a Vec<String>,
        edges: &BTreeMap<&'a Vec<String>, BTreeSet<&'a Vec<String>>>,
        s: &mut State<'a>,
    ) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, edges, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in nodes {
        if !s.index.contains_key(v) {
            visit(v, edges, &mut s);
        }
    }
    s.out
}
