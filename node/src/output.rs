//! The researcher's tables on disk: each as CSV and as Parquet, with the
//! same content (every column text, as in the extract; `lnr` first).

use std::{fs::File, path::Path, sync::Arc};

use anyhow::Context;
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

/// Rows per Parquet row group / record batch.
const BATCH: usize = 65_536;

/// Writes `dir/<name>.csv` and `dir/<name>.parquet`: a header of
/// `columns`, then `rows` (each as many values as columns).
pub(crate) fn write_table(
    dir: &Path,
    name: &str,
    columns: &[String],
    rows: &[Vec<String>],
) -> anyhow::Result<()> {
    let csv_path = dir.join(format!("{name}.csv"));
    let mut w = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    w.write_record(columns)?;
    for row in rows {
        w.write_record(row)?;
    }
    w.flush()?;

    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let parquet_path = dir.join(format!("{name}.parquet"));
    let file = File::create(&parquet_path)
        .with_context(|| format!("cannot write {}", parquet_path.display()))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None)?;
    for part in rows.chunks(BATCH) {
        let arrays: Vec<ArrayRef> = (0..columns.len())
            .map(|i| {
                Arc::new(StringArray::from_iter_values(
                    part.iter().map(|r| r.get(i).map_or("", String::as_str)),
                )) as ArrayRef
            })
            .collect();
        writer.write(&RecordBatch::try_new(schema.clone(), arrays)?)?;
    }
    writer.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn csv_and_parquet_hold_the_same_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let columns = vec!["lnr".to_string(), "icd10".to_string(), "note".to_string()];
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
        write_table(dir.path(), "NPR", &columns, &rows).expect("write");

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

        let file = File::open(dir.path().join("NPR.parquet")).expect("parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("reader")
            .build()
            .expect("build");
        let mut from_parquet = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
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
                        .map(|c| c.value(i).to_string())
                        .collect::<Vec<_>>(),
                );
            }
        }
        assert_eq!(from_parquet, rows);
    }
}
