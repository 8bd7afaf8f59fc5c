//! Resolving the values of a job's `input` blocks for a build.

use std::collections::BTreeMap;

use super::{Input, Job, ValueType};

/// How a build was started, which decides what happens to inputs without a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    /// By a person (UI, API, CLI, `pikoci run`): inputs without a default are required.
    Manual,
    /// By a new version or a passed constraint: defaults, else empty values (`""`, `0`,
    /// `false`).
    Automatic,
}

impl Job {
    /// The value of every input for a build, from `given` (text values, as typed) and the
    /// defaults. Every problem is returned, one message per problem.
    pub fn resolve_inputs(
        &self,
        given: &BTreeMap<String, String>,
        trigger: TriggerKind,
    ) -> Result<BTreeMap<String, String>, Vec<String>> {
        let mut problems = Vec::new();
        for name in given.keys() {
            if !self.inputs.iter().any(|input| &input.name == name) {
                let known: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
                let hint = match crate::name::closest(name, known.iter().copied()) {
                    Some(close) => format!(" (did you mean \"{close}\"?)"),
                    None if known.is_empty() => " (the job has no inputs)".to_owned(),
                    None => format!(" (the inputs are: {})", known.join(", ")),
                };
                problems.push(format!(
                    "unknown input \"{name}\" for job \"{}\"{hint}",
                    self.name
                ));
            }
        }
        let mut values = BTreeMap::new();
        for input in &self.inputs {
            let value = match (given.get(&input.name), &input.default, trigger) {
                (Some(value), _, _) => value.clone(),
                (None, Some(default), _) => default.clone(),
                (None, None, TriggerKind::Automatic) => zero_value(input.value_type).to_owned(),
                (None, None, TriggerKind::Manual) => {
                    problems.push(format!(
                        "required input \"{}\" of job \"{}\" has no value{}",
                        input.name,
                        self.name,
                        input
                            .description
                            .as_ref()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    ));
                    continue;
                }
            };
            match check(input, &value) {
                Ok(()) => {
                    values.insert(input.name.clone(), value);
                }
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() {
            Ok(values)
        } else {
            Err(problems)
        }
    }
}

fn zero_value(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::String => "",
        ValueType::Number => "0",
        ValueType::Bool => "false",
    }
}

fn check(input: &Input, value: &str) -> Result<(), String> {
    let name = &input.name;
    match input.value_type {
        ValueType::Number if value.trim().parse::<f64>().is_err() => {
            return Err(format!(
                "input \"{name}\": \"{value}\" is not a valid number"
            ));
        }
        ValueType::Bool if value != "true" && value != "false" => {
            return Err(format!(
                "input \"{name}\": \"{value}\" must be true or false"
            ));
        }
        _ => {}
    }
    if input.options.is_empty() {
        return Ok(());
    }
    let chosen: Vec<&str> = if input.multiple {
        value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    } else {
        vec![value]
    };
    match chosen
        .iter()
        .find(|item| !input.options.iter().any(|o| o == *item))
    {
        Some(item) => Err(format!(
            "input \"{name}\": \"{item}\" is not in options ({})",
            input.options.join(", ")
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(inputs: Vec<Input>) -> Job {
        Job {
            inputs,
            ..Job::new("deploy")
        }
    }

    fn input(
        name: &str,
        value_type: ValueType,
        default: Option<&str>,
        options: &[&str],
        multiple: bool,
    ) -> Input {
        Input {
            name: name.to_owned(),
            value_type,
            description: None,
            default: default.map(str::to_owned),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            multiple,
        }
    }

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn manual_triggers_need_required_inputs_and_check_every_value() {
        let job = job(vec![
            input("version", ValueType::String, None, &[], false),
            input("count", ValueType::Number, Some("1"), &[], false),
            input("dry_run", ValueType::Bool, Some("false"), &[], false),
            input("regions", ValueType::String, None, &["eu", "us"], true),
        ]);
        let values = job
            .resolve_inputs(
                &given(&[("version", "1.2"), ("regions", "eu,us")]),
                TriggerKind::Manual,
            )
            .unwrap();
        assert_eq!(
            values,
            given(&[
                ("count", "1"),
                ("dry_run", "false"),
                ("regions", "eu,us"),
                ("version", "1.2")
            ])
        );
        let problems = job
            .resolve_inputs(
                &given(&[
                    ("count", "many"),
                    ("dry_run", "yes"),
                    ("regions", "eu,asia"),
                    ("verison", "x"),
                ]),
                TriggerKind::Manual,
            )
            .unwrap_err();
        assert_eq!(
            problems,
            [
                "unknown input \"verison\" for job \"deploy\" (did you mean \"version\"?)",
                "required input \"version\" of job \"deploy\" has no value",
                "input \"count\": \"many\" is not a valid number",
                "input \"dry_run\": \"yes\" must be true or false",
                "input \"regions\": \"asia\" is not in options (eu, us)",
            ]
        );
    }

    #[test]
    fn automatic_triggers_use_defaults_then_zero_values() {
        let job = job(vec![
            input("a", ValueType::String, None, &[], false),
            input("n", ValueType::Number, None, &[], false),
            input("b", ValueType::Bool, None, &[], false),
            input("d", ValueType::String, Some("x"), &[], false),
        ]);
        let values = job
            .resolve_inputs(&BTreeMap::new(), TriggerKind::Automatic)
            .unwrap();
        assert_eq!(
            values,
            given(&[("a", ""), ("b", "false"), ("d", "x"), ("n", "0")])
        );
    }
}
