//! Tidy checks on the source tree (as rust-analyzer's `tidy.rs`): the layering that
//! ARCHITECTURE.md promises is enforced here, not only described.
//!
//! - Folders import downward only: each top-level module has a layer, and a file may name
//!   (`crate::x`) only its own module or modules of lower layers.
//! - No import circles between files, except between a folder's `mod.rs` and the files directly
//!   in that folder (one module split into files, whose `mod.rs` re-exports them).
//! - Pure modules (`dns/`, and the protocol state machines `xfr/interpreter`, `xfr/plan`,
//!   `xfr/refresh`) do no I/O and read no clock: no tokio, `std::net`, `std::fs`, threads or
//!   `now()` outside their tests.
//! - Every file opens with a `//!` paragraph saying what it owns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, lowest first: a module may import its own and lower layers only.
const LAYERS: &[(&str, u32)] = &[
    ("dns", 0),
    ("tls", 0),
    ("clock", 1),
    ("config", 1),
    ("metrics", 1),
    ("store", 2),
    ("xfr", 3),
    ("serve", 4),
    ("cluster", 5),
    ("ops", 6),
    ("app", 7),
];

/// Modules that must stay free of I/O and clocks (paths relative to `node/src`).
const PURE: &[&str] = &[
    "dns/",
    "xfr/interpreter.rs",
    "xfr/plan.rs",
    "xfr/refresh.rs",
];

/// What a pure module must not name.
const IMPURE: &[&str] = &[
    "tokio",
    "std::net",
    "std::fs",
    "std::thread",
    "SystemTime::now",
    "Instant::now",
    "unix_now",
    "UdpSocket",
    "TcpStream",
];

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `node/src`, relative to it.
fn source_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("readable source directory")
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    let root = source_root();
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files
}

/// The code of a file without its test module (last, by the house style) and comment lines.
fn code_of(text: &str) -> String {
    let body = match text.find("#[cfg(test)]") {
        Some(index) => &text[..index],
        None => text,
    };
    body.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module path of a file: `dns/zone/mod.rs` → [dns, zone], `xfr/task.rs` → [xfr, task].
fn module_of(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// The file that defines the longest prefix of `path` (module segments from the crate root).
fn file_of(path: &[String], files: &BTreeSet<PathBuf>) -> Option<PathBuf> {
    for end in (1..=path.len()).rev() {
        let joined = path[..end].join("/");
        for candidate in [format!("{joined}.rs"), format!("{joined}/mod.rs")] {
            let candidate = PathBuf::from(candidate);
            if files.contains(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

/// Module paths named in `code` as `crate::a::b` or `super::a`, resolved from `module`.
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    for (prefix, relative) in [("crate::", false), ("super::", true)] {
        let mut start = 0;
        while let Some(found) = code[start..].find(prefix) {
            let at = start + found;
            start = at + prefix.len();
            // Skip `foo_crate::` and the like: the prefix must start a path.
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let rest = &code[start..];
            let mut segments: Vec<String> = Vec::new();
            for raw in rest.split("::") {
                let segment: String = raw
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let whole = segment.len() == raw.len();
                if !segment.is_empty() {
                    segments.push(segment);
                }
                // The path ends where a segment is followed by anything but `::`.
                if !whole || segments.is_empty() {
                    break;
                }
            }
            let mut path = if relative {
                let mut parent = module.to_vec();
                parent.pop();
                parent
            } else {
                Vec::new()
            };
            path.extend(segments);
            if !path.is_empty() {
                paths.push(path);
            }
        }
    }
    paths
}

fn layer(module: &str) -> Option<u32> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, layer)| *layer)
}

/// True for an edge between a folder's `mod.rs` and a file directly in that folder.
fn within_one_module(from: &Path, to: &Path) -> bool {
    let is_mod = |file: &Path| file.file_name().is_some_and(|name| name == "mod.rs");
    let same_folder = from.parent() == to.parent();
    same_folder && (is_mod(from) || is_mod(to))
}

#[test]
fn folders_import_downward_only() {
    let root = source_root();
    let mut problems = Vec::new();
    for file in source_files() {
        let module = module_of(&file);
        let Some(own) = module.first() else {
            continue;
        };
        let Some(own_layer) = layer(own) else {
            // lib.rs, main.rs: the top.
            continue;
        };
        let code = code_of(&std::fs::read_to_string(root.join(&file)).expect("readable"));
        for path in named_paths(&code, &module) {
            let target = &path[0];
            if target == own {
                continue;
            }
            match layer(target) {
                Some(target_layer) if target_layer < own_layer => {}
                Some(_) => problems.push(format!(
                    "{}: imports crate::{} from a layer that is not below it",
                    file.display(),
                    path.join("::")
                )),
                None => problems.push(format!(
                    "{}: names crate::{}, whose module has no layer in tests/tidy.rs",
                    file.display(),
                    path.join("::")
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_import_circles() {
    let root = source_root();
    let files: BTreeSet<PathBuf> = source_files().into_iter().collect();
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        let code = code_of(&std::fs::read_to_string(root.join(file)).expect("readable"));
        let targets = edges.entry(file.clone()).or_default();
        for path in named_paths(&code, &module) {
            if let Some(target) = file_of(&path, &files)
                && target != *file
                && !within_one_module(file, &target)
            {
                targets.insert(target);
            }
        }
    }
    // Depth-first search; a grey node met again closes a circle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        White,
        Grey,
        Black,
    }
    fn visit(
        node: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        marks: &mut BTreeMap<PathBuf, Mark>,
        stack: &mut Vec<PathBuf>,
        circles: &mut Vec<String>,
    ) {
        marks.insert(node.clone(), Mark::Grey);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::White) {
                Mark::White => visit(next, edges, marks, stack, circles),
                Mark::Grey => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut circle: Vec<String> = stack[from..]
                        .iter()
                        .map(|n| n.display().to_string())
                        .collect();
                    circle.push(next.display().to_string());
                    circles.push(circle.join(" -> "));
                }
                Mark::Black => {}
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Black);
    }
    let mut marks = BTreeMap::new();
    let mut circles = Vec::new();
    for file in &files {
        if marks.get(file).copied().unwrap_or(Mark::White) == Mark::White {
            visit(file, &edges, &mut marks, &mut Vec::new(), &mut circles);
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn pure_modules_do_no_io_and_read_no_clock() {
    let root = source_root();
    let mut problems = Vec::new();
    for file in source_files() {
        let shown = file.display().to_string();
        if !PURE.iter().any(|pure| shown.starts_with(pure)) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(root.join(&file)).expect("readable"));
        for word in IMPURE {
            if code.contains(word) {
                problems.push(format!("{shown}: names `{word}`"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "pure modules with I/O or clocks:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_file_says_what_it_owns() {
    let root = source_root();
    let missing: Vec<String> = source_files()
        .into_iter()
        .filter(|file| {
            let text = std::fs::read_to_string(root.join(file)).expect("readable");
            !text.starts_with("//!")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! paragraph: {missing:?}"
    );
}

/// The checks themselves find what they promise to.
#[test]
fn the_checks_see_violations() {
    let module = vec!["dns".to_string(), "lookup".to_string()];
    let paths = named_paths("use crate::store::Store;\nlet x = my_crate::y;", &module);
    assert_eq!(paths, vec![vec!["store".to_string(), "Store".to_string()]]);
    let relative = named_paths("use super::zone::Zone;", &module);
    assert_eq!(
        relative,
        vec![vec![
            "dns".to_string(),
            "zone".to_string(),
            "Zone".to_string()
        ]]
    );
    assert!(layer("store").expect("layer") > layer("dns").expect("layer"));
    assert_eq!(
        code_of("use tokio;\n// tokio in a comment\n#[cfg(test)]\nmod tests { tokio }"),
        "use tokio;"
    );
    assert!(within_one_module(
        Path::new("dns/zone/mod.rs"),
        Path::new("dns/zone/map.rs")
    ));
    assert!(!within_one_module(
        Path::new("serve/udp.rs"),
        Path::new("serve/responder.rs")
    ));
}
