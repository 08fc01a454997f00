//! The `ProcessOrder` state machine: one payment step of the saga under Step Functions' retry
//! policy (`States.ALL`, 5 s, 5 attempts, ×2), whose `Catch` flags the order as needing
//! attention. The definition is `deploy/aws/process-order.asl.json`.
//!
//! - [`run_task`] is what the `process-order` function does for either state of the machine.
//! - [`ProcessOrder`] starts a synchronous (Express) execution for a job and waits for its end,
//!   so the payment queue holds the order's next job until this one is settled.

use std::sync::Arc;

use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::SyncExecutionStatus;
use orderly_core::saga::Saga;
use serde::{Deserialize, Serialize};

use crate::AwsError;
use crate::queues::JobMessage;

/// The task's input: the job, and — in the `FlagNeedsAttention` state — the error that the
/// `Catch` caught.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskInput {
    /// The saga job to run.
    pub job: JobMessage,
    /// Set by the `Catch`: Step Functions' `{"Error", "Cause"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CaughtError>,
}

/// An error as Step Functions hands it to the `Catch` state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaughtError {
    /// The error's name.
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
    /// Its cause: the task's error message.
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

/// What the task returns.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskOutput {
    /// `done`, or `needs-attention` after the `Catch`.
    pub status: String,
}

/// Runs one state of the machine: the step itself (an error makes Step Functions retry), or,
/// with a caught error, the flag that hands the order to staff.
///
/// # Errors
/// The step's failure, for Step Functions to retry; or a storage failure while flagging.
pub async fn run_task(saga: &Saga, input: TaskInput) -> Result<TaskOutput, AwsError> {
    // The machine's retries are fast only (an Express execution lasts at most five minutes),
    // so each try is the last as far as a refusal goes: a declined card rejects the order at
    // once, as the class's longer waits cannot be kept here.
    let job = input.job.into_job(u32::MAX)?;
    match input.error {
        None => match saga.attempt(&job).await {
            Ok(()) => Ok(TaskOutput {
                status: "done".to_owned(),
            }),
            Err(e) => Err(AwsError(e.to_string())),
        },
        Some(caught) => {
            // The first try and the policy's retries all failed.
            let attempts = saga.retry_policies().fast.max_attempts + 1;
            let error = caught
                .cause
                .or(caught.error)
                .unwrap_or_else(|| "the step kept failing".to_owned());
            saga.give_up(&job, attempts, error)
                .await
                .map_err(|e| AwsError(e.to_string()))?;
            Ok(TaskOutput {
                status: "needs-attention".to_owned(),
            })
        }
    }
}

/// Starts `ProcessOrder` executions.
#[derive(Clone)]
pub struct ProcessOrder {
    client: Client,
    arn: String,
}

impl ProcessOrder {
    /// The machine at `arn`.
    #[must_use]
    pub fn new(config: &aws_config::SdkConfig, arn: impl Into<String>) -> Self {
        ProcessOrder {
            client: Client::new(config),
            arn: arn.into(),
        }
    }

    /// Runs the machine for a job and waits for it to end.
    ///
    /// # Errors
    /// [`AwsError`] if the execution could not run or did not succeed (the message is then
    /// delivered again; the step itself is idempotent).
    pub async fn run(&self, job: &JobMessage) -> Result<(), AwsError> {
        let input = serde_json::to_string(&TaskInput {
            job: job.clone(),
            error: None,
        })
        .map_err(|e| AwsError(e.to_string()))?;
        let out = self
            .client
            .start_sync_execution()
            .state_machine_arn(&self.arn)
            .input(input)
            .send()
            .await
            .map_err(|e| AwsError::sdk("Step Functions StartSyncExecution", e))?;
        if out.status == SyncExecutionStatus::Succeeded {
            Ok(())
        } else {
            Err(AwsError(format!(
                "ProcessOrder ended {:?}: {}",
                out.status,
                out.cause.unwrap_or_default()
            )))
        }
    }
}

/// Who runs a worker's jobs.
#[derive(Clone)]
pub enum Runner {
    /// The saga in this process, with SQS doing the retries.
    Local(Arc<Saga>),
    /// The `ProcessOrder` state machine, with Step Functions doing the retries.
    StateMachine(ProcessOrder),
}
