//! `scheduling/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, one};

pub(crate) static PRIORITY_CLASS: Message = Message::new(
    "PriorityClass",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "value", I32),
        one(3, "globalDefault", Bool).omit_zero(),
        one(4, "description", Str).omit_zero(),
        one(5, "preemptionPolicy", Str),
    ],
);
