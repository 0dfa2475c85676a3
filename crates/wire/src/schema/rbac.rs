//! `rbac/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, one, rep};

pub(crate) static AGGREGATION_RULE: Message = Message::new(
    "AggregationRule",
    &[rep(
        1,
        "clusterRoleSelectors",
        Msg(&super::meta::LABEL_SELECTOR),
    )],
);

pub(crate) static CLUSTER_ROLE: Message = Message::new(
    "ClusterRole",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        rep(2, "rules", Msg(&POLICY_RULE)),
        one(3, "aggregationRule", Msg(&AGGREGATION_RULE)),
    ],
);

pub(crate) static CLUSTER_ROLE_BINDING: Message = Message::new(
    "ClusterRoleBinding",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        rep(2, "subjects", Msg(&SUBJECT)),
        one(3, "roleRef", Msg(&ROLE_REF)),
    ],
);

pub(crate) static POLICY_RULE: Message = Message::new(
    "PolicyRule",
    &[
        rep(1, "verbs", Str),
        rep(2, "apiGroups", Str),
        rep(3, "resources", Str),
        rep(4, "resourceNames", Str),
        rep(5, "nonResourceURLs", Str),
    ],
);

pub(crate) static ROLE: Message = Message::new(
    "Role",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        rep(2, "rules", Msg(&POLICY_RULE)),
    ],
);

pub(crate) static ROLE_BINDING: Message = Message::new(
    "RoleBinding",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        rep(2, "subjects", Msg(&SUBJECT)),
        one(3, "roleRef", Msg(&ROLE_REF)),
    ],
);

pub(crate) static ROLE_REF: Message = Message::new(
    "RoleRef",
    &[
        one(1, "apiGroup", Str),
        one(2, "kind", Str),
        one(3, "name", Str),
    ],
);

pub(crate) static SUBJECT: Message = Message::new(
    "Subject",
    &[
        one(1, "kind", Str),
        one(2, "apiGroup", Str).omit_zero(),
        one(3, "name", Str),
        one(4, "namespace", Str).omit_zero(),
    ],
);
