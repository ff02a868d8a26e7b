//! The files `kobling project fetch` writes: one table per register and
//! the `persons` table (each as CSV and typed Parquet), `report.txt`,
//! `codebook.json` and the transcript.
//!
//! ```text
//!  Delivered (verified, opened) + the spec's types
//!    ├─▶ <REGISTER>.csv / .parquet   lnr + variables, typed as declared
//!    ├─▶ persons.csv / .parquet      lnr + one boolean column per register
//!    ├─▶ codebook.json               per table: project, legal basis, columns (type, rows, nulls, unparsed)
//!    ├─▶ report.txt                  counts per list, persons by registers, unparsed values; counts under 5 as `<5`
//!    └─▶ transcript.kob
//! ```
//!
//! `report.txt` follows the disclosure rule (PROTOCOL.md §10a): a count
//! under 5 is shown as `<5`, so the report can be shared. The codebook
//! describes the researcher's own tables and keeps exact counts.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::Path,
};

use anyhow::Context;
use kobling_protocol::{link::Lnr, types::Name};
use serde::Serialize;

use crate::{
    output::{write_table, Column, ColumnStats, ColumnType},
    researcher::Delivered,
};

/// Counts below this are shown as `<5` in the report.
pub(crate) const SMALL_CELL: u64 = 5;

/// A count as the report shows it: `<5` under [`SMALL_CELL`].
pub(crate) fn cell(n: u64) -> String {
    if n < SMALL_CELL {
        format!("<{SMALL_CELL}")
    } else {
        n.to_string()
    }
}

#[derive(Debug, Serialize)]
struct Codebook<'a> {
    project: &'a str,
    title: &'a str,
    legal_basis: &'a str,
    cohort: &'a str,
    tables: Vec<CodebookTable>,
}

#[derive(Debug, Serialize)]
struct CodebookTable {
    table: String,
    files: [String; 2],
    rows: u64,
    persons: u64,
    columns: Vec<CodebookColumn>,
}

#[derive(Debug, Serialize)]
struct CodebookColumn {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    nulls: u64,
    unparsed: u64,
}

/// Writes the delivery's files into `out` (created if needed); `types`
/// holds each register's declared variable types (missing: `string`).
pub(crate) fn write_delivery(
    out: &Path,
    d: &Delivered,
    types: &BTreeMap<String, BTreeMap<String, ColumnType>>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut present: BTreeMap<Lnr, BTreeSet<Name>> = BTreeMap::new();
    let mut tables = Vec::new();
    let mut unparsed_report = Vec::new();
    for (list, table) in &d.tables {
        let declared = types.get(list.as_str());
        let mut columns = vec![Column::new("lnr", ColumnType::String)];
        columns.extend(table.columns.iter().map(|c| {
            Column::new(
                c.as_str(),
                declared.and_then(|t| t.get(c)).copied().unwrap_or_default(),
            )
        }));
        for (lnr, _) in &table.rows {
            present.entry(*lnr).or_default().insert(list.clone());
        }
        let stats = write_table(out, list.as_str(), &columns, table.rows.len(), |r, c| {
            let (lnr, values) = &table.rows[r];
            match c {
                0 => lnr.as_str(),
                _ => values.get(c - 1).map_or("", String::as_str),
            }
        })?;
        let persons = table
            .rows
            .iter()
            .map(|(l, _)| l)
            .collect::<BTreeSet<_>>()
            .len() as u64;
        for (c, s) in columns.iter().zip(&stats).skip(1) {
            if s.unparsed > 0 {
                unparsed_report.push((format!("{list}.{}", c.name), c.kind, s.unparsed));
            }
        }
        tables.push(codebook_table(
            list.as_str(),
            &columns,
            &stats,
            table.rows.len() as u64,
            persons,
        ));
    }

    let lists: Vec<&Name> = d.tables.keys().collect();
    let mut columns = vec![Column::new("lnr", ColumnType::String)];
    columns.extend(
        lists
            .iter()
            .map(|l| Column::new(l.as_str(), ColumnType::Bool)),
    );
    let mut combinations: BTreeMap<Vec<bool>, u64> = BTreeMap::new();
    let persons: Vec<(&Lnr, Vec<bool>)> = present
        .iter()
        .map(|(lnr, in_lists)| {
            let flags: Vec<bool> = lists.iter().map(|l| in_lists.contains(*l)).collect();
            *combinations.entry(flags.clone()).or_default() += 1;
            (lnr, flags)
        })
        .collect();
    let stats = write_table(out, "persons", &columns, persons.len(), |r, c| {
        let (lnr, flags) = &persons[r];
        match c {
            0 => lnr.as_str(),
            _ if flags.get(c - 1).copied().unwrap_or(false) => "1",
            _ => "0",
        }
    })?;
    tables.push(codebook_table(
        "persons",
        &columns,
        &stats,
        persons.len() as u64,
        persons.len() as u64,
    ));

    let order = &d.verified.order;
    let codebook = Codebook {
        project: order.project.as_str(),
        title: order.title.as_str(),
        legal_basis: order.legal_basis.as_str(),
        cohort: order.cohort.as_str(),
        tables,
    };
    std::fs::write(
        out.join("codebook.json"),
        serde_json::to_string_pretty(&codebook)? + "\n",
    )?;
    std::fs::write(
        out.join("report.txt"),
        report(d, &lists, &combinations, &unparsed_report),
    )?;
    std::fs::write(out.join("transcript.kob"), &d.transcript)?;
    Ok(())
}

fn codebook_table(
    name: &str,
    columns: &[Column],
    stats: &[ColumnStats],
    rows: u64,
    persons: u64,
) -> CodebookTable {
    CodebookTable {
        table: name.to_string(),
        files: [format!("{name}.parquet"), format!("{name}.csv")],
        rows,
        persons,
        columns: columns
            .iter()
            .zip(stats)
            .map(|(c, s)| CodebookColumn {
                name: c.name.clone(),
                kind: c.kind.name(),
                nulls: s.empty + s.unparsed,
                unparsed: s.unparsed,
            })
            .collect(),
    }
}

/// `report.txt`: every count under [`SMALL_CELL`] shown as `<5`.
fn report(
    d: &Delivered,
    lists: &[&Name],
    combinations: &BTreeMap<Vec<bool>, u64>,
    unparsed: &[(String, ColumnType, u64)],
) -> String {
    let mut r = String::new();
    let order = &d.verified.order;
    let _ = writeln!(r, "project {}: {}", order.project, order.title.as_str());
    let _ = writeln!(r, "legal basis: {}", order.legal_basis.as_str());
    let _ = writeln!(
        r,
        "counts under {SMALL_CELL} are shown as <{SMALL_CELL} (disclosure rule)\n"
    );
    r.push_str("register  extract_rows  invalid_ids  persons  matched_persons  delivered_rows\n");
    for l in &d.verified.lists {
        let rows = d.tables.get(&l.list).map_or(0, |t| t.rows.len() as u64);
        let _ = writeln!(
            r,
            "{:<8}  {:>12}  {:>11}  {:>7}  {:>15}  {:>14}",
            l.list.as_str(),
            cell(l.rows),
            cell(l.invalid),
            cell(l.persons),
            cell(l.matched.unwrap_or(0)),
            cell(rows)
        );
    }
    let _ = writeln!(
        r,
        "cohort persons: {}",
        cell(d.verified.cohort_persons.unwrap_or(0))
    );
    r.push_str("\npersons by the registers they appear in (the persons table):\n");
    let header: Vec<String> = lists.iter().map(|l| format!("{:<8}", l.as_str())).collect();
    let _ = writeln!(r, "{}  persons", header.join(" "));
    for (flags, n) in combinations {
        let marks: Vec<String> = flags
            .iter()
            .map(|f| format!("{:<8}", if *f { "x" } else { "." }))
            .collect();
        let _ = writeln!(r, "{}  {:>7}", marks.join(" "), cell(*n));
    }
    if unparsed.is_empty() {
        r.push_str("\nevery value parses as its column's type\n");
    } else {
        r.push_str(
            "\nvalues that do not parse as their column's type (nulls in the Parquet table, as written in the CSV):\n",
        );
        for (column, kind, n) in unparsed {
            let _ = writeln!(r, "  {column:<32} {:<8} {:>7}", kind.name(), cell(*n));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn counts_under_five_are_not_shown() {
        assert_eq!(cell(0), "<5");
        assert_eq!(cell(4), "<5");
        assert_eq!(cell(5), "5");
        assert_eq!(cell(12_345), "12345");
    }
}
