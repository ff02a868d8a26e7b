//! One person's rows in a register's extract, for innsyn (PROTOCOL.md
//! §10a): the same one pass as an approval's read (the same header and
//! row checks, identifier parsing and mapping of changed identifiers), in
//! flat memory: only the asked person's rows are kept.

use std::{io::Read, path::Path};

use kobling_protocol::{
    extract::ExtractStats,
    ident::{IdError, IdMapping, Identifier, ParseOptions},
};

use super::{
    collect::Canonical,
    open,
    pass::{read_with, Collector, PerPerson},
    ExtractError, ExtractSummary,
};

/// The variables (in extract order) and every row of `person` (already
/// canonical and mapped) in the extract at `path`.
///
/// # Errors
///
/// [`ExtractError`] if the file cannot be used, as an approval's read.
pub(crate) fn lookup_person(
    path: &Path,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
    person: &Identifier,
) -> Result<(Vec<String>, Vec<Vec<String>>), ExtractError> {
    lookup_person_from(open(path)?, options, mapping, person)
}

/// [`lookup_person`] from any reader.
///
/// # Errors
///
/// As [`lookup_person`].
pub(crate) fn lookup_person_from(
    input: impl Read,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
    person: &Identifier,
) -> Result<(Vec<String>, Vec<Vec<String>>), ExtractError> {
    let finder = Finder {
        canonical: Canonical::new(options, mapping),
        person,
        found: Vec::new(),
    };
    let (summary, rows): (ExtractSummary, _) = read_with(input, finder)?;
    Ok((summary.columns, rows))
}

/// Keeps the rows of one person; counts the rest.
struct Finder<'a> {
    canonical: Canonical<'a>,
    person: &'a Identifier,
    found: Vec<Vec<String>>,
}

impl Collector for Finder<'_> {
    const KEEPS_VALUES: bool = true;
    type Output = Vec<Vec<String>>;
    type Error = IdError;

    fn push(&mut self, line: u64, identifier: &str, values: Vec<String>) -> Result<(), IdError> {
        let id = self.canonical.identifier(line, identifier)?;
        if id == *self.person {
            self.found.push(values);
        }
        Ok(())
    }

    fn finish(self) -> (Self::Output, ExtractStats, PerPerson) {
        let stats = self
            .canonical
            .counts
            .stats(u64::from(!self.found.is_empty()));
        let per_person = PerPerson::of(std::iter::once(self.found.len() as u64));
        (self.found, stats, per_person)
    }
}

#[cfg(test)]
mod tests {
    use kobling_protocol::ident::IdKind;

    use super::*;

    fn options() -> ParseOptions {
        ParseOptions {
            allow_synthetic: false,
        }
    }

    fn id(individual: u16) -> Identifier {
        (individual..individual + 100)
            .find_map(|i| Identifier::from_parts(1980, 1, 1, i, IdKind::Fnr).ok())
            .expect("a valid number")
    }

    #[test]
    fn finds_every_row_of_the_person_and_nobody_elses() {
        let (a, b) = (id(100), id(300));
        let csv = format!(
            "fnr,diagnose,aar\n{a},J45,2020\n{b},X,1\nnot-a-number,Y,2\n\" {a}\",E11,2021\n",
            a = a.expose(),
            b = b.expose()
        );
        let (columns, rows) =
            lookup_person_from(csv.as_bytes(), options(), None, &a).expect("read");
        assert_eq!(columns, ["diagnose", "aar"]);
        assert_eq!(rows, [vec!["J45", "2020"], vec!["E11", "2021"]]);
        let (_, none) =
            lookup_person_from(csv.as_bytes(), options(), None, &id(450)).expect("read");
        assert!(none.is_empty());
    }

    #[test]
    fn rows_under_a_changed_identifier_are_the_persons() {
        let (old, current) = (id(100), id(300));
        let mapping = crate::extract_file::mapping::read_mapping(
            format!("old,current\n{},{}\n", old.expose(), current.expose()).as_bytes(),
            options(),
        )
        .expect("mapping");
        let csv = format!("fnr,diagnose\n{},A\n{},B\n", old.expose(), current.expose());
        let (_, rows) =
            lookup_person_from(csv.as_bytes(), options(), Some(&mapping), &current).expect("read");
        assert_eq!(rows, [vec!["A"], vec!["B"]]);
    }

    #[test]
    fn an_unusable_file_is_an_error() {
        assert!(matches!(
            lookup_person_from("diagnose\nA\n".as_bytes(), options(), None, &id(100)),
            Err(ExtractError::MissingFnr { .. })
        ));
    }
}
