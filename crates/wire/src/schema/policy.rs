//! `policy/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, map, one, rep};

pub(crate) static EVICTION: Message = Message::new(
    "Eviction",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "deleteOptions", Msg(&super::meta::DELETE_OPTIONS)),
    ],
);

pub(crate) static POD_DISRUPTION_BUDGET: Message = Message::new(
    "PodDisruptionBudget",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&POD_DISRUPTION_BUDGET_SPEC)),
        one(3, "status", Msg(&POD_DISRUPTION_BUDGET_STATUS)),
    ],
);

pub(crate) static POD_DISRUPTION_BUDGET_SPEC: Message = Message::new(
    "PodDisruptionBudgetSpec",
    &[
        one(1, "minAvailable", IntOrString),
        one(2, "selector", Msg(&super::meta::LABEL_SELECTOR)),
        one(3, "maxUnavailable", IntOrString),
        one(4, "unhealthyPodEvictionPolicy", Str),
    ],
);

pub(crate) static POD_DISRUPTION_BUDGET_STATUS: Message = Message::new(
    "PodDisruptionBudgetStatus",
    &[
        one(1, "observedGeneration", I64).omit_zero(),
        map(2, "disruptedPods", Time),
        one(3, "disruptionsAllowed", I32),
        one(4, "currentHealthy", I32),
        one(5, "desiredHealthy", I32),
        one(6, "expectedPods", I32),
        rep(7, "conditions", Msg(&super::meta::CONDITION)),
    ],
);
