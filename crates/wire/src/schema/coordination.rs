//! `coordination/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, one};

pub(crate) static LEASE: Message = Message::new(
    "Lease",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&LEASE_SPEC)),
    ],
);

pub(crate) static LEASE_SPEC: Message = Message::new(
    "LeaseSpec",
    &[
        one(1, "holderIdentity", Str),
        one(2, "leaseDurationSeconds", I32),
        one(3, "acquireTime", MicroTime),
        one(4, "renewTime", MicroTime),
        one(5, "leaseTransitions", I32),
        one(6, "strategy", Str),
        one(7, "preferredHolder", Str),
    ],
);
