use proptest::prelude::*;

use super::*;

const STRICT: ParseOptions = ParseOptions {
    allow_synthetic: false,
};
const TEST_MODE: ParseOptions = ParseOptions {
    allow_synthetic: true,
};

fn id(s: &str) -> Identifier {
    Identifier::parse(s, TEST_MODE).expect("valid identifier")
}

fn err(s: &str) -> IdError {
    Identifier::parse(s, STRICT).expect_err("invalid identifier")
}

/// Worked by hand, 01.01.1980, individual number 123:
///
/// ```text
/// digits   0 1 0 1 8 0 1 2 3
/// k1 w     3 7 6 1 8 9 4 5 2  → 0+7+0+1+64+0+4+10+6 = 92; 92 mod 11 = 4; 11−4 = 7
/// digits   0 1 0 1 8 0 1 2 3 7
/// k2 w     5 4 3 2 7 6 5 4 3 2 → 0+4+0+2+56+0+5+8+9+14 = 98; 98 mod 11 = 10; 11−10 = 1
/// ```
///
/// so the number is 01018012371.
#[test]
fn hand_checked_fnr() {
    let x = Identifier::parse("01018012371", STRICT).expect("valid");
    assert_eq!(x.kind(), IdKind::Fnr);
    assert_eq!(x.birth_date(), (1980, 1, 1));
    assert_eq!(x.sex(), Sex::Male);
    assert_eq!(x.expose(), "01018012371");
    assert_eq!(x.as_str(), "01018012371");
    assert_eq!(x.as_bytes(), b"01018012371");
    assert_eq!(
        Identifier::from_parts(1980, 1, 1, 123, IdKind::Fnr).expect("valid"),
        x
    );
}

/// Check digits of the following literals were computed with the same
/// weights by an independent Python script.
#[test]
fn kinds() {
    let cases = [
        ("01018012371", IdKind::Fnr),
        ("41018012365", IdKind::DNummer),
        ("01418012354", IdKind::HNummer),
        ("01818012337", IdKind::Synthetic),
        ("41818012320", IdKind::SyntheticDNummer),
    ];
    for (s, kind) in cases {
        let x = id(s);
        assert_eq!(x.kind(), kind, "{s}");
        assert_eq!(x.birth_date(), (1980, 1, 1), "{s}");
        assert_eq!(x.sex(), Sex::Male);
        assert_eq!(
            Identifier::from_parts(1980, 1, 1, 123, kind).expect("valid"),
            x
        );
        assert_eq!(kind.is_synthetic(), Identifier::parse(s, STRICT).is_err());
    }
    assert_eq!(err("01818012337"), IdError::SyntheticNotAllowed);
    assert_eq!(err("41818012320"), IdError::SyntheticNotAllowed);
    // D-nummer and H-nummer together: check digits fine, kind invalid.
    assert_eq!(err("41418012348"), IdError::BadDate);
    assert_eq!(id("01018012452").sex(), Sex::Female);
}

#[test]
fn century_rules() {
    let cases = [
        ("01018012371", 1980), // 000–499
        ("31129949980", 1999), // 499, YY 99
        ("01015450068", 1854), // 500–749, YY 54
        ("01016050012", 1860), // 500–749, YY 60
        ("29020050088", 2000), // 500–999, YY 00
        ("01015090045", 1950), // 900–999, YY 50
        ("15039999940", 1999), // 999, YY 99
    ];
    for (s, year) in cases {
        assert_eq!(id(s).birth_date().0, year, "{s}");
    }
    // 500–749 with YY 40–53, 750–899 with YY 40–99: never issued.
    assert_eq!(err("01014560013"), IdError::BadDate);
    assert_eq!(err("01014580049"), IdError::BadDate);
    assert_eq!(
        Identifier::from_parts(1945, 1, 1, 600, IdKind::Fnr),
        Err(IdError::BadDate)
    );
    assert_eq!(
        Identifier::from_parts(1980, 1, 1, 600, IdKind::Fnr),
        Err(IdError::BadDate)
    );
    assert_eq!(
        Identifier::from_parts(2040, 1, 1, 600, IdKind::Fnr),
        Err(IdError::BadDate)
    );
    assert_eq!(
        Identifier::from_parts(1853, 1, 1, 600, IdKind::Fnr),
        Err(IdError::BadDate)
    );
    assert_eq!(
        Identifier::from_parts(1980, 1, 1, 1000, IdKind::Fnr),
        Err(IdError::BadDate)
    );
}

#[test]
fn calendar_and_leap_years() {
    assert_eq!(id("29020050088").birth_date(), (2000, 2, 29)); // 2000 is a leap year
    assert_eq!(id("29029601230").birth_date(), (1996, 2, 29));
    assert_eq!(err("29020012380"), IdError::BadDate); // 1900 is not
    assert_eq!(err("29020150260"), IdError::BadDate); // 2001 is not
    assert_eq!(err("31048012364"), IdError::BadDate); // 31 April
    assert_eq!(id("31128012322").birth_date(), (1980, 12, 31));
    assert_eq!(err("01138012480"), IdError::BadDate); // month 13
    assert_eq!(err("01008012381"), IdError::BadDate); // month 0
    assert_eq!(err("00018012332"), IdError::BadDate); // day 0
    assert_eq!(err("32018012323"), IdError::BadDate); // day 32
    assert_eq!(err("72018012317"), IdError::BadDate); // D-day 72
    assert_eq!(
        Identifier::from_parts(1900, 2, 29, 123, IdKind::Fnr),
        Err(IdError::BadDate)
    );
    assert_eq!(
        Identifier::from_parts(2000, 2, 29, 500, IdKind::Fnr).expect("valid"),
        id("29020050088")
    );
    assert_eq!(
        Identifier::from_parts(1980, 4, 31, 123, IdKind::Fnr),
        Err(IdError::BadDate)
    );
    assert_eq!(
        Identifier::from_parts(1980, 13, 1, 123, IdKind::Fnr),
        Err(IdError::BadDate)
    );
    assert_eq!(
        Identifier::from_parts(1980, 1, 0, 123, IdKind::Fnr),
        Err(IdError::BadDate)
    );
}

#[test]
fn shape_errors() {
    assert_eq!(err(""), IdError::Empty);
    assert_eq!(err(" \t\r\n"), IdError::Empty);
    assert_eq!(err("\u{FEFF}"), IdError::Empty);
    assert_eq!(err("0101801237"), IdError::WrongLength { len: 10 });
    assert_eq!(err("010180123711"), IdError::WrongLength { len: 12 });
    assert_eq!(err("010180 12371"), IdError::WrongLength { len: 12 });
    assert_eq!(err("0101801237x"), IdError::NonDigit { at: 10 });
    assert_eq!(err("-1018012371"), IdError::NonDigit { at: 0 });
    // Arabic-Indic and full-width digits are not digits.
    assert_eq!(err("٠١٠١٨٠١٢٣٧١"), IdError::NonDigit { at: 0 });
    assert_eq!(err("０１０１８０１２３７１"), IdError::NonDigit { at: 0 });
    assert_eq!(err("01018012٣71"), IdError::NonDigit { at: 8 });
}

#[test]
fn check_digit_errors() {
    assert_eq!(err("01018012372"), IdError::BadCheckDigit { which: 2 });
    assert_eq!(err("01018012361"), IdError::BadCheckDigit { which: 1 });
    // 010180003 has k1 = 10: no valid number, whatever the last digits.
    assert_eq!(err("01018000300"), IdError::BadCheckDigit { which: 1 });
    assert_eq!(
        Identifier::from_parts(1980, 1, 1, 3, IdKind::Fnr),
        Err(IdError::BadCheckDigit { which: 1 })
    );
    // 010180005 has k1 = 6 and then k2 = 10.
    assert_eq!(err("01018000560"), IdError::BadCheckDigit { which: 2 });
    assert_eq!(
        Identifier::from_parts(1980, 1, 1, 5, IdKind::Fnr),
        Err(IdError::BadCheckDigit { which: 2 })
    );
}

#[test]
fn trims_whitespace_and_bom() {
    let x = id("01018012371");
    for s in [
        " 01018012371",
        "01018012371 ",
        "\t01018012371\r\n",
        "\u{FEFF}01018012371",
        "\u{FEFF} 01018012371\n",
        "\u{00A0}01018012371\u{2003}",
    ] {
        assert_eq!(Identifier::parse(s, STRICT), Ok(x), "{s:?}");
    }
}

#[test]
fn output_is_masked() {
    let x = id("01018012371");
    assert_eq!(x.masked(), "01*********");
    assert_eq!(format!("{x}"), "01*********");
    assert_eq!(format!("{x:?}"), "Identifier(01*********)");
    assert_eq!(format!("{:?}", Some(x)), "Some(Identifier(01*********))");
    let m = IdMapping::new([(id("41018012365"), x)]).expect("mapping");
    assert!(!format!("{m:?}").contains("0123"));
}

#[test]
fn errors_never_contain_the_input() {
    let inputs = [
        "",
        "0101801237",
        "0101801237x",
        "01018012372",
        "01018012361",
        "29020012380",
        "01818012337",
    ];
    for s in inputs {
        let e = err(s);
        let msg = e.to_string();
        if !s.is_empty() {
            assert!(!msg.contains(&s[..6]), "{msg}");
        }
        assert!(IdError::REASON_CODES.contains(&e.reason_code()));
    }
    assert_eq!(err("").reason_code(), "empty");
    assert_eq!(err("1").reason_code(), "wrong-length");
    assert_eq!(err("0101801237x").reason_code(), "non-digit");
    assert_eq!(err("29020012380").reason_code(), "bad-date");
    assert_eq!(err("01018012372").reason_code(), "bad-check-digit");
    assert_eq!(err("01818012337").reason_code(), "synthetic-not-allowed");
    assert_eq!(
        IdError::NonDigit { at: 10 }.to_string(),
        "identifier has a non-digit at character 11 of 11"
    );
}

#[test]
fn identity_point_hashes_the_eleven_digits() {
    let x = id("01018012371");
    assert_eq!(
        x.identity_point(),
        hash_to_group(tags::IDENTITY, b"01018012371")
    );
    assert_ne!(x.identity_point(), id("41018012365").identity_point());
}

/// A valid identifier of any kind with the parts it was built from:
/// a random date in 1854–2039, an individual number in the range the
/// century rules allow for that year.
fn valid_parts() -> impl Strategy<Value = (Identifier, u16, u8, u8, u16, IdKind)> {
    let kinds = prop_oneof![
        Just(IdKind::Fnr),
        Just(IdKind::DNummer),
        Just(IdKind::HNummer),
        Just(IdKind::Synthetic),
        Just(IdKind::SyntheticDNummer),
    ];
    (1854u16..=2039, 1u8..=12, 1u8..=31, 0u16..1000, kinds).prop_filter_map(
        "check digit would be 10",
        |(year, month, day, i, kind)| {
            let day = 1 + (day - 1) % days_in_month(year, month);
            let ranges: &[(u16, u16)] = match year {
                1854..=1899 => &[(500, 749)],
                1900..=1939 => &[(0, 499)],
                1940..=1999 => &[(0, 499), (900, 999)],
                _ => &[(500, 999)],
            };
            let total: u16 = ranges.iter().map(|(lo, hi)| hi - lo + 1).sum();
            let mut k = i % total;
            let mut individual = 0;
            for &(lo, hi) in ranges {
                if k <= hi - lo {
                    individual = lo + k;
                    break;
                }
                k -= hi - lo + 1;
            }
            let x = Identifier::from_parts(year, month, day, individual, kind).ok()?;
            Some((x, year, month, day, individual, kind))
        },
    )
}

proptest! {
    #[test]
    fn generated_numbers_parse_back((x, year, month, day, individual, kind) in valid_parts()) {
        let y = Identifier::parse(x.expose(), TEST_MODE).expect("valid");
        prop_assert_eq!(y, x);
        prop_assert_eq!(y.kind(), kind);
        prop_assert_eq!(y.birth_date(), (year, month, day));
        let sex = if individual % 2 == 1 { Sex::Male } else { Sex::Female };
        prop_assert_eq!(y.sex(), sex);
        let strict = Identifier::parse(x.expose(), STRICT);
        if kind.is_synthetic() {
            prop_assert_eq!(strict, Err(IdError::SyntheticNotAllowed));
        } else {
            prop_assert_eq!(strict, Ok(x));
        }
    }

    /// Every single-digit change is rejected or (were the rules ever
    /// relaxed) a different number. Under the classic mod-11 scheme it
    /// is always rejected: every weight is non-zero mod 11, so a change
    /// of one digit always changes a checksum.
    #[test]
    fn single_digit_changes_are_caught((x, ..) in valid_parts()) {
        for at in 0..11 {
            for digit in b'0'..=b'9' {
                if digit == x.as_bytes()[at] {
                    continue;
                }
                let mut changed = *x.as_bytes();
                changed[at] = digit;
                let s = core::str::from_utf8(&changed).expect("ascii");
                match Identifier::parse(s, TEST_MODE) {
                    Ok(y) => prop_assert_ne!(y, x),
                    Err(e) => prop_assert_eq!(e.reason_code(), "bad-check-digit"),
                }
                prop_assert!(Identifier::parse(s, TEST_MODE).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,16}|[0-9]{11}") {
        if let Ok(x) = Identifier::parse(&s, TEST_MODE) {
            prop_assert_eq!(
                x.expose(),
                s.trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}')
            );
        }
    }
}
