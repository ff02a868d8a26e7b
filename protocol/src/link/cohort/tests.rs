use proptest::prelude::*;

use super::*;

pub(in crate::link) fn n(s: &str) -> ListName {
    ListName::new(s).expect("valid name")
}

pub(in crate::link) fn c(s: &str) -> Cohort {
    Cohort::parse(s).expect("valid cohort")
}

fn l(s: &str) -> Box<Cohort> {
    Box::new(Cohort::List(n(s)))
}

#[test]
fn parses_operators_and_precedence() {
    assert_eq!(c("NPR"), Cohort::List(n("NPR")));
    assert_eq!(c("  all "), Cohort::All);
    assert_eq!(c("NPR & KPR"), Cohort::And(l("NPR"), l("KPR")));
    assert_eq!(c("NPR|KPR"), Cohort::Or(l("NPR"), l("KPR")));
    assert_eq!(c("NPR - KPR"), Cohort::Minus(l("NPR"), l("KPR")));
    assert_eq!(c("NPR -KPR"), Cohort::Minus(l("NPR"), l("KPR")));
    assert_eq!(c("NPR- KPR"), Cohort::Minus(l("NPR"), l("KPR")));
    // A hyphen between name characters is part of the name.
    assert_eq!(c("NPR-KPR"), Cohort::List(n("NPR-KPR")));
    assert_eq!(
        c("NPR | KPR - SSB"),
        Cohort::Minus(Box::new(Cohort::Or(l("NPR"), l("KPR"))), l("SSB"))
    );
    assert_eq!(
        c("NPR - KPR | SSB"),
        Cohort::Or(Box::new(Cohort::Minus(l("NPR"), l("KPR"))), l("SSB"))
    );
    assert_eq!(
        c("NPR | KPR & SSB"),
        Cohort::Or(l("NPR"), Box::new(Cohort::And(l("KPR"), l("SSB"))))
    );
    assert_eq!(
        c("NPR & KPR - SSB"),
        Cohort::Minus(Box::new(Cohort::And(l("NPR"), l("KPR"))), l("SSB"))
    );
    assert_eq!(
        c("A & B & C"),
        Cohort::And(Box::new(Cohort::And(l("A"), l("B"))), l("C"))
    );
    assert_eq!(
        c("NPR - (KPR | SSB)"),
        Cohort::Minus(l("NPR"), Box::new(Cohort::Or(l("KPR"), l("SSB"))))
    );
    assert_eq!(
        c("((NPR)) & (all)"),
        Cohort::And(l("NPR"), Box::new(Cohort::All))
    );
    assert_eq!(c("\tNPR\n&\r\nKPR"), c("NPR & KPR"));
}

#[test]
fn parse_errors_carry_positions() {
    use CohortError as E;
    let err = |s: &str| Cohort::parse(s).expect_err("invalid cohort");
    assert_eq!(err(""), E::Empty);
    assert_eq!(err("  \n"), E::Empty);
    assert_eq!(
        err("NPR &"),
        E::UnexpectedEnd {
            at: 5,
            expected: Expected::Operand
        }
    );
    assert_eq!(
        err("NPR | "),
        E::UnexpectedEnd {
            at: 6,
            expected: Expected::Operand
        }
    );
    assert_eq!(err("(NPR | KPR"), E::UnclosedParen { open_at: 0 });
    assert_eq!(err("NPR & ((KPR)"), E::UnclosedParen { open_at: 6 });
    assert_eq!(err("NPR | KPR)"), E::UnmatchedCloseParen { at: 9 });
    assert_eq!(err("NPR % KPR"), E::UnknownCharacter { at: 4, found: '%' });
    assert_eq!(err("NPR & SØK"), E::UnknownCharacter { at: 7, found: 'Ø' });
    assert_eq!(err("NPR && KPR"), {
        E::Unexpected {
            at: 5,
            found: Token::And,
            expected: Expected::Operand,
        }
    });
    assert_eq!(
        err("npr & KPR"),
        E::LowerCaseName {
            at: 0,
            found: "npr".into(),
            suggestion: "NPR".into()
        }
    );
    assert_eq!(
        err("NPR | Kpr"),
        E::LowerCaseName {
            at: 6,
            found: "Kpr".into(),
            suggestion: "KPR".into()
        }
    );
    assert_eq!(
        err("All"),
        E::LowerCaseName {
            at: 0,
            found: "All".into(),
            suggestion: "all".into()
        }
    );
    assert_eq!(
        err("NPR KPR"),
        E::Unexpected {
            at: 4,
            found: Token::Name(n("KPR")),
            expected: Expected::OperatorOrEnd
        }
    );
    assert_eq!(
        err("NPR (KPR)"),
        E::Unexpected {
            at: 4,
            found: Token::Open,
            expected: Expected::OperatorOrEnd
        }
    );
    assert_eq!(
        err("(NPR KPR)"),
        E::Unexpected {
            at: 5,
            found: Token::Name(n("KPR")),
            expected: Expected::OperatorOrClose
        }
    );
    assert_eq!(
        err("& NPR"),
        E::Unexpected {
            at: 0,
            found: Token::And,
            expected: Expected::Operand
        }
    );
    assert_eq!(
        err("()"),
        E::Unexpected {
            at: 1,
            found: Token::Close,
            expected: Expected::Operand
        }
    );
    assert!(matches!(err(&"A".repeat(33)), E::BadName { at: 0, .. }));
    let deep = format!("{}NPR{}", "(".repeat(65), ")".repeat(65));
    assert_eq!(err(&deep), E::TooDeep { at: 64 });
    assert!(Cohort::parse(&format!("{}NPR{}", "(".repeat(64), ")".repeat(64))).is_ok());
    let chain = vec!["A"; 66].join(" | ");
    assert!(matches!(err(&chain), E::TooDeep { .. }));
    let long = format!("NPR{}", " ".repeat(Cohort::MAX_LEN));
    assert_eq!(
        err(&long),
        E::TooLong {
            len: Cohort::MAX_LEN + 3
        }
    );
}

#[test]
fn error_messages_say_what_was_expected() {
    let msg = |s: &str| Cohort::parse(s).expect_err("invalid").to_string();
    assert_eq!(
        msg("NPR &"),
        "cohort expression ends at byte 5; expected a list name, `all` or `(`"
    );
    assert_eq!(
        msg("NPR KPR"),
        "unexpected list name `KPR` at byte 4 of the cohort expression; \
         expected an operator (`&`, `|`, `-`) or the end"
    );
    assert_eq!(
        msg("npr"),
        "`npr` at byte 0: list names are upper-case; did you mean `NPR`?"
    );
}

#[test]
fn names_and_list_check() {
    let cohort = c("(NPR | KPR) - NPR & SSB | all");
    assert_eq!(cohort.names(), vec![n("KPR"), n("NPR"), n("SSB")]);
    assert_eq!(Cohort::All.names(), vec![]);
    let lists = [n("NPR"), n("KPR"), n("SSB")];
    assert_eq!(cohort.check_lists(&lists), Ok(()));
    assert_eq!(
        cohort.check_lists(&lists[..2]),
        Err(CohortError::UnknownList {
            name: n("SSB"),
            known: lists[..2].to_vec()
        })
    );
    let e = c("NPR-KPR").check_lists(&lists).expect_err("unknown");
    assert_eq!(
        e.to_string(),
        "the cohort names list `NPR-KPR`, which is not in the project \
         (lists: NPR, KPR, SSB); for a difference write spaces around `-`: `NPR - KPR`"
    );
    let e = c("ALL").check_lists(&lists).expect_err("unknown");
    assert!(e
        .to_string()
        .ends_with("write `all` in lower case for everyone in any list"));
    let e = c("X").check_lists(&[]).expect_err("unknown");
    assert_eq!(
        e.to_string(),
        "the cohort names list `X`, which is not in the project (lists: none)"
    );
}

#[test]
fn canonical_display() {
    let cases = [
        ("all", "all"),
        ("NPR", "NPR"),
        ("NPR|KPR|SSB", "NPR | KPR | SSB"),
        ("NPR | KPR - SSB", "(NPR | KPR) - SSB"),
        ("NPR | KPR & SSB", "NPR | (KPR & SSB)"),
        ("A & (B & C)", "A & (B & C)"),
        ("A - (B - C)", "A - (B - C)"),
        ("((A))", "A"),
        ("(RESEPT-2 - all)", "RESEPT-2 - all"),
    ];
    for (input, canonical) in cases {
        let cohort = c(input);
        assert_eq!(cohort.to_string(), canonical, "{input}");
        assert_eq!(c(canonical), cohort);
    }
}

#[test]
fn evaluation_truth_tables() {
    let cases: [(&str, [bool; 4]); 5] = [
        // (in A, in B) = (f,f) (f,t) (t,f) (t,t)
        ("A & B", [false, false, false, true]),
        ("A | B", [false, true, true, true]),
        ("A - B", [false, false, true, false]),
        ("B - A", [false, true, false, false]),
        ("all", [true, true, true, true]),
    ];
    for (expr, want) in cases {
        let cohort = c(expr);
        for (i, &expected) in want.iter().enumerate() {
            let (a, b) = (i & 2 != 0, i & 1 != 0);
            let got = cohort.contains(|name| match name.as_str() {
                "A" => a,
                "B" => b,
                _ => false,
            });
            assert_eq!(got, expected, "{expr} with A={a} B={b}");
        }
    }
    // Three lists, precedence included.
    let cohort = c("A | B - C & A");
    for i in 0..8 {
        let (a, b, cc) = (i & 4 != 0, i & 2 != 0, i & 1 != 0);
        let got = cohort.contains(|name| match name.as_str() {
            "A" => a,
            "B" => b,
            _ => cc,
        });
        assert_eq!(got, (a || b) && !(cc && a));
    }
}

#[test]
fn cohort_serde_is_the_canonical_string() {
    let cohort = c("NPR | KPR - SSB");
    let bytes = postcard::to_allocvec(&cohort).expect("encode");
    assert_eq!(
        bytes,
        postcard::to_allocvec(&"(NPR | KPR) - SSB").expect("encode")
    );
    assert_eq!(
        postcard::from_bytes::<Cohort>(&bytes).expect("decode"),
        cohort
    );
    let bad = postcard::to_allocvec(&"NPR &").expect("encode");
    assert!(postcard::from_bytes::<Cohort>(&bad).is_err());
}

/// Random expressions over `names` and `all`.
pub(in crate::link) fn ast(names: &[&'static str]) -> impl Strategy<Value = Cohort> {
    let leaf = prop_oneof![
        1 => Just(Cohort::All),
        4 => prop::sample::select(names.to_vec()).prop_map(|s| Cohort::List(n(s))),
    ];
    leaf.prop_recursive(6, 48, 2, |inner| {
        (0..3u8, inner.clone(), inner).prop_map(|(op, a, b)| {
            let (a, b) = (Box::new(a), Box::new(b));
            match op {
                0 => Cohort::And(a, b),
                1 => Cohort::Or(a, b),
                _ => Cohort::Minus(a, b),
            }
        })
    })
}

proptest! {
    #[test]
    fn display_round_trips(cohort in ast(&["A", "B", "NPR", "RESEPT-2", "X_1", "2024"])) {
        let text = cohort.to_string();
        prop_assert_eq!(Cohort::parse(&text), Ok(cohort.clone()));
        prop_assert_eq!(Cohort::parse(&text).map(|c| c.to_string()), Ok(text));
    }
}
