//! Tidy checks of the whole tree, run as tests (rust-analyzer's style).

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::project_root;

fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(project_root().join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Cargo.toml").exists())
        .collect();
    dirs.sort();
    dirs
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// Lines of library code: outside comments and `#[cfg(test)]` modules (which, by the
/// style guide, come last in a file).
fn library_lines(source: &str) -> impl Iterator<Item = (usize, &str)> {
    source
        .lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(i, line)| (i + 1, line))
}

fn name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn there_are_ten_crates() {
    let names: Vec<String> = crate_dirs().iter().map(|d| name(d)).collect();
    assert_eq!(
        names,
        [
            "llm-balance",
            "llm-claude-bedrock",
            "llm-core",
            "llm-deepseek",
            "llm-factory",
            "llm-gemini",
            "llm-http",
            "llm-openai",
            "llm-qwen",
            "llm-server"
        ]
    );
}

#[test]
fn every_crate_has_a_readme_and_crate_docs() {
    for dir in crate_dirs() {
        let readme = dir.join("README.md");
        assert!(readme.exists(), "{} has no README.md", name(&dir));
        let text = fs::read_to_string(&readme).unwrap();
        assert!(
            text.starts_with(&format!("# {}", name(&dir))),
            "{} README title",
            name(&dir)
        );
        let lib = fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(
            lib.starts_with("//! "),
            "{} has no crate-level doc",
            name(&dir)
        );
    }
}

#[test]
fn crates_with_code_have_a_doc_example() {
    for dir in crate_dirs() {
        let lib = fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        let has_code = lib
            .lines()
            .any(|line| !line.starts_with("//!") && !line.trim().is_empty());
        if has_code {
            assert!(
                lib.contains("//! ```"),
                "{} has code but no crate-level example",
                name(&dir)
            );
        }
    }
}

#[test]
fn every_provider_crate_runs_the_conformance_suite() {
    for dir in crate_dirs() {
        // Provider crates: the ones that speak an upstream's wire format.
        const PROVIDERS: [&str; 5] = [
            "llm-openai",
            "llm-deepseek",
            "llm-qwen",
            "llm-claude-bedrock",
            "llm-gemini",
        ];
        if !PROVIDERS.contains(&name(&dir).as_str()) {
            continue;
        }
        let implements = rust_files(&dir.join("src")).iter().any(|file| {
            fs::read_to_string(file)
                .unwrap()
                .contains("impl ChatProvider for")
        });
        if !implements {
            continue;
        }
        let runs = rust_files(&dir.join("tests")).iter().any(|file| {
            fs::read_to_string(file)
                .unwrap()
                .contains("conformance::run_all")
        });
        assert!(
            runs,
            "{} implements ChatProvider but does not run the conformance suite",
            name(&dir)
        );
    }
}

#[test]
fn libraries_do_not_print_or_leave_todos() {
    let forbidden = [
        "println!",
        "eprintln!",
        "print!(",
        "eprint!(",
        "dbg!",
        "todo!",
        "unimplemented!",
    ];
    let mut found = Vec::new();
    for dir in crate_dirs() {
        for file in rust_files(&dir.join("src")) {
            if file.ends_with("main.rs") {
                continue;
            }
            let source = fs::read_to_string(&file).unwrap();
            for (line_no, line) in library_lines(&source) {
                if let Some(word) = forbidden.iter().find(|word| line.contains(*word)) {
                    found.push(format!("{}:{line_no}: {word}", file.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn dependencies_come_from_the_workspace_table() {
    let mut members: Vec<PathBuf> = crate_dirs();
    members.push(project_root().join("examples"));
    members.push(project_root().join("xtask"));
    let mut offenders = Vec::new();
    for dir in members {
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let mut in_deps = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_deps = line.ends_with("dependencies]");
                continue;
            }
            if in_deps
                && !line.is_empty()
                && !line.starts_with('#')
                && !line.contains("workspace = true")
                && !line.contains(".workspace = true")
            {
                offenders.push(format!("{}: {line}", name(&dir)));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "declare these in [workspace.dependencies]:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_reqwest_types_in_llm_core() {
    let manifest = fs::read_to_string(project_root().join("crates/llm-core/Cargo.toml")).unwrap();
    for banned in ["reqwest", "axum", "hyper"] {
        assert!(
            !manifest.contains(banned),
            "llm-core must not depend on {banned}"
        );
    }
}

/// The scenario table of `docs/reliability.md` is the fault suite's, row for row.
#[test]
fn the_reliability_doc_lists_every_fault_scenario() {
    use crate::reliability::{DOC, SUITE, documented, table};
    let root = project_root();
    let source = fs::read_to_string(root.join(SUITE)).unwrap();
    let doc = fs::read_to_string(root.join(DOC)).unwrap();
    let generated = table(&source).unwrap();
    assert!(generated.lines().count() > 20, "{generated}");
    assert_eq!(
        documented(&doc),
        Some(generated.as_str()),
        "{DOC} is out of step with {SUITE}: run `cargo xtask docs`"
    );
}
