//! Issue 13: the researcher's fetch streams. The reader hands every
//! person on as it reads it and keeps none; the files appear only once
//! the whole delivery verified, and a delivery that does not verify
//! leaves no file.

use std::collections::BTreeMap;

use kobling_protocol::{
    bounded::BoundedVec,
    link::Lnr,
    messages::{Action, Message},
    types::ListName,
};

use super::{approve_all, Fed};
use crate::{
    delivery_files::DeliveryWriter,
    researcher::{open_delivery, DeliveryReader, TableSink},
};

fn delivered(persons: usize) -> (Fed, Vec<Message>) {
    let mut fed = Fed::new(persons);
    assert!(matches!(fed.submit("S-1"), Message::Ack { .. }));
    fed.pump();
    approve_all(&mut fed, "S-1");
    fed.pump();
    let replies = fed.request("S-1", Action::Fetch);
    (fed, replies)
}

/// Counts what it is handed, and keeps nothing.
#[derive(Default)]
struct Counting {
    persons: u64,
}

impl TableSink for Counting {
    fn list(&mut self, _: &ListName, _: &[String]) -> anyhow::Result<()> {
        Ok(())
    }

    fn person(&mut self, _: &ListName, _: Lnr, _: Vec<Vec<String>>) -> anyhow::Result<()> {
        self.persons += 1;
        Ok(())
    }
}

/// The reader holds no item past the message it reads: after each
/// message of k items its sink got exactly k more persons (the harness
/// sends 7 items per message), and every item the signed record counts.
/// With the CLI's queue of `FETCH_QUEUE` messages and a table writer
/// holding one batch of rows, a fetch holds a bounded number of items
/// whatever the delivery's size.
#[test]
fn the_reader_hands_every_person_on_as_it_reads_it() {
    let (fed, replies) = delivered(150);
    let mut replies = replies.into_iter();
    let mut reader = DeliveryReader::start(&fed.manifest, &fed.researcher_hpke, replies.next())
        .expect("the transcript verifies");
    let total = reader.items();
    let mut sink = Counting::default();
    let mut messages = 0;
    for msg in replies {
        let before = sink.persons;
        let items = match &msg {
            Message::DeliveryItems { items, .. } => items.len() as u64,
            _ => 0,
        };
        reader.handle(msg, &mut sink).expect("verifies");
        assert_eq!(
            sink.persons - before,
            items,
            "all of the message's items, at once"
        );
        messages += 1;
    }
    reader.finish().expect("complete");
    assert_eq!(sink.persons, total);
    assert!(messages > 4, "a delivery in several messages ({messages})");
}

/// The files of a verified delivery are what the in-memory reading says,
/// and nothing else is left in the output directory (no staging, no
/// spill). A delivery whose last item does not verify leaves no file at
/// all: the tables written before the failure are staged and removed.
#[test]
fn the_files_appear_only_once_the_whole_delivery_verified() {
    let (fed, replies) = delivered(150);
    let fetch = |out: &std::path::Path, replies: Vec<Message>| -> anyhow::Result<()> {
        let types = BTreeMap::new();
        let mut replies = replies.into_iter();
        let mut reader =
            DeliveryReader::start(&fed.manifest, &fed.researcher_hpke, replies.next())?;
        let mut files = DeliveryWriter::create(out, &types)?;
        for msg in replies {
            reader.handle(msg, &mut files)?;
        }
        let done = reader.finish()?;
        files.finish(&done.verified, &done.transcript)
    };
    let dir = tempfile::tempdir().expect("tempdir");

    let mut tampered = replies.clone();
    let last = tampered
        .iter()
        .rposition(|m| matches!(m, Message::DeliveryItems { .. }))
        .expect("items");
    if let Message::DeliveryItems { items, .. } = &mut tampered[last] {
        let mut v = items.to_vec();
        let n = v.len() - 1;
        v[n].point.0[0] ^= 1;
        *items = BoundedVec::new(v).expect("fits");
    }
    let failed = dir.path().join("failed");
    assert!(fetch(&failed, tampered).is_err(), "a tampered pseudonym");
    let left: Vec<_> = std::fs::read_dir(&failed)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "a failed fetch left {left:?}");

    let out = dir.path().join("ok");
    fetch(&out, replies.clone()).expect("the honest delivery");
    let expected = open_delivery(&fed.manifest, &fed.researcher_hpke, replies).expect("opens");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = expected
        .tables
        .keys()
        .map(|l| l.to_string())
        .chain(["persons".to_string()])
        .flat_map(|t| [format!("{t}.csv"), format!("{t}.parquet")])
        .chain(["codebook.json", "report.txt", "transcript.kob"].map(String::from))
        .collect();
    want.sort();
    assert_eq!(names, want);
    let mut persons = std::collections::BTreeSet::new();
    for (list, table) in &expected.tables {
        let rows: Vec<Vec<String>> = csv::Reader::from_path(out.join(format!("{list}.csv")))
            .expect("csv")
            .records()
            .map(|r| r.expect("row").iter().map(String::from).collect())
            .collect();
        let want: Vec<Vec<String>> = table
            .rows
            .iter()
            .map(|(lnr, values)| {
                std::iter::once(lnr.as_str().to_string())
                    .chain(values.iter().cloned())
                    .collect()
            })
            .collect();
        assert_eq!(rows, want, "{list}");
        persons.extend(table.rows.iter().map(|(l, _)| l.as_str().to_string()));
    }
    let lnrs: Vec<String> = csv::Reader::from_path(out.join("persons.csv"))
        .expect("csv")
        .records()
        .map(|r| r.expect("row")[0].to_string())
        .collect();
    assert_eq!(
        lnrs,
        persons.into_iter().collect::<Vec<_>>(),
        "in lnr order"
    );
}

/// A list that delivers one person twice is refused when the persons
/// table is built, and nothing is written.
#[test]
fn a_person_twice_in_one_list_is_refused() {
    let (fed, replies) = delivered(60);
    let dir = tempfile::tempdir().expect("tempdir");
    let done = {
        let mut replies = replies.into_iter();
        let mut reader = DeliveryReader::start(&fed.manifest, &fed.researcher_hpke, replies.next())
            .expect("verifies");
        let mut sink = Counting::default();
        for msg in replies {
            reader.handle(msg, &mut sink).expect("verifies");
        }
        reader.finish().expect("complete")
    };
    let types = BTreeMap::new();
    let mut files = DeliveryWriter::create(dir.path(), &types).expect("create");
    let list = ListName::new("NPR").expect("valid");
    let lnr = Lnr::derive(
        &done.verified.order.project,
        &kobling_protocol::group::WirePoint([7; 32]),
    );
    files.list(&list, &["x".to_string()]).expect("list");
    for _ in 0..2 {
        files
            .person(&list, lnr, vec![vec!["1".to_string()]])
            .expect("written");
    }
    let refused = files
        .finish(&done.verified, &done.transcript)
        .expect_err("one person twice");
    assert!(refused.to_string().contains("twice"), "{refused}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}
