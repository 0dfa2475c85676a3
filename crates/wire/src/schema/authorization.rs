//! `authorization/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, map, one, rep};

pub(crate) static FIELD_SELECTOR_ATTRIBUTES: Message = Message::new(
    "FieldSelectorAttributes",
    &[
        one(1, "rawSelector", Str).omit_zero(),
        rep(
            2,
            "requirements",
            Msg(&super::meta::FIELD_SELECTOR_REQUIREMENT),
        ),
    ],
);

pub(crate) static LABEL_SELECTOR_ATTRIBUTES: Message = Message::new(
    "LabelSelectorAttributes",
    &[
        one(1, "rawSelector", Str).omit_zero(),
        rep(
            2,
            "requirements",
            Msg(&super::meta::LABEL_SELECTOR_REQUIREMENT),
        ),
    ],
);

pub(crate) static LOCAL_SUBJECT_ACCESS_REVIEW: Message = Message::new(
    "LocalSubjectAccessReview",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&SUBJECT_ACCESS_REVIEW_SPEC)),
        one(3, "status", Msg(&SUBJECT_ACCESS_REVIEW_STATUS)),
    ],
);

pub(crate) static NON_RESOURCE_ATTRIBUTES: Message = Message::new(
    "NonResourceAttributes",
    &[
        one(1, "path", Str).omit_zero(),
        one(2, "verb", Str).omit_zero(),
    ],
);

pub(crate) static NON_RESOURCE_RULE: Message = Message::new(
    "NonResourceRule",
    &[rep(1, "verbs", Str), rep(2, "nonResourceURLs", Str)],
);

pub(crate) static RESOURCE_ATTRIBUTES: Message = Message::new(
    "ResourceAttributes",
    &[
        one(1, "namespace", Str).omit_zero(),
        one(2, "verb", Str).omit_zero(),
        one(3, "group", Str).omit_zero(),
        one(4, "version", Str).omit_zero(),
        one(5, "resource", Str).omit_zero(),
        one(6, "subresource", Str).omit_zero(),
        one(7, "name", Str).omit_zero(),
        one(8, "fieldSelector", Msg(&FIELD_SELECTOR_ATTRIBUTES)),
        one(9, "labelSelector", Msg(&LABEL_SELECTOR_ATTRIBUTES)),
    ],
);

pub(crate) static RESOURCE_RULE: Message = Message::new(
    "ResourceRule",
    &[
        rep(1, "verbs", Str),
        rep(2, "apiGroups", Str),
        rep(3, "resources", Str),
        rep(4, "resourceNames", Str),
    ],
);

pub(crate) static SELF_SUBJECT_ACCESS_REVIEW: Message = Message::new(
    "SelfSubjectAccessReview",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
        one(3, "status", Msg(&SUBJECT_ACCESS_REVIEW_STATUS)),
    ],
);

pub(crate) static SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = Message::new(
    "SelfSubjectAccessReviewSpec",
    &[
        one(1, "resourceAttributes", Msg(&RESOURCE_ATTRIBUTES)),
        one(2, "nonResourceAttributes", Msg(&NON_RESOURCE_ATTRIBUTES)),
    ],
);

pub(crate) static SELF_SUBJECT_RULES_REVIEW: Message = Message::new(
    "SelfSubjectRulesReview",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&SELF_SUBJECT_RULES_REVIEW_SPEC)),
        one(3, "status", Msg(&SUBJECT_RULES_REVIEW_STATUS)),
    ],
);

pub(crate) static SELF_SUBJECT_RULES_REVIEW_SPEC: Message = Message::new(
    "SelfSubjectRulesReviewSpec",
    &[one(1, "namespace", Str).omit_zero()],
);

pub(crate) static SUBJECT_ACCESS_REVIEW: Message = Message::new(
    "SubjectAccessReview",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&SUBJECT_ACCESS_REVIEW_SPEC)),
        one(3, "status", Msg(&SUBJECT_ACCESS_REVIEW_STATUS)),
    ],
);

pub(crate) static SUBJECT_ACCESS_REVIEW_SPEC: Message = Message::new(
    "SubjectAccessReviewSpec",
    &[
        one(1, "resourceAttributes", Msg(&RESOURCE_ATTRIBUTES)),
        one(2, "nonResourceAttributes", Msg(&NON_RESOURCE_ATTRIBUTES)),
        one(3, "user", Str).omit_zero(),
        rep(4, "groups", Str),
        map(5, "extra", StrList),
        one(6, "uid", Str).omit_zero(),
    ],
);

pub(crate) static SUBJECT_ACCESS_REVIEW_STATUS: Message = Message::new(
    "SubjectAccessReviewStatus",
    &[
        one(1, "allowed", Bool),
        one(2, "reason", Str).omit_zero(),
        one(3, "evaluationError", Str).omit_zero(),
        one(4, "denied", Bool).omit_zero(),
    ],
);

pub(crate) static SUBJECT_RULES_REVIEW_STATUS: Message = Message::new(
    "SubjectRulesReviewStatus",
    &[
        rep(1, "resourceRules", Msg(&RESOURCE_RULE)),
        rep(2, "nonResourceRules", Msg(&NON_RESOURCE_RULE)),
        one(3, "incomplete", Bool),
        one(4, "evaluationError", Str).omit_zero(),
    ],
);
