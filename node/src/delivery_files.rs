//! The files `kobling project fetch` writes: one table per register and
//! the `persons` table (each as CSV and typed Parquet), `report.txt`,
//! `codebook.json` and the transcript.
//!
//! ```text
//!  DeliveryReader (verified, opened, one message at a time) + the spec's types
//!    ─▶ DeliveryWriter, in a staging directory moved into OUT once all verified:
//!    ├─▶ <REGISTER>.csv / .parquet   lnr + variables, typed as declared (streamed)
//!    ├─▶ persons.csv / .parquet      lnr + one boolean column per register (from the
//!    │                               (lnr, list) spill, one lnr first character at a time)
//!    ├─▶ codebook.json               per table: project, legal basis, columns (type, rows, nulls, unparsed)
//!    ├─▶ report.txt                  counts per list, persons by registers, unparsed values; counts under 5 as `<5`
//!    └─▶ transcript.kob
//! ```
//!
//! `report.txt` follows the disclosure rule (PROTOCOL.md §10a): a count
//! under 5 is shown as `<5`, so the report can be shared. The codebook
//! describes the researcher's own tables and keeps exact counts.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::File,
    io::{BufWriter, Write as _},
    path::{Path, PathBuf},
};

use anyhow::Context;
use kobling_protocol::{link::Lnr, transcript::VerifiedTranscript, types::ListName};
use serde::Serialize;

use crate::{
    output::{Column, ColumnStats, ColumnType, TableWriter},
    researcher::TableSink,
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

/// The partitions of the persons spill: one per first character of an
/// lnr (Crockford base32, in byte order), so that reading them in turn,
/// each sorted, gives the persons in lnr order.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Bytes of one spilled record: the lnr, then the list's index.
const SPILLED: usize = Lnr::LEN + 1;

/// A list's finished table.
struct Written {
    list: ListName,
    columns: Vec<Column>,
    stats: Vec<ColumnStats>,
    rows: u64,
}

/// The delivery's files, written as the rows are opened ([`TableSink`]):
/// each register's table straight to its CSV and Parquet files (one row
/// group at a time), and each person's (lnr, list) to a spill file of its
/// lnr's first character. At the end the `persons` table is built one
/// spill file at a time, then the codebook, the report and the
/// transcript. Everything is written in a staging directory inside `out`
/// and moved into `out` only once the whole delivery verified: a failed
/// fetch leaves nothing.
///
/// It holds one batch of rows of one table, and at the end one spill
/// partition: about a 32nd of the persons, 17 bytes each.
pub(crate) struct DeliveryWriter<'t> {
    out: PathBuf,
    staging: tempfile::TempDir,
    types: &'t BTreeMap<String, BTreeMap<String, ColumnType>>,
    current: Option<(ListName, Vec<Column>, TableWriter)>,
    written: Vec<Written>,
    /// The lists in the order their tables started (a person's list is
    /// its index here).
    lists: Vec<ListName>,
    spill: Vec<BufWriter<File>>,
}

impl<'t> DeliveryWriter<'t> {
    /// Prepares to write into `out` (created if needed); `types` holds
    /// each register's declared variable types (missing: `string`).
    ///
    /// # Errors
    ///
    /// `out` or the staging files cannot be created.
    pub(crate) fn create(
        out: &Path,
        types: &'t BTreeMap<String, BTreeMap<String, ColumnType>>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let staging = tempfile::Builder::new()
            .prefix(".kobling-fetch-")
            .tempdir_in(out)
            .with_context(|| format!("cannot write in {}", out.display()))?;
        let spill_dir = staging.path().join(".persons");
        std::fs::create_dir(&spill_dir)?;
        let spill = (0..ALPHABET.len())
            .map(|p| Ok(BufWriter::new(File::create(spill_dir.join(p.to_string()))?)))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            out: out.to_path_buf(),
            staging,
            types,
            current: None,
            written: Vec::new(),
            lists: Vec::new(),
            spill,
        })
    }

    fn end_table(&mut self) -> anyhow::Result<()> {
        if let Some((list, columns, table)) = self.current.take() {
            let rows = table.rows();
            let stats = table.finish()?;
            self.written.push(Written {
                list,
                columns,
                stats,
                rows,
            });
        }
        Ok(())
    }

    /// Writes the `persons` table, the codebook, the report and the
    /// transcript of the delivery `verified` (whose rows all came), and
    /// moves every file into `out`.
    ///
    /// # Errors
    ///
    /// A write error, or an lnr twice in one list.
    pub(crate) fn finish(
        mut self,
        verified: &VerifiedTranscript,
        transcript: &[u8],
    ) -> anyhow::Result<()> {
        self.end_table()?;
        for w in &mut self.spill {
            w.flush()?;
        }
        self.spill.clear();
        let dir = self.staging.path().to_path_buf();
        self.written.sort_by(|a, b| a.list.cmp(&b.list));
        // The lists in name order, and each list's place in it.
        let lists: Vec<&ListName> = self.written.iter().map(|w| &w.list).collect();
        let place: Vec<usize> = self
            .lists
            .iter()
            .map(|l| lists.iter().position(|m| *m == l).unwrap_or(usize::MAX))
            .collect();
        let mut columns = vec![Column::new("lnr", ColumnType::String)];
        columns.extend(
            lists
                .iter()
                .map(|l| Column::new(l.as_str(), ColumnType::Bool)),
        );
        let mut table = TableWriter::create(&dir, "persons", &columns)?;
        let mut combinations: BTreeMap<Vec<bool>, u64> = BTreeMap::new();
        let mut persons_of = vec![0u64; lists.len()];
        for p in 0..ALPHABET.len() {
            let path = dir.join(".persons").join(p.to_string());
            let bytes = std::fs::read(&path)?;
            let mut records: Vec<&[u8]> = bytes.chunks_exact(SPILLED).collect();
            records.sort_unstable();
            for person in records.chunk_by(|a, b| a[..Lnr::LEN] == b[..Lnr::LEN]) {
                let mut flags = vec![false; lists.len()];
                for r in person {
                    let at = place
                        .get(usize::from(r[Lnr::LEN]))
                        .copied()
                        .filter(|at| *at < lists.len())
                        .context("a spilled person of no list")?;
                    anyhow::ensure!(!flags[at], "list {} delivers one person twice", lists[at]);
                    flags[at] = true;
                    persons_of[at] += 1;
                }
                let lnr = std::str::from_utf8(&person[0][..Lnr::LEN]).context("an lnr")?;
                table.push_row(std::iter::once(lnr).chain(flags.iter().map(|f| {
                    if *f {
                        "1"
                    } else {
                        "0"
                    }
                })))?;
                *combinations.entry(flags).or_default() += 1;
            }
            std::fs::remove_file(&path)?;
        }
        let persons = table.rows();
        let persons_stats = table.finish()?;
        let mut tables = Vec::new();
        let mut unparsed_report = Vec::new();
        let mut delivered_rows = BTreeMap::new();
        for (w, persons) in self.written.iter().zip(&persons_of) {
            for (c, s) in w.columns.iter().zip(&w.stats).skip(1) {
                if s.unparsed > 0 {
                    unparsed_report.push((format!("{}.{}", w.list, c.name), c.kind, s.unparsed));
                }
            }
            delivered_rows.insert(w.list.clone(), w.rows);
            tables.push(codebook_table(
                w.list.as_str(),
                &w.columns,
                &w.stats,
                w.rows,
                *persons,
            ));
        }
        tables.push(codebook_table(
            "persons",
            &columns,
            &persons_stats,
            persons,
            persons,
        ));
        let order = &verified.order;
        let codebook = Codebook {
            project: order.project.as_str(),
            title: order.title.as_str(),
            legal_basis: order.legal_basis.as_str(),
            cohort: order.cohort.as_str(),
            tables,
        };
        std::fs::write(
            dir.join("codebook.json"),
            serde_json::to_string_pretty(&codebook)? + "\n",
        )?;
        std::fs::write(
            dir.join("report.txt"),
            report(
                verified,
                &delivered_rows,
                &lists,
                &combinations,
                &unparsed_report,
            ),
        )?;
        std::fs::write(dir.join("transcript.kob"), transcript)?;
        std::fs::remove_dir(dir.join(".persons"))?;
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            std::fs::rename(e.path(), self.out.join(e.file_name()))
                .with_context(|| format!("cannot write into {}", self.out.display()))?;
        }
        Ok(())
    }
}

impl TableSink for DeliveryWriter<'_> {
    fn list(&mut self, list: &ListName, names: &[String]) -> anyhow::Result<()> {
        self.end_table()?;
        anyhow::ensure!(
            self.lists.len() < usize::from(u8::MAX),
            "more lists than a delivery holds"
        );
        let declared = self.types.get(list.as_str());
        let mut columns = vec![Column::new("lnr", ColumnType::String)];
        columns.extend(names.iter().map(|c| {
            Column::new(
                c.as_str(),
                declared.and_then(|t| t.get(c)).copied().unwrap_or_default(),
            )
        }));
        let table = TableWriter::create(self.staging.path(), list.as_str(), &columns)?;
        self.lists.push(list.clone());
        self.current = Some((list.clone(), columns, table));
        Ok(())
    }

    fn person(&mut self, list: &ListName, lnr: Lnr, rows: Vec<Vec<String>>) -> anyhow::Result<()> {
        let Some((current, _, table)) = &mut self.current else {
            anyhow::bail!("a person before its list's table");
        };
        anyhow::ensure!(
            current == list,
            "a person of {list} in the table of {current}"
        );
        if rows.is_empty() {
            return Ok(());
        }
        for row in &rows {
            table.push_row(std::iter::once(lnr.as_str()).chain(row.iter().map(String::as_str)))?;
        }
        let first = lnr.as_str().as_bytes().first().copied().unwrap_or(b'0');
        let part = ALPHABET
            .iter()
            .position(|c| *c == first)
            .context("an lnr outside the alphabet")?;
        let index = u8::try_from(self.lists.len() - 1).context("list index")?;
        let w = &mut self.spill[part];
        w.write_all(lnr.as_str().as_bytes())?;
        w.write_all(&[index])?;
        Ok(())
    }
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
    verified: &VerifiedTranscript,
    delivered_rows: &BTreeMap<ListName, u64>,
    lists: &[&ListName],
    combinations: &BTreeMap<Vec<bool>, u64>,
    unparsed: &[(String, ColumnType, u64)],
) -> String {
    let mut r = String::new();
    let order = &verified.order;
    let _ = writeln!(r, "project {}: {}", order.project, order.title.as_str());
    let _ = writeln!(r, "legal basis: {}", order.legal_basis.as_str());
    let _ = writeln!(
        r,
        "counts under {SMALL_CELL} are shown as <{SMALL_CELL} (disclosure rule)\n"
    );
    if let Some(line) = crate::identified::order_line(order, true) {
        let _ = writeln!(r, "{line}");
        for l in &verified.lists {
            if let Some(c) = l.excluded {
                let _ = writeln!(r, "  {}: {}", l.list, crate::identified::excluded(c));
            }
        }
        r.push('\n');
    }
    r.push_str("register  extract_rows  invalid_ids  persons  matched_persons  delivered_rows\n");
    for l in &verified.lists {
        let rows = delivered_rows.get(&l.list).copied().unwrap_or(0);
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
        cell(verified.cohort_persons.unwrap_or(0))
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
