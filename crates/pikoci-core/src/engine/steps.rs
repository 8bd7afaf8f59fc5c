//! The steps that run a resource's or notification's command, or a task: `get`, `put`,
//! `notify`, `task`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::command::Ran;
use super::env::{
    MAX_OUTPUT_FILE, filter_params, flatten_version, parse_output_file, parse_versions,
};
use super::exec::{Exports, StepEnd};
use super::template::apply_override;
use super::{Build, Event, Status, StepId};
use crate::expand::expand;
use crate::name::env_name;
use crate::{Command, GetStep, NotifyStep, PutStep, Resource, ResourceType, Step, TaskStep};

fn failed(error: impl Into<String>) -> StepEnd {
    StepEnd {
        status: Status::Failed,
        error: Some(error.into()),
    }
}

/// A resource type's `pull` or `push`, about to run for a step.
struct ResourceCommand<'a> {
    /// The type's command, before its runner override.
    command: &'a Command,
    resource_type: &'a ResourceType,
    /// The resource's accepted params and the step's own (`version_*` or `put_*`).
    params: BTreeMap<String, String>,
    cache_dir: Option<PathBuf>,
    /// Whether the output is returned (a push prints its versions).
    capture: bool,
}

/// The name of the resource type every `put` to which is a trigger event.
const TRIGGER_TYPE: &str = "trigger";

impl Build {
    /// The resource and its type (both exist: the pipeline was validated).
    fn resource_and_type(
        &self,
        reference: &crate::ResourceRef,
    ) -> Result<(&Resource, &ResourceType), String> {
        let resource = self
            .spec
            .pipeline
            .resource(reference)
            .ok_or_else(|| format!("resource \"{reference}\" not found in pipeline"))?;
        let resource_type = self
            .spec
            .pipeline
            .resource_type(&resource.type_name)
            .ok_or_else(|| {
                format!(
                    "resource_type \"{}\" not found in pipeline",
                    resource.type_name
                )
            })?;
        Ok((resource, resource_type))
    }

    /// `CACHE_DIR` for a resource, created on first use, when caching is on for it.
    pub(super) fn cache_dir(
        &self,
        resource: &Resource,
        resource_type: &ResourceType,
    ) -> Option<PathBuf> {
        if !resource.cache.unwrap_or(resource_type.cache) {
            return None;
        }
        let dir = self
            .spec
            .cache_root
            .as_ref()?
            .join(&self.spec.team)
            .join(&self.spec.pipeline_name)
            .join(resource.canonical());
        std::fs::create_dir_all(&dir).ok()?;
        Some(dir)
    }

    /// Takes a resource's cache directory for the step `id` (see [`super::cache_lock`]),
    /// saying in its log when it has to wait for another check or get of the resource.
    async fn lock_cache(
        &self,
        id: StepId,
        dir: &std::path::Path,
        cancel: &CancellationToken,
    ) -> Result<super::cache_lock::CacheLock, String> {
        super::cache_lock::lock(dir, cancel, || {
            self.log(
                id,
                "waiting for the resource's cache: another check or get of it is using it on this worker",
            );
        })
        .await
    }

    /// Runs a resource type's `pull` (for a get) or `push` (for a put) with the step's
    /// attempts and timeout: the call's params, then build metadata, exports and `CACHE_DIR`.
    async fn run_resource_command(
        &self,
        id: StepId,
        step: &Step,
        call: ResourceCommand<'_>,
        exports: &Exports,
        cancel: &CancellationToken,
    ) -> Ran {
        let command = apply_override(call.command, call.resource_type.runner_override.as_ref());
        let mut params = call.params;
        params.extend(self.metadata());
        params.extend(exports.clone());
        let mut _cache = None;
        if let Some(dir) = &call.cache_dir {
            match self.lock_cache(id, dir, cancel).await {
                Ok(lock) => _cache = Some(lock),
                Err(error) => {
                    return Ran {
                        result: Err(error),
                        output: String::new(),
                        cancelled: cancel.is_cancelled(),
                    };
                }
            }
            params.insert("CACHE_DIR".to_owned(), dir.display().to_string());
        }
        self.run_command(
            id,
            &command,
            &params,
            step.attempts,
            step.timeout,
            cancel,
            call.capture,
        )
        .await
    }

    /// The parameters a resource passes to its type, logging warnings for undeclared ones.
    pub(super) fn resource_params(
        &self,
        id: StepId,
        resource: &Resource,
        resource_type: &ResourceType,
    ) -> BTreeMap<String, String> {
        let (accepted, warnings) = filter_params(
            &resource.params,
            &resource_type.params,
            "resource_type",
            &resource_type.name,
        );
        for warning in warnings {
            self.log(id, warning);
        }
        accepted
    }

    pub(super) async fn get(
        &self,
        id: StepId,
        step: &Step,
        get: &GetStep,
        exports: &mut Exports,
        cancel: &CancellationToken,
    ) -> StepEnd {
        let (resource, resource_type) = match self.resource_and_type(&get.resource) {
            Ok(found) => found,
            Err(error) => return failed(error),
        };
        if let Err(error) = resource.work_dir_name() {
            self.log(id, &error);
            return failed(error);
        }
        let canonical = resource.canonical();
        if let Some(dir) = self
            .spec
            .local
            .as_ref()
            .and_then(|l| l.resource_dirs.get(&canonical))
        {
            return self.copy_local_resource(id, resource, resource_type, dir);
        }
        let accepted = self.resource_params(id, resource, resource_type);
        let cache_dir = self.cache_dir(resource, resource_type);
        let version = match self.spec.versions.get(&canonical) {
            Some(version) => version.clone(),
            None if self.spec.local.is_some() => {
                match self
                    .newest_version(
                        id,
                        resource,
                        resource_type,
                        &accepted,
                        cache_dir.as_ref(),
                        cancel,
                    )
                    .await
                {
                    Ok(version) => version,
                    Err(error) => {
                        self.log(id, &error);
                        return failed(error);
                    }
                }
            }
            None => return failed(format!("no version found for resource \"{canonical}\"")),
        };
        let flat = flatten_version(&version);
        if let Some(pull) = &resource_type.pull {
            let mut params = accepted;
            params.extend(
                flat.iter()
                    .map(|(k, v)| (format!("version_{k}"), v.clone())),
            );
            let call = ResourceCommand {
                command: pull,
                resource_type,
                params,
                cache_dir,
                capture: false,
            };
            let ran = self
                .run_resource_command(id, step, call, exports, cancel)
                .await;
            if let Err(error) = ran.result {
                return failed(error);
            }
        }
        // Stored and shown like a push's versions: a secret a local check printed is masked.
        self.sink.emit(Event::VersionUsed {
            resource: canonical,
            version: self.masker.mask_json(version),
        });
        let prefix = env_name(&resource.name);
        for (key, value) in flat {
            self.export(
                id,
                exports,
                format!("GET_{prefix}_{}", env_name(&key)),
                value,
            );
        }
        StepEnd::ok()
    }

    /// Local runs: the newest version of a resource, found by running its check.
    async fn newest_version(
        &self,
        id: StepId,
        resource: &Resource,
        resource_type: &ResourceType,
        accepted: &BTreeMap<String, String>,
        cache_dir: Option<&PathBuf>,
        cancel: &CancellationToken,
    ) -> Result<serde_json::Value, String> {
        let canonical = resource.canonical();
        self.log(id, format!("checking {canonical} for its newest version"));
        let found = self
            .check_versions(
                id,
                resource,
                resource_type,
                accepted,
                cache_dir,
                None,
                cancel,
            )
            .await?;
        match found {
            Some(versions) => versions
                .last()
                .cloned()
                .ok_or_else(|| format!("no versions for resource \"{canonical}\"")),
            None => {
                self.log(
                    id,
                    format!(
                        "resource type \"{}\" has no check; using an empty version",
                        resource_type.name
                    ),
                );
                Ok(serde_json::json!({}))
            }
        }
    }

    /// Runs a resource's check (natively when the engine can, else the type's `check`
    /// command) and returns the versions it printed, oldest first; `None` when the type has
    /// no check. `newest` is the newest version known, given to the check as `version_*`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn check_versions(
        &self,
        id: StepId,
        resource: &Resource,
        resource_type: &ResourceType,
        accepted: &BTreeMap<String, String>,
        cache_dir: Option<&PathBuf>,
        newest: Option<&serde_json::Value>,
        cancel: &CancellationToken,
    ) -> Result<Option<Vec<serde_json::Value>>, String> {
        let canonical = resource.canonical();
        if let Some(native) = &self.native {
            let params: BTreeMap<String, String> = accepted
                .iter()
                .map(|(k, v)| (k.clone(), self.substitute(v)))
                .collect();
            let request = super::CheckRequest {
                resource,
                resource_type,
                params: &params,
                newest,
            };
            if let Some(found) = native.check(request).await {
                return found.map(Some).map_err(|error| {
                    format!("the check of resource \"{canonical}\" failed: {error}")
                });
            }
        }
        let Some(check) = &resource_type.check else {
            return Ok(None);
        };
        let command = apply_override(check, resource_type.runner_override.as_ref());
        let mut params: BTreeMap<String, String> = newest
            .map(flatten_version)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (format!("version_{k}"), v))
            .collect();
        params.extend(accepted.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut _cache = None;
        if let Some(dir) = cache_dir {
            _cache = Some(self.lock_cache(id, dir, cancel).await.map_err(|error| {
                format!("the check of resource \"{canonical}\" failed: {error}")
            })?);
            params.insert("CACHE_DIR".to_owned(), dir.display().to_string());
        }
        let ran = self
            .run_command(id, &command, &params, 1, None, cancel, true)
            .await;
        ran.result
            .map_err(|error| format!("the check of resource \"{canonical}\" failed: {error}"))?;
        parse_versions(&ran.output).map(Some)
    }

    fn copy_local_resource(
        &self,
        id: StepId,
        resource: &Resource,
        resource_type: &ResourceType,
        dir: &std::path::Path,
    ) -> StepEnd {
        let source = match std::fs::canonicalize(dir) {
            Ok(path) => path,
            Err(_) => {
                let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
                return failed(format!(
                    "local resource override path does not exist: {}",
                    shown.display()
                ));
            }
        };
        let target_name = super::local::override_target(resource, resource_type);
        if let Some(problem) = Resource::work_dir_name_problem(&target_name.to_string_lossy()) {
            return failed(format!(
                "resource \"{}\": the local override's target {} {problem}",
                resource.canonical(),
                target_name.display()
            ));
        }
        let target = self.workdir.join(&target_name);
        self.log(
            id,
            format!(
                "using local resource override: {} -> {}",
                source.display(),
                target_name.display()
            ),
        );
        match copy_tree(&source, &target) {
            Ok(()) => StepEnd::ok(),
            Err(err) => failed(format!(
                "failed to copy {} to {}: {err}",
                source.display(),
                target.display()
            )),
        }
    }

    pub(super) async fn task(
        &self,
        id: StepId,
        step: &Step,
        task: &TaskStep,
        exports: &mut Exports,
        cancel: &CancellationToken,
    ) -> StepEnd {
        for input in &task.inputs {
            if !self.workdir.join(input).exists() {
                let error = format!("input \"{input}\" does not exist");
                self.log(id, &error);
                return failed(error);
            }
        }
        let output_file = self
            .workdir
            .join(format!(".pikoci-output-{}", super::new_build_dir_name()));
        if let Err(err) = std::fs::write(&output_file, "") {
            return failed(format!(
                "failed to create the output file {}: {err}",
                output_file.display()
            ));
        }
        let mut params = self.metadata();
        params.extend(exports.clone());
        params.insert(
            "PIKOCI_OUTPUT".to_owned(),
            output_file.display().to_string(),
        );
        let ran = self
            .run_command(
                id,
                &task.run,
                &params,
                step.attempts,
                step.timeout,
                cancel,
                false,
            )
            .await;
        let end = match ran.result {
            Err(error) => failed(error),
            Ok(()) => match task
                .outputs
                .iter()
                .find(|output| !self.workdir.join(output).exists())
            {
                Some(missing) => {
                    let error = format!("task finished but output \"{missing}\" was not produced");
                    self.log(id, &error);
                    failed(error)
                }
                None => {
                    self.read_exports(id, &task.name, &output_file, exports);
                    StepEnd::ok()
                }
            },
        };
        let _ = std::fs::remove_file(&output_file);
        end
    }

    /// Reads a successful task's `$PIKOCI_OUTPUT` into `TASK_<NAME>_<KEY>` exports.
    fn read_exports(&self, id: StepId, task: &str, file: &std::path::Path, exports: &mut Exports) {
        let too_big = std::fs::metadata(file)
            .map(|m| m.len() > MAX_OUTPUT_FILE)
            .unwrap_or(false);
        if too_big {
            self.log(
                id,
                "WARNING: $PIKOCI_OUTPUT is larger than 1 MiB and was ignored",
            );
            return;
        }
        let Ok(text) = std::fs::read_to_string(file) else {
            return;
        };
        let (pairs, warnings) = parse_output_file(&text);
        for warning in warnings {
            self.log(id, warning);
        }
        let prefix = env_name(task);
        for (key, value) in pairs {
            self.export(id, exports, format!("TASK_{prefix}_{key}"), value);
        }
    }

    pub(super) async fn put(
        &self,
        id: StepId,
        step: &Step,
        put: &PutStep,
        exports: &Exports,
        cancel: &CancellationToken,
    ) -> StepEnd {
        if self.spec.local.is_some() {
            self.log(
                id,
                format!("skipping put step (local execution): {}", put.resource),
            );
            return StepEnd::skipped();
        }
        let (resource, resource_type) = match self.resource_and_type(&put.resource) {
            Ok(found) => found,
            Err(error) => return failed(error),
        };
        if resource_type.name == TRIGGER_TYPE && resource_type.push.is_none() {
            return self.put_trigger(id, resource, put);
        }
        let Some(push) = &resource_type.push else {
            self.log(
                id,
                format!(
                    "resource type \"{}\" has no push command: nothing to do",
                    resource_type.name
                ),
            );
            return StepEnd::skipped();
        };
        if let Err(error) = resource.work_dir_name() {
            self.log(id, &error);
            return failed(error);
        }
        let mut params = self.resource_params(id, resource, resource_type);
        params.extend(
            put.params
                .iter()
                .map(|(k, v)| (format!("put_{k}"), v.clone())),
        );
        let call = ResourceCommand {
            command: push,
            resource_type,
            params,
            cache_dir: self.cache_dir(resource, resource_type),
            capture: true,
        };
        let ran = self
            .run_resource_command(id, step, call, exports, cancel)
            .await;
        if let Err(error) = ran.result {
            return failed(error);
        }
        match parse_versions(&ran.output) {
            Ok(versions) if versions.is_empty() => {}
            // Stored and shown by the API: a secret the push printed is masked like its log.
            Ok(versions) => self.sink.emit(Event::Versions {
                resource: resource.canonical(),
                versions: versions
                    .into_iter()
                    .map(|v| self.masker.mask_json(v))
                    .collect(),
            }),
            Err(error) => self.log(
                id,
                format!("WARNING: the push printed no version list: {error}"),
            ),
        }
        StepEnd::ok()
    }

    /// A `put` to a `trigger` resource: its params become a stored version that the API shows
    /// later, so a param holding a secret value is refused (masking it would hand the
    /// triggered job `***`; that job resolves the secret itself).
    fn put_trigger(&self, id: StepId, resource: &Resource, put: &PutStep) -> StepEnd {
        let mut params = BTreeMap::new();
        for (key, value) in &put.params {
            let value = self.substitute(value);
            if self.masker.mask(&value) != value {
                let error = format!(
                    "put to trigger resource \"{}\": param \"{key}\" holds a secret value, and trigger params are stored and shown as a version; let the triggered job resolve the secret itself",
                    resource.canonical()
                );
                self.log(id, &error);
                return failed(error);
            }
            params.insert(key.clone(), value);
        }
        self.sink.emit(Event::Trigger {
            resource: resource.canonical(),
            params,
        });
        StepEnd::ok()
    }

    pub(super) async fn notify(
        &self,
        id: StepId,
        notify: &NotifyStep,
        exports: &Exports,
        cancel: &CancellationToken,
    ) -> StepEnd {
        if self.spec.local.is_some() {
            self.log(
                id,
                format!(
                    "skipping notify step (local execution): {}",
                    notify.notification
                ),
            );
            return StepEnd::skipped();
        }
        let pipeline = &self.spec.pipeline;
        let Some(notification) = pipeline.notification(&notify.notification) else {
            return failed(format!(
                "notification \"{}\" not found in pipeline",
                notify.notification
            ));
        };
        let Some(notification_type) = pipeline.notification_type(&notification.type_name) else {
            return failed(format!(
                "notification_type \"{}\" not found in pipeline",
                notification.type_name
            ));
        };
        let Some(command) = &notification_type.notify else {
            self.log(
                id,
                format!(
                    "notification type \"{}\" has no notify command: nothing to do",
                    notification_type.name
                ),
            );
            return StepEnd::skipped();
        };
        let command = apply_override(command, notification_type.runner_override.as_ref());
        let (mut params, warnings) = filter_params(
            &notification.params,
            &notification_type.params,
            "notification_type",
            &notification_type.name,
        );
        for warning in warnings {
            self.log(id, warning);
        }
        params.extend(
            notify
                .params
                .iter()
                .map(|(k, v)| (format!("notify_{k}"), v.clone())),
        );
        params.extend(self.metadata());
        params.extend(exports.clone());
        if let Some(message) = notify.message.as_ref().or(notification.message.as_ref()) {
            let mut everything = command.params.clone();
            everything.extend(params.clone());
            let expanded = expand(&self.substitute(message), &|name| {
                everything.get(name).cloned()
            });
            params.insert("NOTIFY_MESSAGE".to_owned(), expanded.replace("\\n", "\n"));
        }
        let ran = self
            .run_command(id, &command, &params, 1, None, cancel, false)
            .await;
        match ran.result {
            Ok(()) => StepEnd::ok(),
            Err(error) => failed(error),
        }
    }
}

impl Build {
    /// Makes `name` visible to later steps and reports it.
    fn export(&self, id: StepId, exports: &mut Exports, name: String, value: String) {
        self.sink.emit(Event::Exported {
            id,
            name: name.clone(),
            value: self.masker.mask(&value),
        });
        exports.insert(name, value);
    }

    /// After the job hooks: every notification whose `on` matches the build's outcome and
    /// whose `jobs`/`exclude` let this job through is sent, with `notify_build_status` set.
    /// `warning` sends nothing. Local runs send nothing.
    pub(super) async fn send_automatic_notifications(&self, status: Status, exports: &Exports) {
        let event = match status {
            Status::Succeeded => crate::NotificationEvent::Success,
            Status::Failed => crate::NotificationEvent::Failure,
            Status::Cancelled => crate::NotificationEvent::Cancel,
            Status::Warning | Status::Skipped => return,
        };
        if self.spec.local.is_some() {
            return;
        }
        let event_name = match event {
            crate::NotificationEvent::Success => "success",
            crate::NotificationEvent::Failure => "failure",
            _ => "cancel",
        };
        let cancel = self.control.abort.child_token();
        let notifications = self.spec.pipeline.notifications.clone();
        for notification in notifications {
            let fires = notification.on.contains(&event)
                || notification.on.contains(&crate::NotificationEvent::All);
            if !fires || !notification.jobs.matches(&self.spec.job) {
                continue;
            }
            let step = NotifyStep {
                notification: crate::NotificationRef {
                    type_name: notification.type_name.clone(),
                    name: notification.name.clone(),
                },
                message: None,
                params: [("build_status".to_owned(), event_name.to_owned())].into(),
            };
            let id = self.start_step(None, super::StepType::Notify, notification.name.clone());
            let started = std::time::Instant::now();
            let end = self.notify(id, &step, exports, &cancel).await;
            self.finish_step(id, end.status, started, end.error);
        }
    }
}

/// Copies a file or directory tree (symlinks copied as links, permissions kept).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from)?;
        #[cfg(unix)]
        return std::os::unix::fs::symlink(target, to);
        #[cfg(not(unix))]
        return std::fs::copy(from, to).map(|_| ());
    }
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        std::fs::set_permissions(to, meta.permissions())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}
