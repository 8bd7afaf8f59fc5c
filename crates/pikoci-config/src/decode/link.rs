//! After decoding: builtins the pipeline uses without declaring them are added, every recorded
//! reference is checked, and job names in `passed` and notification filters are expanded from
//! `for_each` base names to instance names.

use std::collections::{BTreeMap, BTreeSet};

use pikoci_core::{JobFilter, Origin, Pipeline, StepKind};

use super::Decoder;
use crate::builtin::{self, Kind};
use crate::diagnostic::{did_you_mean, quoted};

/// What kind of thing a [`super::Reference`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RefKind {
    Runner,
    ResourceType,
    Resource,
    SecretType,
    ServiceType,
    NotificationType,
    Notification,
    /// A job name or a `for_each`/`matrix` base name.
    Job,
}

/// The secret type that needs no declaration: the built-in store.
const STORE_SECRET_TYPE: &str = "pikoci";

impl Decoder<'_> {
    pub(crate) fn link(&mut self, pipeline: &mut Pipeline) {
        self.add_builtins(pipeline);
        let names = |kind: RefKind| -> BTreeSet<String> {
            match kind {
                RefKind::Runner => pipeline
                    .runner_types
                    .iter()
                    .map(|t| t.name.clone())
                    .collect(),
                RefKind::ResourceType => pipeline
                    .resource_types
                    .iter()
                    .map(|t| t.name.clone())
                    .collect(),
                RefKind::Resource => pipeline.resources.iter().map(|r| r.canonical()).collect(),
                RefKind::SecretType => pipeline
                    .secret_types
                    .iter()
                    .map(|t| t.name.clone())
                    .chain([STORE_SECRET_TYPE.to_owned()])
                    .collect(),
                RefKind::ServiceType => pipeline
                    .service_types
                    .iter()
                    .map(|t| t.name.clone())
                    .collect(),
                RefKind::NotificationType => pipeline
                    .notification_types
                    .iter()
                    .map(|t| t.name.clone())
                    .collect(),
                RefKind::Notification => pipeline
                    .notifications
                    .iter()
                    .map(|n| n.canonical())
                    .collect(),
                RefKind::Job => pipeline
                    .jobs
                    .iter()
                    .flat_map(|j| {
                        [
                            Some(j.name.clone()),
                            j.instance_of.as_ref().map(|i| i.base.clone()),
                        ]
                    })
                    .flatten()
                    .collect(),
            }
        };
        let references = std::mem::take(&mut self.references);
        // The names of each kind, gathered once: per reference, it was references times names.
        let mut known_by_kind: BTreeMap<RefKind, BTreeSet<String>> = BTreeMap::new();
        for reference in references {
            let known = known_by_kind
                .entry(reference.kind)
                .or_insert_with(|| names(reference.kind));
            if known.contains(&reference.name)
                || self
                    .declared
                    .contains(&(reference.kind, reference.name.clone()))
            {
                continue;
            }
            let help = did_you_mean(&reference.name, known.iter().map(String::as_str))
                .or_else(|| hint(reference.kind, &reference.name));
            self.error_with_help(reference.message, reference.span, help);
        }
        expand_job_names(pipeline);
    }

    /// Adds the builtin runners, and the builtin resource and secret types the pipeline uses
    /// without declaring them.
    fn add_builtins(&mut self, pipeline: &mut Pipeline) {
        for name in builtin::names(Kind::RunnerType) {
            if pipeline.runner_type(name).is_none()
                && let Some(mut runner) =
                    self.builtin(Kind::RunnerType, name, |d, b| d.runner_type(b))
            {
                runner.origin = Origin::Builtin;
                pipeline.runner_types.push(runner);
            }
        }
        // From the references, not the decoded resources: a resource that failed to decode for
        // another reason must not also report its builtin type as unknown.
        let used_types: BTreeSet<String> = self
            .references
            .iter()
            .filter(|r| r.kind == RefKind::ResourceType)
            .map(|r| r.name.clone())
            .collect();
        for name in used_types {
            if pipeline.resource_type(&name).is_none()
                && let Some(mut resource_type) =
                    self.builtin(Kind::ResourceType, &name, |d, b| d.resource_type(b))
            {
                resource_type.origin = Origin::Builtin;
                pipeline.resource_types.push(resource_type);
            }
        }
        let used_secrets: BTreeSet<String> = self
            .references
            .iter()
            .filter(|r| r.kind == RefKind::SecretType)
            .map(|r| r.name.clone())
            .collect();
        for name in used_secrets {
            if pipeline.secret_type(&name).is_none()
                && let Some(mut secret_type) =
                    self.builtin(Kind::SecretType, &name, |d, b| d.secret_type(b))
            {
                secret_type.origin = Origin::Builtin;
                pipeline.secret_types.push(secret_type);
            }
        }
    }

    /// Decodes the embedded builtin `name`, if there is one.
    fn builtin<T>(
        &mut self,
        kind: Kind,
        name: &str,
        decode: impl FnOnce(&mut Decoder<'_>, &hcl_edit::structure::Block) -> Option<T>,
    ) -> Option<T> {
        let text = builtin::lookup(kind, name)?;
        let body = match hcl_edit::parser::parse_body(text) {
            Ok(body) => body,
            Err(err) => {
                self.error(
                    format!(
                        "the builtin {} {} does not parse: {err}",
                        kind.block_name(),
                        quoted(name)
                    ),
                    None,
                );
                return None;
            }
        };
        let block = super::blocks(&body, kind.block_name()).next()?;
        let mut inner = Decoder::new(self.fetcher);
        inner.sourced = true;
        let decoded = decode(&mut inner, block);
        for diagnostic in inner.diags {
            self.error(
                format!(
                    "the builtin {} {} is invalid: {}",
                    kind.block_name(),
                    quoted(name),
                    diagnostic.message
                ),
                None,
            );
        }
        decoded
    }
}

fn hint(kind: RefKind, name: &str) -> Option<String> {
    match kind {
        RefKind::NotificationType if builtin::lookup(Kind::NotificationType, name).is_some() => {
            Some(format!(
                "declare it: notification_type \"{name}\" {{ source = \"pikoci://{name}\" }}"
            ))
        }
        RefKind::ServiceType if builtin::lookup(Kind::ServiceType, name).is_some() => {
            Some(format!(
                "declare it: service_type {} {{ source = \"pikoci://{name}\" }}",
                quoted(name)
            ))
        }
        RefKind::Resource => Some(format!(
            "declare it: resource {} {} {{ ... }}",
            quoted(name.split_once('.').map_or(name, |(t, _)| t)),
            quoted(name.split_once('.').map_or("", |(_, n)| n))
        )),
        _ => None,
    }
}

/// Replaces `for_each`/`matrix` base names by the names of all their instances.
fn expand_job_names(pipeline: &mut Pipeline) {
    let instances: Vec<(String, String)> = pipeline
        .jobs
        .iter()
        .filter_map(|j| {
            j.instance_of
                .as_ref()
                .map(|i| (i.base.clone(), j.name.clone()))
        })
        .collect();
    let regular: BTreeSet<String> = pipeline
        .jobs
        .iter()
        .filter(|j| j.instance_of.is_none())
        .map(|j| j.name.clone())
        .collect();
    let expand = |names: &mut Vec<String>| {
        let mut out = Vec::with_capacity(names.len());
        for name in names.drain(..) {
            let of_base: Vec<String> = instances
                .iter()
                .filter(|(base, _)| *base == name)
                .map(|(_, n)| n.clone())
                .collect();
            if of_base.is_empty() || regular.contains(&name) {
                out.push(name);
            } else {
                out.extend(of_base);
            }
        }
        let mut seen = BTreeSet::new();
        out.retain(|name| seen.insert(name.clone()));
        *names = out;
    };
    for job in &mut pipeline.jobs {
        fn walk(steps: &mut [pikoci_core::Step], expand: &dyn Fn(&mut Vec<String>)) {
            for step in steps {
                match &mut step.kind {
                    StepKind::Get(get) => expand(&mut get.passed),
                    StepKind::InParallel(group) => walk(&mut group.steps, expand),
                    StepKind::If(chain) => {
                        for branch in &mut chain.branches {
                            walk(&mut branch.steps, expand);
                        }
                    }
                    _ => {}
                }
            }
        }
        walk(&mut job.plan, &expand);
    }
    for notification in &mut pipeline.notifications {
        match &mut notification.jobs {
            JobFilter::Only(names) | JobFilter::Except(names) => expand(names),
            JobFilter::All => {}
        }
    }
}
