//! The docs quote RFC 6455 word for word, in the section they name, and every `§` they write
//! names a section that exists: checked against the RFC's text in docs/rfc/rfc6455.txt.
//!
//! The convention (docs/rfc/README.md): in prose, a quotation of the RFC is in curly quotes
//! followed by its section, `“…” (§7.1.3)`, or `(RFC 7692 §7.2.1)` for RFC 7692; `…` stands
//! for words left out. In docs/rfc-map.md, a table row's requirement cell is the quotation (in
//! straight quotes, as the RFC itself quotes) and the row's first cell its section.
//! Curly quotes mean an RFC quotation and nothing else, so one without its section fails.
//!
//! RFC 7692's text is not in docs/rfc/ (it could not be fetched from here), so its quotations
//! and section numbers are counted and said, not checked.

use std::path::{Path, PathBuf};

/// RFC 6455 cut into its numbered sections, each with its text (whitespace collapsed).
struct Rfc {
    sections: Vec<(String, String)>,
}

impl Rfc {
    fn load() -> Rfc {
        let text = std::fs::read_to_string(root().join("docs/rfc/rfc6455.txt")).unwrap();
        let mut sections: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            // Page furniture: the footer with its page number, the running header, form feeds.
            let furniture = line.ends_with(']') && line.contains("[Page ")
                || line.starts_with("RFC 6455 ") && line.ends_with("December 2011")
                || line.trim() == "\u{c}";
            if furniture {
                continue;
            }
            if let Some(number) = heading(line) {
                sections.push((number, String::new()));
            }
            if let Some((_, body)) = sections.last_mut() {
                body.push(' ');
                body.push_str(line.trim());
            }
        }
        for (_, body) in &mut sections {
            *body = normalize(body);
        }
        Rfc { sections }
    }

    fn exists(&self, number: &str) -> bool {
        self.sections.iter().any(|(n, _)| n == number)
    }

    /// The text of section `number` with its subsections.
    fn section(&self, number: &str) -> Option<String> {
        let start = self.sections.iter().position(|(n, _)| n == number)?;
        let inside = format!("{number}.");
        let mut text = self.sections[start].1.clone();
        for (n, body) in &self.sections[start + 1..] {
            if !n.starts_with(&inside) {
                break;
            }
            text.push(' ');
            text.push_str(body);
        }
        Some(text)
    }

    /// Why `quote` is not the words of section `number`, if it is not.
    fn check(&self, number: &str, quote: &str) -> Result<(), String> {
        let Some(text) = self.section(number) else {
            return Err(format!("§{number} is not a section of RFC 6455"));
        };
        let mut from = 0;
        for piece in normalize(quote).split('…').map(str::trim).filter(|p| !p.is_empty()) {
            match text[from..].find(piece) {
                Some(at) => from += at + piece.len(),
                None if text.contains(piece) => {
                    return Err(format!("\"{piece}\" is in §{number}, but not in this order"));
                }
                None => return Err(format!("\"{piece}\" is not in §{number}")),
            }
        }
        Ok(())
    }
}

/// `5.5.1` from the line `5.5.1.  Close`: a heading starts at the margin with its number.
fn heading(line: &str) -> Option<String> {
    let (number, title) = line.split_once(".  ")?;
    let numbered = !number.is_empty()
        && number
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    (numbered && !title.starts_with(' ')).then(|| number.to_owned())
}

/// Whitespace collapsed to single spaces, a line broken after a hyphen joined again, and the
/// Markdown table's escaped bars unescaped.
fn normalize(text: &str) -> String {
    let text = text.replace("\\|", "|");
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.replace("- ", "-")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file under docs/.
fn docs() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    let mut found = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut found);
    found.sort();
    found
}

/// Which RFC a `§` belongs to: the `RFC NNNN` just before it, else RFC 6455.
fn rfc_before(text: &str) -> &str {
    let start = text.char_indices().rev().nth(11).map_or(0, |(at, _)| at);
    let tail = &text[start..];
    match tail.rfind("RFC ") {
        Some(at) if tail[at + 4..].trim_end().bytes().all(|b| b.is_ascii_digit()) => {
            tail[at + 4..].trim_end()
        }
        _ => "6455",
    }
}

/// The section number at the start of `text` (after a `§`): `7.1.3` of `7.1.3)`.
fn number_at(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    text[..end].trim_end_matches('.')
}

/// The quotations of a document: (line, RFC, section, words), and the curly quotations that
/// do not say their section.
type Quote = (usize, String, String, String);
fn quotations(doc: &str) -> (Vec<Quote>, Vec<usize>) {
    let (mut quotes, mut unsourced) = (Vec::new(), Vec::new());
    let mut rest = doc;
    while let Some(open) = rest.find('“') {
        let line = doc[..doc.len() - rest.len() + open].matches('\n').count() + 1;
        let after = &rest[open + '“'.len_utf8()..];
        let Some(close) = after.find('”') else {
            unsourced.push(line);
            break;
        };
        let words = &after[..close];
        let tail = after[close + '”'.len_utf8()..].trim_start();
        rest = &after[close..];
        let Some(source) = tail.strip_prefix('(') else {
            unsourced.push(line);
            continue;
        };
        let (rfc, source) = match source.strip_prefix("RFC ") {
            Some(s) => s.split_once(' ').unwrap_or((s, "")),
            None => ("6455", source),
        };
        match source.strip_prefix('§') {
            Some(s) if !number_at(s).is_empty() => {
                quotes.push((line, rfc.to_owned(), number_at(s).to_owned(), words.to_owned()))
            }
            _ => unsourced.push(line),
        }
    }
    (quotes, unsourced)
}

/// docs/rfc-map.md's RFC 6455 rows and its RFC 7692 part (the whole of any other document,
/// and nothing).
fn map_parts(doc: &str) -> (&str, &str) {
    doc.split_once("\n## RFC 7692").unwrap_or((doc, ""))
}

/// The requirement map's rows, `| 4.2.1 | "…" | …`: (line, section, the quoted words if the
/// requirement cell is a quotation).
fn map_rows(part: &str) -> impl Iterator<Item = (usize, &str, Option<&str>)> {
    part.lines().enumerate().filter_map(|(index, row)| {
        let mut cells = row.split(" | ");
        let number = cells.next()?.strip_prefix("| ")?;
        let requirement = cells.next()?;
        number.starts_with(|c: char| c.is_ascii_digit()).then(|| {
            let words = requirement.strip_prefix('"').and_then(|r| r.strip_suffix('"'));
            (index + 1, number, words)
        })
    })
}

#[test]
fn the_rfc_text_is_cut_into_its_sections() {
    let rfc = Rfc::load();
    for number in ["1", "1.3", "4.2.1", "5.5.1", "7.1.4", "10.3", "11.9"] {
        assert!(rfc.exists(number), "§{number}");
    }
    assert!(!rfc.exists("5.9") && !rfc.exists("16"));
    assert!(rfc.check("5.5.1", "the endpoint typically echos the status code it received").is_ok());
    assert!(rfc.check("5.5", "the endpoint typically echos the status code it received").is_ok());
    assert!(
        rfc.check("5.5.2", "the endpoint typically echos the status code it received").is_err()
    );
    assert!(rfc.check("7.1.4", "the WebSocket connection is in the CLOSED state").is_ok());
    assert!(rfc.check("5.3", "MUST pick … fresh masking key").is_ok());
    assert!(rfc.check("5.3", "fresh masking key … MUST pick").is_err());
}

#[test]
fn every_quotation_in_the_docs_is_the_rfcs_words_in_its_section() {
    let rfc = Rfc::load();
    let mut wrong = Vec::new();
    let (mut checked, mut unchecked) = (0, 0);
    for path in docs() {
        let doc = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        let (quotes, unsourced) = quotations(&doc);
        for line in unsourced {
            wrong.push(format!("{name}:{line}: a curly quotation without its (§N)"));
        }
        for (line, which, number, words) in quotes {
            if which != "6455" {
                unchecked += 1;
                continue;
            }
            checked += 1;
            if let Err(why) = rfc.check(&number, &words) {
                wrong.push(format!("{name}:{line}: {why}"));
            }
        }
        if name == "docs/rfc-map.md" {
            let (ours, theirs) = map_parts(&doc);
            for (line, number, words) in map_rows(ours) {
                let Some(words) = words else {
                    wrong.push(format!("{name}:{line}: the requirement is not quoted"));
                    continue;
                };
                checked += 1;
                if let Err(why) = rfc.check(number, words) {
                    wrong.push(format!("{name}:{line}: {why}"));
                }
            }
            unchecked += map_rows(theirs).filter(|(_, _, words)| words.is_some()).count();
        }
    }
    eprintln!(
        "{checked} quotations of RFC 6455 checked; {unchecked} of RFC 7692 not checked (its text \
         is not in docs/rfc/)"
    );
    assert!(checked > 150, "only {checked} quotations found: is the convention still followed?");
    assert!(
        wrong.is_empty(),
        "{} quotations are not the RFC's words:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_section_sign_names_a_section_of_rfc_6455() {
    let rfc = Rfc::load();
    let mut wrong = Vec::new();
    for path in docs() {
        let doc = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        // The requirement map's RFC 7692 part numbers its sections after RFC 7692.
        let doc = map_parts(&doc).0;
        for (index, line) in doc.lines().enumerate() {
            for (at, _) in line.match_indices('§') {
                let number = number_at(&line[at + '§'.len_utf8()..]);
                if number.is_empty() || rfc_before(&line[..at]) != "6455" {
                    continue;
                }
                if !rfc.exists(number) {
                    wrong.push(format!("{name}:{}: §{number}", index + 1));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "sections RFC 6455 does not have:\n{}", wrong.join("\n"));
}
