//! `certificates/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, map, one, rep};

pub(crate) static CERTIFICATE_SIGNING_REQUEST: Message = Message::new(
    "CertificateSigningRequest",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&CERTIFICATE_SIGNING_REQUEST_SPEC)),
        one(3, "status", Msg(&CERTIFICATE_SIGNING_REQUEST_STATUS)),
    ],
);

pub(crate) static CERTIFICATE_SIGNING_REQUEST_CONDITION: Message = Message::new(
    "CertificateSigningRequestCondition",
    &[
        one(1, "type", Str),
        one(2, "reason", Str).omit_zero(),
        one(3, "message", Str).omit_zero(),
        one(4, "lastUpdateTime", Time),
        one(5, "lastTransitionTime", Time),
        one(6, "status", Str),
    ],
);

pub(crate) static CERTIFICATE_SIGNING_REQUEST_SPEC: Message = Message::new(
    "CertificateSigningRequestSpec",
    &[
        one(1, "request", Bytes),
        one(2, "username", Str).omit_zero(),
        one(3, "uid", Str).omit_zero(),
        rep(4, "groups", Str),
        rep(5, "usages", Str),
        map(6, "extra", StrList),
        one(7, "signerName", Str),
        one(8, "expirationSeconds", I32),
    ],
);

pub(crate) static CERTIFICATE_SIGNING_REQUEST_STATUS: Message = Message::new(
    "CertificateSigningRequestStatus",
    &[
        rep(1, "conditions", Msg(&CERTIFICATE_SIGNING_REQUEST_CONDITION)),
        one(2, "certificate", Bytes).omit_zero(),
    ],
);
