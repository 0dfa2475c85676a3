//! `events/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, one};

pub(crate) static EVENT: Message = Message::new(
    "Event",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "eventTime", MicroTime),
        one(3, "series", Msg(&EVENT_SERIES)),
        one(4, "reportingController", Str).omit_zero(),
        one(5, "reportingInstance", Str).omit_zero(),
        one(6, "action", Str).omit_zero(),
        one(7, "reason", Str).omit_zero(),
        one(8, "regarding", Msg(&super::core::OBJECT_REFERENCE)),
        one(9, "related", Msg(&super::core::OBJECT_REFERENCE)),
        one(10, "note", Str).omit_zero(),
        one(11, "type", Str).omit_zero(),
        one(12, "deprecatedSource", Msg(&super::core::EVENT_SOURCE)),
        one(13, "deprecatedFirstTimestamp", Time),
        one(14, "deprecatedLastTimestamp", Time),
        one(15, "deprecatedCount", I32).omit_zero(),
    ],
);

pub(crate) static EVENT_SERIES: Message = Message::new(
    "EventSeries",
    &[one(1, "count", I32), one(2, "lastObservedTime", MicroTime)],
);
