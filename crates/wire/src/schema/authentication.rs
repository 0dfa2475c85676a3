//! `authentication/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, map, one, rep};

pub(crate) static BOUND_OBJECT_REFERENCE: Message = Message::new(
    "BoundObjectReference",
    &[
        one(1, "kind", Str).omit_zero(),
        one(2, "apiVersion", Str).omit_zero(),
        one(3, "name", Str).omit_zero(),
        one(4, "uid", Str).omit_zero(),
    ],
);

pub(crate) static SELF_SUBJECT_REVIEW: Message = Message::new(
    "SelfSubjectReview",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "status", Msg(&SELF_SUBJECT_REVIEW_STATUS)),
    ],
);

pub(crate) static SELF_SUBJECT_REVIEW_STATUS: Message = Message::new(
    "SelfSubjectReviewStatus",
    &[one(1, "userInfo", Msg(&USER_INFO))],
);

pub(crate) static TOKEN_REQUEST: Message = Message::new(
    "TokenRequest",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&TOKEN_REQUEST_SPEC)),
        one(3, "status", Msg(&TOKEN_REQUEST_STATUS)),
    ],
);

pub(crate) static TOKEN_REQUEST_SPEC: Message = Message::new(
    "TokenRequestSpec",
    &[
        rep(1, "audiences", Str),
        one(3, "boundObjectRef", Msg(&BOUND_OBJECT_REFERENCE)),
        one(4, "expirationSeconds", I64),
        map(5, "attestations", StrList),
    ],
);

pub(crate) static TOKEN_REQUEST_STATUS: Message = Message::new(
    "TokenRequestStatus",
    &[one(1, "token", Str), one(2, "expirationTimestamp", Time)],
);

pub(crate) static TOKEN_REVIEW: Message = Message::new(
    "TokenReview",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&TOKEN_REVIEW_SPEC)),
        one(3, "status", Msg(&TOKEN_REVIEW_STATUS)),
    ],
);

pub(crate) static TOKEN_REVIEW_SPEC: Message = Message::new(
    "TokenReviewSpec",
    &[one(1, "token", Str).omit_zero(), rep(2, "audiences", Str)],
);

pub(crate) static TOKEN_REVIEW_STATUS: Message = Message::new(
    "TokenReviewStatus",
    &[
        one(1, "authenticated", Bool).omit_zero(),
        one(2, "user", Msg(&USER_INFO)),
        one(3, "error", Str).omit_zero(),
        rep(4, "audiences", Str),
    ],
);

pub(crate) static USER_INFO: Message = Message::new(
    "UserInfo",
    &[
        one(1, "username", Str).omit_zero(),
        one(2, "uid", Str).omit_zero(),
        rep(3, "groups", Str),
        map(4, "extra", StrList),
    ],
);
