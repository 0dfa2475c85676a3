//! One set of Events behind two APIs. Upstream stores core/v1 and
//! events.k8s.io/v1 Events as the same objects and converts between the two
//! shapes, so an Event recorded through either (kube-rs's `Recorder` writes
//! events.k8s.io/v1, most of the cluster core/v1) shows in `kubectl get
//! events`, `kubectl describe` and `kubectl get events.events.k8s.io`
//! alike.
//!
//! Here that is a [`Store`] view: the events.k8s.io resource keeps its own
//! key space (`/registry/events.k8s.io/events/…`), which this layer serves
//! from core's (`/registry/events/…`), converting each value on the way in
//! (to the core/v1 shape, the one stored) and on the way out. Everything
//! above it — handlers, watch caches, paging — is unchanged.

use std::sync::Arc;

use async_trait::async_trait;
use bulwark_store::{
    Event, KeyValue, Range, RangeResult, Revision, Store, StoreError, WatchStream, Write,
    WriteOutcome,
};
use bytes::Bytes;
use serde_json::{Map, Value};

/// Where the events.k8s.io resource's keys live, as the registry names them.
pub(crate) const VIEW_PREFIX: &str = "/registry/events.k8s.io/events/";
/// Where the Events are stored: core/v1's key space.
pub(crate) const STORED_PREFIX: &str = "/registry/events/";

/// Field renames, core/v1 name → events.k8s.io/v1 name; the other fields
/// (metadata, eventTime, series, action, reason, related, type,
/// reportingInstance) are the same in both.
const RENAMES: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

/// A core/v1 Event in the events.k8s.io/v1 shape.
pub(crate) fn to_events_v1(core: Map<String, Value>) -> Map<String, Value> {
    convert(core, "events.k8s.io/v1", |core| {
        RENAMES.iter().find(|(c, _)| *c == core).map(|(_, v1)| *v1)
    })
}

/// An events.k8s.io/v1 Event in the core/v1 shape.
pub(crate) fn to_core(v1: Map<String, Value>) -> Map<String, Value> {
    convert(v1, "v1", |v1| {
        RENAMES
            .iter()
            .find(|(_, v)| *v == v1)
            .map(|(core, _)| *core)
    })
}

fn convert(
    object: Map<String, Value>,
    api_version: &str,
    rename: impl Fn(&str) -> Option<&'static str>,
) -> Map<String, Value> {
    let mut out = Map::with_capacity(object.len());
    for (field, value) in object {
        match rename(&field) {
            Some(renamed) => {
                out.insert(renamed.to_owned(), value);
            }
            // The other shape's names have no place here: a client's
            // `message` in an events.k8s.io Event is not its `note`.
            None if RENAMES.iter().any(|(c, v)| field == *c || field == *v) => {}
            None => {
                out.insert(field, value);
            }
        }
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    out
}

/// Converts a stored value with `f`; a value that is not a JSON object
/// (a delete event's empty value, damaged data) passes unchanged, for
/// the layers above to report.
fn convert_value(value: Bytes, f: fn(Map<String, Value>) -> Map<String, Value>) -> Bytes {
    match serde_json::from_slice::<Value>(&value) {
        Ok(Value::Object(object)) => serde_json::to_vec(&f(object))
            .map(Bytes::from)
            .unwrap_or(value),
        _ => value,
    }
}

/// A stored key-value as the events.k8s.io view sees it.
fn to_view(mut kv: KeyValue) -> KeyValue {
    if let Some(rest) = kv.key.strip_prefix(STORED_PREFIX) {
        kv.key = format!("{VIEW_PREFIX}{rest}");
        kv.value = convert_value(kv.value, to_events_v1);
    }
    kv
}

fn outcome_to_view(outcome: WriteOutcome) -> WriteOutcome {
    match outcome {
        WriteOutcome::Committed { revision, prev } => WriteOutcome::Committed {
            revision,
            prev: prev.map(to_view),
        },
        WriteOutcome::Failed { current } => WriteOutcome::Failed {
            current: current.map(to_view),
        },
    }
}

/// The store with the events.k8s.io view on top; everything else passes
/// through.
pub(crate) struct EventVersions {
    pub(crate) inner: Arc<dyn Store>,
}

#[async_trait]
impl Store for EventVersions {
    async fn range(&self, range: Range) -> Result<RangeResult, StoreError> {
        let Some(stored) = range.rebase(VIEW_PREFIX, STORED_PREFIX) else {
            return self.inner.range(range).await;
        };
        let mut result = self.inner.range(stored).await?;
        result.kvs = result.kvs.into_iter().map(to_view).collect();
        Ok(result)
    }

    async fn write(&self, mut write: Write) -> Result<WriteOutcome, StoreError> {
        let Some(rest) = write.key.strip_prefix(VIEW_PREFIX) else {
            return self.inner.write(write).await;
        };
        write.key = format!("{STORED_PREFIX}{rest}");
        write.value = write.value.map(|v| convert_value(v, to_core));
        Ok(outcome_to_view(self.inner.write(write).await?))
    }

    async fn watch(
        &self,
        range: Range,
        start_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        let Some(stored) = range.rebase(VIEW_PREFIX, STORED_PREFIX) else {
            return self.inner.watch(range, start_revision).await;
        };
        let stream = self.inner.watch(stored, start_revision).await?;
        Ok(stream.map(|event: Event| {
            Ok(Event {
                kind: event.kind,
                kv: to_view(event.kv),
                prev: event.prev.map(to_view),
            })
        }))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }

    async fn revisions(&self) -> Result<(Revision, Revision), StoreError> {
        self.inner.revisions().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bulwark_store::{SqliteConfig, SqliteStore, StoreExt as _};
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn the_two_shapes_convert_into_each_other() {
        let core = object(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Started", "message": "Started container web", "type": "Normal",
            "source": {"component": "kubelet", "host": "node-a"},
            "firstTimestamp": "2026-11-27T00:00:00Z", "lastTimestamp": "2026-11-27T00:01:00Z",
            "count": 3, "reportingComponent": "kubelet", "reportingInstance": "node-a",
            "eventTime": null,
        }));
        let v1 = to_events_v1(core.clone());
        assert_eq!(
            Value::Object(v1.clone()),
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "web.1", "namespace": "default"},
                "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
                "reason": "Started", "note": "Started container web", "type": "Normal",
                "deprecatedSource": {"component": "kubelet", "host": "node-a"},
                "deprecatedFirstTimestamp": "2026-11-27T00:00:00Z",
                "deprecatedLastTimestamp": "2026-11-27T00:01:00Z",
                "deprecatedCount": 3, "reportingController": "kubelet",
                "reportingInstance": "node-a", "eventTime": null,
            })
        );
        assert_eq!(to_core(v1), core);
    }

    #[test]
    fn a_field_of_the_other_shape_is_not_smuggled_through() {
        let v1 = object(json!({"apiVersion": "events.k8s.io/v1", "note": "n", "message": "m"}));
        assert_eq!(
            Value::Object(to_core(v1)),
            json!({"apiVersion": "v1", "kind": "Event", "message": "n"})
        );
    }

    #[tokio::test]
    async fn both_apis_see_one_set_of_events() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path().join("db"), SqliteConfig::default()).unwrap();
        let store = EventVersions {
            inner: Arc::new(sqlite),
        };
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"}, "note": "hello"});
        store
            .create(
                "/registry/events.k8s.io/events/ns/e",
                serde_json::to_vec(&v1).unwrap(),
            )
            .await
            .unwrap();
        let core = store.get("/registry/events/ns/e").await.unwrap().unwrap();
        let core: Value = serde_json::from_slice(&core.value).unwrap();
        assert_eq!(core["message"], "hello");
        assert_eq!(core["apiVersion"], "v1");

        let listed = store
            .range(Range::prefix("/registry/events.k8s.io/events/"))
            .await
            .unwrap();
        assert_eq!(listed.kvs.len(), 1);
        assert_eq!(listed.kvs[0].key, "/registry/events.k8s.io/events/ns/e");
        let back: Value = serde_json::from_slice(&listed.kvs[0].value).unwrap();
        assert_eq!(back, v1);
        // Other keys pass untouched.
        assert!(
            store
                .range(Range::prefix("/registry/pods/"))
                .await
                .unwrap()
                .kvs
                .is_empty()
        );
    }
}
