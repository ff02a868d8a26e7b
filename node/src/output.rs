//! The researcher's tables on disk: each as CSV (every value as text, as
//! in the extract) and as Parquet (each column typed as the spec
//! declares it; empty cells and values that do not parse are nulls, the
//! latter counted per column). `lnr` comes first.
//!
//! ```text
//!  rows (text) ──▶ CSV, as they are
//!              └─▶ per column: parse as its ColumnType ──▶ Arrow array (null: empty or unparsable)
//!                  ──▶ Parquet row groups of BATCH rows; ColumnStats (rows, nulls, unparsed)
//! ```

use std::{fs::File, path::Path, sync::Arc};

use anyhow::Context;
use arrow_array::{
    types::Int32Type, ArrayRef, BooleanArray, Date32Array, DictionaryArray, Float64Array,
    Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::{arrow::ArrowWriter, file::properties::WriterProperties};
use serde::{Deserialize, Serialize};

/// Rows per Parquet row group / record batch: what a [`TableWriter`]
/// holds at most (16,384 rows of text cells, a few MiB).
const BATCH: usize = 16_384;

/// The type of a column in the Parquet table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ColumnType {
    /// A 64-bit signed integer.
    Int,
    /// A 64-bit float (`.` as the decimal mark).
    Float,
    /// A calendar date, `YYYY-MM-DD` (Parquet DATE).
    Date,
    /// Text.
    #[default]
    String,
    /// Text from a small set of values (dictionary-encoded: a pandas
    /// category, an R factor).
    Category,
    /// `1`/`0` or `true`/`false` (the `persons` table's register columns).
    Bool,
}

impl ColumnType {
    fn data_type(self) -> DataType {
        match self {
            ColumnType::Int => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Date => DataType::Date32,
            ColumnType::String => DataType::Utf8,
            ColumnType::Category => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            ColumnType::Bool => DataType::Boolean,
        }
    }

    /// The name written in the codebook.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Date => "date",
            ColumnType::String => "string",
            ColumnType::Category => "category",
            ColumnType::Bool => "bool",
        }
    }
}

/// A column: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    /// The header.
    pub(crate) name: String,
    /// The Parquet type.
    pub(crate) kind: ColumnType,
}

impl Column {
    /// A column of `kind`.
    pub(crate) fn new(name: impl Into<String>, kind: ColumnType) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }
}

/// What became of one column's values in the Parquet table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ColumnStats {
    /// Empty cells (nulls).
    pub(crate) empty: u64,
    /// Values that do not parse as the column's type (nulls in Parquet,
    /// unchanged in the CSV).
    pub(crate) unparsed: u64,
}

/// Writes `dir/<name>.csv` and `dir/<name>.parquet`: a header of
/// `columns`, then `rows` rows whose cells are `cell(row, column)` (read
/// in place: the table is not copied). Returns the stats of each column.
#[cfg(test)]
pub(crate) fn write_table<'a>(
    dir: &Path,
    name: &str,
    columns: &[Column],
    rows: usize,
    cell: impl Fn(usize, usize) -> &'a str,
) -> anyhow::Result<Vec<ColumnStats>> {
    let mut w = TableWriter::create(dir, name, columns)?;
    for row in 0..rows {
        w.push_row((0..columns.len()).map(|c| cell(row, c)))?;
    }
    w.finish()
}

/// A table written as its rows come: the CSV row at once, the Parquet
/// table a row group of [`BATCH`] rows at a time. It holds at most one
/// batch of rows, whatever the table's length.
pub(crate) struct TableWriter {
    columns: Vec<Column>,
    csv: csv::Writer<File>,
    parquet: ArrowWriter<File>,
    schema: Arc<Schema>,
    /// The rows not yet in a row group, row after row.
    cells: Vec<String>,
    /// Rows per row group ([`BATCH`]).
    batch: usize,
    rows: u64,
    stats: Vec<ColumnStats>,
}

impl TableWriter {
    /// Creates `dir/<name>.csv` and `dir/<name>.parquet` and writes the
    /// CSV header.
    ///
    /// # Errors
    ///
    /// The files cannot be created.
    pub(crate) fn create(dir: &Path, name: &str, columns: &[Column]) -> anyhow::Result<Self> {
        let csv_path = dir.join(format!("{name}.csv"));
        let mut csv = csv::Writer::from_path(&csv_path)
            .with_context(|| format!("cannot write {}", csv_path.display()))?;
        csv.write_record(columns.iter().map(|c| c.name.as_str()))?;
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| Field::new(&c.name, c.kind.data_type(), i > 0))
                .collect::<Vec<_>>(),
        ));
        let parquet_path = dir.join(format!("{name}.parquet"));
        let file = File::create(&parquet_path)
            .with_context(|| format!("cannot write {}", parquet_path.display()))?;
        // One row group per batch: the writer holds no more than a batch.
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(BATCH))
            .build();
        let parquet = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
        Ok(Self {
            columns: columns.to_vec(),
            csv,
            parquet,
            schema,
            cells: Vec::new(),
            batch: BATCH,
            rows: 0,
            stats: vec![ColumnStats::default(); columns.len()],
        })
    }

    /// Rows written so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows held, not yet in a row group.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.cells.len() / self.columns.len().max(1)
    }

    /// Writes one row (one cell per column; missing cells are empty).
    ///
    /// # Errors
    ///
    /// A write error.
    pub(crate) fn push_row<'a>(
        &mut self,
        cells: impl Iterator<Item = &'a str>,
    ) -> anyhow::Result<()> {
        let n = self.columns.len();
        let start = self.cells.len();
        self.cells.extend(cells.take(n).map(str::to_string));
        self.cells.resize(start + n, String::new());
        self.csv.write_record(&self.cells[start..])?;
        self.rows += 1;
        if self.cells.len() >= self.batch * n.max(1) {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> anyhow::Result<()> {
        let n = self.columns.len().max(1);
        let rows = self.cells.len() / n;
        if rows == 0 {
            return Ok(());
        }
        let cells = &self.cells;
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .zip(self.stats.iter_mut())
            .enumerate()
            .map(|(i, (c, s))| {
                let column = (0..rows).map(|r| cells[r * n + i].as_str());
                if i == 0 {
                    Arc::new(StringArray::from_iter_values(column)) as ArrayRef
                } else {
                    typed_array(c.kind, column, s)
                }
            })
            .collect();
        self.parquet
            .write(&RecordBatch::try_new(self.schema.clone(), arrays)?)?;
        // The batch is a row group of its own: the writer keeps nothing.
        self.parquet.flush()?;
        self.cells.clear();
        Ok(())
    }

    /// Writes the last row group and closes both files; returns the stats
    /// of each column.
    ///
    /// # Errors
    ///
    /// A write error.
    pub(crate) fn finish(mut self) -> anyhow::Result<Vec<ColumnStats>> {
        self.flush_batch()?;
        self.csv.flush()?;
        self.parquet.close()?;
        Ok(self.stats)
    }
}

/// One column of a batch as `kind`, counting empty and unparsable cells.
fn typed_array<'a>(
    kind: ColumnType,
    cells: impl Iterator<Item = &'a str>,
    stats: &mut ColumnStats,
) -> ArrayRef {
    let mut parse = |cell: &'a str, f: &dyn Fn(&str) -> bool| -> Option<&'a str> {
        let t = cell.trim();
        if t.is_empty() {
            stats.empty += 1;
            None
        } else if f(t) {
            Some(t)
        } else {
            stats.unparsed += 1;
            None
        }
    };
    match kind {
        ColumnType::Int => Arc::new(
            cells
                .map(|c| parse(c, &|t| t.parse::<i64>().is_ok()).and_then(|t| t.parse().ok()))
                .collect::<Int64Array>(),
        ),
        ColumnType::Float => Arc::new(
            cells
                .map(|c| {
                    parse(c, &|t| t.parse::<f64>().is_ok_and(f64::is_finite))
                        .and_then(|t| t.parse().ok())
                })
                .collect::<Float64Array>(),
        ),
        ColumnType::Date => Arc::new(
            cells
                .map(|c| parse(c, &|t| days_from_date(t).is_some()).and_then(days_from_date))
                .collect::<Date32Array>(),
        ),
        ColumnType::String => Arc::new(
            cells
                .map(|c| parse(c, &|_| true).map(|_| c))
                .collect::<StringArray>(),
        ),
        ColumnType::Category => Arc::new(
            cells
                .map(|c| parse(c, &|_| true).map(|_| c))
                .collect::<DictionaryArray<Int32Type>>(),
        ),
        ColumnType::Bool => Arc::new(
            cells
                .map(|c| parse(c, &|t| boolean(t).is_some()).and_then(boolean))
                .collect::<BooleanArray>(),
        ),
    }
}

fn boolean(t: &str) -> Option<bool> {
    match t {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// `YYYY-MM-DD` (a real calendar day) → days since 1970-01-01.
pub(crate) fn days_from_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i32::try_from(era * 146_097 + doe - 719_468).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{cast::AsArray, types::Date32Type, Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// Issue 13: a table of any length is written holding at most one
    /// batch of rows; each batch is a row group of its own.
    #[test]
    fn a_table_writer_holds_at_most_one_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let columns = [
            Column::new("lnr", ColumnType::String),
            Column::new("n", ColumnType::Int),
        ];
        let mut w = TableWriter::create(dir.path(), "T", &columns).expect("create");
        w.batch = 10;
        for i in 0..95 {
            let n = i.to_string();
            w.push_row(["A", n.as_str()].into_iter()).expect("row");
            assert!(w.held() < 10, "{} rows held", w.held());
        }
        assert_eq!(w.rows(), 95);
        w.finish().expect("finish");
        let file = File::open(dir.path().join("T.parquet")).expect("parquet");
        let meta = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("reader")
            .metadata()
            .clone();
        assert_eq!(meta.num_row_groups(), 10);
        let rows: usize = read_parquet(&dir.path().join("T.parquet"))
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, 95);
    }

    fn read_parquet(path: &Path) -> Vec<RecordBatch> {
        let file = File::open(path).expect("parquet");
        ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("reader")
            .build()
            .expect("build")
            .map(|b| b.expect("batch"))
            .collect()
    }

    #[test]
    fn csv_and_parquet_hold_the_same_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let columns = vec![
            Column::new("lnr", ColumnType::String),
            Column::new("icd10", ColumnType::String),
            Column::new("note", ColumnType::String),
        ];
        let rows: Vec<Vec<String>> = (0..70_000)
            .map(|i| {
                vec![
                    format!("L{i:015}"),
                    "F20.0".into(),
                    if i % 7 == 0 {
                        "a, \"quoted\"\nvalue".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        let stats = write_table(dir.path(), "NPR", &columns, rows.len(), |r, c| &rows[r][c])
            .expect("write");
        assert_eq!(stats[2].empty, 70_000 - 10_000);

        let mut from_csv = Vec::new();
        let mut r = csv::Reader::from_path(dir.path().join("NPR.csv")).expect("csv");
        assert_eq!(
            r.headers().expect("header").iter().collect::<Vec<_>>(),
            vec!["lnr", "icd10", "note"]
        );
        for rec in r.records() {
            from_csv.push(
                rec.expect("record")
                    .iter()
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(from_csv, rows);

        let mut from_parquet = Vec::new();
        for batch in read_parquet(&dir.path().join("NPR.parquet")) {
            assert_eq!(
                batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>(),
                vec!["lnr", "icd10", "note"]
            );
            let cols: Vec<&StringArray> = batch
                .columns()
                .iter()
                .map(|c| c.as_any().downcast_ref::<StringArray>().expect("strings"))
                .collect();
            for i in 0..batch.num_rows() {
                from_parquet.push(
                    cols.iter()
                        .map(|c| {
                            if c.is_null(i) {
                                String::new()
                            } else {
                                c.value(i).to_string()
                            }
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
        assert_eq!(from_parquet, rows, "empty cells are nulls, the rest as is");
    }

    #[test]
    fn typed_columns_carry_their_type_nulls_and_count_what_does_not_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let columns = vec![
            Column::new("lnr", ColumnType::String),
            Column::new("year", ColumnType::Int),
            Column::new("ddd", ColumnType::Float),
            Column::new("start", ColumnType::Date),
            Column::new("hf", ColumnType::Category),
            Column::new("in_npr", ColumnType::Bool),
        ];
        let row = |v: [&str; 6]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let rows = [
            row(["L1", "1984", "12.5", "2020-02-29", "Vestre Viken", "1"]),
            row(["L2", "", "", "", "", "0"]),
            row(["L3", "19x4", "1,5", "2021-02-29", "Vestre Viken", "yes"]),
            row(["L4", "-3", "7", "1970-01-01", "Helse Bergen", "true"]),
        ];
        let stats =
            write_table(dir.path(), "T", &columns, rows.len(), |r, c| &rows[r][c]).expect("write");
        assert_eq!(
            stats[1..],
            [
                ColumnStats {
                    empty: 1,
                    unparsed: 1
                },
                ColumnStats {
                    empty: 1,
                    unparsed: 1
                },
                ColumnStats {
                    empty: 1,
                    unparsed: 1
                },
                ColumnStats {
                    empty: 1,
                    unparsed: 0
                },
                ColumnStats {
                    empty: 0,
                    unparsed: 1
                },
            ]
        );
        // The CSV keeps every value as written.
        let csv = std::fs::read_to_string(dir.path().join("T.csv")).expect("csv");
        assert!(csv.contains("L3,19x4,\"1,5\",2021-02-29,Vestre Viken,yes"));

        let batches = read_parquet(&dir.path().join("T.parquet"));
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        let types: Vec<DataType> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            columns
                .iter()
                .map(|c| c.kind.data_type())
                .collect::<Vec<_>>()
        );
        let year = b.column(1).as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(
            (0..4)
                .map(|i| year.is_valid(i).then(|| year.value(i)))
                .collect::<Vec<_>>(),
            vec![Some(1984), None, None, Some(-3)]
        );
        let ddd = b
            .column(2)
            .as_primitive::<arrow_array::types::Float64Type>();
        assert_eq!(ddd.value(0), 12.5);
        assert!(ddd.is_null(2), "a decimal comma is not silently read");
        let start = b.column(3).as_primitive::<Date32Type>();
        assert_eq!(start.value(0), 18_321, "2020-02-29");
        assert_eq!(start.value(3), 0);
        assert!(start.is_null(2), "2021 has no 29 February");
        let hf = b.column(4).as_dictionary::<Int32Type>();
        assert_eq!(hf.values().len(), 2, "two distinct categories");
        assert!(hf.is_null(1));
        let flag = b.column(5).as_boolean();
        assert_eq!(
            (0..4)
                .map(|i| flag.is_valid(i).then(|| flag.value(i)))
                .collect::<Vec<_>>(),
            vec![Some(true), Some(false), None, Some(true)]
        );
    }

    #[test]
    fn dates_are_checked_calendar_days() {
        assert_eq!(days_from_date("1970-01-01"), Some(0));
        assert_eq!(days_from_date("2000-03-01"), Some(11_017));
        assert_eq!(days_from_date("1900-02-29"), None);
        assert_eq!(days_from_date("2000-02-29"), Some(11_016));
        assert_eq!(days_from_date("2024-1-01"), None);
        assert_eq!(days_from_date("+024-01-01"), None);
        assert_eq!(days_from_date("2024-13-01"), None);
    }
}
