//! The dependency graph between secret-bound variables: which variables a set of variables
//! needs, cycles, and the layers they are resolved in.

use std::collections::BTreeSet;

use super::{MAX_DEPTH, SecretError};
use crate::ErrorKind;
use crate::{Pipeline, SecretRef, SecretType, VariableValue};

/// One secret-bound variable.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// The variable's name.
    pub(super) name: String,
    /// Its binding, placeholders of other variables included.
    pub(super) secret: SecretRef,
    /// The placeholder standing for its value.
    pub(super) placeholder: String,
    /// The variables whose placeholders occur in its path, key or secret type (indexes into
    /// the node list; may include itself).
    pub(super) deps: Vec<usize>,
}

/// Every secret-bound variable of `pipeline`, in declaration order, with its dependencies.
pub(super) fn nodes(pipeline: &Pipeline) -> Vec<Node> {
    let mut nodes: Vec<Node> = pipeline
        .variables
        .iter()
        .filter_map(|variable| match &variable.value {
            VariableValue::Secret(secret) => Some(Node {
                name: variable.name.clone(),
                placeholder: secret.placeholder(),
                secret: secret.clone(),
                deps: Vec::new(),
            }),
            _ => None,
        })
        .collect();
    let placeholders: Vec<String> = nodes.iter().map(|n| n.placeholder.clone()).collect();
    for node in &mut nodes {
        let mut texts = vec![node.secret.path.as_str(), node.secret.key.as_str()];
        if let Some(definition) = pipeline.secret_type(&node.secret.secret_type) {
            texts.extend(definition_texts(definition));
        }
        node.deps = placeholders
            .iter()
            .enumerate()
            .filter(|(_, placeholder)| texts.iter().any(|t| t.contains(placeholder.as_str())))
            .map(|(index, _)| index)
            .collect();
    }
    nodes
}

/// Every string of a secret type that placeholders are substituted into.
fn definition_texts(definition: &SecretType) -> Vec<&str> {
    let mut texts: Vec<&str> = definition.config.values().map(String::as_str).collect();
    if let Some(get) = &definition.get {
        texts.extend(get.args.iter().map(String::as_str));
        texts.extend(get.params.values().map(String::as_str));
    }
    if let Some(runner) = &definition.runner_override {
        texts.extend(runner.args.iter().map(String::as_str));
        texts.extend(runner.params.values().map(String::as_str));
    }
    texts
}

/// The nodes named in `wanted` and everything they depend on.
pub(super) fn closure<'a>(nodes: &[Node], wanted: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
    let mut selected = BTreeSet::new();
    let mut todo: Vec<usize> = wanted
        .into_iter()
        .filter_map(|name| nodes.iter().position(|n| n.name == name))
        .collect();
    while let Some(index) = todo.pop() {
        if selected.insert(index) {
            todo.extend(nodes[index].deps.iter().copied());
        }
    }
    selected.into_iter().collect()
}

/// The secret-bound variables named in `wanted` and every secret-bound variable they depend on
/// (through their path, key or secret type), in declaration order: what [`super::resolve`]
/// fetches for them.
pub fn with_dependencies<'a>(
    pipeline: &Pipeline,
    wanted: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let nodes = nodes(pipeline);
    closure(&nodes, wanted)
        .into_iter()
        .map(|index| nodes[index].name.clone())
        .collect()
}

/// Orders `selected` into layers: a variable's layer comes after the layers of all its
/// dependencies. Fails on a cycle (naming it) or a chain deeper than [`MAX_DEPTH`].
pub(super) fn layers(nodes: &[Node], selected: &[usize]) -> Result<Vec<Vec<usize>>, SecretError> {
    let mut state = Walk {
        nodes,
        level: vec![None; nodes.len()],
        stack: Vec::new(),
    };
    for &index in selected {
        state.visit(index)?;
    }
    let mut layers: Vec<Vec<usize>> = Vec::new();
    for &index in selected {
        let level = state.level[index].unwrap_or(1);
        if layers.len() < level {
            layers.resize(level, Vec::new());
        }
        layers[level - 1].push(index);
    }
    Ok(layers)
}

/// Depth-first walk computing each node's level (1 for a node without dependencies).
struct Walk<'a> {
    nodes: &'a [Node],
    level: Vec<Option<usize>>,
    /// The nodes being visited, outermost first.
    stack: Vec<usize>,
}

impl Walk<'_> {
    fn visit(&mut self, index: usize) -> Result<usize, SecretError> {
        if let Some(level) = self.level[index] {
            return Ok(level);
        }
        if let Some(start) = self.stack.iter().position(|&i| i == index) {
            let mut names: Vec<&str> = self.stack[start..]
                .iter()
                .map(|&i| self.nodes[i].name.as_str())
                .collect();
            names.push(&self.nodes[index].name);
            return Err(SecretError::new(
                ErrorKind::InvalidInput,
                format!("circular secret dependency: {}", names.join(" -> ")),
            ));
        }
        // The chain above this node is already as long as allowed (and recursion stays shallow).
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.too_deep(index));
        }
        self.stack.push(index);
        let mut level = 1;
        for &dep in &self.nodes[index].deps {
            level = level.max(self.visit(dep)? + 1);
        }
        self.stack.pop();
        if level > MAX_DEPTH {
            return Err(self.too_deep(index));
        }
        self.level[index] = Some(level);
        Ok(level)
    }

    fn too_deep(&self, index: usize) -> SecretError {
        SecretError::new(
            ErrorKind::InvalidInput,
            format!(
                "secret dependency chain too deep (max {MAX_DEPTH} levels), at variable \"{}\"",
                self.nodes[index].name
            ),
        )
    }
}
