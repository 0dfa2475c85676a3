//! `batch/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, one, rep};

pub(crate) static CRON_JOB: Message = Message::new(
    "CronJob",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&CRON_JOB_SPEC)),
        one(3, "status", Msg(&CRON_JOB_STATUS)),
    ],
);

pub(crate) static CRON_JOB_SPEC: Message = Message::new(
    "CronJobSpec",
    &[
        one(1, "schedule", Str),
        one(2, "startingDeadlineSeconds", I64),
        one(3, "concurrencyPolicy", Str).omit_zero(),
        one(4, "suspend", Bool),
        one(5, "jobTemplate", Msg(&JOB_TEMPLATE_SPEC)),
        one(6, "successfulJobsHistoryLimit", I32),
        one(7, "failedJobsHistoryLimit", I32),
        one(8, "timeZone", Str),
    ],
);

pub(crate) static CRON_JOB_STATUS: Message = Message::new(
    "CronJobStatus",
    &[
        rep(1, "active", Msg(&super::core::OBJECT_REFERENCE)),
        one(4, "lastScheduleTime", Time),
        one(5, "lastSuccessfulTime", Time),
    ],
);

pub(crate) static JOB: Message = Message::new(
    "Job",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&JOB_SPEC)),
        one(3, "status", Msg(&JOB_STATUS)),
    ],
);

pub(crate) static JOB_CONDITION: Message = Message::new(
    "JobCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastProbeTime", Time),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str).omit_zero(),
        one(6, "message", Str).omit_zero(),
    ],
);

pub(crate) static JOB_SCHEDULING_CONFIGURATION: Message =
    Message::new("JobSchedulingConfiguration", &[]);

pub(crate) static JOB_SPEC: Message = Message::new(
    "JobSpec",
    &[
        one(1, "parallelism", I32),
        one(2, "completions", I32),
        one(3, "activeDeadlineSeconds", I64),
        one(4, "selector", Msg(&super::meta::LABEL_SELECTOR)),
        one(5, "manualSelector", Bool),
        one(6, "template", Msg(&super::core::POD_TEMPLATE_SPEC)),
        one(7, "backoffLimit", I32),
        one(8, "ttlSecondsAfterFinished", I32),
        one(9, "completionMode", Str),
        one(10, "suspend", Bool),
        one(11, "podFailurePolicy", Msg(&POD_FAILURE_POLICY)),
        one(12, "backoffLimitPerIndex", I32),
        one(13, "maxFailedIndexes", I32),
        one(14, "podReplacementPolicy", Str),
        one(15, "managedBy", Str),
        one(16, "successPolicy", Msg(&SUCCESS_POLICY)),
        one(17, "scheduling", Msg(&JOB_SCHEDULING_CONFIGURATION)),
    ],
);

pub(crate) static JOB_STATUS: Message = Message::new(
    "JobStatus",
    &[
        rep(1, "conditions", Msg(&JOB_CONDITION)),
        one(2, "startTime", Time),
        one(3, "completionTime", Time),
        one(4, "active", I32).omit_zero(),
        one(5, "succeeded", I32).omit_zero(),
        one(6, "failed", I32).omit_zero(),
        one(7, "completedIndexes", Str).omit_zero(),
        one(
            8,
            "uncountedTerminatedPods",
            Msg(&UNCOUNTED_TERMINATED_PODS),
        ),
        one(9, "ready", I32),
        one(10, "failedIndexes", Str),
        one(11, "terminating", I32),
    ],
);

pub(crate) static JOB_TEMPLATE_SPEC: Message = Message::new(
    "JobTemplateSpec",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&JOB_SPEC)),
    ],
);

pub(crate) static POD_FAILURE_POLICY: Message = Message::new(
    "PodFailurePolicy",
    &[rep(1, "rules", Msg(&POD_FAILURE_POLICY_RULE))],
);

pub(crate) static POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Message = Message::new(
    "PodFailurePolicyOnExitCodesRequirement",
    &[
        one(1, "containerName", Str),
        one(2, "operator", Str),
        rep(3, "values", I32),
    ],
);

pub(crate) static POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Message = Message::new(
    "PodFailurePolicyOnPodConditionsPattern",
    &[one(1, "type", Str), one(2, "status", Str)],
);

pub(crate) static POD_FAILURE_POLICY_RULE: Message = Message::new(
    "PodFailurePolicyRule",
    &[
        one(1, "action", Str),
        one(
            2,
            "onExitCodes",
            Msg(&POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT),
        ),
        rep(
            3,
            "onPodConditions",
            Msg(&POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN),
        ),
    ],
);

pub(crate) static SUCCESS_POLICY: Message = Message::new(
    "SuccessPolicy",
    &[rep(1, "rules", Msg(&SUCCESS_POLICY_RULE))],
);

pub(crate) static SUCCESS_POLICY_RULE: Message = Message::new(
    "SuccessPolicyRule",
    &[
        one(1, "succeededIndexes", Str),
        one(2, "succeededCount", I32),
    ],
);

pub(crate) static UNCOUNTED_TERMINATED_PODS: Message = Message::new(
    "UncountedTerminatedPods",
    &[rep(1, "succeeded", Str), rep(2, "failed", Str)],
);
