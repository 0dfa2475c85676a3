//! `autoscaling/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, one};

pub(crate) static CROSS_VERSION_OBJECT_REFERENCE: Message = Message::new(
    "CrossVersionObjectReference",
    &[
        one(1, "kind", Str),
        one(2, "name", Str),
        one(3, "apiVersion", Str).omit_zero(),
    ],
);

pub(crate) static HORIZONTAL_POD_AUTOSCALER: Message = Message::new(
    "HorizontalPodAutoscaler",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&HORIZONTAL_POD_AUTOSCALER_SPEC)),
        one(3, "status", Msg(&HORIZONTAL_POD_AUTOSCALER_STATUS)),
    ],
);

pub(crate) static HORIZONTAL_POD_AUTOSCALER_SPEC: Message = Message::new(
    "HorizontalPodAutoscalerSpec",
    &[
        one(1, "scaleTargetRef", Msg(&CROSS_VERSION_OBJECT_REFERENCE)),
        one(2, "minReplicas", I32),
        one(3, "maxReplicas", I32),
        one(4, "targetCPUUtilizationPercentage", I32),
    ],
);

pub(crate) static HORIZONTAL_POD_AUTOSCALER_STATUS: Message = Message::new(
    "HorizontalPodAutoscalerStatus",
    &[
        one(1, "observedGeneration", I64),
        one(2, "lastScaleTime", Time),
        one(3, "currentReplicas", I32),
        one(4, "desiredReplicas", I32),
        one(5, "currentCPUUtilizationPercentage", I32),
    ],
);

pub(crate) static SCALE: Message = Message::new(
    "Scale",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&SCALE_SPEC)),
        one(3, "status", Msg(&SCALE_STATUS)),
    ],
);

pub(crate) static SCALE_SPEC: Message =
    Message::new("ScaleSpec", &[one(1, "replicas", I32).omit_zero()]);

pub(crate) static SCALE_STATUS: Message = Message::new(
    "ScaleStatus",
    &[one(1, "replicas", I32), one(2, "selector", Str).omit_zero()],
);
