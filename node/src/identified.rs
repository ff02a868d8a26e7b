//! How reports state that a project is identified (PROTOCOL.md §10a,
//! `docs/identified.md`): the same words in `project approve`, `project
//! status`, `project fetch` and `audit show`/`verify`, so an operator and
//! a researcher read one thing.

use kobling_protocol::{reservation::ShownCount, transcript::ProjectOrder};

/// "identified project: … (N persons, SHA3-256 …)" for an identified
/// order, `None` for an ordinary one. `whole` shows the whole digest (for
/// an operator comparing it with the researcher's file); otherwise its
/// first 8 bytes (audit reports print no whole digest).
pub(crate) fn order_line(order: &ProjectOrder, whole: bool) -> Option<String> {
    order.identified.map(|list| {
        let hex = list.digest.to_hex();
        let digest = if whole { &hex[..] } else { &hex[..16] };
        format!(
            "identified project: the researcher holds fnr of its own list ({} persons, SHA3-256 {}) \
             and receives the registers' data beside them; reservation tables apply",
            list.persons,
            digest
        )
    })
}

/// A list's exclusion count as reports show it: "7 left out by
/// reservation", "<5 left out by reservation".
pub(crate) fn excluded(count: ShownCount) -> String {
    format!("{count} left out by reservation")
}

#[cfg(test)]
mod tests {
    use kobling_protocol::reservation::ShownCount;

    use super::excluded;

    #[test]
    fn counts_under_five_are_shown_as_under_five() {
        assert_eq!(excluded(ShownCount::of(3)), "<5 left out by reservation");
        assert_eq!(excluded(ShownCount::of(0)), "<5 left out by reservation");
        assert_eq!(excluded(ShownCount::of(7)), "7 left out by reservation");
    }
}
