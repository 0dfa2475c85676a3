//! `meta/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, map, one, rep};

pub(crate) static CONDITION: Message = Message::new(
    "Condition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "observedGeneration", I64).omit_zero(),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str),
        one(6, "message", Str),
    ],
);

pub(crate) static DELETE_OPTIONS: Message = Message::new(
    "DeleteOptions",
    &[
        one(1, "gracePeriodSeconds", I64),
        one(2, "preconditions", Msg(&PRECONDITIONS)),
        one(3, "orphanDependents", Bool),
        one(4, "propagationPolicy", Str),
        rep(5, "dryRun", Str),
        one(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool),
    ],
);

pub(crate) static FIELD_SELECTOR_REQUIREMENT: Message = Message::new(
    "FieldSelectorRequirement",
    &[
        one(1, "key", Str),
        one(2, "operator", Str),
        rep(3, "values", Str),
    ],
);

pub(crate) static LABEL_SELECTOR: Message = Message::new(
    "LabelSelector",
    &[
        map(1, "matchLabels", Str),
        rep(2, "matchExpressions", Msg(&LABEL_SELECTOR_REQUIREMENT)),
    ],
);

pub(crate) static LABEL_SELECTOR_REQUIREMENT: Message = Message::new(
    "LabelSelectorRequirement",
    &[
        one(1, "key", Str),
        one(2, "operator", Str),
        rep(3, "values", Str),
    ],
);

pub(crate) static MANAGED_FIELDS_ENTRY: Message = Message::new(
    "ManagedFieldsEntry",
    &[
        one(1, "manager", Str).omit_zero(),
        one(2, "operation", Str).omit_zero(),
        one(3, "apiVersion", Str).omit_zero(),
        one(4, "time", Time),
        one(6, "fieldsType", Str).omit_zero(),
        one(7, "fieldsV1", FieldsV1),
        one(8, "subresource", Str).omit_zero(),
    ],
);

pub(crate) static OBJECT_META: Message = Message::new(
    "ObjectMeta",
    &[
        one(1, "name", Str).omit_zero(),
        one(2, "generateName", Str).omit_zero(),
        one(3, "namespace", Str).omit_zero(),
        one(4, "selfLink", Str).omit_zero(),
        one(5, "uid", Str).omit_zero(),
        one(6, "resourceVersion", Str).omit_zero(),
        one(7, "generation", I64).omit_zero(),
        one(8, "creationTimestamp", Time),
        one(9, "deletionTimestamp", Time),
        one(10, "deletionGracePeriodSeconds", I64),
        map(11, "labels", Str),
        map(12, "annotations", Str),
        rep(13, "ownerReferences", Msg(&OWNER_REFERENCE)),
        rep(14, "finalizers", Str),
        rep(17, "managedFields", Msg(&MANAGED_FIELDS_ENTRY)),
    ],
);

pub(crate) static OWNER_REFERENCE: Message = Message::new(
    "OwnerReference",
    &[
        one(1, "kind", Str),
        one(3, "name", Str),
        one(4, "uid", Str),
        one(5, "apiVersion", Str),
        one(6, "controller", Bool),
        one(7, "blockOwnerDeletion", Bool),
    ],
);

pub(crate) static PRECONDITIONS: Message = Message::new(
    "Preconditions",
    &[one(1, "uid", Str), one(2, "resourceVersion", Str)],
);
