//! Services: started where the plan says, polled until ready, always stopped at the end of the
//! plan (before job hooks), whatever happened.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::env::filter_params;
use super::exec::StepEnd;
use super::template::apply_override;
use super::{Build, StartedService, Status, StepId, StepType};
use crate::{ServiceStep, ServiceType};

impl Build {
    /// A `service` step: `<svc>:start`, then `<svc>:ready` when the type has a ready check.
    pub(super) async fn start_service(
        &self,
        step: &ServiceStep,
        parent: Option<StepId>,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let name = &step.service_type;
        let label = self.service_label(name);
        let id = self.start_step(parent, StepType::Service, format!("{label}:start"));
        let started = Instant::now();
        let Some(service_type) = self.spec.pipeline.service_type(name).cloned() else {
            let error = format!("service \"{name}\" not found in pipeline");
            self.finish_step(id, Status::Failed, started, Some(error.clone()));
            return Err(error);
        };
        let params = self.service_params(id, &service_type, &step.overrides);
        let start = apply_override(&service_type.start, service_type.runner_override.as_ref());
        let ran = self
            .run_command(id, &start, &params, 1, None, cancel, false)
            .await;
        let end = self.attribute_cancellation(
            match ran.result {
                Ok(()) => StepEnd::ok(),
                Err(error) => StepEnd {
                    status: Status::Failed,
                    error: Some(format!("service \"{name}\" failed to start: {error}")),
                },
            },
            cancel,
        );
        self.finish_step(id, end.status, started, end.error.clone());
        if let Some(error) = end.error {
            return Err(error);
        }
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(StartedService {
                label: label.clone(),
                service_type: service_type.clone(),
                overrides: step.overrides.clone(),
            });
        let Some(ready_check) = &service_type.ready_check else {
            return Ok(());
        };
        let id = self.start_step(parent, StepType::Service, format!("{label}:ready"));
        let started = Instant::now();
        // The ready check sees every override, declared or not.
        let mut params = self.metadata();
        params.extend(
            step.overrides
                .iter()
                .map(|(k, v)| (format!("param_{k}"), v.clone())),
        );
        let command = apply_override(&ready_check.command, service_type.runner_override.as_ref());
        let deadline = started + ready_check.timeout;
        let end = loop {
            if cancel.is_cancelled() {
                break StepEnd {
                    status: Status::Cancelled,
                    error: Some("cancelled".to_owned()),
                };
            }
            let ran = self
                .run_command(id, &command, &params, 1, None, cancel, false)
                .await;
            if ran.result.is_ok() {
                break StepEnd::ok();
            }
            if Instant::now() + ready_check.interval > deadline {
                let error = format!(
                    "ready_check timed out after {}",
                    crate::duration::format(ready_check.timeout)
                );
                self.log(id, &error);
                break StepEnd {
                    status: Status::Failed,
                    error: Some(error),
                };
            }
            tokio::select! {
                () = tokio::time::sleep(ready_check.interval) => {}
                () = cancel.cancelled() => {}
            }
        };
        let end = self.attribute_cancellation(end, cancel);
        self.finish_step(id, end.status, started, end.error.clone());
        match end.error {
            Some(error) if !end.status.is_ok() => Err(error),
            _ => Ok(()),
        }
    }

    /// `<svc>:stop`, with its own deadline; failures are logged, never change the build status.
    pub(super) async fn stop_service(&self, service: &StartedService, timeout: Duration) {
        let name = &service.service_type.name;
        let id = self.start_step(None, StepType::Service, format!("{}:stop", service.label));
        let started = Instant::now();
        let params = self.service_params(id, &service.service_type, &service.overrides);
        let stop = apply_override(
            &service.service_type.stop,
            service.service_type.runner_override.as_ref(),
        );
        let cancel = self.control.abort.child_token();
        let ran = self
            .run_command(id, &stop, &params, 1, Some(timeout), &cancel, false)
            .await;
        let (status, error) = match ran.result {
            Ok(()) => (Status::Succeeded, None),
            Err(error) => (
                Status::Failed,
                Some(format!("service \"{name}\" failed to stop: {error}")),
            ),
        };
        self.finish_step(id, status, started, error);
    }

    /// How the steps of a service of type `name` are named: the type's name, and `name #2`,
    /// `name #3`, ... when services of that type were started before, so that each start
    /// matches its stop.
    fn service_label(&self, name: &str) -> String {
        let earlier = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.service_type.name == name)
            .count();
        match earlier {
            0 => name.to_owned(),
            n => format!("{name} #{}", n + 1),
        }
    }

    /// `BUILD_*`/`INPUT_*` plus the overrides the type declares, as `param_*`.
    fn service_params(
        &self,
        id: StepId,
        service_type: &ServiceType,
        overrides: &crate::Params,
    ) -> BTreeMap<String, String> {
        let (accepted, warnings) = filter_params(
            overrides,
            &service_type.params,
            "service_type",
            &service_type.name,
        );
        for warning in warnings {
            self.log(id, warning);
        }
        let mut params = self.metadata();
        params.extend(accepted);
        params
    }
}
