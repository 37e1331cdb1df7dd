//! The docs name tests; these tests keep those names true.

use std::path::Path;

/// The source of the tests named `prefix::…` in the docs, if `prefix` names a test module.
fn source_for(prefix: &str) -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = match prefix {
        "hostile" | "chat" | "echo" | "allocations" | "docs" | "protocol_doc" | "handle"
        | "examples" | "client" | "tls" => {
            vec![format!("tests/{prefix}.rs")]
        }
        other => {
            let module = other.strip_suffix("::tests")?.replace("::", "/");
            vec![
                format!("src/{module}.rs"),
                format!("src/{module}/tests.rs"),
                format!("src/{module}/mod.rs"),
            ]
        }
    };
    let sources: Vec<String> =
        candidates.iter().filter_map(|c| std::fs::read_to_string(root.join(c)).ok()).collect();
    assert!(!sources.is_empty(), "no source file for test module `{prefix}`");
    Some(sources.concat())
}

/// Every `module::test_name` in backticks in `doc` names a test function that exists; there
/// are at least `at_least` of them.
fn check_test_names(doc: &str, at_least: usize) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    let mut checked = 0;
    for quoted in text.split('`').skip(1).step_by(2) {
        let Some((prefix, name)) = quoted.rsplit_once("::") else { continue };
        let is_test_name =
            name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && name.contains('_');
        let Some(source) = is_test_name.then(|| source_for(prefix)).flatten() else { continue };
        assert!(
            source.contains(&format!("fn {name}(")),
            "{doc} names `{quoted}`, which does not exist"
        );
        checked += 1;
    }
    assert!(checked >= at_least, "{doc}: only {checked} test names found");
}

#[test]
fn every_test_named_in_security_md_exists() {
    check_test_names("docs/security.md", 10);
}

#[test]
fn every_test_named_in_the_topic_pages_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pages = std::fs::read_dir(root.join("docs/topics")).unwrap();
    let mut seen = 0;
    for page in pages.flatten().map(|e| e.path()) {
        if page.extension().is_some_and(|e| e == "md") {
            check_test_names(page.strip_prefix(root).unwrap().to_str().unwrap(), 0);
            seen += 1;
        }
    }
    assert!(seen >= 5, "docs/topics has {seen} pages");
}

/// The markdown files people read.
fn markdown_files() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "docs/topics", "docs/rfc", "tests/browser", "fuzz", "bench", "bench/peers"]
    {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            files.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "md")),
            );
        }
    }
    files
}

/// Directories of the repository that the published package leaves out (Cargo.toml's
/// `include`): the load generator and peers, the fuzz targets, the scripts, the Autobahn
/// configuration and the browser test's npm project.
const REPOSITORY_ONLY: &[&str] = &["bench", "fuzz", "scripts", "autobahn", ".ci", "tests/browser"];

/// `path` with its `.` and `..` taken out, without touching the file system (the target of a
/// broken link does not exist, so it cannot be canonicalized).
fn lexical(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether a link that does not resolve is one into a directory the package leaves out, while
/// these tests run in an unpacked package (`cargo package` writes `Cargo.toml.orig` beside
/// the normalized manifest; a checkout has no such file). In the repository every link must
/// resolve.
fn left_out_of_the_package(target: &Path) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    root.join("Cargo.toml.orig").exists()
        && lexical(target)
            .strip_prefix(lexical(root))
            .is_ok_and(|inside| REPOSITORY_ONLY.iter().any(|dir| inside.starts_with(dir)))
}

/// The features' table is written once, in docs/cargo-features.md: the crate documentation
/// includes that file, and the README must show it as it is.
#[test]
fn the_readme_shows_the_features_table_the_crate_docs_include() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = std::fs::read_to_string(root.join("docs/cargo-features.md")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme.split_once("\n## Cargo features\n").expect("a Cargo features section").1;
    assert!(
        section.trim_start().starts_with(table.trim()),
        "README.md's table differs from docs/cargo-features.md"
    );
}

#[test]
fn relative_links_in_the_docs_resolve() {
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            if target.is_empty()
                || target.starts_with('#')
                || target.contains("://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let path = target.split('#').next().unwrap_or(target);
            if left_out_of_the_package(&dir.join(path)) {
                continue;
            }
            assert!(
                dir.join(path).exists(),
                "{}: broken link to {target}",
                file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().display()
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} links found");
}

#[test]
fn every_test_named_in_rfc_map_md_exists() {
    check_test_names("docs/rfc-map.md", 10);
}

/// The counts at the top of docs/rfc-map.md are the table's: every row is counted by what it
/// applies to and what covers it, and the sentence must say exactly that.
#[test]
fn the_rfc_map_counts_are_true() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rfc-map.md"))
            .unwrap();
    let (rfc6455, rfc7692) = text.split_once("## RFC 7692").expect("an RFC 7692 section");
    let mut gaps = Vec::new();
    let expected = format!(
        "**Counts.** RFC 6455: {}. RFC 7692: {}.",
        counts(rfc6455, &mut gaps),
        counts(rfc7692, &mut gaps)
    );
    assert!(text.contains(&expected), "docs/rfc-map.md should say:\n{expected}");
    // Every row with no test is listed under Gaps, by its section.
    let listed = text.split_once("\n## Gaps\n").expect("a Gaps section").1;
    let listed = listed.split("\n## ").next().unwrap();
    for section in gaps {
        // "§7.2" is not named by "§7.2.3".
        let named = listed.match_indices(&format!("§{section}")).any(|(at, found)| {
            let after = &listed[at + found.len()..];
            let digit = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
            let longer = digit(after) || (after.starts_with('.') && digit(&after[1..]));
            !longer
        });
        assert!(named, "§{section} has a row with no test, not under Gaps");
    }
}

/// What covers the requirements of one side: rows, covered by a test, with no test (the Gaps),
/// with nothing to test.
#[derive(Default)]
struct Tally {
    rows: usize,
    covered: usize,
    gaps: usize,
    nothing: usize,
}

impl Tally {
    /// Counts a row by its test cell: test names in backticks, *none* or *n/a*.
    fn count(&mut self, test: &str, line: &str) {
        match test.trim() {
            "none" => self.gaps += 1,
            "n/a" => self.nothing += 1,
            t if t.contains('`') => self.covered += 1,
            other => panic!("row with test cell {other:?}: {line}"),
        }
        self.rows += 1;
    }

    fn describe(&self, side: &str) -> String {
        assert_eq!(self.rows, self.covered + self.gaps + self.nothing);
        format!(
            "{} {side} requirements, {} covered by a test, {} with no test, {} with nothing to \
             test",
            self.rows, self.covered, self.gaps, self.nothing
        )
    }
}

/// "N server requirements, C covered by a test, G with no test, A with nothing to test; M client
/// requirements, C covered by a test, G with no test, A with nothing to test; T not applicable;
/// D definitions". Server requirements are the rows that apply to the server or to both ends;
/// client requirements, those that apply to the client alone. The § of each row with no test is
/// added to `gaps`.
fn counts(section: &str, gaps: &mut Vec<String>) -> String {
    let (mut server, mut client) = (Tally::default(), Tally::default());
    let (mut tls, mut definitions) = (0, 0);
    for line in section.lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        // | § | requirement | applies to | code | test | Autobahn cases | note |
        if !line.starts_with("| ")
            || cells.len() < 7
            || cells[0] == "| §"
            || line.starts_with("|---")
        {
            continue;
        }
        let (applies, test, note) = (cells[2], cells[4], cells[6]);
        if test.trim() == "none" {
            gaps.push(cells[0].trim_start_matches('|').trim().to_owned());
        }
        if note.contains("*definition*") {
            definitions += 1;
        } else if applies.starts_with("not applicable") {
            tls += 1;
        } else if applies == "server" || applies == "both" {
            server.count(test, line);
        } else if applies == "client" {
            client.count(test, line);
        } else {
            panic!("row that applies to {applies:?}: {line}");
        }
    }
    format!(
        "{}; {}; {tls} not applicable; {definitions} definitions",
        server.describe("server"),
        client.describe("client")
    )
}
