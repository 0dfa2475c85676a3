//! `discovery/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, map, one, rep};

pub(crate) static ENDPOINT: Message = Message::new(
    "Endpoint",
    &[
        rep(1, "addresses", Str),
        one(2, "conditions", Msg(&ENDPOINT_CONDITIONS)),
        one(3, "hostname", Str),
        one(4, "targetRef", Msg(&super::core::OBJECT_REFERENCE)),
        map(5, "deprecatedTopology", Str),
        one(6, "nodeName", Str),
        one(7, "zone", Str),
        one(8, "hints", Msg(&ENDPOINT_HINTS)),
    ],
);

pub(crate) static ENDPOINT_CONDITIONS: Message = Message::new(
    "EndpointConditions",
    &[
        one(1, "ready", Bool),
        one(2, "serving", Bool),
        one(3, "terminating", Bool),
    ],
);

pub(crate) static ENDPOINT_HINTS: Message = Message::new(
    "EndpointHints",
    &[
        rep(1, "forZones", Msg(&FOR_ZONE)),
        rep(2, "forNodes", Msg(&FOR_NODE)),
    ],
);

pub(crate) static ENDPOINT_PORT: Message = Message::new(
    "EndpointPort",
    &[
        one(1, "name", Str),
        one(2, "protocol", Str),
        one(3, "port", I32),
        one(4, "appProtocol", Str),
    ],
);

pub(crate) static ENDPOINT_SLICE: Message = Message::new(
    "EndpointSlice",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        rep(2, "endpoints", Msg(&ENDPOINT)),
        rep(3, "ports", Msg(&ENDPOINT_PORT)),
        one(4, "addressType", Str),
    ],
);

pub(crate) static FOR_NODE: Message = Message::new("ForNode", &[one(1, "name", Str)]);

pub(crate) static FOR_ZONE: Message = Message::new("ForZone", &[one(1, "name", Str)]);
