//! Cohort expressions (PROTOCOL.md §7): which persons a project receives,
//! in terms of the lists they appear in.
//!
//!
//! The grammar is on [`Cohort`].

use core::{fmt, str::FromStr};
use std::collections::BTreeSet;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    bounded::BoundedString,
    types::{ListName, NameError},
};

/// A cohort expression: which persons a project receives, in terms of the
/// lists they appear in.
///
/// Build one with [`Cohort::parse`]; its [`Display`](fmt::Display) is a
/// canonical form that parses back to the same expression. Serialised as
/// that string.
///
/// # Grammar
///
/// ```text
/// expr    = term { ("|" | "-") term }     union, difference: left-associative
/// term    = operand { "&" operand }       intersection: binds tighter
/// operand = NAME | "all" | "(" expr ")"
/// ```
///
/// `NPR | KPR - SSB` is `(NPR | KPR) - SSB`; `NPR | KPR & SSB` is
/// `NPR | (KPR & SSB)`. Names are list (member) names: upper-case ASCII
/// letters, digits, `_` and `-`. A `-` *between* two name characters is
/// part of the name (`RESEPT-2`), so write a difference with spaces:
/// `NPR - KPR` (an unknown `NPR-KPR` is reported with that hint). `all` is
/// everyone in any list. Whitespace between tokens is free.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cohort {
    /// Everyone in any list.
    All,
    /// Everyone in one list.
    List(ListName),
    /// In both.
    And(Box<Cohort>, Box<Cohort>),
    /// In either.
    Or(Box<Cohort>, Box<Cohort>),
    /// In the first and not in the second.
    Minus(Box<Cohort>, Box<Cohort>),
}

/// A token of a cohort expression, as reported in a [`CohortError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// A list name.
    Name(ListName),
    /// The keyword `all`.
    All,
    /// `&`
    And,
    /// `|`
    Or,
    /// `-`
    Minus,
    /// `(`
    Open,
    /// `)`
    Close,
}

/// What the cohort parser expected where it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A list name, `all` or `(`.
    Operand,
    /// An operator or the end of the expression.
    OperatorOrEnd,
    /// An operator or `)`.
    OperatorOrClose,
}

/// Why a cohort expression was refused. Positions are byte offsets into the
/// expression as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CohortError {
    /// Nothing but whitespace.
    #[error("empty cohort expression; expected {}", Expected::Operand)]
    Empty,
    /// Longer than [`Cohort::MAX_LEN`].
    #[error(
        "cohort expression is {len} bytes long; the limit is {}",
        Cohort::MAX_LEN
    )]
    TooLong {
        /// The length in bytes.
        len: usize,
    },
    /// Nested deeper than [`Cohort::MAX_DEPTH`] (parentheses or operators).
    #[error(
        "cohort expression nests deeper than {} levels at byte {at}",
        Cohort::MAX_DEPTH
    )]
    TooDeep {
        /// Where the limit was crossed.
        at: usize,
    },
    /// The expression ended too early.
    #[error("cohort expression ends at byte {at}; expected {expected}")]
    UnexpectedEnd {
        /// The expression's length.
        at: usize,
        /// What should have followed.
        expected: Expected,
    },
    /// A token where something else was expected.
    #[error("unexpected {found} at byte {at} of the cohort expression; expected {expected}")]
    Unexpected {
        /// The token's offset.
        at: usize,
        /// The token.
        found: Token,
        /// What should have been there.
        expected: Expected,
    },
    /// A `(` that is never closed.
    #[error("unbalanced parenthesis: the `(` at byte {open_at} is never closed")]
    UnclosedParen {
        /// The offset of the `(`.
        open_at: usize,
    },
    /// A `)` without a matching `(`.
    #[error("unbalanced parenthesis: the `)` at byte {at} has no matching `(`")]
    UnmatchedCloseParen {
        /// The offset of the `)`.
        at: usize,
    },
    /// A character that starts no token.
    #[error(
        "unknown character {found:?} at byte {at} of the cohort expression; \
         expected a list name, `all`, `&`, `|`, `-`, `(` or `)`"
    )]
    UnknownCharacter {
        /// The character's offset.
        at: usize,
        /// The character.
        found: char,
    },
    /// A name with lower-case letters (list names are upper-case; only the
    /// keyword `all` is lower-case).
    #[error("`{found}` at byte {at}: list names are upper-case; did you mean `{suggestion}`?")]
    LowerCaseName {
        /// The word's offset.
        at: usize,
        /// The word as written.
        found: String,
        /// The word upper-cased (or `all`).
        suggestion: String,
    },
    /// A name that is not a valid list name (too long).
    #[error("invalid list name at byte {at}: {source}")]
    BadName {
        /// The name's offset.
        at: usize,
        /// Why the name was refused.
        source: NameError,
    },
    /// A well-formed name that is not one of the project's lists.
    #[error(
        "the cohort names list `{name}`, which is not in the project (lists: {}){}",
        join_names(.known),
        unknown_list_hint(.name, .known)
    )]
    UnknownList {
        /// The unknown name.
        name: ListName,
        /// The project's lists.
        known: Vec<ListName>,
    },
}

impl Cohort {
    /// The longest expression [`parse`](Self::parse) accepts, in bytes.
    pub const MAX_LEN: usize = 4096;
    /// The deepest nesting of parentheses, and of operators in the
    /// expression tree, [`parse`](Self::parse) accepts.
    pub const MAX_DEPTH: usize = 64;

    /// Parses a cohort expression (grammar on [`Cohort`]).
    ///
    /// # Errors
    ///
    /// A [`CohortError`] with the byte offset and what was expected.
    pub fn parse(s: &str) -> Result<Cohort, CohortError> {
        if s.len() > Self::MAX_LEN {
            return Err(CohortError::TooLong { len: s.len() });
        }
        let tokens = lex(s)?;
        if tokens.is_empty() {
            return Err(CohortError::Empty);
        }
        let mut p = Parser {
            tokens: &tokens,
            next: 0,
            end: s.len(),
            parens: 0,
        };
        let (cohort, _) = p.expr()?;
        match p.bump() {
            None => Ok(cohort),
            Some((at, Token::Close)) => Err(CohortError::UnmatchedCloseParen { at }),
            Some((at, found)) => Err(CohortError::Unexpected {
                at,
                found: found.clone(),
                expected: Expected::OperatorOrEnd,
            }),
        }
    }

    /// The lists the expression names, sorted, each once.
    pub fn names(&self) -> Vec<ListName> {
        let mut out = BTreeSet::new();
        self.visit_names(&mut |n| {
            out.insert(n.clone());
        });
        out.into_iter().collect()
    }

    /// Checks that every list the expression names is one of `lists`.
    ///
    /// # Errors
    ///
    /// [`CohortError::UnknownList`] for the first unknown name, left to
    /// right.
    pub fn check_lists(&self, lists: &[ListName]) -> Result<(), CohortError> {
        self.compile(lists).map(|_| ())
    }

    /// Whether one person is in the cohort, given which lists they are
    /// present in.
    ///
    /// `all` is true: a person being evaluated comes from at least one list
    /// (as every person [`link`](super::link()) evaluates does).
    pub fn contains(&self, present: impl Fn(&ListName) -> bool) -> bool {
        self.eval(&present)
    }

    fn eval(&self, present: &dyn Fn(&ListName) -> bool) -> bool {
        match self {
            Cohort::All => true,
            Cohort::List(n) => present(n),
            Cohort::And(a, b) => a.eval(present) && b.eval(present),
            Cohort::Or(a, b) => a.eval(present) || b.eval(present),
            Cohort::Minus(a, b) => a.eval(present) && !b.eval(present),
        }
    }

    fn visit_names(&self, f: &mut dyn FnMut(&ListName)) {
        match self {
            Cohort::All => {}
            Cohort::List(n) => f(n),
            Cohort::And(a, b) | Cohort::Or(a, b) | Cohort::Minus(a, b) => {
                a.visit_names(f);
                b.visit_names(f);
            }
        }
    }

    /// The operator and operands of a binary node.
    fn binary(&self) -> Option<(Op, &Cohort, &Cohort)> {
        match self {
            Cohort::All | Cohort::List(_) => None,
            Cohort::And(a, b) => Some((Op::And, a, b)),
            Cohort::Or(a, b) => Some((Op::Or, a, b)),
            Cohort::Minus(a, b) => Some((Op::Minus, a, b)),
        }
    }

    /// The expression with list names replaced by their index in `lists`.
    pub(super) fn compile(&self, lists: &[ListName]) -> Result<Compiled, CohortError> {
        let pair = |a: &Cohort, b: &Cohort| -> Result<_, CohortError> {
            Ok((Box::new(a.compile(lists)?), Box::new(b.compile(lists)?)))
        };
        Ok(match self {
            Cohort::All => Compiled::All,
            Cohort::List(n) => match lists.iter().position(|l| l == n) {
                Some(i) => Compiled::List(i),
                None => {
                    return Err(CohortError::UnknownList {
                        name: n.clone(),
                        known: lists.to_vec(),
                    })
                }
            },
            Cohort::And(a, b) => {
                let (a, b) = pair(a, b)?;
                Compiled::And(a, b)
            }
            Cohort::Or(a, b) => {
                let (a, b) = pair(a, b)?;
                Compiled::Or(a, b)
            }
            Cohort::Minus(a, b) => {
                let (a, b) = pair(a, b)?;
                Compiled::Minus(a, b)
            }
        })
    }

    /// Writes an operand of `parent`, parenthesised unless it is a leaf or
    /// the left operand with the same operator (a left-associative chain
    /// such as `A | B | C`). So every mix of operators is explicit in the
    /// canonical form, whatever the reader knows of precedence.
    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, parent: Op, right: bool) -> fmt::Result {
        match self.binary() {
            Some((op, ..)) if right || op != parent => write!(f, "({self})"),
            _ => write!(f, "{self}"),
        }
    }
}

impl fmt::Display for Cohort {
    /// The canonical form: `all`, names, operators with one space either
    /// side, and parentheses around every operand that is itself an
    /// operation, except the left operand of the same operator. It parses
    /// back to the same expression.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.binary() {
            None => match self {
                Cohort::List(n) => f.write_str(n.as_str()),
                _ => f.write_str("all"),
            },
            Some((op, a, b)) => {
                a.fmt_operand(f, op, false)?;
                write!(f, " {} ", op.symbol())?;
                b.fmt_operand(f, op, true)
            }
        }
    }
}

impl FromStr for Cohort {
    type Err = CohortError;
    fn from_str(s: &str) -> Result<Self, CohortError> {
        Self::parse(s)
    }
}

impl Serialize for Cohort {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cohort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = BoundedString::<{ Cohort::MAX_LEN }>::deserialize(d)?;
        Cohort::parse(&s.into_inner()).map_err(de::Error::custom)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Name(n) => write!(f, "list name `{n}`"),
            Token::All => f.write_str("`all`"),
            Token::And => f.write_str("`&`"),
            Token::Or => f.write_str("`|`"),
            Token::Minus => f.write_str("`-`"),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expected::Operand => "a list name, `all` or `(`",
            Expected::OperatorOrEnd => "an operator (`&`, `|`, `-`) or the end",
            Expected::OperatorOrClose => "an operator (`&`, `|`, `-`) or `)`",
        })
    }
}

/// A binary operator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    And,
    Or,
    Minus,
}

impl Op {
    fn symbol(self) -> char {
        match self {
            Op::And => '&',
            Op::Or => '|',
            Op::Minus => '-',
        }
    }
}

/// A cohort with list names resolved to list indices, evaluated on a
/// person's membership bits.
pub(super) enum Compiled {
    All,
    List(usize),
    And(Box<Compiled>, Box<Compiled>),
    Or(Box<Compiled>, Box<Compiled>),
    Minus(Box<Compiled>, Box<Compiled>),
}

impl Compiled {
    pub(super) fn eval(&self, member: &[u64]) -> bool {
        match self {
            Compiled::All => true,
            Compiled::List(l) => bit(member, *l),
            Compiled::And(a, b) => a.eval(member) && b.eval(member),
            Compiled::Or(a, b) => a.eval(member) || b.eval(member),
            Compiled::Minus(a, b) => a.eval(member) && !b.eval(member),
        }
    }
}

/// Whether bit `l` of a membership bitmask is set.
pub(super) fn bit(member: &[u64], l: usize) -> bool {
    member[l / 64] >> (l % 64) & 1 == 1
}

/// Splits an expression into tokens with their byte offsets.
fn lex(s: &str) -> Result<Vec<(usize, Token)>, CohortError> {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        let at = i;
        i += c.len_utf8();
        let token = match c {
            c if c.is_whitespace() => continue,
            '&' => Token::And,
            '|' => Token::Or,
            '-' => Token::Minus,
            '(' => Token::Open,
            ')' => Token::Close,
            c if c.is_ascii() && is_word(c as u8) => {
                // A `-` continues a name only between two name characters.
                while i < bytes.len() {
                    if is_word(bytes[i]) {
                        i += 1;
                    } else if bytes[i] == b'-' && bytes.get(i + 1).is_some_and(|&b| is_word(b)) {
                        i += 2;
                    } else {
                        break;
                    }
                }
                word(&s[at..i], at)?
            }
            found => return Err(CohortError::UnknownCharacter { at, found }),
        };
        out.push((at, token));
    }
    Ok(out)
}

/// Classifies a word: the keyword `all`, or a list name.
fn word(w: &str, at: usize) -> Result<Token, CohortError> {
    if w == "all" {
        return Ok(Token::All);
    }
    if w.bytes().any(|b| b.is_ascii_lowercase()) {
        let suggestion = if w.eq_ignore_ascii_case("all") {
            "all".to_owned()
        } else {
            w.to_ascii_uppercase()
        };
        return Err(CohortError::LowerCaseName {
            at,
            found: w.to_owned(),
            suggestion,
        });
    }
    ListName::new(w)
        .map(Token::Name)
        .map_err(|source| CohortError::BadName { at, source })
}

/// A recursive-descent parser over the tokens; every function returns the
/// expression and its depth.
struct Parser<'t> {
    tokens: &'t [(usize, Token)],
    next: usize,
    end: usize,
    parens: usize,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> Option<(usize, &'t Token)> {
        self.tokens.get(self.next).map(|(at, t)| (*at, t))
    }

    fn bump(&mut self) -> Option<(usize, &'t Token)> {
        let t = self.peek();
        self.next += usize::from(t.is_some());
        t
    }

    /// `term { ("|" | "-") term }`
    fn expr(&mut self) -> Result<(Cohort, usize), CohortError> {
        let (mut lhs, mut depth) = self.term()?;
        while let Some((at, op @ (Token::Or | Token::Minus))) = self.peek() {
            self.next += 1;
            let (rhs, d) = self.term()?;
            depth = deeper(at, depth, d)?;
            lhs = match op {
                Token::Or => Cohort::Or(Box::new(lhs), Box::new(rhs)),
                _ => Cohort::Minus(Box::new(lhs), Box::new(rhs)),
            };
        }
        Ok((lhs, depth))
    }

    /// `operand { "&" operand }`
    fn term(&mut self) -> Result<(Cohort, usize), CohortError> {
        let (mut lhs, mut depth) = self.operand()?;
        while let Some((at, Token::And)) = self.peek() {
            self.next += 1;
            let (rhs, d) = self.operand()?;
            depth = deeper(at, depth, d)?;
            lhs = Cohort::And(Box::new(lhs), Box::new(rhs));
        }
        Ok((lhs, depth))
    }

    /// `NAME | "all" | "(" expr ")"`
    fn operand(&mut self) -> Result<(Cohort, usize), CohortError> {
        match self.bump() {
            None => Err(CohortError::UnexpectedEnd {
                at: self.end,
                expected: Expected::Operand,
            }),
            Some((_, Token::Name(n))) => Ok((Cohort::List(n.clone()), 1)),
            Some((_, Token::All)) => Ok((Cohort::All, 1)),
            Some((open_at, Token::Open)) => {
                self.parens += 1;
                if self.parens > Cohort::MAX_DEPTH {
                    return Err(CohortError::TooDeep { at: open_at });
                }
                let inner = self.expr()?;
                match self.bump() {
                    Some((_, Token::Close)) => {
                        self.parens -= 1;
                        Ok(inner)
                    }
                    None => Err(CohortError::UnclosedParen { open_at }),
                    Some((at, found)) => Err(CohortError::Unexpected {
                        at,
                        found: found.clone(),
                        expected: Expected::OperatorOrClose,
                    }),
                }
            }
            Some((at, found)) => Err(CohortError::Unexpected {
                at,
                found: found.clone(),
                expected: Expected::Operand,
            }),
        }
    }
}

/// The depth of a binary node over operands of depths `a` and `b`.
fn deeper(at: usize, a: usize, b: usize) -> Result<usize, CohortError> {
    let d = 1 + a.max(b);
    if d > Cohort::MAX_DEPTH {
        return Err(CohortError::TooDeep { at });
    }
    Ok(d)
}

fn join_names(names: &[ListName]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(ListName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A hint for the two likely slips: `ALL` for `all`, and `A-B` (one name)
/// for `A - B` (a difference).
fn unknown_list_hint(name: &ListName, known: &[ListName]) -> String {
    let s = name.as_str();
    if s == "ALL" {
        return "; write `all` in lower case for everyone in any list".to_owned();
    }
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() > 1 && parts.iter().all(|p| known.iter().any(|k| k.as_str() == *p)) {
        return format!(
            "; for a difference write spaces around `-`: `{}`",
            parts.join(" - ")
        );
    }
    String::new()
}

#[cfg(test)]
pub(super) mod tests;
