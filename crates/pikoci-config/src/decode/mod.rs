//! Decoding a parsed pipeline file into the model, collecting every problem on the way.
//!
//! One pass over the syntax tree: each block kind has a function that checks the block's shape
//! (labels, known attributes and blocks, with "did you mean" hints), evaluates its attributes and
//! builds the model type. References between blocks (a `get` naming a resource, a task naming a
//! runner, ...) are recorded with their location and checked once everything is decoded, so
//! declaration order never matters and every problem is reported together.

mod body;
mod jobs;
mod link;
mod resources;
mod steps;
mod types;
mod variables;

use std::collections::BTreeMap;
use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::structure::{Block, Body};
use pikoci_core::Pipeline;

use crate::diagnostic::{Diagnostic, did_you_mean, quoted, shorten_quoted};
use crate::eval::Scope;
use crate::source::SourceFetcher;
use crate::vars::Vars;

pub(crate) use link::RefKind;

/// The top-level block names.
pub(crate) const TOP_LEVEL: &[&str] = &[
    "variable",
    "resource_type",
    "resource",
    "runner_type",
    "secret_type",
    "service_type",
    "notification_type",
    "notification",
    "job",
];

/// A name used somewhere that must be declared somewhere (checked after decoding).
#[derive(Debug, Clone)]
pub(crate) struct Reference {
    pub(crate) kind: RefKind,
    pub(crate) name: String,
    pub(crate) span: Option<Range<usize>>,
    /// The error message when the name is unknown.
    pub(crate) message: String,
}

/// Decoding state: the diagnostics so far, what expressions can see, and deferred references.
#[derive(Debug)]
pub(crate) struct Decoder<'a> {
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) scope: Scope,
    pub(crate) references: Vec<Reference>,
    /// Every name declared in the file, whether or not its block decoded: a reference to a
    /// block that failed for another reason must not also be reported as unknown.
    pub(crate) declared: std::collections::BTreeSet<(RefKind, String)>,
    pub(crate) fetcher: &'a dyn SourceFetcher,
    /// Whether the text being decoded is a builtin or fetched definition (which may leave out
    /// commands that the engine implements natively).
    pub(crate) sourced: bool,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(fetcher: &'a dyn SourceFetcher) -> Decoder<'a> {
        Decoder {
            diags: Vec::new(),
            scope: Scope::default(),
            references: Vec::new(),
            declared: std::collections::BTreeSet::new(),
            fetcher,
            sourced: false,
        }
    }

    /// Decodes a whole pipeline file.
    pub(crate) fn pipeline(&mut self, body: &Body, vars: &Vars) -> Pipeline {
        for structure in body.iter() {
            if let Some(block) = structure.as_block() {
                let name = block.ident.as_str();
                if !TOP_LEVEL.contains(&name) {
                    let help = did_you_mean(name, TOP_LEVEL.iter().copied())
                        .or_else(|| stale_block_help(name));
                    let mut diagnostic = Diagnostic::error(
                        format!("unknown block {} in pipeline", quoted(name)),
                        block.ident.span(),
                    );
                    diagnostic.help = help;
                    self.push(diagnostic);
                }
            }
        }
        self.record_declared(body);
        for attribute in body.attributes() {
            self.warning(
                format!(
                    "attribute {} at the top level of the pipeline is not used and is ignored",
                    quoted(attribute.key.as_str())
                ),
                attribute.key.span(),
            );
        }
        let declared_vars: Vec<&str> = blocks(body, "variable")
            .filter_map(|b| b.labels.first().map(|l| l.as_str()))
            .collect();
        for name in vars.names() {
            if !declared_vars.contains(&name) {
                let mut diagnostic = crate::diagnostic::Diagnostic::warning(
                    format!(
                        "a value is given for variable {}, which the pipeline does not declare",
                        quoted(name)
                    ),
                    None,
                );
                diagnostic.help = did_you_mean(name, declared_vars.iter().copied());
                self.push(diagnostic);
            }
        }
        let variables = self.variables(body, vars);
        self.scope.vars = Some(
            variables
                .iter()
                .map(|(variable, value)| (variable.name.clone(), value.clone()))
                .collect::<BTreeMap<_, _>>(),
        );
        let mut pipeline = Pipeline {
            variables: variables
                .into_iter()
                .map(|(variable, _)| variable)
                .collect(),
            ..Pipeline::default()
        };
        let mut seen = std::collections::BTreeSet::new();
        for block in body.blocks() {
            let kind = block.ident.as_str();
            let decoded_name = match kind {
                "resource_type" => self.resource_type(block).map(|t| {
                    let name = t.name.clone();
                    pipeline.resource_types.push(t);
                    name
                }),
                "runner_type" => self.runner_type(block).map(|t| {
                    let name = t.name.clone();
                    pipeline.runner_types.push(t);
                    name
                }),
                "secret_type" => self.secret_type(block).map(|t| {
                    let name = t.name.clone();
                    pipeline.secret_types.push(t);
                    name
                }),
                "service_type" => self.service_type(block).map(|t| {
                    let name = t.name.clone();
                    pipeline.service_types.push(t);
                    name
                }),
                "notification_type" => self.notification_type(block).map(|t| {
                    let name = t.name.clone();
                    pipeline.notification_types.push(t);
                    name
                }),
                "resource" => self.resource(block).map(|r| {
                    let name = r.canonical();
                    pipeline.resources.push(r);
                    name
                }),
                "notification" => self.notification(block).map(|n| {
                    let name = n.canonical();
                    pipeline.notifications.push(n);
                    name
                }),
                _ => None,
            };
            if let Some(name) = decoded_name
                && !seen.insert((kind, name.clone()))
            {
                self.error(
                    format!("{kind} {} is declared twice", quoted(&name)),
                    block.labels.last().and_then(|l| l.span()),
                );
            }
        }
        pipeline.jobs = self.jobs(body);
        self.link(&mut pipeline);
        pipeline
    }

    /// Records the names of every top-level block (see [`Decoder::declared`]).
    fn record_declared(&mut self, body: &Body) {
        for block in body.blocks() {
            let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
            let entry = match (block.ident.as_str(), labels.as_slice()) {
                ("resource_type", [name]) => (RefKind::ResourceType, (*name).to_owned()),
                ("runner_type", [name]) => (RefKind::Runner, (*name).to_owned()),
                ("secret_type", [name]) => (RefKind::SecretType, (*name).to_owned()),
                ("service_type", [name]) => (RefKind::ServiceType, (*name).to_owned()),
                ("notification_type", [name]) => (RefKind::NotificationType, (*name).to_owned()),
                ("resource", [t, n]) => (RefKind::Resource, format!("{t}.{n}")),
                ("notification", [t, n]) => (RefKind::Notification, format!("{t}.{n}")),
                ("job", [name]) => (RefKind::Job, (*name).to_owned()),
                _ => continue,
            };
            self.declared.insert(entry);
        }
    }

    /// Records a diagnostic. Names are quoted short where messages are built (see [`quoted`]);
    /// a long value from elsewhere (a parser's error echoing its input) is shortened here,
    /// before the diagnostic is stored and hashed.
    pub(crate) fn push(&mut self, mut diagnostic: Diagnostic) {
        diagnostic.message = shorten_quoted(&diagnostic.message);
        diagnostic.help = diagnostic.help.as_deref().map(shorten_quoted);
        self.diags.push(diagnostic);
    }

    pub(crate) fn error(&mut self, message: impl Into<String>, span: Option<Range<usize>>) {
        self.push(Diagnostic::error(message, span));
    }

    pub(crate) fn error_with_help(
        &mut self,
        message: impl Into<String>,
        span: Option<Range<usize>>,
        help: Option<String>,
    ) {
        let mut diagnostic = Diagnostic::error(message, span);
        diagnostic.help = help;
        self.push(diagnostic);
    }

    pub(crate) fn warning(&mut self, message: impl Into<String>, span: Option<Range<usize>>) {
        self.push(Diagnostic::warning(message, span));
    }

    pub(crate) fn refer(
        &mut self,
        kind: RefKind,
        name: impl Into<String>,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) {
        self.references.push(Reference {
            kind,
            name: name.into(),
            span,
            message: message.into(),
        });
    }
}

/// The blocks named `name` directly inside `body`, in source order.
pub(crate) fn blocks<'b>(body: &'b Body, name: &'b str) -> impl Iterator<Item = &'b Block> {
    body.blocks()
        .filter(move |block| block.ident.as_str() == name)
}

fn stale_block_help(name: &str) -> Option<String> {
    let replacement = match name {
        "runner" => "runner_type",
        "secret" => "a variable's secret block, or secret_type",
        "service" => "service_type",
        "pipeline" => "top-level blocks directly (a file is one pipeline)",
        _ => return None,
    };
    Some(format!(
        "{} is not a top-level block here; use {replacement}",
        quoted(name)
    ))
}
