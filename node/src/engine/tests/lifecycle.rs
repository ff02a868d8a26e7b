//! Expiry, unapproved orders and forgetting: what nodes close, shred and
//! keep.

use super::*;

#[test]
fn an_expired_project_is_closed_shredded_and_refuses_approvals_and_fetches() {
    let mut fed = Fed::new(200);
    fed.expires = NOW;
    assert_eq!(
        refused_with(&fed.submit("P-0")),
        Some(RefusalCode::Expired),
        "an order already expired"
    );

    fed.expires = NOW.plus(600);
    assert!(matches!(fed.submit("P-9"), Message::Ack { .. }));
    fed.pump();
    let late = NOW.plus(600);
    assert_eq!(
        refused_with(&fed.approve_at("P-9", "NPR", 0, late)),
        Some(RefusalCode::Expired),
        "an approval at the expiry"
    );
    approve_all(&mut fed, "P-9");
    fed.pump();
    fed.check_delivery("P-9");

    // The linker's first tick after the expiry closes the project; every
    // node then shreds its key and deletes the working data.
    fed.engines
        .get_mut(&name("LINKER"))
        .expect("linker")
        .tick(late)
        .expect("tick");
    fed.pump();
    let project = ProjectId::new("P-9").expect("valid");
    let entries = fed.engines[&name("LINKER")]
        .transcript(&project)
        .expect("entries");
    let view = ProjectView::new(&fed.manifest, &entries);
    assert_eq!(view.phase(), Phase::Closed);
    let shredded: BTreeSet<Name> = entries
        .iter()
        .filter_map(|e| match &e.signed.statement.body {
            Body::Shredded(s) => Some(s.member.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(shredded.len(), REGISTERS.len() + 1, "every member shredded");
    assert_eq!(
        refused_with(&fed.request("P-9", Action::Fetch)[0]),
        Some(RefusalCode::Closed)
    );
    let req = fed
        .request_for("LINKER", project.as_str(), Action::Fetch, late)
        .sign(&fed.researcher);
    assert_eq!(
        refused_with(&fed.client_at("LINKER", Message::Fetch(req), late)[0]),
        Some(RefusalCode::Expired)
    );
}

/// Issue 18 item 2: a researcher cannot make the federation keep state
/// without bound. At most `MAX_UNAPPROVED_ORDERS` orders wait for a first
/// approval (one more is refused and nothing of it is stored); an order
/// that expires years from now is refused; an order no operator approves
/// within a week is closed, and every node shreds what it held.
#[test]
fn unapproved_orders_are_capped_per_researcher_bounded_in_time_and_dropped() {
    use kobling_protocol::sequencer::{
        MAX_ORDER_LIFETIME, MAX_UNAPPROVED_ORDERS, UNAPPROVED_LIFETIME,
    };

    let mut fed = Fed::new(120);
    let projects: Vec<String> = (0..MAX_UNAPPROVED_ORDERS)
        .map(|i| format!("F-{i}"))
        .collect();
    for p in &projects {
        assert!(matches!(fed.submit(p), Message::Ack { .. }), "{p}");
    }
    fed.pump();
    let linker_holds = |fed: &Fed, p: &str| {
        !fed.engines[&name("LINKER")]
            .transcript(&ProjectId::new(p).expect("valid"))
            .expect("entries")
            .is_empty()
    };
    // One more from the same researcher: refused, and not stored.
    assert_eq!(
        refused_with(&fed.submit("F-FLOOD")),
        Some(RefusalCode::TooManyPending)
    );
    assert!(!linker_holds(&fed, "F-FLOOD"));
    // An approval of one of them frees a place.
    assert!(matches!(
        fed.approve(&projects[0], "NPR", 0),
        Message::Ack { .. }
    ));
    fed.pump();
    assert!(matches!(fed.submit("F-FLOOD"), Message::Ack { .. }));
    fed.pump();

    // An order that expires years after the bound: refused, not stored.
    fed.expires = NOW.plus(MAX_ORDER_LIFETIME + 86_400);
    fed.researcher = SigningKey::from_bytes(&[0x42; 32]);
    assert_eq!(refused_with(&fed.submit("F-FAR")), Some(RefusalCode::Order));
    assert!(!linker_holds(&fed, "F-FAR"));

    // Nothing of the waiting orders reached a register; the approved one
    // is at every register since its first approval.
    for p in projects[1..].iter().map(String::as_str).chain(["F-FLOOD"]) {
        for r in REGISTERS {
            assert_eq!(rows_about(&fed.dir.path().join(r), p), 0, "{r} holds {p}");
        }
    }
    for r in REGISTERS {
        assert!(
            rows_about(&fed.dir.path().join(r), &projects[0]) > 0,
            "{r} never learned of the approved order"
        );
    }

    // A week later, the orders nobody approved are forgotten: no row
    // about them is left at any node, and their ids can be ordered again;
    // the approved one goes on.
    let later = NOW.plus(UNAPPROVED_LIFETIME);
    fed.engines
        .get_mut(&name("LINKER"))
        .expect("linker")
        .tick(later)
        .expect("tick");
    fed.pump();
    let entries = fed.engines[&name("LINKER")]
        .transcript(&ProjectId::new(&projects[0]).expect("valid"))
        .expect("entries");
    assert_eq!(
        ProjectView::new(&fed.manifest, &entries).phase(),
        Phase::Ordered
    );
    for p in projects[1..].iter().map(String::as_str).chain(["F-FLOOD"]) {
        for m in REGISTERS.iter().chain(std::iter::once(&"LINKER")) {
            assert_eq!(rows_about(&fed.dir.path().join(m), p), 0, "{m} kept {p}");
        }
    }
    fed.expires = NOW.plus(365 * 86_400);
    assert!(matches!(fed.submit(&projects[1]), Message::Ack { .. }));
    assert!(linker_holds(&fed, &projects[1]));
}

/// Issue 18 item 2: a register holds an order only once an operator of
/// its own approved it, and forgets it, with every row about it, if the
/// linker never recorded that approval (it forgot the order first) a
/// day after the order's wait for a first approval ended. The linker
/// forgets an order its researcher closes before any approval at once.
#[test]
fn a_register_forgets_an_order_whose_approval_the_linker_never_recorded() {
    use kobling_protocol::sequencer::{REGISTER_GRACE, UNAPPROVED_LIFETIME};

    let mut fed = Fed::new(60);
    let npr = fed.dir.path().join("NPR");
    let before = files_of(&npr);
    assert!(matches!(fed.submit("G-1"), Message::Ack { .. }));
    fed.pump();
    assert_eq!(rows_about(&npr, "G-1"), 0);
    assert_eq!(
        files_of(&npr),
        before,
        "a file for an order nobody approved"
    );
    // NPR's operator approves; the approval does not reach the linker
    // (no pump) before the linker's wait ends.
    assert!(matches!(fed.approve("G-1", "NPR", 0), Message::Ack { .. }));
    assert!(rows_about(&npr, "G-1") > 0, "the register took the order");
    let later = NOW.plus(UNAPPROVED_LIFETIME);
    fed.engines
        .get_mut(&name("LINKER"))
        .expect("linker")
        .tick(later)
        .expect("tick");
    assert_eq!(rows_about(&fed.dir.path().join("LINKER"), "G-1"), 0);
    // Within its grace the register keeps it; after, it forgets it (and
    // the approval it had queued for the linker).
    let register = fed.engines.get_mut(&name("NPR")).expect("npr");
    register.tick(later).expect("tick");
    assert!(rows_about(&npr, "G-1") > 0);
    register.tick(later.plus(REGISTER_GRACE)).expect("tick");
    assert_eq!(rows_about(&npr, "G-1"), 0);
    assert_eq!(files_of(&npr), before);

    // An order closed by its researcher before any approval is forgotten
    // at once, and its id can be ordered again.
    assert!(matches!(fed.submit("G-2"), Message::Ack { .. }));
    assert!(matches!(
        fed.request("G-2", Action::Close)[0],
        Message::Ack { .. }
    ));
    fed.pump();
    assert_eq!(rows_about(&fed.dir.path().join("LINKER"), "G-2"), 0);
    assert!(matches!(fed.submit("G-2"), Message::Ack { .. }));
}
