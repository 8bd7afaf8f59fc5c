//! Type blocks (`resource_type`, `runner_type`, `secret_type`, `service_type`,
//! `notification_type`), runner command blocks, runner overrides and `source` resolution.

use std::time::Duration;

use hcl_edit::Span;
use hcl_edit::structure::{Attribute, Block, Body};
use pikoci_core::{
    Command, NotificationType, Origin, Params, ReadyCheck, ResourceType, RunnerOverride,
    RunnerType, SecretType, ServiceType, redact,
};

use super::body::{Unknown, attribute};
use super::{Decoder, RefKind, blocks};
use crate::builtin::{self, Kind};
use crate::diagnostic::{Severity, quoted};
use crate::eval::Scope;

/// Attribute names every runner command block reserves.
const COMMAND_ATTRIBUTES: &[&str] = &["args"];

impl Decoder<'_> {
    pub(crate) fn resource_type(&mut self, block: &Block) -> Option<ResourceType> {
        let name = self.labels(block, "resource_type", &["name"])?.remove(0);
        if !self.sourced {
            self.canonical_name(
                &name,
                "ResourceType Name",
                block.labels.first().and_then(|l| l.span()),
            );
        }
        let context = format!("resource_type {}", quoted(&name));
        let body = &block.body;
        self.check_attributes(
            body,
            &["source", "params", "cache"],
            Unknown::Reject,
            &context,
        );
        self.check_blocks(body, &["check", "pull", "push", "runner"], &context);
        let cache = attribute(body, "cache").and_then(|a| self.bool(a, &context));
        let params = attribute(body, "params").and_then(|a| self.string_list(a, &context));
        let runner_override = self.runner_override(body, &context);
        let resolved = match self.source_attribute(body, &["check", "pull", "push"], &context) {
            Some(source) => {
                self.ignored_local_params(body, &context);
                let (mut base, origin) =
                    self.sourced(Kind::ResourceType, &name, source, |d, b| d.resource_type(b))?;
                base.origin = origin;
                if cache == Some(true) {
                    base.cache = true;
                }
                if runner_override.is_some() {
                    base.runner_override = runner_override;
                }
                base
            }
            None => ResourceType {
                origin: Origin::Inline,
                params: params.unwrap_or_default(),
                cache: cache.unwrap_or(false),
                check: self.command_block(body, "check", &context, &[]),
                pull: self.command_block(body, "pull", &context, &[]),
                push: self.command_block(body, "push", &context, &[]),
                runner_override,
                name: String::new(),
            },
        };
        let resolved = ResourceType { name, ..resolved };
        let commands = [&resolved.check, &resolved.pull, &resolved.push];
        self.check_override(
            &context,
            resolved.runner_override.as_ref(),
            &commands,
            block,
        );
        Some(resolved)
    }

    pub(crate) fn runner_type(&mut self, block: &Block) -> Option<RunnerType> {
        let name = self.labels(block, "runner_type", &["name"])?.remove(0);
        if !self.sourced {
            self.canonical_name(
                &name,
                "Runner Name",
                block.labels.first().and_then(|l| l.span()),
            );
        }
        let context = format!("runner_type {}", quoted(&name));
        let body = &block.body;
        self.check_attributes(body, &["source"], Unknown::Reject, &context);
        self.check_blocks(body, &["run"], &context);
        if let Some(source) = self.source_attribute(body, &["run"], &context) {
            let (base, origin) =
                self.sourced(Kind::RunnerType, &name, source, |d, b| d.runner_type(b))?;
            return Some(RunnerType {
                name,
                origin,
                ..base
            });
        }
        let Some(run) = blocks(body, "run").next() else {
            self.error_with_help(
                format!("{context} needs a run block or a source"),
                block.ident.span(),
                Some("add run { path = \"/bin/bash\"  args = [\"-c\", \"$script\"] }".to_owned()),
            );
            return None;
        };
        let run_context = format!("run in {context}");
        self.labels(run, &run_context, &[]);
        self.check_attributes(&run.body, &["path", "args"], Unknown::Reject, &run_context);
        self.check_blocks(&run.body, &[], &run_context);
        let path = match attribute(&run.body, "path") {
            Some(path) => self.string(path, &run_context)?,
            None => String::new(),
        };
        let args = attribute(&run.body, "args")
            .and_then(|a| self.string_list(a, &run_context))
            .unwrap_or_default();
        Some(RunnerType {
            name,
            origin: Origin::Inline,
            path,
            args,
        })
    }

    pub(crate) fn secret_type(&mut self, block: &Block) -> Option<SecretType> {
        let name = self.labels(block, "secret_type", &["name"])?.remove(0);
        if !self.sourced {
            self.canonical_name(
                &name,
                "SecretType Name",
                block.labels.first().and_then(|l| l.span()),
            );
        }
        let context = format!("secret_type {}", quoted(&name));
        let body = &block.body;
        // Every attribute other than these is configuration.
        self.check_attributes(
            body,
            &["source", "params"],
            Unknown::Params(&["source", "params"]),
            &context,
        );
        self.check_blocks(body, &["get", "runner"], &context);
        let params = attribute(body, "params").and_then(|a| self.string_list(a, &context));
        let config = self.params(body, &["source", "params"], &context);
        let runner_override = self.runner_override(body, &context);
        let resolved = match self.source_attribute(body, &["get"], &context) {
            Some(source) => {
                self.ignored_local_params(body, &context);
                let (mut base, origin) =
                    self.sourced(Kind::SecretType, &name, source, |d, b| d.secret_type(b))?;
                base.origin = origin;
                base.config.extend(config);
                if runner_override.is_some() {
                    base.runner_override = runner_override;
                }
                base
            }
            None => {
                let get = self.command_block(body, "get", &context, &[]);
                if get.is_none() && !self.sourced {
                    self.error_with_help(
                        format!("{context} needs a get block or a source"),
                        block.ident.span(),
                        Some("add get \"exec\" { path = \"...\" } printing the secret, or source = \"pikoci://vault\"".to_owned()),
                    );
                }
                SecretType {
                    name: String::new(),
                    origin: Origin::Inline,
                    params: params.unwrap_or_default(),
                    config,
                    get,
                    runner_override,
                }
            }
        };
        let resolved = SecretType { name, ..resolved };
        self.check_override(
            &context,
            resolved.runner_override.as_ref(),
            &[&resolved.get],
            block,
        );
        Some(resolved)
    }

    pub(crate) fn service_type(&mut self, block: &Block) -> Option<ServiceType> {
        let name = self.labels(block, "service_type", &["name"])?.remove(0);
        let context = format!("service_type {}", quoted(&name));
        let body = &block.body;
        self.check_attributes(body, &["source", "params"], Unknown::Reject, &context);
        self.check_blocks(body, &["start", "stop", "ready_check", "runner"], &context);
        let params = attribute(body, "params").and_then(|a| self.string_list(a, &context));
        let runner_override = self.runner_override(body, &context);
        let resolved =
            match self.source_attribute(body, &["start", "stop", "ready_check"], &context) {
                Some(source) => {
                    let (mut base, origin) =
                        self.sourced(Kind::ServiceType, &name, source, |d, b| d.service_type(b))?;
                    base.origin = origin;
                    if let Some(params) = params {
                        base.params = params;
                    }
                    if runner_override.is_some() {
                        base.runner_override = runner_override;
                    }
                    base
                }
                None => {
                    let start = self.command_block(body, "start", &context, &[]);
                    let stop = self.command_block(body, "stop", &context, &[]);
                    let ready_check = self.ready_check(body, &context);
                    for (kind, present) in [("start", start.is_some()), ("stop", stop.is_some())] {
                        if !present && blocks(body, kind).next().is_none() {
                            self.error(
                                format!("{context} must have a {kind} block"),
                                block.ident.span(),
                            );
                        }
                    }
                    ServiceType {
                        name: String::new(),
                        origin: Origin::Inline,
                        params: params.unwrap_or_default(),
                        start: start?,
                        ready_check,
                        stop: stop?,
                        runner_override,
                    }
                }
            };
        let resolved = ServiceType { name, ..resolved };
        let ready = resolved.ready_check.as_ref().map(|r| r.command.clone());
        let commands = [
            &Some(resolved.start.clone()),
            &Some(resolved.stop.clone()),
            &ready,
        ];
        self.check_override(
            &context,
            resolved.runner_override.as_ref(),
            &commands,
            block,
        );
        Some(resolved)
    }

    pub(crate) fn notification_type(&mut self, block: &Block) -> Option<NotificationType> {
        let name = self
            .labels(block, "notification_type", &["name"])?
            .remove(0);
        if !self.sourced {
            self.canonical_name(
                &name,
                "NotificationType Name",
                block.labels.first().and_then(|l| l.span()),
            );
        }
        let context = format!("notification_type {}", quoted(&name));
        let body = &block.body;
        self.check_attributes(body, &["source", "params"], Unknown::Reject, &context);
        self.check_blocks(body, &["notify", "runner"], &context);
        let params = attribute(body, "params").and_then(|a| self.string_list(a, &context));
        let runner_override = self.runner_override(body, &context);
        let resolved = match self.source_attribute(body, &["notify"], &context) {
            Some(source) => {
                self.ignored_local_params(body, &context);
                let (mut base, origin) =
                    self.sourced(Kind::NotificationType, &name, source, |d, b| {
                        d.notification_type(b)
                    })?;
                base.origin = origin;
                if runner_override.is_some() {
                    base.runner_override = runner_override;
                }
                base
            }
            None => NotificationType {
                name: String::new(),
                origin: Origin::Inline,
                params: params.unwrap_or_default(),
                notify: self.command_block(body, "notify", &context, &[]),
                runner_override,
            },
        };
        let resolved = NotificationType { name, ..resolved };
        self.check_override(
            &context,
            resolved.runner_override.as_ref(),
            &[&resolved.notify],
            block,
        );
        Some(resolved)
    }

    /// Warns that a local `params` list next to a `source` is not used (the source's list is).
    fn ignored_local_params(&mut self, body: &Body, context: &str) {
        if let Some(params) = attribute(body, "params") {
            self.warning(
                format!(
                    "{context}: params is ignored because the definition comes from its source"
                ),
                params.key.span(),
            );
        }
    }

    /// A runner command block: `<kind> "<runner>" { args = [...]  key = "value" }`.
    pub(crate) fn command(
        &mut self,
        block: &Block,
        context: &str,
        reserved: &[&str],
    ) -> Option<Command> {
        let kind = block.ident.as_str();
        let block_context = format!("{kind} in {context}");
        let runner = self.labels(block, &block_context, &["runner"])?.remove(0);
        self.check_blocks(&block.body, &[], &block_context);
        let mut typo_targets: Vec<&str> = COMMAND_ATTRIBUTES.to_vec();
        typo_targets.extend_from_slice(reserved);
        self.check_attributes(
            &block.body,
            &typo_targets,
            Unknown::Params(&typo_targets),
            &block_context,
        );
        let args = attribute(&block.body, "args")
            .and_then(|a| self.string_list(a, &block_context))
            .unwrap_or_default();
        let params = self.params(&block.body, &typo_targets, &block_context);
        // A type's `runner "shell" {}` override gets its `cmd` from each command's path and args.
        if runner == "shell" && kind != "runner" {
            self.shell_cmd_or_file(&params, &block_context, block);
        }
        self.refer(
            RefKind::Runner,
            runner.clone(),
            block.labels.first().and_then(|l| l.span()),
            format!(
                "{block_context} references unknown runner {}",
                quoted(&runner)
            ),
        );
        Some(Command {
            runner,
            args,
            params,
        })
    }

    /// The `shell` runner's rule, which the worker enforces before running: exactly one of
    /// `cmd` and `file`.
    fn shell_cmd_or_file(&mut self, params: &Params, context: &str, block: &Block) {
        let found = match (params.contains_key("cmd"), params.contains_key("file")) {
            (true, true) => "both",
            (false, false) => "neither",
            _ => return,
        };
        self.error_with_help(
            format!(
                "{context}: the shell runner needs exactly one of \"cmd\" and \"file\", \
                 found {found}"
            ),
            block.labels.first().and_then(|l| l.span()),
            Some(
                "set cmd to an inline script, or file to a script path relative to $WORKDIR"
                    .to_owned(),
            ),
        );
    }

    /// The first `<kind>` command block of `body`; more than one is an error.
    fn command_block(
        &mut self,
        body: &Body,
        kind: &str,
        context: &str,
        reserved: &[&str],
    ) -> Option<Command> {
        let mut found = blocks(body, kind);
        let first = found.next()?;
        for extra in found {
            self.error(
                format!("{context} has more than one {kind} block"),
                extra.ident.span(),
            );
        }
        self.command(first, context, reserved)
    }

    fn ready_check(&mut self, body: &Body, context: &str) -> Option<ReadyCheck> {
        let block = blocks(body, "ready_check").next()?;
        let command = self.command_block(body, "ready_check", context, &["interval", "timeout"])?;
        let owner = format!("on ready_check in {context}");
        let interval = attribute(&block.body, "interval").and_then(|a| self.duration(a, &owner));
        let timeout = attribute(&block.body, "timeout").and_then(|a| self.duration(a, &owner));
        Some(ReadyCheck {
            command,
            interval: interval.unwrap_or(Duration::from_secs(1)),
            timeout: timeout.unwrap_or(Duration::from_secs(60)),
        })
    }

    fn runner_override(&mut self, body: &Body, context: &str) -> Option<RunnerOverride> {
        let mut found = blocks(body, "runner");
        let block = found.next()?;
        for extra in found {
            self.error(
                format!("{context} has more than one runner block"),
                extra.ident.span(),
            );
        }
        let command = self.command(block, context, &[])?;
        if command.runner == "shell" && command.params.contains_key("file") {
            // Each command's path and args become the override's cmd, and shell takes one of the
            // two (checked again by the worker).
            self.error_with_help(
                format!("runner in {context}: a shell runner override cannot set \"file\""),
                attribute(&block.body, "file").and_then(|a| a.key.span()),
                Some(
                    "remove file: each command's path and args become the script (cmd)".to_owned(),
                ),
            );
        }
        Some(RunnerOverride {
            runner: command.runner,
            args: command.args,
            params: command.params,
        })
    }

    /// Every command of a type with a runner override must use `exec`.
    fn check_override(
        &mut self,
        context: &str,
        runner_override: Option<&RunnerOverride>,
        commands: &[&Option<Command>],
        block: &Block,
    ) {
        if runner_override.is_none() {
            return;
        }
        for command in commands.iter().copied().flatten() {
            if command.runner != "exec" {
                self.error_with_help(
                    format!("{context} has runner override but command uses non-exec runner {}", quoted(&command.runner)),
                    block.ident.span(),
                    Some("a runner override moves exec commands to another runner; write the commands with \"exec\"".to_owned()),
                );
                return;
            }
        }
    }

    /// The `source` attribute, when the block has one (and is not itself a sourced definition).
    /// Inline command blocks next to it are an error.
    fn source_attribute<'b>(
        &mut self,
        body: &'b Body,
        inline: &[&str],
        context: &str,
    ) -> Option<&'b Attribute> {
        let source = attribute(body, "source")?;
        if self.sourced {
            return None;
        }
        if let Some(block) = body.blocks().find(|b| inline.contains(&b.ident.as_str())) {
            self.error(
                format!("{context} has both source and inline commands, which is not allowed"),
                block.ident.span(),
            );
        }
        Some(source)
    }

    /// Resolves a `source` and decodes the definition it points at with `decode`.
    fn sourced<T>(
        &mut self,
        kind: Kind,
        name: &str,
        source: &Attribute,
        decode: impl FnOnce(&mut Decoder<'_>, &Block) -> Option<T>,
    ) -> Option<(T, Origin)> {
        let block_name = kind.block_name();
        let context = format!("{block_name} {}", quoted(name));
        let url = self.string(source, &context)?;
        let span = source.value.span();
        let fail = |decoder: &mut Decoder<'_>, why: String| {
            decoder.error(
                format!("failed to resolve source for {context}: {why}"),
                span.clone(),
            );
        };
        let text: String = if let Some(builtin) = url.strip_prefix("pikoci://") {
            match builtin::lookup(kind, builtin) {
                Some(text) => text.to_owned(),
                None => {
                    let known: Vec<&str> = builtin::names(kind).collect();
                    self.error_with_help(
                        format!("failed to resolve source for {context}: there is no builtin {block_name} {}", quoted(builtin)),
                        span,
                        Some(format!("the builtin {block_name}s are: {}", known.join(", "))),
                    );
                    return None;
                }
            }
        } else if url.starts_with("http://") || url.starts_with("https://") {
            match self.fetcher.fetch(&url) {
                Ok(text) => text,
                Err(why) => {
                    fail(self, why);
                    return None;
                }
            }
        } else {
            self.error_with_help(
                format!(
                    "failed to resolve source for {context}: unsupported source URL scheme: {}",
                    quoted(&redact::url(&url))
                ),
                span,
                Some("use pikoci://NAME for a builtin or an http(s):// URL".to_owned()),
            );
            return None;
        };
        // Credentials in the URL are for the request only: never shown, never kept.
        let shown = redact::url(&url);
        let located = |span: Option<&std::ops::Range<usize>>| match span {
            Some(s) => {
                crate::diagnostic::SourceFile::new(shown.as_str(), text.as_str()).location(s.start)
            }
            None => shown.clone(),
        };
        let body = match crate::syntax::parse(&text) {
            Ok(body) => body,
            Err(errors) => {
                for diagnostic in errors.diagnostics {
                    let at = located(diagnostic.span.as_ref());
                    fail(self, format!("{at}: {}", diagnostic.message));
                }
                return None;
            }
        };
        let Some(block) = blocks(&body, block_name).next() else {
            fail(
                self,
                format!("no {block_name} block found in source {}", quoted(&shown)),
            );
            return None;
        };
        let mut inner = Decoder::new(self.fetcher);
        inner.sourced = true;
        inner.scope = Scope {
            no_vars_reason: Some(
                "a definition fetched from a source is read on its own, without the pipeline's \
                 variables; set values in the local block instead",
            ),
            ..Scope::default()
        };
        let decoded = decode(&mut inner, block);
        for diagnostic in inner.diags {
            if diagnostic.severity == Severity::Error {
                let at = located(diagnostic.span.as_ref());
                fail(self, format!("{at}: {}", diagnostic.message));
            }
        }
        for mut reference in inner.references {
            reference.span = span.clone();
            self.references.push(reference);
        }
        Some((decoded?, Origin::Source { url: shown }))
    }
}
