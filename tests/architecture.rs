//! The module tree reads one way: no import cycle between files of `src/`, and the rooms keep
//! the order of ARCHITECTURE.md (cli/gui → train → engine → model → kernels/memory/dsp/audio).
//!
//! A file's imports are the `crate::…` and `super::…` paths in its code before its first
//! `#[cfg(test)]` (comment lines skipped), resolved to the longest module path that is a file.
//! Edges between a module and its own ancestors or descendants (a folder's `mod.rs` and its
//! children) are not counted: re-exports run that way by design.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`engine::separator`) → its file, for every `.rs` file under `src/` except the
/// crate roots.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("readable src/").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut map = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src/").with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|l| l == "mod") {
            parts.pop();
        }
        // Crate roots, and test-only modules (`…::tests`, `#[cfg(test)]` where declared).
        if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main")
            || parts.iter().any(|p| p == "tests")
        {
            continue;
        }
        map.insert(parts.join("::"), f);
    }
    map
}

/// The identifier path right after each occurrence of `prefix` in `code`.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before_ok = i == 0 || {
            let c = rest.as_bytes()[i - 1];
            !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
        };
        let tail = &rest[i + prefix.len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if before_ok {
            out.push(tail[..end].trim_end_matches(':'));
        }
        rest = &tail[end..];
    }
    out
}

/// The module a path names: its longest prefix that is a file.
fn resolve(mods: &BTreeMap<String, PathBuf>, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    (1..=segs.len())
        .rev()
        .map(|i| segs[..i].join("::"))
        .find(|m| mods.contains_key(m))
}

/// Whether `a` is `b`, or one is inside the other.
fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

/// File-level import edges: module → the modules it imports.
fn edges(mods: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (m, file) in mods {
        let text = std::fs::read_to_string(file).expect("readable source");
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let parent: Vec<&str> = {
            let mut p: Vec<&str> = m.split("::").collect();
            p.pop();
            p
        };
        let mut to = BTreeSet::new();
        for p in paths_after(&code, "crate::") {
            to.extend(resolve(mods, p));
        }
        for p in paths_after(&code, "super::") {
            let full = if parent.is_empty() {
                p.to_string()
            } else {
                format!("{}::{p}", parent.join("::"))
            };
            to.extend(resolve(mods, &full));
        }
        to.retain(|t| !related(m, t));
        graph.insert(m.clone(), to);
    }
    graph
}

/// Every strongly connected component with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.found.push(scc);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_cycle_between_files_of_src() {
    let mods = modules(&src());
    assert!(mods.len() > 100, "src/ read: {} modules", mods.len());
    let graph = edges(&mods);
    let found = cycles(&graph);
    let report: Vec<String> = found
        .iter()
        .map(|c| {
            let arrows: Vec<String> = c
                .iter()
                .map(|a| {
                    let to: Vec<&str> = graph[a]
                        .iter()
                        .filter(|t| c.contains(t))
                        .map(String::as_str)
                        .collect();
                    format!("{a} → {}", to.join(", "))
                })
                .collect();
            arrows.join("; ")
        })
        .collect();
    assert!(found.is_empty(), "import cycles:\n{}", report.join("\n"));
}

#[test]
fn rooms_import_only_rooms_below_them() {
    // Room → the rooms it may import (ARCHITECTURE.md; `cancel` and `assets` are leaves
    // everyone may use).
    let allowed: &[(&str, &[&str])] = &[
        ("audio", &[]),
        ("dsp", &[]),
        ("kernels", &["dsp"]),
        ("memory", &["dsp"]),
        ("model", &["dsp", "kernels"]),
        ("catalog", &["model"]),
        ("synth", &["model"]),
        (
            "engine",
            &["audio", "dsp", "kernels", "memory", "model", "catalog"],
        ),
        (
            "train",
            &["audio", "dsp", "kernels", "memory", "model", "engine"],
        ),
    ];
    let mods = modules(&src());
    let graph = edges(&mods);
    let room = |m: &str| m.split("::").next().unwrap_or_default().to_string();
    let mut wrong = Vec::new();
    for (m, to) in &graph {
        let r = room(m);
        let Some((_, ok)) = allowed.iter().find(|(name, _)| *name == r) else {
            continue; // cli, gui: the top, free to call what they drive
        };
        for t in to {
            let tr = room(t);
            if tr != r && tr != "cancel" && tr != "assets" && !ok.contains(&tr.as_str()) {
                wrong.push(format!("{m} → {t}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the room order:\n{}",
        wrong.join("\n")
    );
}

/// The checker itself: a planted cycle is found, a one-way chain is not.
#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    let g = |pairs: &[(&str, &str)]| {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            m.entry(a.to_string()).or_default().insert(b.to_string());
            m.entry(b.to_string()).or_default();
        }
        m
    };
    assert!(cycles(&g(&[("a", "b"), ("b", "c")])).is_empty());
    assert_eq!(
        cycles(&g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
    assert_eq!(
        paths_after("use crate::engine::plan::{x}; super::fit::y", "crate::"),
        vec!["engine::plan"]
    );
}
