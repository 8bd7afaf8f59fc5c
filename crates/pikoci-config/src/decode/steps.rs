//! The plan: `get`, `task`, `put`, `notify`, `service`, `in_parallel` and `if` chains.

use crate::diagnostic::quoted;
use hcl_edit::Span;
use hcl_edit::structure::{Block, Body};
use pikoci_core::condition::Condition;
use pikoci_core::{
    Branch, BranchKind, GetStep, IfChain, NotificationRef, NotifyStep, ParallelStep, PutStep,
    ResourceRef, ServiceStep, Step, StepKind, TaskStep,
};

use super::body::{Unknown, attribute};
use super::jobs::HOOKS;
use super::{Decoder, RefKind, blocks};

/// Where a step block sits; decides which step types are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inside {
    /// Directly in the job.
    Plan,
    /// In an `in_parallel` block.
    Parallel,
    /// In a branch of an `if` chain.
    Branch,
    /// In an unlabeled hook block.
    Hook,
}

impl Inside {
    fn suffix(self) -> &'static str {
        if self == Inside::Parallel {
            " in in_parallel"
        } else {
            ""
        }
    }
}

impl Decoder<'_> {
    /// The plan of a job: step blocks in source order, `if`/`else_if`/`else` runs joined into one
    /// step each.
    pub(crate) fn plan(&mut self, body: &Body, job: &str) -> Vec<Step> {
        let mut plan: Vec<Step> = Vec::new();
        // Whether the previous block was an `if` or `else_if` that a following branch may join.
        let mut open_chain = false;
        for block in body.blocks() {
            let ident = block.ident.as_str();
            match ident {
                "if" => {
                    open_chain = false;
                    if let Some(branch) = self.branch(block, BranchKind::If, job) {
                        let hooks =
                            self.hooks(&block.body, &format!("if in job {}", quoted(job)), job);
                        plan.push(Step {
                            hooks,
                            ..Step::new(StepKind::If(IfChain {
                                branches: vec![branch],
                            }))
                        });
                        open_chain = true;
                    }
                }
                "else_if" | "else" => {
                    let kind = if ident == "else" {
                        BranchKind::Else
                    } else {
                        BranchKind::ElseIf
                    };
                    let chain = match plan.last_mut() {
                        Some(Step {
                            kind: StepKind::If(chain),
                            ..
                        }) if open_chain => chain,
                        _ => {
                            self.error_with_help(
                                format!(
                                    "{ident} in job {} does not follow an if or else_if block",
                                    quoted(job)
                                ),
                                block.ident.span(),
                                Some(format!(
                                    "put {ident} directly after the if block it belongs to"
                                )),
                            );
                            continue;
                        }
                    };
                    let Some(branch) = self.branch(block, kind, job) else {
                        continue;
                    };
                    let extra_hooks =
                        self.hooks(&block.body, &format!("{ident} in job {}", quoted(job)), job);
                    chain.branches.push(branch);
                    if let Some(step) = plan.last_mut() {
                        merge_hooks(&mut step.hooks, extra_hooks);
                    }
                    open_chain = kind == BranchKind::ElseIf;
                }
                "get" | "task" | "put" | "notify" | "service" | "in_parallel" => {
                    open_chain = false;
                    if let Some(step) = self.step(block, job, Inside::Plan) {
                        plan.push(step);
                    }
                }
                _ => open_chain = false,
            }
        }
        plan
    }

    /// One step block.
    pub(crate) fn step(&mut self, block: &Block, job: &str, inside: Inside) -> Option<Step> {
        match block.ident.as_str() {
            "get" => self.get_step(block, job, inside),
            "task" => self.task_step(block, job, inside),
            "put" => self.put_step(block, job, inside),
            "notify" => {
                let hooks = self.hooks(&block.body, &format!("notify in job {}", quoted(job)), job);
                let notify = self.notify_step(block, job, true)?;
                Some(Step {
                    hooks,
                    ..Step::new(StepKind::Notify(notify))
                })
            }
            "service" => self.service_step(block, job, inside),
            "in_parallel" => self.parallel_step(block, job, inside),
            _ => None,
        }
    }

    fn get_step(&mut self, block: &Block, job: &str, inside: Inside) -> Option<Step> {
        let labels = self.labels(
            block,
            &format!("get in job {}", quoted(job)),
            &["resource type", "resource name"],
        )?;
        let resource = ResourceRef {
            type_name: labels[0].clone(),
            name: labels[1].clone(),
        };
        let context = format!("get {} in job {}", quoted(&resource.type_name), quoted(job));
        let body = &block.body;
        self.check_attributes(
            body,
            &["passed", "trigger", "timeout", "attempts"],
            Unknown::Ignore,
            &context,
        );
        self.check_blocks(body, HOOKS, &context);
        let labels_span = block.labels.first().and_then(|l| l.span());
        self.refer(
            RefKind::Resource,
            resource.to_string(),
            labels_span,
            format!(
                "job {} get step references unknown resource {}",
                quoted(job),
                quoted(&resource.to_string())
            ),
        );
        let trigger = attribute(body, "trigger")
            .and_then(|a| self.bool(a, &context))
            .unwrap_or(false);
        let mut passed = Vec::new();
        if let Some(a) = attribute(body, "passed") {
            for upstream in self.string_list(a, &context).unwrap_or_default() {
                self.refer(
                    RefKind::Job,
                    upstream.clone(),
                    a.value.span(),
                    format!(
                        "job {} get step {} has unknown job {} in passed",
                        quoted(job),
                        quoted(&resource.to_string()),
                        quoted(&upstream)
                    ),
                );
                passed.push(upstream);
            }
        }
        let owner = format!("on get step {}{}", quoted(&resource.name), inside.suffix());
        let (timeout, attempts) = self.retry(body, &context, &owner, "get", &resource.name);
        let hooks = self.hooks(body, &context, job);
        Some(Step {
            kind: StepKind::Get(GetStep {
                resource,
                trigger,
                passed,
            }),
            timeout,
            attempts,
            hooks,
        })
    }

    fn task_step(&mut self, block: &Block, job: &str, inside: Inside) -> Option<Step> {
        let name = self
            .labels(block, &format!("task in job {}", quoted(job)), &["name"])?
            .remove(0);
        let context = format!("task {} in job {}", quoted(&name), quoted(job));
        let body = &block.body;
        self.check_attributes(
            body,
            &["timeout", "attempts", "inputs", "outputs"],
            Unknown::Ignore,
            &context,
        );
        let mut allowed = vec!["run"];
        allowed.extend_from_slice(HOOKS);
        self.check_blocks(body, &allowed, &context);
        let mut runs = blocks(body, "run");
        let Some(run_block) = runs.next() else {
            self.error_with_help(
                format!("{context} has no run block"),
                block.ident.span(),
                Some(
                    "add run \"shell\" { cmd = \"make test\" } (the label names the runner)"
                        .to_owned(),
                ),
            );
            return None;
        };
        for extra in runs {
            self.error(
                format!("{context} has more than one run block"),
                extra.ident.span(),
            );
        }
        let run = self.command(run_block, &context, &[]);
        let inputs = attribute(body, "inputs")
            .and_then(|a| self.string_list(a, &context))
            .unwrap_or_default();
        let outputs = attribute(body, "outputs")
            .and_then(|a| self.string_list(a, &context))
            .unwrap_or_default();
        let owner = format!("on task step {}{}", quoted(&name), inside.suffix());
        let (timeout, attempts) = self.retry(body, &context, &owner, "task", &name);
        let hooks = self.hooks(body, &context, job);
        Some(Step {
            kind: StepKind::Task(TaskStep {
                name,
                run: run?,
                inputs,
                outputs,
            }),
            timeout,
            attempts,
            hooks,
        })
    }

    fn put_step(&mut self, block: &Block, job: &str, inside: Inside) -> Option<Step> {
        let labels = self.labels(
            block,
            &format!("put in job {}", quoted(job)),
            &["resource type", "resource name"],
        )?;
        let resource = ResourceRef {
            type_name: labels[0].clone(),
            name: labels[1].clone(),
        };
        let context = format!("put {} in job {}", quoted(&resource.type_name), quoted(job));
        let body = &block.body;
        let reserved = ["timeout", "attempts"];
        self.check_attributes(body, &reserved, Unknown::Params(&reserved), &context);
        let mut allowed = vec!["params"];
        allowed.extend_from_slice(HOOKS);
        self.check_blocks(body, &allowed, &context);
        self.refer(
            RefKind::Resource,
            resource.to_string(),
            block.labels.first().and_then(|l| l.span()),
            format!(
                "job {} put step references unknown resource {}",
                quoted(job),
                quoted(&resource.to_string())
            ),
        );
        // Both plain attributes and a params block are accepted (D2); attributes win.
        let mut params = self.single_params_block(body, &context);
        params.extend(self.params(body, &reserved, &context));
        let owner = format!("on put step {}{}", quoted(&resource.name), inside.suffix());
        let (timeout, attempts) = self.retry(body, &context, &owner, "put", &resource.name);
        let hooks = self.hooks(body, &context, job);
        Some(Step {
            kind: StepKind::Put(PutStep { resource, params }),
            timeout,
            attempts,
            hooks,
        })
    }

    /// A `notify` block (as a step, a hook child, an `on_trigger` or an approval notification).
    /// `hooks_allowed`: whether hook blocks may be nested (plan steps: yes; `on_trigger` and
    /// approval notifications: no).
    pub(crate) fn notify_step(
        &mut self,
        block: &Block,
        job: &str,
        hooks_allowed: bool,
    ) -> Option<NotifyStep> {
        let labels = self.labels(
            block,
            &format!("notify in job {}", quoted(job)),
            &["notification type", "notification name"],
        )?;
        let notification = NotificationRef {
            type_name: labels[0].clone(),
            name: labels[1].clone(),
        };
        let context = format!(
            "notify {} in job {}",
            quoted(&notification.type_name),
            quoted(job)
        );
        let body = &block.body;
        self.check_attributes(body, &["message"], Unknown::Params(&["message"]), &context);
        self.check_blocks(body, if hooks_allowed { HOOKS } else { &[] }, &context);
        self.refer(
            RefKind::Notification,
            notification.to_string(),
            block.labels.first().and_then(|l| l.span()),
            format!(
                "job {} notify step references unknown notification {}",
                quoted(job),
                quoted(&notification.to_string())
            ),
        );
        let message = attribute(body, "message").and_then(|a| self.string(a, &context));
        let params = self.params(body, &["message"], &context);
        Some(NotifyStep {
            notification,
            message,
            params,
        })
    }

    fn service_step(&mut self, block: &Block, job: &str, inside: Inside) -> Option<Step> {
        match inside {
            Inside::Parallel => {
                self.error(
                    format!(
                        "in_parallel in job {}: service steps are not allowed inside in_parallel",
                        quoted(job)
                    ),
                    block.ident.span(),
                );
                return None;
            }
            Inside::Hook => {
                self.error(
                    format!(
                        "service steps are not allowed inside hooks (job {})",
                        quoted(job)
                    ),
                    block.ident.span(),
                );
                return None;
            }
            Inside::Plan | Inside::Branch => {}
        }
        let service_type = self
            .labels(
                block,
                &format!("service in job {}", quoted(job)),
                &["service type"],
            )?
            .remove(0);
        let context = format!("service {} in job {}", quoted(&service_type), quoted(job));
        self.check_blocks(&block.body, &[], &context);
        self.refer(
            RefKind::ServiceType,
            service_type.clone(),
            block.labels.first().and_then(|l| l.span()),
            format!(
                "service_type {} referenced in job {} does not exist",
                quoted(&service_type),
                quoted(job)
            ),
        );
        let overrides = self.params(&block.body, &[], &context);
        Some(Step::new(StepKind::Service(ServiceStep {
            service_type,
            overrides,
        })))
    }

    fn parallel_step(&mut self, block: &Block, job: &str, inside: Inside) -> Option<Step> {
        let context = format!("in_parallel in job {}", quoted(job));
        if inside == Inside::Parallel {
            self.error(
                format!("{context}: nested in_parallel is not allowed"),
                block.ident.span(),
            );
            return None;
        }
        self.labels(block, &context, &[]);
        let body = &block.body;
        self.check_attributes(
            body,
            &["limit", "fail_fast", "timeout", "attempts"],
            Unknown::Ignore,
            &context,
        );
        let mut allowed = vec!["get", "task", "put", "notify", "service", "in_parallel"];
        allowed.extend_from_slice(HOOKS);
        self.check_blocks(body, &allowed, &context);
        let limit = match attribute(body, "limit")
            .and_then(|a| self.integer(a, &context).map(|n| (n, a)))
        {
            Some((n, a)) if n < 0 => {
                self.error(format!("{context}: limit must be >= 0"), a.value.span());
                0
            }
            Some((n, _)) => u32::try_from(n).unwrap_or(u32::MAX),
            None => 0,
        };
        let fail_fast = attribute(body, "fail_fast")
            .and_then(|a| self.bool(a, &context))
            .unwrap_or(false);
        let steps = body
            .blocks()
            .filter(|b| !HOOKS.contains(&b.ident.as_str()))
            .filter_map(|b| self.step(b, job, Inside::Parallel))
            .collect();
        let (timeout, attempts) = self.retry(
            body,
            &context,
            "on in_parallel",
            "in_parallel",
            "in_parallel",
        );
        let hooks = self.hooks(body, &context, job);
        Some(Step {
            kind: StepKind::InParallel(ParallelStep {
                limit,
                fail_fast,
                steps,
            }),
            timeout,
            attempts,
            hooks,
        })
    }

    fn branch(&mut self, block: &Block, kind: BranchKind, job: &str) -> Option<Branch> {
        let ident = block.ident.as_str();
        let label = match kind {
            BranchKind::Else if block.labels.is_empty() => None,
            BranchKind::Else => Some(
                self.labels(block, &format!("else in job {}", quoted(job)), &["label"])?
                    .remove(0),
            ),
            _ => Some(
                self.labels(
                    block,
                    &format!("{ident} in job {}", quoted(job)),
                    &["label"],
                )?
                .remove(0),
            ),
        };
        let context = match &label {
            Some(label) => format!("{ident} {} in job {}", quoted(label), quoted(job)),
            None => format!("{ident} in job {}", quoted(job)),
        };
        let body = &block.body;
        let known: &[&str] = if kind == BranchKind::Else {
            &[]
        } else {
            &["condition"]
        };
        self.check_attributes(body, known, Unknown::Reject, &context);
        let mut allowed = vec!["get", "task", "put", "notify", "service", "in_parallel"];
        allowed.extend_from_slice(HOOKS);
        for nested in body
            .blocks()
            .filter(|b| matches!(b.ident.as_str(), "if" | "else_if" | "else"))
        {
            self.error_with_help(
                format!(
                    "{context}: a nested {} is not allowed inside a branch",
                    nested.ident.as_str()
                ),
                nested.ident.span(),
                Some("combine the conditions with && instead".to_owned()),
            );
        }
        let allowed_with_nested: Vec<&str> = allowed
            .iter()
            .copied()
            .chain(["if", "else_if", "else"])
            .collect();
        self.check_blocks(body, &allowed_with_nested, &context);
        // A missing or malformed condition is reported, and the branch is still decoded (with
        // no condition) so that the chain stays open and its steps are checked too.
        let condition = match (kind, attribute(body, "condition")) {
            (BranchKind::Else, _) => None,
            (_, None) => {
                self.error_with_help(
                    format!("{context} has no condition"),
                    block.ident.span(),
                    Some("add condition = \"$GET_REPO_BRANCH == 'main'\"".to_owned()),
                );
                None
            }
            (_, Some(a)) => {
                self.string(a, &context)
                    .and_then(|text| match Condition::parse(&text) {
                        Ok(condition) => Some(condition),
                        Err(err) => {
                            self.error(
                                format!("invalid condition in {context}: {err}"),
                                a.value.span(),
                            );
                            None
                        }
                    })
            }
        };
        let steps = body
            .blocks()
            .filter(|b| !HOOKS.contains(&b.ident.as_str()))
            .filter_map(|b| self.step(b, job, Inside::Branch))
            .collect();
        Some(Branch {
            kind,
            label,
            condition,
            steps,
        })
    }

    /// `timeout` and `attempts` of a step.
    fn retry(
        &mut self,
        body: &Body,
        context: &str,
        owner: &str,
        kind: &str,
        name: &str,
    ) -> (Option<std::time::Duration>, u32) {
        let timeout = attribute(body, "timeout").and_then(|a| self.duration(a, owner));
        let attempts = match attribute(body, "attempts")
            .and_then(|a| self.integer(a, context).map(|n| (n, a)))
        {
            Some((n, a)) if n < 0 => {
                self.error(
                    format!(
                        "invalid attempts {n} on {kind} step {}: must be >= 0",
                        quoted(name)
                    ),
                    a.value.span(),
                );
                1
            }
            Some((n, _)) => u32::try_from(n).unwrap_or(u32::MAX).max(1),
            None => 1,
        };
        (timeout, attempts)
    }
}

fn merge_hooks(into: &mut pikoci_core::Hooks, from: pikoci_core::Hooks) {
    into.on_success.extend(from.on_success);
    into.on_failure.extend(from.on_failure);
    into.on_cancel.extend(from.on_cancel);
    into.ensure.extend(from.ensure);
}
