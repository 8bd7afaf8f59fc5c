//! The condition language of `if` / `else_if` blocks: parsed when a pipeline is saved, evaluated
//! against the build's variables at run time.
//!
//! ```text
//! or      := and ( "||" and )*
//! and     := compare ( "&&" compare )*
//! compare := value [ op value ]        op := "==" | "!=" | ">" | "<" | "contains" | "!contains"
//! value   := "(" or ")"                -> "true" or ""
//!          | "'" chars-without-quote "'" | bareword
//! ```
//!
//! Quoted strings and barewords are `$`-expanded (see [`crate::expand`]) only after the whole
//! condition has been parsed, so a variable's value can never change the structure of the
//! expression. The rules are those of section 9 of the pipeline language specification.

use serde::{Deserialize, Serialize};

use crate::expand::{expand, is_name_byte};

/// How deeply parentheses may nest; deeper conditions are rejected instead of risking the stack.
const MAX_DEPTH: usize = 64;

/// How much of a token an error message quotes.
const MAX_QUOTED_CHARS: usize = 40;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Condition {
    source: String,
    /// `None` for an empty (or whitespace-only) condition, which is always true.
    expr: Option<Expr>,
}

/// Why a condition could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at column {})", offset + 1)]
pub struct ConditionError {
    /// What is wrong.
    pub message: String,
    /// Byte offset in the condition text.
    pub offset: usize,
}

impl Condition {
    /// Parses a condition.
    ///
    /// Only the syntax is checked: variables are looked up when the condition is evaluated.
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        let tokens = tokenize(source)?;
        let mut parser = Parser {
            source,
            tokens,
            pos: 0,
            depth: 0,
        };
        let expr = parser.parse_condition()?;
        Ok(Condition {
            source: source.to_owned(),
            expr,
        })
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition; `lookup` gives a variable's value (unknown variables are empty).
    pub fn evaluate(&self, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        self.expr.as_ref().is_none_or(|expr| expr.eval(lookup))
    }
}

impl TryFrom<String> for Condition {
    type Error = ConditionError;
    fn try_from(source: String) -> Result<Self, Self::Error> {
        Condition::parse(&source)
    }
}

impl From<Condition> for String {
    fn from(condition: Condition) -> String {
        condition.source
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax tree and evaluation

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Compare(Value, Op, Value),
    Truthy(Value),
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A parenthesised expression; `None` for `()`, which is false.
    Group(Option<Box<Expr>>),
    /// A quoted string (without its quotes) or a bareword, expanded at evaluation.
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Contains,
    NotContains,
}

impl Expr {
    fn eval(&self, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Expr::Or(items) => items.iter().any(|item| item.eval(lookup)),
            Expr::And(items) => items.iter().all(|item| item.eval(lookup)),
            Expr::Truthy(value) => is_truthy(&value.eval(lookup)),
            Expr::Compare(left, op, right) => compare(&left.eval(lookup), *op, &right.eval(lookup)),
        }
    }
}

impl Value {
    fn eval(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        match self {
            Value::Group(expr) => {
                let value = expr.as_ref().is_some_and(|expr| expr.eval(lookup));
                if value { "true" } else { "" }.to_owned()
            }
            Value::Text(text) => expand(text, lookup),
        }
    }
}

/// `""`, `"false"` and `"0"` (case-insensitive) are false, everything else is true.
fn is_truthy(value: &str) -> bool {
    !(value.is_empty() || value == "0" || value.eq_ignore_ascii_case("false"))
}

fn compare(left: &str, op: Op, right: &str) -> bool {
    match op {
        Op::Eq => left == right,
        Op::Ne => left != right,
        Op::Gt | Op::Lt => {
            let ordering = match (left.parse::<f64>(), right.parse::<f64>()) {
                (Ok(left), Ok(right)) => left.partial_cmp(&right),
                _ => Some(left.cmp(right)),
            };
            let wanted = if op == Op::Gt {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Less
            };
            ordering == Some(wanted)
        }
        Op::Contains => left.contains(right),
        Op::NotContains => !left.contains(right),
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug)]
enum Kind {
    Open,
    Close,
    And,
    Or,
    Op(Op),
    Quoted(String),
    Word(String),
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

fn error(message: impl Into<String>, offset: usize) -> ConditionError {
    ConditionError {
        message: message.into(),
        offset,
    }
}

/// Splits a condition into tokens. Which tokens exist does not depend on where they are, so a
/// bareword ends at the same place whatever precedes it.
fn tokenize(source: &str) -> Result<Vec<Token>, ConditionError> {
    let mut tokens = Vec::new();
    let mut start = 0;
    while let Some(c) = source[start..].chars().next() {
        if c.is_whitespace() {
            start += c.len_utf8();
            continue;
        }
        let rest = &source[start..];
        let (kind, len) = match c {
            '(' => (Kind::Open, 1),
            ')' => (Kind::Close, 1),
            '>' | '<' if rest[1..].starts_with('=') => {
                let message = format!(
                    "\"{}\" is not an operator; use \"{c}\" or \"==\" (e.g. $A {c} '1' || $A == '1')",
                    &rest[..2]
                );
                return Err(error(message, start));
            }
            '>' => (Kind::Op(Op::Gt), 1),
            '<' => (Kind::Op(Op::Lt), 1),
            '\'' => match rest[1..].find('\'') {
                Some(end) => (Kind::Quoted(rest[1..=end].to_owned()), end + 2),
                None => {
                    let message = "unterminated quote: the string started here has no closing '";
                    return Err(error(message, start));
                }
            },
            _ if rest.starts_with("==") => (Kind::Op(Op::Eq), 2),
            _ if rest.starts_with("!=") => (Kind::Op(Op::Ne), 2),
            _ if rest.starts_with("&&") => (Kind::And, 2),
            _ if rest.starts_with("||") => (Kind::Or, 2),
            _ if is_keyword(rest, "contains") => (Kind::Op(Op::Contains), 8),
            _ if is_keyword(rest, "!contains") => (Kind::Op(Op::NotContains), 9),
            _ => {
                let len = bareword_len(rest);
                (Kind::Word(rest[..len].to_owned()), len)
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: start + len,
        });
        start += len;
    }
    Ok(tokens)
}

/// Whether `text` starts with the operator `keyword`, not followed by `[A-Za-z0-9_]`.
fn is_keyword(text: &str, keyword: &str) -> bool {
    text.starts_with(keyword)
        && !text
            .as_bytes()
            .get(keyword.len())
            .is_some_and(|&b| is_name_byte(b))
}

/// The length of the bareword at the start of `text`: up to whitespace, `(`, `)`, `>`, `<`, or
/// the start of `==`, `!=`, `&&`, `||`. The first character is never one of those (the caller
/// handles them), so a bareword is never empty.
fn bareword_len(text: &str) -> usize {
    text.char_indices()
        .find(|&(i, c)| {
            i > 0
                && (c.is_whitespace()
                    || matches!(c, '(' | ')' | '>' | '<')
                    || ["==", "!=", "&&", "||"]
                        .iter()
                        .any(|op| text[i..].starts_with(op)))
        })
        .map_or(text.len(), |(i, _)| i)
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn parse_condition(&mut self) -> Result<Option<Expr>, ConditionError> {
        if self.tokens.is_empty() {
            return Ok(None);
        }
        let expr = self.parse_or()?;
        let Some(token) = self.peek() else {
            return Ok(Some(expr));
        };
        let found = self.describe(token);
        let message = match token.kind {
            Kind::Close => format!("unexpected {found} without a matching \"(\""),
            Kind::Op(_) => format!(
                "unexpected {found} after a comparison; comparisons cannot be chained, join them with && or ||"
            ),
            Kind::Quoted(_) | Kind::Word(_) => {
                format!("unexpected text {found} after the condition")
            }
            Kind::Open | Kind::And | Kind::Or => format!("unexpected {found} after the condition"),
        };
        Err(error(message, token.start))
    }

    fn parse_or(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.parse_and()?];
        while self
            .peek()
            .is_some_and(|token| matches!(token.kind, Kind::Or))
        {
            self.pos += 1;
            items.push(self.parse_and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.parse_compare()?];
        while self
            .peek()
            .is_some_and(|token| matches!(token.kind, Kind::And))
        {
            self.pos += 1;
            items.push(self.parse_compare()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn parse_compare(&mut self) -> Result<Expr, ConditionError> {
        let left = self.parse_value(None)?;
        let op = match self.peek() {
            Some(Token {
                kind: Kind::Op(op), ..
            }) => *op,
            _ => return Ok(Expr::Truthy(left)),
        };
        let op_pos = self.pos;
        self.pos += 1;
        let right = self.parse_value(Some(op_pos))?;
        Ok(Expr::Compare(left, op, right))
    }

    /// Parses a value; `after` is the index of the operator token it follows, if any.
    fn parse_value(&mut self, after: Option<usize>) -> Result<Value, ConditionError> {
        let Some(token) = self.tokens.get(self.pos) else {
            let message = match after {
                Some(op) => format!(
                    "expected a value after {}, found the end of the condition",
                    self.describe(&self.tokens[op])
                ),
                None => "expected a value, found the end of the condition".to_owned(),
            };
            return Err(error(message, self.source.len()));
        };
        self.pos += 1;
        match &token.kind {
            Kind::Quoted(text) => Ok(Value::Text(text.clone())),
            Kind::Word(word) if word.starts_with('!') => Err(error(
                "negation is not available; compare instead, e.g. $FLAG != 'true' or $FLAG == ''",
                token.start,
            )),
            Kind::Word(word) => Ok(Value::Text(word.clone())),
            Kind::Open => self.parse_group(token.start),
            Kind::Close if self.depth == 0 && after.is_none() => Err(error(
                "unexpected \")\" without a matching \"(\"",
                token.start,
            )),
            Kind::Close | Kind::And | Kind::Or | Kind::Op(_) => {
                let found = self.describe(token);
                let message = match after {
                    Some(op) => format!(
                        "expected a value after {}, found {found}",
                        self.describe(&self.tokens[op])
                    ),
                    None => format!("expected a value, found {found}"),
                };
                Err(error(message, token.start))
            }
        }
    }

    /// Parses the rest of a parenthesised group whose `(` is at byte `open`.
    fn parse_group(&mut self, open: usize) -> Result<Value, ConditionError> {
        if self.depth >= MAX_DEPTH {
            let message = format!("parentheses are nested too deeply (at most {MAX_DEPTH} levels)");
            return Err(error(message, open));
        }
        if self
            .peek()
            .is_some_and(|token| matches!(token.kind, Kind::Close))
        {
            self.pos += 1;
            return Ok(Value::Group(None));
        }
        self.depth += 1;
        let inner = self.parse_or()?;
        self.depth -= 1;
        match self.peek() {
            Some(Token {
                kind: Kind::Close, ..
            }) => {
                self.pos += 1;
                Ok(Value::Group(Some(Box::new(inner))))
            }
            found => {
                let (found, offset) = match found {
                    Some(token) => (self.describe(token), token.start),
                    None => ("the end of the condition".to_owned(), self.source.len()),
                };
                let message = format!(
                    "expected \")\" to close the \"(\" at column {}, found {found}",
                    open + 1
                );
                Err(error(message, offset))
            }
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    /// The token as written, in double quotes, shortened if long.
    fn describe(&self, token: &Token) -> String {
        let text = &self.source[token.start..token.end];
        match text.char_indices().nth(MAX_QUOTED_CHARS) {
            Some((cut, _)) => format!("\"{}…\"", &text[..cut]),
            None => format!("\"{text}\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The variables of the conformance cases 42-44, plus a few for the other tests.
    fn vars() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("GET_APP_BRANCH", "main"),
            ("BUILD_NUMBER", "42"),
            ("INPUT_count", "3"),
            ("INPUT_env", "staging"),
            ("X", "main"),
            ("EMPTY", ""),
            ("ZERO", "0"),
            ("NO", "False"),
            ("QUOTE_OR", "x' || 'a' == 'a"),
            ("OR_TRUE", "'' || 'a'"),
            ("CLOSE", ")"),
            ("DOLLAR", "$X"),
            ("SPACED", "a b"),
        ])
    }

    fn eval_with(source: &str, vars: &HashMap<&str, &str>) -> bool {
        let condition = Condition::parse(source)
            .unwrap_or_else(|e| panic!("{source:?} should parse, got: {e}"));
        condition.evaluate(&|name| vars.get(name).map(|v| (*v).to_owned()))
    }

    fn check_table(cases: &[(&str, bool)], vars: &HashMap<&str, &str>) {
        for &(source, expected) in cases {
            assert_eq!(eval_with(source, vars), expected, "condition {source:?}");
        }
    }

    #[test]
    fn conformance_cases_42_to_44() {
        check_table(
            &[
                // 42
                ("$GET_APP_BRANCH == 'main'", true),
                ("$UNDEFINED == ''", true),
                ("$UNDEFINED", false),
                ("$GET_APP_BRANCH", true),
                // 43
                ("$BUILD_NUMBER > '41.5'", true),
                ("$INPUT_count == '003'", false),
                ("$INPUT_count > '003'", false),
                ("$GET_APP_BRANCH > '10'", true),
                // 44
                (
                    "$GET_APP_BRANCH == 'develop' || $GET_APP_BRANCH == 'main' && $INPUT_env == 'staging'",
                    true,
                ),
                ("()", false),
                ("'a==b' == 'a==b'", true),
                ("'' contains ''", true),
                ("'' !contains ''", false),
            ],
            &vars(),
        );
    }

    #[test]
    fn conformance_case_41_valid_condition() {
        let source = "$A=='x' && ($B contains 'y' || $C > '3')";
        let cases = [
            (HashMap::from([("A", "x"), ("B", "xyz")]), true),
            (HashMap::from([("A", "x"), ("B", "no"), ("C", "4")]), true),
            (HashMap::from([("A", "x"), ("B", "no"), ("C", "2")]), false),
            (HashMap::from([("A", "z"), ("B", "y"), ("C", "9")]), false),
        ];
        for (vars, expected) in cases {
            assert_eq!(eval_with(source, &vars), expected, "{vars:?}");
        }
    }

    #[test]
    fn evaluation() {
        check_table(
            &[
                // Empty conditions are true; empty groups are false.
                ("", true),
                ("  \t\n ", true),
                ("( )", false),
                ("(())", false),
                ("(()) == ''", true),
                ("(a) == 'true'", true),
                ("('') == ''", true),
                // Truthiness.
                ("false", false),
                ("FALSE", false),
                ("$NO", false),
                ("'0'", false),
                ("$ZERO", false),
                ("$EMPTY", false),
                ("''", false),
                ("00", true),
                ("'0.0'", true),
                ("' '", true),
                ("no", true),
                ("true", true),
                // Precedence and parentheses.
                ("'1' == '2' && '1' == '1' || 'a' == 'a'", true),
                ("'a' == 'a' || 'x' == 'y' && 'b' == 'c'", true),
                ("('a' == 'a' || 'x' == 'y') && 'b' == 'c'", false),
                ("a && b && ''", false),
                ("'' || '' || c", true),
                ("((($X == 'main')))", true),
                // Equality is exact.
                ("'1.0' == '1'", false),
                ("'a' != 'A'", true),
                ("$X != 'main'", false),
                // Ordering: numeric when both sides are numbers, else byte-wise.
                ("'10' > '9'", true),
                ("'10' > '9a'", false),
                ("'-1' < '0'", true),
                ("'1e3' > '999'", true),
                ("'abc' < 'abd'", true),
                ("'B' < 'a'", true),
                ("'2' < '2'", false),
                ("'nan' > '1'", false),
                ("'nan' < '1'", false),
                // Substrings.
                ("$GET_APP_BRANCH contains 'ai'", true),
                ("$GET_APP_BRANCH !contains 'x'", true),
                ("'abc' contains 'abcd'", false),
                ("'héllo' contains 'é'", true),
                // Unicode words and whitespace.
                ("héllo == 'héllo'", true),
                ("'a'\u{a0}==\u{3000}'a'", true),
                // Expansion inside quotes and barewords.
                ("'${GET_APP_BRANCH}-x' == 'main-x'", true),
                ("$X-x == 'main-x'", true),
                ("'$$' == ''", true),
                ("'cost $' == 'cost $'", true),
                ("'a$-b' == 'ab'", true),
                ("$DOLLAR contains 'X'", true),
                ("$DOLLAR != 'main'", true),
            ],
            &vars(),
        );
    }

    #[test]
    fn barewords_end_at_operators() {
        let nine = HashMap::from([("N", "9")]);
        let eleven = HashMap::from([("N", "11")]);
        check_table(&[("$N>'10'", false), ("$N<'10'", true)], &nine);
        check_table(&[("$N>'10'", true), ("$N<'10'", false)], &eleven);
        check_table(
            &[
                ("'a'=='a'", true),
                ("'a'!='a'", false),
                ("$X=='main'", true),
                ("$X!='dev'", true),
                ("$X contains'mai'", true),
                ("$X !contains'mai'", false),
                ("a&&b", true),
                ("a||''", true),
                ("''||(a)", true),
                ("(a)&&('')", false),
                // `contains` followed by a word character is a value, not an operator.
                ("containsX == 'containsX'", true),
                ("contains_ == 'contains_'", true),
                ("contains9", true),
                ("${X}contains == 'maincontains'", true),
                // A bareword swallows quotes and `!` that do not start an operator.
                ("it's == it's", true),
                ("a!b == 'a!b'", true),
                ("a=b == 'a=b'", true),
            ],
            &vars(),
        );
    }

    #[test]
    fn expanded_values_cannot_change_the_structure() {
        check_table(
            &[
                ("$QUOTE_OR == 'y'", false),
                ("'$QUOTE_OR' == 'y'", false),
                ("$QUOTE_OR == $QUOTE_OR", true),
                ("$OR_TRUE == ''", false),
                ("$OR_TRUE contains '||'", true),
                ("($CLOSE)", true),
                ("$CLOSE == ')'", true),
                ("$SPACED == 'a b'", true),
                ("$DOLLAR == 'main'", false),
            ],
            &vars(),
        );
    }

    #[test]
    fn parse_errors() {
        let negation =
            "negation is not available; compare instead, e.g. $FLAG != 'true' or $FLAG == ''";
        let unterminated = "unterminated quote: the string started here has no closing '";
        let cases: &[(&str, &str, usize)] = &[
            // Conformance case 41.
            ("$A == 'x", unterminated, 6),
            ("!$FLAG", negation, 0),
            (
                "($A == 'x'",
                "expected \")\" to close the \"(\" at column 1, found the end of the condition",
                10,
            ),
            ("$A == 'x')", "unexpected \")\" without a matching \"(\"", 9),
            // Quotes.
            ("'", unterminated, 0),
            ("a == 'b' && 'c", unterminated, 12),
            // Negation.
            ("!(a)", negation, 0),
            ("a == !b", negation, 5),
            ("a && !b", negation, 5),
            ("!containsX", negation, 0),
            // Missing values.
            (
                "a ==",
                "expected a value after \"==\", found the end of the condition",
                4,
            ),
            (
                "a == && b",
                "expected a value after \"==\", found \"&&\"",
                5,
            ),
            (
                "a contains",
                "expected a value after \"contains\", found the end of the condition",
                10,
            ),
            (
                "a &&",
                "expected a value, found the end of the condition",
                4,
            ),
            (
                "a ||  ",
                "expected a value, found the end of the condition",
                6,
            ),
            ("&& a", "expected a value, found \"&&\"", 0),
            ("== a", "expected a value, found \"==\"", 0),
            ("!= a", "expected a value, found \"!=\"", 0),
            ("contains a", "expected a value, found \"contains\"", 0),
            ("!contains a", "expected a value, found \"!contains\"", 0),
            ("(a == )", "expected a value after \"==\", found \")\"", 6),
            ("(|| a)", "expected a value, found \"||\"", 1),
            // Parentheses.
            (")", "unexpected \")\" without a matching \"(\"", 0),
            ("a == )", "expected a value after \"==\", found \")\"", 5),
            (
                "(a b)",
                "expected \")\" to close the \"(\" at column 1, found \"b\"",
                3,
            ),
            (
                "x && ((a)",
                "expected \")\" to close the \"(\" at column 6, found the end of the condition",
                9,
            ),
            ("(a))", "unexpected \")\" without a matching \"(\"", 3),
            // Trailing text.
            (
                "a == 'b' extra",
                "unexpected text \"extra\" after the condition",
                9,
            ),
            (
                "a == 'b' 'c'",
                "unexpected text \"'c'\" after the condition",
                9,
            ),
            ("a (b)", "unexpected \"(\" after the condition", 2),
            (
                "a == b == c",
                "unexpected \"==\" after a comparison; comparisons cannot be chained, join them with && or ||",
                7,
            ),
            ("a = b", "unexpected text \"=\" after the condition", 2),
            // `>=` and `<=` do not exist.
            (
                "$N >= 3",
                "\">=\" is not an operator; use \">\" or \"==\" (e.g. $A > '1' || $A == '1')",
                3,
            ),
            (
                "$N<=3",
                "\"<=\" is not an operator; use \"<\" or \"==\" (e.g. $A < '1' || $A == '1')",
                2,
            ),
        ];
        for &(source, message, offset) in cases {
            let err = Condition::parse(source).expect_err(source);
            assert_eq!(err, error(message, offset), "condition {source:?}");
        }
    }

    #[test]
    fn error_display_and_long_tokens() {
        let err = Condition::parse("a ==").unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a value after \"==\", found the end of the condition (at column 5)"
        );
        let long = format!("a {}", "é".repeat(100));
        let err = Condition::parse(&long).unwrap_err();
        let quoted = format!(
            "unexpected text \"{}…\" after the condition",
            "é".repeat(40)
        );
        assert_eq!(err, error(quoted, 2));
    }

    #[test]
    fn nesting_is_limited() {
        let nested = |depth: usize| format!("{}a{}", "(".repeat(depth), ")".repeat(depth));
        assert!(
            Condition::parse(&nested(MAX_DEPTH))
                .unwrap()
                .evaluate(&|_| None)
        );
        let err = Condition::parse(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(err.offset, MAX_DEPTH);
        assert!(err.message.contains("nested too deeply"), "{err}");
        assert!(Condition::parse(&"(".repeat(100_000)).is_err());
        assert!(Condition::parse(&"()".repeat(100_000)).is_err());
        let long_chain = vec!["a"; 100_000].join(" || ");
        assert!(Condition::parse(&long_chain).unwrap().evaluate(&|_| None));
    }

    #[test]
    fn serde_uses_the_source() {
        let condition = Condition::parse("$A == 'b'").unwrap();
        assert_eq!(condition.source(), "$A == 'b'");
        let json = serde_json::to_string(&condition).unwrap();
        assert_eq!(json, r#""$A == 'b'""#);
        let back: Condition = serde_json::from_str(&json).unwrap();
        assert_eq!(back, condition);
        assert!(serde_json::from_str::<Condition>(r#""a == 'b""#).is_err());
    }

    /// Parses `source` and, when it parses, evaluates it; never panics, errors point inside it.
    fn exercise(source: &str) {
        let hostile = |name: &str| Some(format!("{name}' || ( == ${name}"));
        match Condition::parse(source) {
            Ok(condition) => {
                condition.evaluate(&|_| None);
                condition.evaluate(&hostile);
            }
            Err(err) => {
                assert!(err.offset <= source.len(), "{source:?}: {err}");
                assert!(source.is_char_boundary(err.offset), "{source:?}: {err}");
                assert!(!err.message.is_empty());
            }
        }
        expand(source, &hostile);
    }

    #[test]
    fn never_panics_on_short_strings() {
        const PIECES: [&str; 14] = [
            "a", "$", "'", "(", ")", "=", "!", "&", "|", ">", " ", "contains", "{", "é",
        ];
        for len in 0..=5u32 {
            for mut n in 0..PIECES.len().pow(len) {
                let mut source = String::new();
                for _ in 0..len {
                    source.push_str(PIECES[n % PIECES.len()]);
                    n /= PIECES.len();
                }
                exercise(&source);
            }
        }
    }

    #[test]
    fn never_panics_on_mutations() {
        let seeds = [
            "$A=='x' && ($B contains 'y' || $C > '3')",
            "$GET_APP_BRANCH == 'develop' || $GET_APP_BRANCH == 'main' && $INPUT_env == 'staging'",
            "'${X}' !contains 'é' || (() == '') && $1$ > '0.5'",
            "🦀 == '🦀' && ç\u{301} < '\u{202e}'",
        ];
        let inserts = [
            '(', ')', '\'', '!', '=', '&', '|', '$', '{', '}', ' ', '>', 'é', '🦀', '\0',
        ];
        for seed in seeds {
            exercise(seed);
            for (i, c) in seed.char_indices() {
                let (head, tail) = (&seed[..i], &seed[i + c.len_utf8()..]);
                exercise(&format!("{head}{tail}"));
                for insert in inserts {
                    exercise(&format!("{head}{insert}{c}{tail}"));
                    exercise(&format!("{head}{insert}{tail}"));
                }
            }
        }
    }
}
