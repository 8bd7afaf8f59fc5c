//! `resource` and `notification` blocks.

use crate::diagnostic::quoted;
use hcl_edit::Span;
use hcl_edit::structure::Block;
use pikoci_core::schedule::CheckInterval;
use pikoci_core::{JobFilter, Notification, NotificationEvent, Resource};

use super::body::{Unknown, attribute};
use super::{Decoder, RefKind};

impl Decoder<'_> {
    pub(crate) fn resource(&mut self, block: &Block) -> Option<Resource> {
        let labels = self.labels(block, "resource", &["resource type", "name"])?;
        let (type_name, name) = (labels[0].clone(), labels[1].clone());
        let canonical = format!("{type_name}.{name}");
        let context = format!("resource {}", quoted(&canonical));
        let body = &block.body;
        self.check_attributes(
            body,
            &["check_interval", "tags", "cache"],
            Unknown::Reject,
            &context,
        );
        self.check_blocks(body, &["params"], &context);
        self.refer(
            RefKind::ResourceType,
            type_name.clone(),
            block.labels.first().and_then(|l| l.span()),
            format!(
                "resource {} references unknown resource_type {}",
                quoted(&canonical),
                quoted(&type_name)
            ),
        );
        let name_span = block.labels.get(1).and_then(|l| l.span());
        self.canonical_name(&name, "Resource Name", name_span);
        let params = self.single_params_block(body, &context);
        if let Some(problem) = params
            .get("name")
            .and_then(|n| Resource::work_dir_name_problem(n))
        {
            let span = body
                .blocks()
                .find(|b| b.ident.as_str() == "params")
                .and_then(|b| attribute(&b.body, "name"))
                .and_then(|a| a.value.span());
            self.error(format!("{context}: the name param {problem}"), span);
        }
        let check_interval =
            match attribute(body, "check_interval") {
                Some(attribute) => {
                    let spec = self.string(attribute, &context)?;
                    match CheckInterval::parse(&spec) {
                        Ok(interval) => interval,
                        Err(err) => {
                            self.error_with_help(
                            format!("invalid check_interval for resource {}: {err}", quoted(&name)),
                            attribute.value.span(),
                            Some(
                                "use 5-field cron (\"*/5 * * * *\"), @every 30s, @hourly or @daily"
                                    .to_owned(),
                            ),
                        );
                            return None;
                        }
                    }
                }
                None => CheckInterval::default(),
            };
        let tags = match attribute(body, "tags") {
            Some(attribute) => self.tags(attribute, &format!("resource {}", quoted(&name))),
            None => Vec::new(),
        };
        let cache = attribute(body, "cache").and_then(|a| self.bool(a, &context));
        Some(Resource {
            type_name,
            name,
            params,
            check_interval,
            tags,
            cache,
        })
    }

    pub(crate) fn notification(&mut self, block: &Block) -> Option<Notification> {
        let labels = self.labels(block, "notification", &["notification type", "name"])?;
        let (type_name, name) = (labels[0].clone(), labels[1].clone());
        let canonical = format!("{type_name}.{name}");
        let context = format!("notification {}", quoted(&canonical));
        let body = &block.body;
        self.check_attributes(
            body,
            &["message", "on", "jobs", "exclude"],
            Unknown::Reject,
            &context,
        );
        self.check_blocks(body, &["params"], &context);
        self.refer(
            RefKind::NotificationType,
            type_name.clone(),
            block.labels.first().and_then(|l| l.span()),
            format!(
                "notification {} references unknown notification_type {}",
                quoted(&canonical),
                quoted(&type_name)
            ),
        );
        self.canonical_name(
            &name,
            "Notification Name",
            block.labels.get(1).and_then(|l| l.span()),
        );
        let params = self.single_params_block(body, &context);
        let message = attribute(body, "message").and_then(|a| self.string(a, &context));
        let mut on = Vec::new();
        if let Some(attribute) = attribute(body, "on") {
            for event in self.string_list(attribute, &context).unwrap_or_default() {
                match NotificationEvent::parse(&event) {
                    Some(parsed) => on.push(parsed),
                    None => self.error(
                        format!(
                            "{context}: invalid on event {} (valid: success, failure, cancel, all)",
                            quoted(&event)
                        ),
                        attribute.value.span(),
                    ),
                }
            }
            if on.contains(&NotificationEvent::All) && on.len() > 1 {
                self.error(
                    format!("{context}: 'all' cannot be combined with other events"),
                    attribute.value.span(),
                );
            }
        }
        let jobs = attribute(body, "jobs");
        let exclude = attribute(body, "exclude");
        if let (Some(_), Some(exclude)) = (jobs, exclude) {
            self.error(
                format!("{context}: jobs and exclude are mutually exclusive"),
                exclude.key.span(),
            );
        }
        if let Some(filter) = jobs.or(exclude)
            && attribute(body, "on").is_none()
        {
            self.error_with_help(
                    format!("{context}: jobs/exclude requires on field"),
                    filter.key.span(),
                    Some("add on = [\"failure\"] (or success, cancel, all): jobs and exclude choose which builds send it automatically".to_owned()),
                );
        }
        let mut names =
            |attribute: Option<&hcl_edit::structure::Attribute>, field: &str| -> Vec<String> {
                let Some(attribute) = attribute else {
                    return Vec::new();
                };
                let names = self.string_list(attribute, &context).unwrap_or_default();
                for job in &names {
                    self.refer(
                        RefKind::Job,
                        job.clone(),
                        attribute.value.span(),
                        format!(
                            "notification {} references unknown job {} in {field}",
                            quoted(&canonical),
                            quoted(job)
                        ),
                    );
                }
                names
            };
        let filter = match (jobs.is_some(), exclude.is_some()) {
            (true, _) => JobFilter::Only(names(jobs, "jobs")),
            (false, true) => JobFilter::Except(names(exclude, "exclude")),
            (false, false) => JobFilter::All,
        };
        Some(Notification {
            type_name,
            name,
            params,
            message,
            on,
            jobs: filter,
        })
    }

    /// Reports a name that is not canonical; `what` is e.g. `Job Name`.
    pub(crate) fn canonical_name(
        &mut self,
        name: &str,
        what: &str,
        span: Option<std::ops::Range<usize>>,
    ) {
        if let Some((reason, help)) = name_problem(name) {
            self.error_with_help(
                format!("invalid {what} format {}: {reason}", quoted(name)),
                span,
                help,
            );
        }
    }
}

/// Why `name` is not canonical (`None` when it is), and what to do about it.
pub(crate) fn name_problem(name: &str) -> Option<(String, Option<String>)> {
    use pikoci_core::name::{MAX_CANONICAL_LEN, is_canonical, slugify};
    if is_canonical(name) {
        return None;
    }
    if name.len() > MAX_CANONICAL_LEN {
        return Some((
            format!(
                "it is {} bytes long, and names are at most {MAX_CANONICAL_LEN} bytes",
                name.len()
            ),
            Some("use a shorter name".to_owned()),
        ));
    }
    let suggestion = slugify(name);
    let help = (suggestion != name && is_canonical(&suggestion))
        .then(|| format!("try {}", quoted(&suggestion)));
    Some((
        "names are lowercase letters, digits, '-' and '_', not starting or ending with '-' or '_'"
            .to_owned(),
        help,
    ))
}
