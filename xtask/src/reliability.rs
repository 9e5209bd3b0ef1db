//! `cargo xtask docs`: the scenario table of `docs/reliability.md`, generated from the
//! `scenarios!` and `committed!` tables of the gateway's fault suite
//! (`crates/llm-server/tests/it/faults.rs`). A tidy test fails when the two differ.

use std::fs;

use crate::project_root;

pub(crate) const SUITE: &str = "crates/llm-server/tests/it/faults.rs";
pub(crate) const DOC: &str = "docs/reliability.md";
const BEGIN: &str = "<!-- scenarios:begin (written by `cargo xtask docs` from crates/llm-server/tests/it/faults.rs) -->";
const END: &str = "<!-- scenarios:end -->";

/// One row of a table in the suite.
struct Row {
    name: String,
    what: String,
    fields: Vec<String>,
}

/// The rows of the `name! { ... }` block of `source`.
fn rows(source: &str, block: &str) -> Result<Vec<Row>, String> {
    let start = source
        .find(&format!("\n{block}! {{\n"))
        .ok_or_else(|| format!("{SUITE} has no `{block}!` table"))?;
    let body = &source[start + block.len() + 5..];
    let body = &body[..body.find("\n}").ok_or("an unterminated table")?];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(|line| {
            let bad = || format!("{SUITE}: cannot read the `{block}!` row `{line}`");
            let line = line.strip_suffix(';').ok_or_else(bad)?;
            let (name, rest) = line.split_once(": \"").ok_or_else(bad)?;
            let mut end = None;
            let mut escaped = false;
            for (i, c) in rest.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end.ok_or_else(bad)?;
            let what = rest[..end].replace("\\\"", "\"");
            let fields = rest[end + 1..]
                .trim_start_matches(',')
                .rsplitn(3, ", ")
                .map(|f| f.trim().trim_matches('"').to_owned())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Ok(Row {
                name: name.to_owned(),
                what,
                fields,
            })
        })
        .collect()
}

/// The Markdown table for the suite's source.
pub(crate) fn table(source: &str) -> Result<String, String> {
    let mut out = String::from(
        "| test | the upstream … | one of three deployments faulty (JSON and stream) | all three faulty (JSON and stream) |\n|---|---|---|---|\n",
    );
    for row in rows(source, "scenarios")? {
        let [_, kind, status] = row.fields.as_slice() else {
            return Err(format!("{SUITE}: row `{}` needs 4 fields", row.name));
        };
        let extra = if status == "429" {
            " with `Retry-After`"
        } else {
            ""
        };
        out.push_str(&format!(
            "| `{}::{{one,all}}_faulty_{{json,stream}}` | {} | every request succeeds; status shows it `cooling_down` (`{kind}`), then `healthy` again once healed | {status}{extra}; the error names all three attempts |\n",
            row.name, row.what
        ));
    }
    for row in rows(source, "committed")? {
        let [_, chunks] = row.fields.as_slice() else {
            return Err(format!("{SUITE}: row `{}` needs 3 fields", row.name));
        };
        out.push_str(&format!(
            "| `{}` | {} | — (the stream is committed: no failover) | 200 stream: {chunks} content chunks, then one error event; never `[DONE]` (chat completions) nor `message_stop` (the Anthropic door, tested too) |\n",
            row.name, row.what
        ));
    }
    Ok(out)
}

/// The table as it stands in the doc.
#[cfg(test)]
pub(crate) fn documented(doc: &str) -> Option<&str> {
    let begin = doc.find(BEGIN)? + BEGIN.len() + 1;
    let end = doc.find(END)?;
    doc.get(begin..end)
}

/// Rewrite the doc's table from the suite.
pub(crate) fn main() -> Result<(), String> {
    let root = project_root();
    let source = fs::read_to_string(root.join(SUITE)).map_err(|e| format!("{SUITE}: {e}"))?;
    let path = root.join(DOC);
    let doc = fs::read_to_string(&path).map_err(|e| format!("{DOC}: {e}"))?;
    let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        return Err(format!("{DOC} has no scenario markers"));
    };
    let updated = format!(
        "{}{BEGIN}\n{}{}",
        &doc[..begin],
        table(&source)?,
        &doc[end..]
    );
    fs::write(&path, updated).map_err(|e| format!("{DOC}: {e}"))?;
    println!("wrote the scenario table of {DOC}");
    Ok(())
}
