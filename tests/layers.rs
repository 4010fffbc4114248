//! The shape of `src/`, checked: the top-level modules import each other in
//! one direction only (no cycle, of any length), no file grows past 450
//! lines, and the modules that must not know a framework do not name it.
//!
//! It reads the sources as Rust (syn), not as text: `use crate::a::…`,
//! paths like `crate::a::f()` and `super::…` that climb out of a module, in
//! code and inside macro calls, count; comments and `#[cfg(test)]` items do
//! not (tests may reach anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

const MAX_LINES: usize = 450;

/// A source file with its module path (`src/streams/user.rs` is
/// `["streams", "user"]`; `mod.rs` is its folder's module).
struct Source {
    path: PathBuf,
    module: Vec<String>,
    text: String,
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src/") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).expect("under src/");
            let mut module: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            Source { path, module, text }
        })
        .collect()
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// Collects, for one file, the top-level modules its code names.
struct Uses<'a> {
    /// The module the visitor is in (the file's, plus inline `mod`s).
    module: Vec<String>,
    found: &'a mut BTreeSet<String>,
}

impl Uses<'_> {
    /// A path's first segments: where it lands among the top-level modules.
    fn resolve(&mut self, segments: &[String]) {
        let mut at = self.module.clone();
        let mut rest = segments;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                at.clear();
                rest = &rest[1..];
            }
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    at.pop();
                    rest = &rest[1..];
                }
            }
            _ => return,
        }
        let top = match (at.first(), rest.first()) {
            (Some(top), _) => top.clone(),
            (None, Some(next)) => next.clone(),
            (None, None) => return,
        };
        self.found.insert(top);
    }

    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) if id == "crate" || id == "super" => {
                    // `crate :: name` or `super :: super :: name` in a macro.
                    let mut segments = vec![id.to_string()];
                    let mut j = i + 1;
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) =
                        (trees.get(j), trees.get(j + 1))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        match trees.get(j + 2) {
                            Some(TokenTree::Ident(next)) => segments.push(next.to_string()),
                            _ => break,
                        }
                        j += 3;
                    }
                    if segments.len() > 1 {
                        self.resolve(&segments);
                    }
                }
                _ => {}
            }
        }
    }
}

fn use_tree_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_tree_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            out.push(path);
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            out.push(path);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_tree_paths(t, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            syn::Item::Macro(m) => &m.attrs,
            _ => &[],
        };
        if is_test_only(attrs) {
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        use_tree_paths(&u.tree, &mut Vec::new(), &mut paths);
        for p in paths {
            self.resolve(&p);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.resolve(&segments);
        syn::visit::visit_path(self, path);
    }

    /// `#[arg(default_value_t = crate::a::X)]` and the like (doc comments
    /// are name-value attributes and are skipped).
    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        if let syn::Meta::List(list) = &attr.meta {
            self.tokens(list.tokens.clone());
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// Which top-level modules each top-level module imports (itself and the
/// crate root excluded).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in sources() {
        let Some(top) = source.module.first().cloned() else {
            continue; // lib.rs and main.rs: the root declares every module
        };
        let file = syn::parse_file(&source.text)
            .unwrap_or_else(|e| panic!("{}: {e}", source.path.display()));
        let mut found = BTreeSet::new();
        Uses {
            module: source.module.clone(),
            found: &mut found,
        }
        .visit_file(&file);
        found.remove(&top);
        graph.entry(top).or_default().extend(found);
    }
    graph
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn dfs(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = dfs(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| dfs(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_import_each_other_in_one_direction() {
    let graph = graph();
    assert!(graph.contains_key("domain") && graph.contains_key("streams"));
    if let Some(cycle) = find_cycle(&graph) {
        let edges: Vec<String> = graph
            .iter()
            .map(|(m, uses)| format!("  {m} -> {uses:?}"))
            .collect();
        panic!(
            "import cycle between modules of src/: {}\nall imports:\n{}",
            cycle.join(" -> "),
            edges.join("\n")
        );
    }
}

#[test]
fn the_cycle_check_finds_cycles() {
    let edges = |list: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in list {
            g.entry((*a).into()).or_default().insert((*b).into());
            g.entry((*b).into()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&edges(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(
        find_cycle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    // The resolver: a `use`, a path in code, a macro's tokens, and `super`
    // climbing out of a nested module all count; a test module does not.
    let file = syn::parse_file(
        "use crate::store::Store;
         use super::super::fanout::{Event, hub};
         #[arg(default_value_t = crate::config::X)]
         fn f() { crate::metrics::count(); metrics::counter!(crate::limits::X).increment(1); }
         #[cfg(test)]
         mod tests { use crate::startup::Application; }",
    )
    .expect("parses");
    let mut found = BTreeSet::new();
    Uses {
        module: vec!["services".into(), "messages".into()],
        found: &mut found,
    }
    .visit_file(&file);
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    // `super::super` from services::messages is the root, so `fanout`.
    assert_eq!(found, ["config", "fanout", "limits", "metrics", "store"]);
}

#[test]
fn startup_is_imported_by_nothing_and_domain_by_everything_below() {
    let graph = graph();
    for (module, uses) in &graph {
        assert!(
            !uses.contains("startup"),
            "{module} imports startup, the composition root"
        );
    }
    assert_eq!(
        graph["domain"],
        BTreeSet::new(),
        "domain must not import any other module"
    );
}

/// Whether any code (not comments, not tests) of these files names `name`
/// as a path's first segment.
fn names_crate(source: &Source, name: &str) -> bool {
    struct Names<'a> {
        name: &'a str,
        hit: bool,
    }
    impl<'ast> Visit<'ast> for Names<'_> {
        fn visit_item(&mut self, item: &'ast syn::Item) {
            if let syn::Item::Mod(m) = item
                && is_test_only(&m.attrs)
            {
                return;
            }
            syn::visit::visit_item(self, item);
        }
        fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
            let mut paths = Vec::new();
            use_tree_paths(&u.tree, &mut Vec::new(), &mut paths);
            self.hit |= paths
                .iter()
                .any(|p| p.first().is_some_and(|s| s == self.name));
        }
        fn visit_path(&mut self, path: &'ast syn::Path) {
            self.hit |= path.segments.first().is_some_and(|s| s.ident == self.name);
            syn::visit::visit_path(self, path);
        }
    }
    let file = syn::parse_file(&source.text).expect("parse");
    let mut v = Names { name, hit: false };
    v.visit_file(&file);
    v.hit
}

#[test]
fn frameworks_stay_in_their_layer() {
    for source in sources() {
        let top = source.module.first().map(String::as_str).unwrap_or("");
        let shown = source.path.display();
        if top != "grpc" && top != "startup" && !source.module.is_empty() {
            assert!(!names_crate(&source, "tonic"), "{shown} names tonic");
            assert!(
                !names_crate(&source, "tidings_proto"),
                "{shown} names the wire types"
            );
        }
        if top != "store" {
            assert!(!names_crate(&source, "sea_orm"), "{shown} names sea_orm");
        }
        if top == "domain" {
            for name in ["axum", "tokio", "deadpool_redis"] {
                assert!(!names_crate(&source, name), "{shown} (domain) names {name}");
            }
        }
    }
}

#[test]
fn no_source_file_is_over_450_lines() {
    for source in sources() {
        let lines = source.text.lines().count();
        assert!(
            lines <= MAX_LINES,
            "{} has {lines} lines (at most {MAX_LINES}): split it by concern",
            source.path.display()
        );
    }
}
