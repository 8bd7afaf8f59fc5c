//! The expression evaluator: hcl-edit syntax trees to [`Value`]s, with errors that point at the
//! exact sub-expression that failed.

use std::collections::BTreeMap;
use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::expr::{
    BinaryOperator, Expression, ForExpr, FuncCall, ObjectKey, TraversalOperator, UnaryOperator,
};
use hcl_edit::template::{Directive, Element, Template};

use crate::diagnostic::{did_you_mean, quoted};
use crate::functions;
use crate::value::Value;

/// Deepest expression nesting evaluated before giving up (guards the stack).
const MAX_DEPTH: usize = 128;

/// Most declared variables named in the help of an undeclared one.
const MAX_LISTED_VARIABLES: usize = 10;

/// Most elements a `for` expression may produce.
const MAX_FOR_ELEMENTS: usize = 100_000;

/// An evaluation error with the byte range of the failing expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvalError {
    pub(crate) message: String,
    pub(crate) span: Option<Range<usize>>,
    pub(crate) help: Option<String>,
}

type Result<T> = std::result::Result<T, EvalError>;

fn error(message: impl Into<String>, span: Option<Range<usize>>) -> EvalError {
    EvalError {
        message: message.into(),
        span,
        help: None,
    }
}

/// What names an expression can see.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    /// `var.*`; `None` where variables are not available (in variable defaults).
    pub(crate) vars: Option<BTreeMap<String, Value>>,
    /// `each.key` / `each.value`; `None` outside `for_each`/`matrix` jobs.
    pub(crate) each: Option<Value>,
    /// Where the bare type names `string`, `number`, `bool` are allowed (variable `type`).
    pub(crate) type_keywords: bool,
    /// Why `var` is not available, when `vars` is `None` (defaults to the reason that applies to
    /// variable defaults).
    pub(crate) no_vars_reason: Option<&'static str>,
    /// Declared variables that have no value because of an error reported on their declaration.
    pub(crate) failed_vars: std::collections::BTreeSet<String>,
}

impl Scope {
    /// Evaluates `expr`.
    pub(crate) fn eval(&self, expr: &Expression) -> Result<Value> {
        Evaluator {
            scope: self,
            locals: Vec::new(),
            depth: 0,
        }
        .eval(expr)
    }
}

struct Evaluator<'s> {
    scope: &'s Scope,
    /// Variables introduced by `for` expressions, innermost last.
    locals: Vec<(String, Value)>,
    depth: usize,
}

impl Evaluator<'_> {
    fn eval(&mut self, expr: &Expression) -> Result<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error("expression is nested too deeply", expr.span()));
        }
        let value = self.eval_inner(expr);
        self.depth -= 1;
        value
    }

    fn eval_inner(&mut self, expr: &Expression) -> Result<Value> {
        Ok(match expr {
            Expression::Null(_) => Value::Null,
            Expression::Bool(b) => Value::Bool(*b.value()),
            Expression::Number(n) => match n.value().as_f64() {
                Some(number) => Value::Number(number),
                None => return Err(error("number is out of range", expr.span())),
            },
            Expression::String(s) => Value::String(s.value().clone()),
            Expression::Array(array) => {
                let mut items = Vec::with_capacity(array.len());
                for item in array.iter() {
                    items.push(self.eval(item)?);
                }
                Value::List(items)
            }
            Expression::Object(object) => {
                let mut map = BTreeMap::new();
                for (key, value) in object.iter() {
                    let key = match key {
                        ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                        ObjectKey::Expression(key_expr) => {
                            let key = self.eval(key_expr)?;
                            key.to_template_string().ok_or_else(|| {
                                error(
                                    format!("object key must be a string, got {}", key.type_name()),
                                    key_expr.span(),
                                )
                            })?
                        }
                    };
                    map.insert(key, self.eval(value.expr())?);
                }
                Value::Object(map)
            }
            Expression::StringTemplate(template) => self.eval_template_expr(template, expr)?,
            Expression::HeredocTemplate(heredoc) => {
                self.eval_template_expr(&heredoc.template, expr)?
            }
            Expression::Parenthesis(inner) => self.eval(inner.inner())?,
            Expression::Variable(name) => self.variable(name.as_str(), expr.span())?,
            Expression::Conditional(cond) => {
                let test = self.eval(&cond.cond_expr)?;
                if as_bool(&test, &cond.cond_expr)? {
                    self.eval(&cond.true_expr)?
                } else {
                    self.eval(&cond.false_expr)?
                }
            }
            Expression::FuncCall(call) => self.call(call, expr)?,
            Expression::Traversal(traversal) => {
                self.check_failed_var(traversal)?;
                let base = self.eval(&traversal.expr)?;
                self.traverse(base, &traversal.operators, &traversal.expr)?
            }
            Expression::UnaryOp(op) => {
                let operand = self.eval(&op.expr)?;
                match op.operator.value() {
                    UnaryOperator::Neg => Value::Number(-as_number(&operand, &op.expr)?),
                    UnaryOperator::Not => Value::Bool(!as_bool(&operand, &op.expr)?),
                }
            }
            Expression::BinaryOp(op) => {
                let lhs = self.eval(&op.lhs_expr)?;
                let rhs = self.eval(&op.rhs_expr)?;
                binary(
                    *op.operator.value(),
                    &lhs,
                    &rhs,
                    &op.lhs_expr,
                    &op.rhs_expr,
                    expr,
                )?
            }
            Expression::ForExpr(for_expr) => self.eval_for(for_expr)?,
        })
    }

    /// `var.x` where `x` is declared but has no value, or is not declared at all: say so instead
    /// of "unknown attribute".
    fn check_failed_var(&self, traversal: &hcl_edit::expr::Traversal) -> Result<()> {
        let is_var = matches!(&traversal.expr, Expression::Variable(v) if v.as_str() == "var")
            && !self.locals.iter().any(|(n, _)| n == "var");
        let (true, Some(first)) = (is_var, traversal.operators.first()) else {
            return Ok(());
        };
        let TraversalOperator::GetAttr(name) = first.value() else {
            return Ok(());
        };
        let name = name.as_str();
        if self.scope.failed_vars.contains(name) {
            return Err(error(
                format!(
                    "variable {} has no value (see the error on its declaration)",
                    quoted(name)
                ),
                first.span(),
            ));
        }
        if let Some(vars) = &self.scope.vars
            && !vars.contains_key(name)
        {
            let declared_count = vars.len() + self.scope.failed_vars.len();
            // Both are sorted: the first names of their union are among the first of each.
            // Never more than that per reference, so the help costs the same however many
            // variables a file declares.
            let mut shown: Vec<&str> = vars
                .keys()
                .take(MAX_LISTED_VARIABLES)
                .chain(self.scope.failed_vars.iter().take(MAX_LISTED_VARIABLES))
                .map(String::as_str)
                .collect();
            shown.sort_unstable();
            shown.truncate(MAX_LISTED_VARIABLES);
            let list = if declared_count == 0 {
                format!(
                    "no variable is declared; declare it: variable {} {{ type = string }}",
                    quoted(name)
                )
            } else if declared_count > shown.len() {
                format!(
                    "the declared variables are: {}, and {} more",
                    shown.join(", "),
                    declared_count - shown.len()
                )
            } else {
                format!("the declared variables are: {}", shown.join(", "))
            };
            let candidates = vars
                .keys()
                .chain(self.scope.failed_vars.iter())
                .map(String::as_str);
            let help = match did_you_mean(name, candidates) {
                Some(guess) => format!("{guess} {list}"),
                None => list,
            };
            return Err(EvalError {
                message: format!("variable {} is not declared", quoted(name)),
                span: first.span(),
                help: Some(help),
            });
        }
        Ok(())
    }

    fn variable(&self, name: &str, span: Option<Range<usize>>) -> Result<Value> {
        if let Some((_, value)) = self.locals.iter().rev().find(|(local, _)| local == name) {
            return Ok(value.clone());
        }
        match name {
            "var" => match &self.scope.vars {
                Some(vars) => Ok(Value::Object(vars.clone())),
                None => Err(error(
                    format!(
                        "variables cannot be used here: {}",
                        self.scope.no_vars_reason.unwrap_or(
                            "a variable's default and type are evaluated before any variable has \
                             a value"
                        )
                    ),
                    span,
                )),
            },
            "each" => match &self.scope.each {
                Some(each) => Ok(each.clone()),
                None => Err(EvalError {
                    message: "unknown variable \"each\"".to_owned(),
                    span,
                    help: Some(
                        "each.key and each.value only exist inside a job with for_each or matrix"
                            .to_owned(),
                    ),
                }),
            },
            "string" | "number" | "bool" if self.scope.type_keywords => Ok(Value::string(name)),
            _ => {
                let mut known: Vec<&str> = self.locals.iter().map(|(n, _)| n.as_str()).collect();
                known.push("var");
                if self.scope.each.is_some() {
                    known.push("each");
                }
                Err(EvalError {
                    message: format!("unknown variable {}", quoted(name)),
                    span,
                    help: did_you_mean(name, known)
                        .or_else(|| build_variable_help(name))
                        .or_else(|| {
                            Some(
                                "the names available are var.<name>, each.key/each.value in \
                             for_each jobs, and for-expression variables; write a literal \
                             string in quotes"
                                    .to_owned(),
                            )
                        }),
                })
            }
        }
    }

    fn eval_template_expr(&mut self, template: &Template, whole: &Expression) -> Result<Value> {
        // A template that is exactly one interpolation yields the value itself, unconverted.
        if let Some(Element::Interpolation(interpolation)) = template.as_single_element() {
            return self.eval(&interpolation.expr);
        }
        let mut out = String::new();
        self.render(template, &mut out, whole)?;
        Ok(Value::String(out))
    }

    fn render(&mut self, template: &Template, out: &mut String, whole: &Expression) -> Result<()> {
        let mut strip_next = false;
        for element in template.iter() {
            match element {
                Element::Literal(literal) => {
                    let text = literal.value().as_str();
                    out.push_str(if strip_next { text.trim_start() } else { text });
                    strip_next = false;
                }
                Element::Interpolation(interpolation) => {
                    if interpolation.strip.strip_start() {
                        trim_end(out);
                    }
                    let value = self.eval(&interpolation.expr)?;
                    out.push_str(&template_string(&value, &interpolation.expr)?);
                    strip_next = interpolation.strip.strip_end();
                }
                Element::Directive(directive) => {
                    strip_next = self.render_directive(directive, out, whole)?;
                }
            }
        }
        Ok(())
    }

    /// Renders `%{if}` / `%{for}`; returns whether the text after the directive is stripped.
    fn render_directive(
        &mut self,
        directive: &Directive,
        out: &mut String,
        whole: &Expression,
    ) -> Result<bool> {
        match directive {
            Directive::If(if_directive) => {
                let head = &if_directive.if_expr;
                if head.strip.strip_start() {
                    trim_end(out);
                }
                let test = self.eval(&head.cond_expr)?;
                let mut branch = String::new();
                if as_bool(&test, &head.cond_expr)? {
                    self.render(&head.template, &mut branch, whole)?;
                    if head.strip.strip_end() {
                        branch = branch.trim_start().to_owned();
                    }
                } else if let Some(else_expr) = &if_directive.else_expr {
                    self.render(&else_expr.template, &mut branch, whole)?;
                    if else_expr.strip.strip_end() {
                        branch = branch.trim_start().to_owned();
                    }
                }
                out.push_str(&branch);
                if if_directive.endif_expr.strip.strip_start() {
                    trim_end(out);
                }
                Ok(if_directive.endif_expr.strip.strip_end())
            }
            Directive::For(for_directive) => {
                let head = &for_directive.for_expr;
                if head.strip.strip_start() {
                    trim_end(out);
                }
                let collection = self.eval(&head.collection_expr)?;
                let pairs = iterate(&collection, &head.collection_expr)?;
                let key_var = head.key_var.as_ref().map(|k| k.as_str().to_owned());
                let value_var = head.value_var.as_str().to_owned();
                for (key, value) in pairs {
                    let pushed = self.push_locals(key_var.as_deref(), key, &value_var, value);
                    let mut body = String::new();
                    let rendered = self.render(&head.template, &mut body, whole);
                    self.locals.truncate(self.locals.len() - pushed);
                    rendered?;
                    if head.strip.strip_end() {
                        body = body.trim_start().to_owned();
                    }
                    if for_directive.endfor_expr.strip.strip_start() {
                        body = body.trim_end().to_owned();
                    }
                    out.push_str(&body);
                }
                Ok(for_directive.endfor_expr.strip.strip_end())
            }
        }
    }

    fn push_locals(
        &mut self,
        key_var: Option<&str>,
        key: Value,
        value_var: &str,
        value: Value,
    ) -> usize {
        let mut pushed = 1;
        if let Some(key_var) = key_var {
            self.locals.push((key_var.to_owned(), key));
            pushed += 1;
        }
        self.locals.push((value_var.to_owned(), value));
        pushed
    }

    fn call(&mut self, call: &FuncCall, whole: &Expression) -> Result<Value> {
        let name = call.name.name.as_str();
        if call.name.is_namespaced() || !functions::NAMES.contains(&name) {
            let full = call
                .name
                .namespace
                .iter()
                .map(|n| format!("{}::", n.as_str()))
                .collect::<String>()
                + name;
            return Err(EvalError {
                message: format!("call to unknown function {}", quoted(&full)),
                span: call.name.name.span(),
                help: unavailable_function_help(name)
                    .or_else(|| did_you_mean(name, functions::NAMES.iter().copied()))
                    .or_else(|| {
                        Some("see the list of functions in docs/pipeline-language.md".to_owned())
                    }),
            });
        }
        let mut args = Vec::with_capacity(call.args.len());
        let count = call.args.len();
        for (i, arg) in call.args.iter().enumerate() {
            let value = self.eval(arg)?;
            if i + 1 == count && call.args.expand_final() {
                match value {
                    Value::List(items) | Value::Set(items) => args.extend(items),
                    other => {
                        return Err(error(
                            format!(
                                "the final argument is expanded with \"...\", so it must be a list \
                                 or set, got {}",
                                other.type_name()
                            ),
                            arg.span(),
                        ));
                    }
                }
            } else {
                args.push(value);
            }
        }
        functions::call(name, args).map_err(|message| {
            error(
                format!("error in function {}: {message}", quoted(name)),
                whole.span(),
            )
        })
    }

    fn traverse(
        &mut self,
        mut value: Value,
        operators: &[hcl_edit::Decorated<TraversalOperator>],
        base: &Expression,
    ) -> Result<Value> {
        for (i, operator) in operators.iter().enumerate() {
            let span = operator.span().or_else(|| base.span());
            match operator.value() {
                TraversalOperator::GetAttr(name) => {
                    value = get_attr(value, name.as_str(), span)?;
                }
                TraversalOperator::Index(index_expr) => {
                    let index = self.eval(index_expr)?;
                    value = index_value(value, &index, index_expr.span())?;
                }
                TraversalOperator::LegacyIndex(index) => {
                    value = index_value(value, &Value::Number(*index.value() as f64), span)?;
                }
                TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => {
                    let items = match value {
                        Value::Null => Vec::new(),
                        Value::List(items) | Value::Set(items) => items,
                        other => vec![other],
                    };
                    let rest = &operators[i + 1..];
                    let mut results = Vec::with_capacity(items.len());
                    for item in items {
                        results.push(self.traverse(item, rest, base)?);
                    }
                    return Ok(Value::List(results));
                }
            }
        }
        Ok(value)
    }

    fn eval_for(&mut self, for_expr: &ForExpr) -> Result<Value> {
        let intro = &for_expr.intro;
        let collection = self.eval(&intro.collection_expr)?;
        let pairs = iterate(&collection, &intro.collection_expr)?;
        if pairs.len() > MAX_FOR_ELEMENTS {
            return Err(error(
                format!("for expression over {} elements is too large", pairs.len()),
                intro.collection_expr.span(),
            ));
        }
        let key_var = intro.key_var.as_ref().map(|k| k.as_str().to_owned());
        let value_var = intro.value_var.as_str().to_owned();
        let mut list = Vec::new();
        let mut object: BTreeMap<String, Value> = BTreeMap::new();
        let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (key, value) in pairs {
            let pushed = self.push_locals(key_var.as_deref(), key, &value_var, value);
            let result = self.for_element(for_expr);
            self.locals.truncate(self.locals.len() - pushed);
            let Some((key, value)) = result? else {
                continue;
            };
            match key {
                None => list.push(value),
                Some(key) if for_expr.grouping => grouped.entry(key).or_default().push(value),
                Some(key) => {
                    if object.insert(key.clone(), value).is_some() {
                        return Err(EvalError {
                            message: format!(
                                "duplicate object key {} in for expression",
                                quoted(&key)
                            ),
                            span: for_expr.key_expr.as_ref().and_then(|k| k.span()),
                            help: Some(
                                "add \"...\" after the value expression to group values by key"
                                    .to_owned(),
                            ),
                        });
                    }
                }
            }
        }
        Ok(match (&for_expr.key_expr, for_expr.grouping) {
            (None, _) => Value::List(list),
            (Some(_), true) => Value::Object(
                grouped
                    .into_iter()
                    .map(|(k, v)| (k, Value::List(v)))
                    .collect(),
            ),
            (Some(_), false) => Value::Object(object),
        })
    }

    /// One element of a `for` expression; `None` when its `if` filters it out.
    fn for_element(&mut self, for_expr: &ForExpr) -> Result<Option<(Option<String>, Value)>> {
        if let Some(cond) = &for_expr.cond {
            let keep = self.eval(&cond.expr)?;
            if !as_bool(&keep, &cond.expr)? {
                return Ok(None);
            }
        }
        let key = match &for_expr.key_expr {
            Some(key_expr) => {
                let key = self.eval(key_expr)?;
                Some(key.to_template_string().ok_or_else(|| {
                    error(
                        format!("object key must be a string, got {}", key.type_name()),
                        key_expr.span(),
                    )
                })?)
            }
            None => None,
        };
        Ok(Some((key, self.eval(&for_expr.value_expr)?)))
    }
}

/// Why a well-known Terraform function is not part of the language.
fn unavailable_function_help(name: &str) -> Option<String> {
    let why = match name {
        "file" | "templatefile" | "fileexists" | "fileset" | "filebase64" | "abspath"
        | "dirname" | "basename" | "pathexpand" => {
            "pipelines are evaluated where they are saved (the server), which cannot read your files; \
             put the text in the pipeline or in a variable"
        }
        "try" | "can" => "write the value so it cannot fail, or use a conditional (cond ? a : b)",
        "uuid" | "uuidv5" | "md5" | "sha1" | "sha256" | "sha512" | "bcrypt" | "filemd5"
        | "filesha256" => "hashing and random functions are not part of the language",
        _ => return None,
    };
    Some(format!("{} is not available: {why}", quoted(name)))
}

fn trim_end(out: &mut String) {
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
}

/// Key/value pairs of a collection for `for` expressions and `%{for}` directives.
fn iterate(collection: &Value, expr: &Expression) -> Result<Vec<(Value, Value)>> {
    match collection {
        Value::List(items) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| (Value::Number(i as f64), v.clone()))
            .collect()),
        Value::Set(items) => Ok(items.iter().map(|v| (v.clone(), v.clone())).collect()),
        Value::Object(map) => Ok(map
            .iter()
            .map(|(k, v)| (Value::string(k.clone()), v.clone()))
            .collect()),
        other => Err(error(
            format!(
                "cannot iterate over a {}: expected a list, set or object",
                other.type_name()
            ),
            expr.span(),
        )),
    }
}

fn template_string(value: &Value, expr: &Expression) -> Result<String> {
    value.to_template_string().ok_or_else(|| {
        let message = match value {
            Value::Null => "cannot insert null into a string template".to_owned(),
            other => format!(
                "cannot insert a {} into a string template; use jsonencode() or join() to turn it \
                 into a string",
                other.type_name()
            ),
        };
        error(message, expr.span())
    })
}

fn as_bool(value: &Value, expr: &Expression) -> Result<bool> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(text) if text == "true" => Ok(true),
        Value::String(text) if text == "false" => Ok(false),
        other => Err(error(
            format!(
                "expected a bool, got {} {}",
                other.type_name(),
                other.describe()
            ),
            expr.span(),
        )),
    }
}

fn as_number(value: &Value, expr: &Expression) -> Result<f64> {
    match value {
        Value::Number(number) => Ok(*number),
        Value::String(text) => text.trim().parse::<f64>().map_err(|_| {
            error(
                format!("expected a number, got string {}", quoted(text)),
                expr.span(),
            )
        }),
        other => Err(error(
            format!(
                "expected a number, got {} {}",
                other.type_name(),
                other.describe()
            ),
            expr.span(),
        )),
    }
}

/// `${BUILD_NUMBER}` in an HCL string is an HCL interpolation, not the build's variable: say how
/// to write the variable instead, for names that look like environment variables.
fn build_variable_help(name: &str) -> Option<String> {
    let env_like = name.bytes().any(|b| b.is_ascii_uppercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    env_like.then(|| {
        format!(
            "${{{name}}} in a string is HCL interpolation; for the build variable write \
             ${name}, or $${{{name}}} to keep the braces"
        )
    })
}

fn binary(
    operator: BinaryOperator,
    lhs: &Value,
    rhs: &Value,
    lhs_expr: &Expression,
    rhs_expr: &Expression,
    whole: &Expression,
) -> Result<Value> {
    use BinaryOperator as Op;
    let numbers = || Ok::<_, EvalError>((as_number(lhs, lhs_expr)?, as_number(rhs, rhs_expr)?));
    Ok(match operator {
        Op::Eq => Value::Bool(lhs == rhs),
        Op::NotEq => Value::Bool(lhs != rhs),
        Op::And => Value::Bool(as_bool(lhs, lhs_expr)? && as_bool(rhs, rhs_expr)?),
        Op::Or => Value::Bool(as_bool(lhs, lhs_expr)? || as_bool(rhs, rhs_expr)?),
        Op::Less => numbers().map(|(a, b)| Value::Bool(a < b))?,
        Op::LessEq => numbers().map(|(a, b)| Value::Bool(a <= b))?,
        Op::Greater => numbers().map(|(a, b)| Value::Bool(a > b))?,
        Op::GreaterEq => numbers().map(|(a, b)| Value::Bool(a >= b))?,
        Op::Plus => numbers().map(|(a, b)| Value::Number(a + b))?,
        Op::Minus => numbers().map(|(a, b)| Value::Number(a - b))?,
        Op::Mul => numbers().map(|(a, b)| Value::Number(a * b))?,
        Op::Div | Op::Mod => {
            let (a, b) = numbers()?;
            if b == 0.0 {
                return Err(error("division by zero", whole.span()));
            }
            Value::Number(if operator == Op::Div { a / b } else { a % b })
        }
    })
}

fn get_attr(value: Value, name: &str, span: Option<Range<usize>>) -> Result<Value> {
    match value {
        Value::Object(mut map) => match map.remove(name) {
            Some(found) => Ok(found),
            None => Err(EvalError {
                message: format!("unknown attribute {}", quoted(name)),
                span,
                help: did_you_mean(name, map.keys().map(String::as_str)).or_else(|| {
                    let known: Vec<&str> = map.keys().map(String::as_str).collect();
                    (!known.is_empty() && known.len() <= 10)
                        .then(|| format!("known attributes: {}", known.join(", ")))
                }),
            }),
        },
        other => Err(error(
            format!(
                "cannot read attribute {} of a {}",
                quoted(name),
                other.type_name()
            ),
            span,
        )),
    }
}

fn index_value(value: Value, index: &Value, span: Option<Range<usize>>) -> Result<Value> {
    match value {
        Value::List(items) => {
            let position = match index {
                Value::Number(n) if n.fract() == 0.0 && *n >= 0.0 => *n as usize,
                Value::String(text) => text.parse::<usize>().map_err(|_| {
                    error(
                        format!("list index must be a whole number, got {}", quoted(text)),
                        span.clone(),
                    )
                })?,
                other => {
                    return Err(error(
                        format!(
                            "list index must be a whole number, got {}",
                            other.describe()
                        ),
                        span,
                    ));
                }
            };
            let len = items.len();
            items.into_iter().nth(position).ok_or_else(|| {
                error(
                    format!("index {position} is out of range for a list of {len} elements"),
                    span,
                )
            })
        }
        Value::Object(map) => {
            let key = index.to_template_string().ok_or_else(|| {
                error(
                    format!("object key must be a string, got {}", index.type_name()),
                    span.clone(),
                )
            })?;
            get_attr(Value::Object(map), &key, span)
        }
        other => Err(error(format!("cannot index a {}", other.type_name()), span)),
    }
}

#[cfg(test)]
mod tests;
