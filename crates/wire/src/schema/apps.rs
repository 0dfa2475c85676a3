//! `apps/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, one, rep};

pub(crate) static CONTROLLER_REVISION: Message = Message::new(
    "ControllerRevision",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "data", Raw),
        one(3, "revision", I64),
    ],
);

pub(crate) static DAEMON_SET: Message = Message::new(
    "DaemonSet",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&DAEMON_SET_SPEC)),
        one(3, "status", Msg(&DAEMON_SET_STATUS)),
    ],
);

pub(crate) static DAEMON_SET_CONDITION: Message = Message::new(
    "DaemonSetCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastTransitionTime", Time),
        one(4, "reason", Str).omit_zero(),
        one(5, "message", Str).omit_zero(),
    ],
);

pub(crate) static DAEMON_SET_SPEC: Message = Message::new(
    "DaemonSetSpec",
    &[
        one(1, "selector", Msg(&super::meta::LABEL_SELECTOR)),
        one(2, "template", Msg(&super::core::POD_TEMPLATE_SPEC)),
        one(3, "updateStrategy", Msg(&DAEMON_SET_UPDATE_STRATEGY)),
        one(4, "minReadySeconds", I32).omit_zero(),
        one(6, "revisionHistoryLimit", I32),
    ],
);

pub(crate) static DAEMON_SET_STATUS: Message = Message::new(
    "DaemonSetStatus",
    &[
        one(1, "currentNumberScheduled", I32),
        one(2, "numberMisscheduled", I32),
        one(3, "desiredNumberScheduled", I32),
        one(4, "numberReady", I32),
        one(5, "observedGeneration", I64).omit_zero(),
        one(6, "updatedNumberScheduled", I32).omit_zero(),
        one(7, "numberAvailable", I32).omit_zero(),
        one(8, "numberUnavailable", I32).omit_zero(),
        one(9, "collisionCount", I32),
        rep(10, "conditions", Msg(&DAEMON_SET_CONDITION)),
    ],
);

pub(crate) static DAEMON_SET_UPDATE_STRATEGY: Message = Message::new(
    "DaemonSetUpdateStrategy",
    &[
        one(1, "type", Str).omit_zero(),
        one(2, "rollingUpdate", Msg(&ROLLING_UPDATE_DAEMON_SET)),
    ],
);

pub(crate) static DEPLOYMENT: Message = Message::new(
    "Deployment",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&DEPLOYMENT_SPEC)),
        one(3, "status", Msg(&DEPLOYMENT_STATUS)),
    ],
);

pub(crate) static DEPLOYMENT_CONDITION: Message = Message::new(
    "DeploymentCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(4, "reason", Str).omit_zero(),
        one(5, "message", Str).omit_zero(),
        one(6, "lastUpdateTime", Time),
        one(7, "lastTransitionTime", Time),
    ],
);

pub(crate) static DEPLOYMENT_SPEC: Message = Message::new(
    "DeploymentSpec",
    &[
        one(1, "replicas", I32),
        one(2, "selector", Msg(&super::meta::LABEL_SELECTOR)),
        one(3, "template", Msg(&super::core::POD_TEMPLATE_SPEC)),
        one(4, "strategy", Msg(&DEPLOYMENT_STRATEGY)),
        one(5, "minReadySeconds", I32).omit_zero(),
        one(6, "revisionHistoryLimit", I32),
        one(7, "paused", Bool).omit_zero(),
        one(9, "progressDeadlineSeconds", I32),
    ],
);

pub(crate) static DEPLOYMENT_STATUS: Message = Message::new(
    "DeploymentStatus",
    &[
        one(1, "observedGeneration", I64).omit_zero(),
        one(2, "replicas", I32).omit_zero(),
        one(3, "updatedReplicas", I32).omit_zero(),
        one(4, "availableReplicas", I32).omit_zero(),
        one(5, "unavailableReplicas", I32).omit_zero(),
        rep(6, "conditions", Msg(&DEPLOYMENT_CONDITION)),
        one(7, "readyReplicas", I32).omit_zero(),
        one(8, "collisionCount", I32),
        one(9, "terminatingReplicas", I32),
    ],
);

pub(crate) static DEPLOYMENT_STRATEGY: Message = Message::new(
    "DeploymentStrategy",
    &[
        one(1, "type", Str).omit_zero(),
        one(2, "rollingUpdate", Msg(&ROLLING_UPDATE_DEPLOYMENT)),
    ],
);

pub(crate) static REPLICA_SET: Message = Message::new(
    "ReplicaSet",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&REPLICA_SET_SPEC)),
        one(3, "status", Msg(&REPLICA_SET_STATUS)),
    ],
);

pub(crate) static REPLICA_SET_CONDITION: Message = Message::new(
    "ReplicaSetCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastTransitionTime", Time),
        one(4, "reason", Str).omit_zero(),
        one(5, "message", Str).omit_zero(),
    ],
);

pub(crate) static REPLICA_SET_SPEC: Message = Message::new(
    "ReplicaSetSpec",
    &[
        one(1, "replicas", I32),
        one(2, "selector", Msg(&super::meta::LABEL_SELECTOR)),
        one(3, "template", Msg(&super::core::POD_TEMPLATE_SPEC)),
        one(4, "minReadySeconds", I32).omit_zero(),
    ],
);

pub(crate) static REPLICA_SET_STATUS: Message = Message::new(
    "ReplicaSetStatus",
    &[
        one(1, "replicas", I32),
        one(2, "fullyLabeledReplicas", I32).omit_zero(),
        one(3, "observedGeneration", I64).omit_zero(),
        one(4, "readyReplicas", I32).omit_zero(),
        one(5, "availableReplicas", I32).omit_zero(),
        rep(6, "conditions", Msg(&REPLICA_SET_CONDITION)),
        one(7, "terminatingReplicas", I32),
    ],
);

pub(crate) static ROLLING_UPDATE_DAEMON_SET: Message = Message::new(
    "RollingUpdateDaemonSet",
    &[
        one(1, "maxUnavailable", IntOrString),
        one(2, "maxSurge", IntOrString),
    ],
);

pub(crate) static ROLLING_UPDATE_DEPLOYMENT: Message = Message::new(
    "RollingUpdateDeployment",
    &[
        one(1, "maxUnavailable", IntOrString),
        one(2, "maxSurge", IntOrString),
    ],
);

pub(crate) static ROLLING_UPDATE_STATEFUL_SET_STRATEGY: Message = Message::new(
    "RollingUpdateStatefulSetStrategy",
    &[
        one(1, "partition", I32),
        one(2, "maxUnavailable", IntOrString),
    ],
);

pub(crate) static STATEFUL_SET: Message = Message::new(
    "StatefulSet",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&STATEFUL_SET_SPEC)),
        one(3, "status", Msg(&STATEFUL_SET_STATUS)),
    ],
);

pub(crate) static STATEFUL_SET_CONDITION: Message = Message::new(
    "StatefulSetCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastTransitionTime", Time),
        one(4, "reason", Str).omit_zero(),
        one(5, "message", Str).omit_zero(),
    ],
);

pub(crate) static STATEFUL_SET_ORDINALS: Message =
    Message::new("StatefulSetOrdinals", &[one(1, "start", I32)]);

pub(crate) static STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY: Message = Message::new(
    "StatefulSetPersistentVolumeClaimRetentionPolicy",
    &[
        one(1, "whenDeleted", Str).omit_zero(),
        one(2, "whenScaled", Str).omit_zero(),
    ],
);

pub(crate) static STATEFUL_SET_SPEC: Message = Message::new(
    "StatefulSetSpec",
    &[
        one(1, "replicas", I32),
        one(2, "selector", Msg(&super::meta::LABEL_SELECTOR)),
        one(3, "template", Msg(&super::core::POD_TEMPLATE_SPEC)),
        rep(
            4,
            "volumeClaimTemplates",
            Msg(&super::core::PERSISTENT_VOLUME_CLAIM),
        ),
        one(5, "serviceName", Str),
        one(6, "podManagementPolicy", Str).omit_zero(),
        one(7, "updateStrategy", Msg(&STATEFUL_SET_UPDATE_STRATEGY)),
        one(8, "revisionHistoryLimit", I32),
        one(9, "minReadySeconds", I32).omit_zero(),
        one(
            10,
            "persistentVolumeClaimRetentionPolicy",
            Msg(&STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY),
        ),
        one(11, "ordinals", Msg(&STATEFUL_SET_ORDINALS)),
    ],
);

pub(crate) static STATEFUL_SET_STATUS: Message = Message::new(
    "StatefulSetStatus",
    &[
        one(1, "observedGeneration", I64).omit_zero(),
        one(2, "replicas", I32),
        one(3, "readyReplicas", I32).omit_zero(),
        one(4, "currentReplicas", I32).omit_zero(),
        one(5, "updatedReplicas", I32).omit_zero(),
        one(6, "currentRevision", Str).omit_zero(),
        one(7, "updateRevision", Str).omit_zero(),
        one(9, "collisionCount", I32),
        rep(10, "conditions", Msg(&STATEFUL_SET_CONDITION)),
        one(11, "availableReplicas", I32),
    ],
);

pub(crate) static STATEFUL_SET_UPDATE_STRATEGY: Message = Message::new(
    "StatefulSetUpdateStrategy",
    &[
        one(1, "type", Str).omit_zero(),
        one(
            2,
            "rollingUpdate",
            Msg(&ROLLING_UPDATE_STATEFUL_SET_STRATEGY),
        ),
    ],
);
