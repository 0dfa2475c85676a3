//! The parameters operations take, as data: one constant per parameter and
//! one slice per kind of operation.

use serde_json::{Value, json};

/// A parameter of an operation.
pub(crate) struct Param {
    name: &'static str,
    /// `query` or `path`.
    location: &'static str,
    /// The OpenAPI type of its value.
    ty: &'static str,
    description: &'static str,
}

impl Param {
    pub(crate) fn to_json(&self) -> Value {
        let mut p = json!({
            "name": self.name,
            "in": self.location,
            "description": self.description,
            "schema": {"type": self.ty},
        });
        if self.location == "path" {
            p["required"] = true.into();
        }
        p
    }
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description,
    }
}

/// The parameters as a JSON array.
pub(crate) fn to_json(params: &[&Param]) -> Value {
    params.iter().map(|p| p.to_json()).collect()
}

/// The path parameter `{name}` of an item path.
pub(crate) fn name_param(kind: &str) -> Value {
    json!({
        "name": "name",
        "in": "path",
        "description": format!("name of the {kind}"),
        "required": true,
        "schema": {"type": "string"},
    })
}

pub(crate) const NAMESPACE: Param = Param {
    name: "namespace",
    location: "path",
    ty: "string",
    description: "the namespace the object lives in",
};

pub(crate) const PRETTY: Param = query(
    "pretty",
    "string",
    "If 'true', the response is indented for reading.",
);
const DRY_RUN: Param = query(
    "dryRun",
    "string",
    "All: run every stage of the request but persist nothing. Any other value is rejected.",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "The name of the actor making this change, recorded in managedFields. At most 128 printable characters; required for apply patches.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "What to do with unknown or duplicate fields in the request body: Ignore (drop them), Warn (drop them and answer with a warning per field) or Strict (fail the request).",
);
const FORCE: Param = query(
    "force",
    "boolean",
    "For apply patches only: take over fields that other managers own instead of failing with a conflict.",
);
const GRACE_PERIOD: Param = query(
    "gracePeriodSeconds",
    "integer",
    "Seconds to wait before the object is deleted; 0 deletes now. Unset uses the kind's default.",
);
const ORPHAN: Param = query(
    "orphanDependents",
    "boolean",
    "Deprecated in favour of propagationPolicy: whether dependents are orphaned. At most one of the two may be set.",
);
const PROPAGATION: Param = query(
    "propagationPolicy",
    "string",
    "How dependents are garbage collected: Orphan, Background or Foreground.",
);
const LABEL_SELECTOR: Param = query(
    "labelSelector",
    "string",
    "Only objects whose labels match this selector. Defaults to everything.",
);
const FIELD_SELECTOR: Param = query(
    "fieldSelector",
    "string",
    "Only objects whose fields match this selector. Defaults to everything.",
);
const LIMIT: Param = query(
    "limit",
    "integer",
    "The most objects to return; when more exist the list metadata carries a continue token for the next page.",
);
const CONTINUE: Param = query(
    "continue",
    "string",
    "The continue token of the previous page of the same list.",
);
const WATCH: Param = query(
    "watch",
    "boolean",
    "Stream changes to the selected objects instead of listing them once.",
);
const ALLOW_WATCH_BOOKMARKS: Param = query(
    "allowWatchBookmarks",
    "boolean",
    "For watches: the client accepts BOOKMARK events.",
);
const RESOURCE_VERSION: Param = query(
    "resourceVersion",
    "string",
    "The resource version the list is served at or the watch starts after.",
);
const RESOURCE_VERSION_MATCH: Param = query(
    "resourceVersionMatch",
    "string",
    "How resourceVersion applies to a list: Exact or NotOlderThan.",
);
const SEND_INITIAL_EVENTS: Param = query(
    "sendInitialEvents",
    "boolean",
    "For watches with resourceVersionMatch=NotOlderThan: first send the current objects as ADDED events, then a BOOKMARK marking their end.",
);
const TIMEOUT_SECONDS: Param = query(
    "timeoutSeconds",
    "integer",
    "The longest the list or watch call may last.",
);

/// Creating or replacing an object.
pub(crate) const WRITE: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION];
/// Patching an object; kubectl's `--validate=strict` looks for
/// `fieldValidation` here.
pub(crate) const PATCH: &[&Param] = &[&DRY_RUN, &FORCE, &FIELD_MANAGER, &FIELD_VALIDATION];
/// Deleting one object.
pub(crate) const DELETE: &[&Param] = &[&GRACE_PERIOD, &ORPHAN, &PROPAGATION, &DRY_RUN];
/// Listing or watching a collection.
pub(crate) const LIST: &[&Param] = &[
    &LABEL_SELECTOR,
    &FIELD_SELECTOR,
    &WATCH,
    &ALLOW_WATCH_BOOKMARKS,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &SEND_INITIAL_EVENTS,
    &TIMEOUT_SECONDS,
    &LIMIT,
    &CONTINUE,
];
/// Deleting the selected objects of a collection.
pub(crate) const DELETE_COLLECTION: &[&Param] = &[
    &GRACE_PERIOD,
    &ORPHAN,
    &PROPAGATION,
    &DRY_RUN,
    &LABEL_SELECTOR,
    &FIELD_SELECTOR,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &TIMEOUT_SECONDS,
    &LIMIT,
    &CONTINUE,
];

const CONTAINER: Param = query(
    "container",
    "string",
    "The container to use; defaults to the only one, if there is one.",
);
const STDIN: Param = query("stdin", "boolean", "Attach standard input.");
const STDOUT: Param = query("stdout", "boolean", "Attach standard output.");
const STDERR: Param = query("stderr", "boolean", "Attach standard error.");
const TTY: Param = query(
    "tty",
    "boolean",
    "Allocate a terminal; standard error then goes to standard output.",
);

/// Reading a container's log.
pub(crate) const LOG: &[&Param] = &[
    &CONTAINER,
    &query("follow", "boolean", "Keep streaming the log as it grows."),
    &query(
        "previous",
        "boolean",
        "The log of the previous, terminated instance of the container.",
    ),
    &query(
        "sinceSeconds",
        "integer",
        "Only lines written in the last this many seconds.",
    ),
    &query(
        "sinceTime",
        "string",
        "Only lines written at or after this RFC 3339 time.",
    ),
    &query(
        "tailLines",
        "integer",
        "Only this many lines from the end of the log.",
    ),
    &query(
        "timestamps",
        "boolean",
        "Prefix each line with its RFC 3339 timestamp.",
    ),
    &query(
        "limitBytes",
        "integer",
        "Stop after this many bytes of log.",
    ),
];
/// Running a command in a container.
pub(crate) const EXEC: &[&Param] = &[
    &query(
        "command",
        "string",
        "The command to run, one argument per parameter.",
    ),
    &CONTAINER,
    &STDIN,
    &STDOUT,
    &STDERR,
    &TTY,
];
/// Attaching to a running container.
pub(crate) const ATTACH: &[&Param] = &[&CONTAINER, &STDIN, &STDOUT, &STDERR, &TTY];
/// Forwarding ports to a pod.
pub(crate) const PORT_FORWARD: &[&Param] = &[&query(
    "ports",
    "integer",
    "A port of the pod to forward to.",
)];
/// Proxying a request to a pod, node or service.
pub(crate) const PROXY: &[&Param] = &[&query(
    "path",
    "string",
    "The path to forward the request to.",
)];
