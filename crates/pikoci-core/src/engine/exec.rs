//! Walking the plan: sequences, `in_parallel` groups, `if` chains and hooks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::{Build, Status, StepId, StepType};
use crate::{BranchKind, Hook, HookKind, Hooks, IfChain, ParallelStep, Step, StepKind};

/// Variables exported by earlier steps (`GET_*`, `TASK_*`).
pub(super) type Exports = BTreeMap<String, String>;

/// How one step ended, before hooks.
#[derive(Debug)]
pub(super) struct StepEnd {
    pub(super) status: Status,
    pub(super) error: Option<String>,
}

impl StepEnd {
    pub(super) fn ok() -> StepEnd {
        StepEnd {
            status: Status::Succeeded,
            error: None,
        }
    }

    /// How a group (or branch) ended, from the result of its steps.
    fn from_result(result: &Result<(), String>) -> StepEnd {
        match result {
            Ok(()) => StepEnd::ok(),
            Err(error) => StepEnd {
                status: Status::Failed,
                error: Some(error.clone()),
            },
        }
    }

    pub(super) fn skipped() -> StepEnd {
        StepEnd {
            status: Status::Skipped,
            error: None,
        }
    }
}

impl Build {
    /// Runs steps in order; the first failure stops the sequence.
    pub(super) fn run_steps<'a>(
        &'a self,
        steps: &'a [Step],
        parent: Option<StepId>,
        exports: &'a mut Exports,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            for step in steps {
                if cancel.is_cancelled() {
                    return Err("cancelled".to_owned());
                }
                self.run_step(step, parent, exports, cancel).await?;
            }
            Ok(())
        })
    }

    /// Runs one step and then its hooks; `Err` when the step did not succeed.
    pub(super) fn run_step<'a>(
        &'a self,
        step: &'a Step,
        parent: Option<StepId>,
        exports: &'a mut Exports,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let step_type = match &step.kind {
                StepKind::Get(_) | StepKind::Task(_) | StepKind::Put(_) | StepKind::Notify(_) => {
                    step_type(&step.kind)
                }
                StepKind::Service(service) => {
                    return self.start_service(service, parent, cancel).await;
                }
                StepKind::InParallel(group) => {
                    return self
                        .run_parallel(step, group, parent, exports, cancel)
                        .await;
                }
                StepKind::If(chain) => {
                    return self.run_if(step, chain, parent, exports, cancel).await;
                }
            };
            let name = step.name();
            let id = self.start_step(parent, step_type, name.clone());
            let started = Instant::now();
            let end = match &step.kind {
                StepKind::Get(get) => self.get(id, step, get, exports, cancel).await,
                StepKind::Task(task) => self.task(id, step, task, exports, cancel).await,
                StepKind::Put(put) => self.put(id, step, put, exports, cancel).await,
                StepKind::Notify(notify) => self.notify(id, notify, exports, cancel).await,
                _ => StepEnd::ok(),
            };
            let end = self.attribute_cancellation(end, cancel);
            self.finish_step(id, end.status, started, end.error.clone());
            self.run_step_hooks(&step.hooks, &name, parent, end.status, exports)
                .await;
            if end.status.is_ok() {
                Ok(())
            } else {
                Err(end
                    .error
                    .unwrap_or_else(|| format!("{} \"{name}\" {}", step.type_name(), end.status)))
            }
        })
    }

    /// A failure caused by a stop from outside the step is a cancellation: the build was
    /// cancelled or timed out, or `cancel` (its group's token) fired, as `fail_fast` or the
    /// group's timeout do to the siblings still running.
    pub(super) fn attribute_cancellation(
        &self,
        end: StepEnd,
        cancel: &CancellationToken,
    ) -> StepEnd {
        if end.status == Status::Failed && (self.build_stopped() || cancel.is_cancelled()) {
            StepEnd {
                status: Status::Cancelled,
                error: end.error,
            }
        } else {
            end
        }
    }

    /// The hooks of a step (or group) for how it ended: success → `on_success`, failure →
    /// `on_failure`, cancellation → `on_cancel`; then `ensure`.
    async fn run_step_hooks(
        &self,
        hooks: &Hooks,
        owner: &str,
        parent: Option<StepId>,
        status: Status,
        exports: &Exports,
    ) {
        if hooks.is_empty() {
            return;
        }
        let first = match status {
            Status::Succeeded | Status::Skipped | Status::Warning => HookKind::OnSuccess,
            Status::Cancelled => HookKind::OnCancel,
            Status::Failed => HookKind::OnFailure,
        };
        for kind in [first, HookKind::Ensure] {
            self.run_hooks(hooks, kind, Some(owner), parent, None, exports)
                .await;
        }
    }

    /// Runs the hooks of one kind. `owner` is the step name (`None` for job hooks, which also
    /// get `BUILD_STATUS`). Hook failures are recorded but never change the build's status.
    pub(super) async fn run_hooks(
        &self,
        hooks: &Hooks,
        kind: HookKind,
        owner: Option<&str>,
        parent: Option<StepId>,
        build_status: Option<Status>,
        exports: &Exports,
    ) {
        let list = match kind {
            HookKind::OnSuccess => &hooks.on_success,
            HookKind::OnFailure => &hooks.on_failure,
            HookKind::OnCancel => &hooks.on_cancel,
            HookKind::Ensure => &hooks.ensure,
        };
        // Hooks run after a cancellation too; only an abort stops them.
        let cancel = self.control.abort.child_token();
        for (index, hook) in list.iter().enumerate() {
            // As the plan reads: `ensure`, or `ensure #1`, `ensure #2` when there are several.
            let label = if list.len() > 1 {
                format!("{} #{}", kind.as_str(), index + 1)
            } else {
                kind.as_str().to_owned()
            };
            let name = match owner {
                Some(owner) => format!("{owner}:{label}"),
                None => label,
            };
            match hook {
                Hook::Command(command) => {
                    let id = self.start_step(parent, StepType::Hook, name);
                    let started = Instant::now();
                    let mut params = self.metadata();
                    if let Some(status) = build_status {
                        params.insert("BUILD_STATUS".to_owned(), status.as_str().to_owned());
                    }
                    let ran = self
                        .run_command(id, command, &params, 1, None, &cancel, false)
                        .await;
                    let (status, error) = match ran.result {
                        Ok(()) => (Status::Succeeded, None),
                        Err(error) => (Status::Failed, Some(error)),
                    };
                    self.finish_step(id, status, started, error);
                }
                Hook::Steps { steps } => {
                    // The hook is a step of its own, its steps nested under it as in the plan.
                    let id = self.start_step(parent, StepType::Hook, name);
                    let started = Instant::now();
                    let mut first_error = None;
                    for step in steps {
                        // Notify children see the exports; put and task children do not.
                        let mut visible = match step.kind {
                            StepKind::Notify(_) => exports.clone(),
                            _ => Exports::new(),
                        };
                        let ran = self.run_step(step, Some(id), &mut visible, &cancel).await;
                        if let Err(error) = ran {
                            first_error.get_or_insert(error);
                        }
                    }
                    let status = match first_error {
                        None => Status::Succeeded,
                        Some(_) => Status::Failed,
                    };
                    self.finish_step(id, status, started, first_error);
                }
            }
        }
    }

    async fn run_parallel(
        &self,
        step: &Step,
        group: &ParallelStep,
        parent: Option<StepId>,
        exports: &mut Exports,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let id = self.start_step(parent, StepType::InParallel, "in_parallel".to_owned());
        let started = Instant::now();
        let attempts = step.attempts.max(1);
        let mut result = Ok(());
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.log(id, format!("\n--- attempt {attempt}/{attempts} ---"));
            }
            result = self
                .run_parallel_once(id, step, group, exports, cancel)
                .await;
            if result.is_ok() || self.build_stopped() {
                break;
            }
        }
        let end = self.attribute_cancellation(StepEnd::from_result(&result), cancel);
        self.finish_step(id, end.status, started, end.error.clone());
        self.run_step_hooks(&step.hooks, "in_parallel", parent, end.status, exports)
            .await;
        result
    }

    async fn run_parallel_once(
        &self,
        id: StepId,
        step: &Step,
        group: &ParallelStep,
        exports: &mut Exports,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let group_cancel = cancel.child_token();
        let timed_out = AtomicBool::new(false);
        let limit = if group.limit == 0 {
            group.steps.len().max(1)
        } else {
            group.limit as usize
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(limit));
        // With fail_fast, the error of the step that stopped the group is the group's error: the
        // siblings' cancellations and the steps never started come after it.
        let stop_cause = std::sync::OnceLock::new();
        let snapshot: &Exports = exports;
        let children = group.steps.iter().map(|inner| {
            let slots = slots.clone();
            let group_cancel = &group_cancel;
            let stop_cause = &stop_cause;
            let timed_out = &timed_out;
            async move {
                let mut own = snapshot.clone();
                // A stopped group starts nothing more, even when a slot is free.
                let permit = tokio::select! {
                    biased;
                    () = group_cancel.cancelled() => None,
                    permit = slots.acquire_owned() => permit.ok(),
                };
                let result = match &permit {
                    Some(_) => self.run_step(inner, Some(id), &mut own, group_cancel).await,
                    None => {
                        // Failed only when a failure stopped the group (fail_fast); a stop from
                        // outside (the build cancelled or timed out) or the group's timeout
                        // cancels the steps still waiting, as it does the running ones.
                        let status = if cancel.is_cancelled()
                            || timed_out.load(Ordering::SeqCst)
                            || stop_cause.get().is_none()
                        {
                            Status::Cancelled
                        } else {
                            Status::Failed
                        };
                        let child = self.start_step(Some(id), step_type(&inner.kind), inner.name());
                        let error = "not started: the group was stopped".to_owned();
                        self.finish_step(child, status, Instant::now(), Some(error.clone()));
                        Err(error)
                    }
                };
                if let Err(error) = &result
                    && group.fail_fast
                {
                    if !group_cancel.is_cancelled() {
                        let _ = stop_cause.set(error.clone());
                    }
                    group_cancel.cancel();
                }
                // The slot is freed only now, so a step waiting for it sees the cancellation.
                drop(permit);
                (result, own)
            }
        });
        let all = futures::future::join_all(children);
        let results = match step.timeout {
            Some(limit) => {
                tokio::pin!(all);
                tokio::select! {
                    results = &mut all => results,
                    () = tokio::time::sleep(limit) => {
                        timed_out.store(true, Ordering::SeqCst);
                        group_cancel.cancel();
                        all.await
                    }
                }
            }
            None => all.await,
        };
        let mut first_error = None;
        let mut merged = exports.clone();
        for (result, own) in results {
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
            for (key, value) in own {
                // Keys that existed before the group keep their value.
                if !exports.contains_key(&key) {
                    merged.insert(key, value);
                }
            }
        }
        *exports = merged;
        if timed_out.load(Ordering::SeqCst) {
            let message = format!(
                "in_parallel timed out after {}",
                step.timeout
                    .map(crate::duration::format)
                    .unwrap_or_default()
            );
            self.log(id, &message);
            return Err(message);
        }
        match stop_cause.into_inner().or(first_error) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    async fn run_if(
        &self,
        step: &Step,
        chain: &IfChain,
        parent: Option<StepId>,
        exports: &mut Exports,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let name = step.name();
        let id = self.start_step(parent, StepType::If, name.clone());
        let started = Instant::now();
        let variables: BTreeMap<String, String> = self
            .metadata()
            .into_iter()
            .chain(exports.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect();
        let lookup = |key: &str| variables.get(key).cloned();
        let selected = chain.branches.iter().position(|branch| {
            branch
                .condition
                .as_ref()
                .is_none_or(|c| c.evaluate(&lookup))
        });
        let mut result = Ok(());
        for (index, branch) in chain.branches.iter().enumerate() {
            let kind = match branch.kind {
                BranchKind::If => "if",
                BranchKind::ElseIf => "else_if",
                BranchKind::Else => "else",
            };
            let branch_name = branch.label.clone().unwrap_or_else(|| kind.to_owned());
            let branch_id = self.start_step(Some(id), StepType::Branch, branch_name);
            let branch_started = Instant::now();
            if Some(index) == selected {
                result = self
                    .run_steps(&branch.steps, Some(branch_id), exports, cancel)
                    .await;
                let end = self.attribute_cancellation(StepEnd::from_result(&result), cancel);
                self.finish_step(branch_id, end.status, branch_started, end.error);
            } else {
                self.finish_step(branch_id, Status::Skipped, branch_started, None);
            }
        }
        let end = self.attribute_cancellation(StepEnd::from_result(&result), cancel);
        self.finish_step(id, end.status, started, end.error.clone());
        self.run_step_hooks(&step.hooks, &name, parent, end.status, exports)
            .await;
        result
    }
}

/// The type a step is reported with.
fn step_type(kind: &StepKind) -> StepType {
    match kind {
        StepKind::Get(_) => StepType::Get,
        StepKind::Put(_) => StepType::Put,
        StepKind::Notify(_) => StepType::Notify,
        StepKind::Service(_) => StepType::Service,
        StepKind::InParallel(_) => StepType::InParallel,
        StepKind::If(_) => StepType::If,
        StepKind::Task(_) => StepType::Task,
    }
}
