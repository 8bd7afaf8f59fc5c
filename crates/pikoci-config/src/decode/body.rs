//! Reading blocks: labels, known attributes and blocks, and attribute values of the types the
//! language expects, each failure turned into a diagnostic at the right place.

use std::time::Duration;

use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Body};
use pikoci_core::Params;

use super::Decoder;
use crate::diagnostic::{closest, did_you_mean, quoted};
use crate::value::Value;

/// What to do with attributes a block does not know.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unknown<'k> {
    /// Reject every unknown attribute.
    Reject,
    /// Reject attributes close to a known one (probable typos); warn that others are ignored.
    Ignore,
    /// Unknown attributes are parameters; reject only those close to one of these names.
    Params(&'k [&'k str]),
}

impl Decoder<'_> {
    /// Checks a block's labels; `names` describes each expected label for the error message.
    pub(crate) fn labels(
        &mut self,
        block: &Block,
        what: &str,
        names: &[&str],
    ) -> Option<Vec<String>> {
        let labels: Vec<String> = block.labels.iter().map(|l| l.as_str().to_owned()).collect();
        if labels.len() == names.len() {
            return Some(labels);
        }
        let expected = match names.len() {
            0 => "no labels".to_owned(),
            1 => format!("1 label ({})", names[0]),
            n => format!("{n} labels ({})", names.join(", ")),
        };
        let example = std::iter::once(block.ident.as_str().to_owned())
            .chain(names.iter().map(|n| quoted(n)))
            .collect::<Vec<_>>()
            .join(" ");
        self.error_with_help(
            format!("{what} needs {expected}, found {}", labels.len()),
            block.ident.span(),
            Some(format!("write it as {example} {{ ... }}")),
        );
        None
    }

    /// Reports blocks of `body` that are not in `allowed`.
    pub(crate) fn check_blocks(&mut self, body: &Body, allowed: &[&str], context: &str) {
        for block in body.blocks() {
            let name = block.ident.as_str();
            if !allowed.contains(&name) {
                self.error_with_help(
                    format!("unknown block {} in {context}", quoted(name)),
                    block.ident.span(),
                    did_you_mean(name, allowed.iter().copied()),
                );
            }
        }
    }

    /// Reports attributes of `body` that are not in `known`, following `unknown`.
    pub(crate) fn check_attributes(
        &mut self,
        body: &Body,
        known: &[&str],
        unknown: Unknown<'_>,
        context: &str,
    ) {
        for attribute in body.attributes() {
            let name = attribute.key.as_str();
            if known.contains(&name) {
                continue;
            }
            match unknown {
                Unknown::Reject => self.error_with_help(
                    format!("unsupported attribute {} in {context}", quoted(name)),
                    attribute.key.span(),
                    did_you_mean(name, known.iter().copied()).or_else(|| {
                        (!known.is_empty()).then(|| {
                            format!("the attributes of {context} are: {}", known.join(", "))
                        })
                    }),
                ),
                Unknown::Ignore => {
                    if let Some(close) = closest(name, known.iter().copied()) {
                        self.error_with_help(
                            format!("{} in {context} is not a known attribute", quoted(name)),
                            attribute.key.span(),
                            Some(format!("did you mean {}?", quoted(close))),
                        );
                    } else {
                        self.warning(
                            format!(
                                "attribute {} in {context} is not used and is ignored",
                                quoted(name)
                            ),
                            attribute.key.span(),
                        );
                    }
                }
                Unknown::Params(typo_targets) => {
                    if let Some(close) = closest(name, typo_targets.iter().copied()) {
                        self.error_with_help(
                            format!("{} in {context} is not a known attribute", quoted(name)),
                            attribute.key.span(),
                            Some(format!(
                                "did you mean {close}? A parameter name this close to \
                                 {close} is taken as a typo: rename it if it really is a parameter",
                                close = quoted(close)
                            )),
                        );
                    }
                }
            }
        }
    }

    /// Evaluates an expression, reporting failures.
    pub(crate) fn eval(&mut self, expr: &Expression) -> Option<Value> {
        match self.scope.eval(expr) {
            Ok(value) => Some(value),
            Err(err) => {
                self.error_with_help(err.message, err.span.or_else(|| expr.span()), err.help);
                None
            }
        }
    }

    /// A string (numbers and bools are converted to their string form).
    pub(crate) fn string(&mut self, attribute: &Attribute, context: &str) -> Option<String> {
        let value = self.eval(&attribute.value)?;
        self.string_of(
            value,
            &attribute.value,
            &format!("{} in {context}", quoted(attribute.key.as_str())),
        )
    }

    /// The string form of a primitive value; collections are an error naming `what`.
    pub(crate) fn string_of(
        &mut self,
        value: Value,
        expr: &Expression,
        what: &str,
    ) -> Option<String> {
        match value.to_template_string() {
            Some(text) => Some(text),
            None => {
                self.error(
                    format!(
                        "{what} must be a string, got {} {}",
                        value.type_name(),
                        value.describe()
                    ),
                    expr.span(),
                );
                None
            }
        }
    }

    /// A bool (the strings `"true"` and `"false"` are accepted too).
    pub(crate) fn bool(&mut self, attribute: &Attribute, context: &str) -> Option<bool> {
        match self.eval(&attribute.value)? {
            Value::Bool(flag) => Some(flag),
            Value::String(text) if text == "true" => Some(true),
            Value::String(text) if text == "false" => Some(false),
            other => {
                self.error(
                    format!(
                        "{} in {context} must be true or false, got {}",
                        quoted(attribute.key.as_str()),
                        other.describe()
                    ),
                    attribute.value.span(),
                );
                None
            }
        }
    }

    /// A whole number.
    pub(crate) fn integer(&mut self, attribute: &Attribute, context: &str) -> Option<i64> {
        let value = self.eval(&attribute.value)?;
        let number = match &value {
            Value::Number(n) => Some(*n),
            Value::String(text) => text.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(n as i64),
            _ => {
                self.error(
                    format!(
                        "{} in {context} must be a whole number, got {}",
                        quoted(attribute.key.as_str()),
                        value.describe()
                    ),
                    attribute.value.span(),
                );
                None
            }
        }
    }

    /// A list of strings (a set is accepted too).
    pub(crate) fn string_list(
        &mut self,
        attribute: &Attribute,
        context: &str,
    ) -> Option<Vec<String>> {
        let value = self.eval(&attribute.value)?;
        let what = format!("{} in {context}", quoted(attribute.key.as_str()));
        let Some(items) = value.as_sequence() else {
            self.error(
                format!(
                    "{what} must be a list of strings, got {} {}",
                    value.type_name(),
                    value.describe()
                ),
                attribute.value.span(),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.to_template_string() {
                Some(text) => out.push(text),
                None => {
                    self.error(
                        format!(
                            "{what} must be a list of strings, but it holds {} {}",
                            item.type_name(),
                            item.describe()
                        ),
                        attribute.value.span(),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A duration (`timeout` and friends); `None` both for "no limit" and for errors, which are
    /// reported with `describe` naming the owner (`on task step "t"`).
    pub(crate) fn duration(&mut self, attribute: &Attribute, owner: &str) -> Option<Duration> {
        let text = self.string(attribute, owner)?;
        match pikoci_core::duration::parse(&text) {
            Ok(duration) => duration,
            Err(err) => {
                self.error_with_help(
                    format!(
                        "invalid {} {} {owner}: {err}",
                        attribute.key.as_str(),
                        quoted(&text)
                    ),
                    attribute.value.span(),
                    Some("durations look like 30s, 5m, 1h30m or 2d".to_owned()),
                );
                None
            }
        }
    }

    /// Every attribute of `body` except `skip` and names reported as typos of `skip`, as
    /// string parameters.
    pub(crate) fn params(&mut self, body: &Body, skip: &[&str], context: &str) -> Params {
        let mut params = Params::new();
        for attribute in body.attributes() {
            let name = attribute.key.as_str();
            if skip.contains(&name) || closest(name, skip.iter().copied()).is_some() {
                continue;
            }
            if let Some(value) = self.string(attribute, context) {
                params.insert(name.to_owned(), value);
            }
        }
        params
    }

    /// The one `params { ... }` block of `body` (empty when there is none; more than one is an
    /// error).
    pub(crate) fn single_params_block(&mut self, body: &Body, context: &str) -> Params {
        let mut found = body.blocks().filter(|b| b.ident.as_str() == "params");
        let params = found
            .next()
            .map(|params| self.params_block(params, context))
            .unwrap_or_default();
        for extra in found {
            self.error(
                format!("{context} has more than one params block"),
                extra.ident.span(),
            );
        }
        params
    }

    /// A `params { ... }` block: attributes only, each a string.
    pub(crate) fn params_block(&mut self, block: &Block, context: &str) -> Params {
        let context = format!("params in {context}");
        self.labels(block, &context, &[]);
        self.check_blocks(&block.body, &[], &context);
        self.params(&block.body, &[], &context)
    }

    /// Tags of a job or resource: at most 10, canonical, no duplicates.
    pub(crate) fn tags(&mut self, attribute: &Attribute, owner: &str) -> Vec<String> {
        let Some(tags) = self.string_list(attribute, owner) else {
            return Vec::new();
        };
        let span = attribute.value.span();
        if tags.len() > 10 {
            self.error(
                format!("{owner}: too many tags ({}), maximum is 10", tags.len()),
                span.clone(),
            );
        }
        for (i, tag) in tags.iter().enumerate() {
            if let Some((reason, help)) = super::resources::name_problem(tag) {
                self.error_with_help(
                    format!("{owner}: invalid tag {}: {reason}", quoted(tag)),
                    span.clone(),
                    help,
                );
            } else if tags[..i].contains(tag) {
                self.error(
                    format!("{owner}: duplicate tag {}", quoted(tag)),
                    span.clone(),
                );
            }
        }
        tags
    }
}

/// The attribute `name` of `body`.
pub(crate) fn attribute<'b>(body: &'b Body, name: &str) -> Option<&'b Attribute> {
    body.get_attribute(name)
}
