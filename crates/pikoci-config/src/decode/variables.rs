//! `variable` blocks: types, defaults, given values and secret bindings.

use hcl_edit::Span;
use hcl_edit::structure::{Block, Body};
use pikoci_core::{SecretRef, ValueType, Variable, VariableValue};

use super::body::{Unknown, attribute};
use super::{Decoder, RefKind, blocks};
use crate::diagnostic::{MAX_QUOTED_CHARS, quoted};
use crate::eval::Scope;
use crate::value::Value;
use crate::vars::Vars;

/// A variable bound to a secret, before its `path`/`key` are evaluated against the other
/// variables.
struct SecretBinding<'b> {
    index: usize,
    block: &'b Block,
    secret_type: String,
}

impl Decoder<'_> {
    /// Decodes every `variable` block; returns each variable with the value expressions see.
    pub(crate) fn variables(&mut self, body: &Body, vars: &Vars) -> Vec<(Variable, Value)> {
        // Pass 1: types, defaults and given values, in a scope without `var`.
        self.scope = Scope {
            vars: None,
            type_keywords: true,
            ..Scope::default()
        };
        let mut decoded: Vec<(Variable, Value)> = Vec::new();
        let mut secrets = Vec::new();
        for block in blocks(body, "variable") {
            let Some(labels) = self.labels(block, "variable", &["name"]) else {
                continue;
            };
            let name = labels[0].clone();
            if decoded.iter().any(|(v, _)| v.name == name) {
                self.error(
                    format!("variable {} is declared twice", quoted(&name)),
                    block.ident.span(),
                );
                continue;
            }
            let context = format!("variable {}", quoted(&name));
            self.check_attributes(
                &block.body,
                &["type", "default", "description"],
                Unknown::Reject,
                &context,
            );
            self.check_blocks(&block.body, &["secret"], &context);
            let Some(value_type) = self.variable_type(&block.body, &name, block) else {
                continue;
            };
            let secret_block = blocks(&block.body, "secret").next();
            if let Some(extra) = blocks(&block.body, "secret").nth(1) {
                self.error(
                    format!("{context} has more than one secret block"),
                    extra.ident.span(),
                );
            }
            // The secret block is checked even when a value is given, so that a file that is
            // valid with --var is valid without it too.
            let secret_labels = secret_block.and_then(|secret| self.secret_block(secret, &name));
            let given = vars.get(&name);
            let value = if let Some(given) = given {
                match given.to_typed(&name, value_type) {
                    Ok(json) => VariableValue::Given { value: json },
                    Err(message) => {
                        self.error(message, block.ident.span());
                        continue;
                    }
                }
            } else if let Some(secret) = secret_block {
                if value_type != ValueType::String {
                    self.error(
                        format!("{context} is bound to a secret, so its type must be string, not {value_type}"),
                        block.ident.span(),
                    );
                    continue;
                }
                let Some(secret_labels) = secret_labels else {
                    continue;
                };
                secrets.push(SecretBinding {
                    index: decoded.len(),
                    block: secret,
                    secret_type: secret_labels[0].clone(),
                });
                // Pass 2 fills in path and key.
                VariableValue::Secret(SecretRef {
                    secret_type: secret_labels[0].clone(),
                    path: String::new(),
                    key: String::new(),
                })
            } else if let Some(default) = attribute(&block.body, "default") {
                let Some(value) = self.eval(&default.value) else {
                    continue;
                };
                match default_value(value, value_type) {
                    Some(json) => VariableValue::Default { value: json },
                    None => {
                        self.error(
                            format!(
                                "variable {} has an invalid default type, expected '{value_type}'",
                                quoted(&name)
                            ),
                            default.value.span(),
                        );
                        continue;
                    }
                }
            } else {
                self.error_with_help(
                    format!(
                        "variable {} has no value: it has no default and none was given",
                        quoted(&name)
                    ),
                    block.ident.span(),
                    Some(format!(
                        "give it with --var {}=VALUE or in a vars file, or add a default",
                        // Echo the name only when short: it is not quoted here.
                        if name.len() <= MAX_QUOTED_CHARS {
                            name.as_str()
                        } else {
                            "NAME"
                        }
                    )),
                );
                continue;
            };
            let variable = Variable {
                name,
                value_type,
                value,
            };
            let seen = scope_value(&variable);
            decoded.push((variable, seen));
        }
        // Pass 2: secret paths and keys may use other variables (including other secrets).
        let failed_vars = blocks(body, "variable")
            .filter_map(|b| b.labels.first().map(|l| l.as_str().to_owned()))
            .filter(|name| !decoded.iter().any(|(v, _)| v.name == *name))
            .collect();
        self.scope = Scope {
            vars: Some(
                decoded
                    .iter()
                    .map(|(v, value)| (v.name.clone(), value.clone()))
                    .collect(),
            ),
            failed_vars,
            ..Scope::default()
        };
        // A secret's path or key may hold another secret's placeholder: re-evaluate until
        // nothing changes. With N bindings, N + 1 rounds settle any chain; still changing after
        // that means a cycle.
        let mut changing: Vec<String> = Vec::new();
        let mut last_round = Vec::new();
        for _ in 0..=secrets.len() {
            changing.clear();
            let saved = std::mem::take(&mut self.diags);
            for binding in &secrets {
                let name = decoded[binding.index].0.name.clone();
                let secret = self.secret_ref(binding, &name);
                if decoded[binding.index].0.value != VariableValue::Secret(secret.clone()) {
                    changing.push(name);
                    decoded[binding.index].1 = Value::String(secret.placeholder());
                    decoded[binding.index].0.value = VariableValue::Secret(secret);
                }
            }
            if let Some(vars) = &mut self.scope.vars {
                for (variable, value) in &decoded {
                    vars.insert(variable.name.clone(), value.clone());
                }
            }
            // Only the last round's diagnostics count.
            last_round = std::mem::replace(&mut self.diags, saved);
            if changing.is_empty() {
                break;
            }
        }
        self.diags.extend(last_round);
        if !changing.is_empty() {
            let first = secrets
                .iter()
                .find(|b| decoded[b.index].0.name == changing[0]);
            self.error_with_help(
                format!(
                    "circular secret dependency between variables {}",
                    changing.join(", ")
                ),
                first.and_then(|b| b.block.ident.span()),
                Some(
                    "a secret's path and key may use other variables, but not in a loop".to_owned(),
                ),
            );
        }
        decoded
    }

    /// Checks a `secret` block's shape and records its type as a reference; its labels.
    fn secret_block(&mut self, secret: &Block, name: &str) -> Option<Vec<String>> {
        let context = format!("secret in variable {}", quoted(name));
        let labels = self.labels(secret, &context, &["secret type"])?;
        self.check_attributes(&secret.body, &["path", "key"], Unknown::Reject, &context);
        self.check_blocks(&secret.body, &[], &context);
        self.refer(
            RefKind::SecretType,
            labels[0].clone(),
            secret.labels.first().and_then(|l| l.span()),
            format!(
                "variable {} secret references unknown secret_type {}",
                quoted(name),
                quoted(&labels[0])
            ),
        );
        Some(labels)
    }

    /// Evaluates the `path` and `key` of a secret binding in the current scope.
    fn secret_ref(&mut self, binding: &SecretBinding<'_>, name: &str) -> SecretRef {
        let context = format!("secret of variable {}", quoted(name));
        let path = match attribute(&binding.block.body, "path") {
            Some(path) => self.string(path, &context).unwrap_or_default(),
            None => String::new(),
        };
        let key = match attribute(&binding.block.body, "key") {
            Some(key) => self.string(key, &context).unwrap_or_default(),
            None => {
                self.error(
                    format!(
                        "{context} needs a key: write key = \"NAME\" inside secret {}",
                        quoted(&binding.secret_type)
                    ),
                    binding.block.ident.span(),
                );
                String::new()
            }
        };
        SecretRef {
            secret_type: binding.secret_type.clone(),
            path,
            key,
        }
    }

    fn variable_type(&mut self, body: &Body, name: &str, block: &Block) -> Option<ValueType> {
        let Some(type_attribute) = attribute(body, "type") else {
            self.error_with_help(
                format!("variable {} needs a type", quoted(name)),
                block.ident.span(),
                Some("add type = string (or number, or bool)".to_owned()),
            );
            return None;
        };
        let value = self.eval(&type_attribute.value)?;
        match value.as_str().and_then(ValueType::parse) {
            Some(value_type) => Some(value_type),
            None => {
                self.error_with_help(
                    format!(
                        "variable {} has an unknown type {}",
                        quoted(name),
                        value.describe()
                    ),
                    type_attribute.value.span(),
                    Some("use string, number or bool".to_owned()),
                );
                None
            }
        }
    }
}

/// The value expressions see for a variable.
fn scope_value(variable: &Variable) -> Value {
    match &variable.value {
        VariableValue::Given { value } | VariableValue::Default { value } => {
            Value::from_json(value)
        }
        VariableValue::Secret(secret) => Value::String(secret.placeholder()),
    }
}

/// A default converted to the declared type, as Terraform converts primitives.
fn default_value(value: Value, value_type: ValueType) -> Option<serde_json::Value> {
    match (value_type, value) {
        (ValueType::String, value) => value.to_template_string().map(serde_json::Value::String),
        (ValueType::Number, Value::Number(n)) => Some(Value::Number(n).to_json()),
        (ValueType::Number, Value::String(text)) => text
            .trim()
            .parse::<f64>()
            .ok()
            .map(|n| Value::Number(n).to_json()),
        (ValueType::Bool, Value::Bool(flag)) => Some(serde_json::Value::Bool(flag)),
        (ValueType::Bool, Value::String(text)) => match text.as_str() {
            "true" => Some(serde_json::Value::Bool(true)),
            "false" => Some(serde_json::Value::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}
