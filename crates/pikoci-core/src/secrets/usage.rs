//! Where placeholders are used, and replacing them by values.

use std::collections::BTreeMap;

use crate::{Pipeline, ResourceRef, SecretRef, VariableValue};

/// `text` with every placeholder of `values` replaced by its value, in one pass. At each
/// position the longest placeholder wins, so a placeholder that embeds another one (a secret
/// whose path uses another secret) is replaced whole, whatever the map's order.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    const PREFIX: &str = SecretRef::PLACEHOLDER_PREFIX;
    if values.is_empty() || !text.contains(PREFIX) {
        return text.to_owned();
    }
    let mut placeholders: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    placeholders.sort_by_key(|(placeholder, _)| std::cmp::Reverse(placeholder.len()));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(PREFIX) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        match placeholders.iter().find(|(p, _)| rest.starts_with(p)) {
            Some((placeholder, value)) => {
                out.push_str(value);
                rest = &rest[placeholder.len()..];
            }
            None => {
                out.push_str(PREFIX);
                rest = &rest[PREFIX.len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The secret-bound variables whose placeholders a job uses: in its steps and hooks, the
/// resources it gets and puts, and the types, runners, services and notifications it may
/// run. Variables these depend on are added by [`super::resolve`].
pub fn used_by_job(pipeline: &Pipeline, job: &str) -> Vec<String> {
    let Some(job) = pipeline.job(job) else {
        return Vec::new();
    };
    let job_json = serde_json::to_value(job).unwrap_or_default();
    let mut resources = Vec::new();
    collect_resources(&job_json, &mut resources);
    let used = serde_json::json!({
        "job": job_json,
        "resources": pipeline
            .resources
            .iter()
            .filter(|r| resources.contains(&r.reference()))
            .collect::<Vec<_>>(),
        "resource_types": pipeline.resource_types,
        "runner_types": pipeline.runner_types,
        "service_types": pipeline.service_types,
        "notification_types": pipeline.notification_types,
        "notifications": pipeline.notifications,
    });
    variables_in(pipeline, &used.to_string())
}

/// The secret-bound variables a check of `resource` uses (its parameters and its type).
pub fn used_by_resource(pipeline: &Pipeline, resource: &ResourceRef) -> Vec<String> {
    let Some(resource) = pipeline.resource(resource) else {
        return Vec::new();
    };
    let used = serde_json::json!({
        "resource": resource,
        "resource_type": pipeline.resource_type(&resource.type_name),
        "runner_types": pipeline.runner_types,
    });
    variables_in(pipeline, &used.to_string())
}

/// Every `"resource": {"type_name": ..., "name": ...}` in a serialised job (steps, hooks).
fn collect_resources(value: &serde_json::Value, out: &mut Vec<ResourceRef>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                if key == "resource"
                    && let Ok(reference) = serde_json::from_value::<ResourceRef>(child.clone())
                {
                    out.push(reference);
                }
                collect_resources(child, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_resources(item, out);
            }
        }
        _ => {}
    }
}

/// The secret-bound variables whose placeholder occurs in `text` (serialised JSON: the
/// placeholder alphabet needs no escaping unless a path or key holds quotes or backslashes,
/// so both spellings are looked for).
fn variables_in(pipeline: &Pipeline, text: &str) -> Vec<String> {
    pipeline
        .variables
        .iter()
        .filter_map(|variable| match &variable.value {
            VariableValue::Secret(secret) => {
                let placeholder = secret.placeholder();
                let escaped = serde_json::to_string(&placeholder).unwrap_or_default();
                let escaped = escaped.trim_matches('"');
                (text.contains(&placeholder) || text.contains(escaped))
                    .then(|| variable.name.clone())
            }
            _ => None,
        })
        .collect()
}
