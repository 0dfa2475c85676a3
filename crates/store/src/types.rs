//! The values that cross the [`Store`](crate::Store) boundary.

use bytes::Bytes;

/// A point in the store's history. Every committed write increments the one
/// global revision; the API server exposes it as `resourceVersion`.
pub type Revision = i64;

/// The largest value a write may carry: etcd's default `--max-request-bytes`
/// (1.5 MiB), so that an object the embedded store accepts fits in etcd too.
pub const MAX_VALUE_BYTES: usize = 3 * 1024 * 1024 / 2;

/// A key with its value and its place in history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, e.g. `/registry/pods/default/web`.
    pub key: String,
    /// The value as written; empty in the `kv` of a delete event.
    pub value: Bytes,
    /// The revision that created the key (since it last did not exist).
    pub create_revision: Revision,
    /// The revision of the last write to the key.
    pub mod_revision: Revision,
    /// How many times the key was written since it was created (1 at creation).
    pub version: i64,
}

/// Which keys to read or watch, and for reads, how many and at what revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub(crate) start: Vec<u8>,
    /// `None`: exactly `start`. `Some(empty)`: every key from `start` on.
    pub(crate) end: Option<Vec<u8>>,
    pub(crate) limit: Option<usize>,
    pub(crate) revision: Option<Revision>,
}

impl Range {
    /// Exactly one key.
    pub fn key(key: &str) -> Self {
        Range {
            start: key.as_bytes().to_vec(),
            end: None,
            limit: None,
            revision: None,
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &str) -> Self {
        Range {
            start: prefix.as_bytes().to_vec(),
            end: Some(prefix_end(prefix.as_bytes())),
            limit: None,
            revision: None,
        }
    }

    /// Continues a paged read: only keys strictly after `key` (which should be
    /// the last key of the previous page).
    pub fn after(mut self, key: &str) -> Self {
        let mut next = key.as_bytes().to_vec();
        next.push(0);
        if next > self.start {
            self.start = next;
        }
        self
    }

    /// At most `limit` keys; [`RangeResult::more`] tells whether more exist.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Reads the state as of `revision` (which must not be compacted).
    pub fn at(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }

    /// Whether `key` falls inside this range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            None => key == self.start.as_slice(),
            Some(end) => key >= self.start.as_slice() && (end.is_empty() || key < end.as_slice()),
        }
    }

    /// The same range under another prefix: `from` replaced by `to` at the
    /// front of its bounds, when it lies among the keys that start with
    /// `from` (`None` otherwise). For a view that serves one key space
    /// from another.
    pub fn rebase(&self, from: &str, to: &str) -> Option<Range> {
        let (from, to) = (from.as_bytes(), to.as_bytes());
        let start = [to, self.start.strip_prefix(from)?].concat();
        let end = match &self.end {
            None => None,
            Some(end) if *end == prefix_end(from) => Some(prefix_end(to)),
            Some(end) => Some([to, end.strip_prefix(from)?].concat()),
        };
        Some(Range {
            start,
            end,
            limit: self.limit,
            revision: self.revision,
        })
    }

    /// The exclusive end as etcd encodes it: empty for a single key, `[0]` for
    /// "to the end of the key space".
    pub(crate) fn etcd_end(&self) -> Vec<u8> {
        match &self.end {
            None => Vec::new(),
            Some(end) if end.is_empty() => vec![0],
            Some(end) => end.clone(),
        }
    }
}

/// The smallest key greater than every key starting with `prefix`, or empty
/// when there is none (the prefix is all `0xff`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// The answer to a [`Range`] read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResult {
    /// The keys found, in key order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// Whether keys beyond `limit` exist in the range.
    pub more: bool,
    /// How many keys the whole range holds (the limit ignored).
    pub count: i64,
    /// The revision the read was served at.
    pub revision: Revision,
}

/// What must hold for a [`Write`] to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Nothing (a delete still needs the key to exist).
    None,
    /// The key must not exist.
    Absent,
    /// The key must exist with exactly this `mod_revision`.
    ModRevision(Revision),
}

/// One write to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The key written.
    pub key: String,
    /// `Some(value)` to put, `None` to delete.
    pub value: Option<Bytes>,
    /// What must hold for the write to apply.
    pub condition: Condition,
}

impl Write {
    /// Puts `value` at `key`.
    pub fn put(key: &str, value: impl Into<Bytes>) -> Self {
        Write {
            key: key.to_owned(),
            value: Some(value.into()),
            condition: Condition::None,
        }
    }

    /// Deletes `key`.
    pub fn delete(key: &str) -> Self {
        Write {
            key: key.to_owned(),
            value: None,
            condition: Condition::None,
        }
    }

    /// Only if the key does not exist (create).
    pub fn if_absent(mut self) -> Self {
        self.condition = Condition::Absent;
        self
    }

    /// Only if the key's `mod_revision` is still `revision` (compare-and-swap).
    pub fn if_mod_revision(mut self, revision: Revision) -> Self {
        self.condition = Condition::ModRevision(revision);
        self
    }

    /// Refuses a value over [`MAX_VALUE_BYTES`], naming the key.
    pub(crate) fn check_size(&self) -> Result<(), crate::StoreError> {
        match &self.value {
            Some(value) if value.len() > MAX_VALUE_BYTES => Err(crate::StoreError::ValueTooLarge {
                key: self.key.clone(),
                size: value.len(),
                limit: MAX_VALUE_BYTES,
            }),
            _ => Ok(()),
        }
    }

    /// Whether the key's current state satisfies the condition.
    pub(crate) fn condition_holds(&self, current: Option<&KeyValue>) -> bool {
        let holds = match self.condition {
            Condition::None => true,
            Condition::Absent => current.is_none(),
            Condition::ModRevision(rev) => current.is_some_and(|kv| kv.mod_revision == rev),
        };
        // Deleting nothing is not a write: it neither bumps the revision nor
        // emits an event, as in etcd.
        holds && (self.value.is_some() || current.is_some())
    }
}

/// The result of a [`Write`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write applied at `revision`; `prev` is the key's value before it.
    Committed {
        /// The revision the write created.
        revision: Revision,
        /// The key before the write (`None` when it was created).
        prev: Option<KeyValue>,
    },
    /// The condition did not hold; nothing changed.
    Failed {
        /// The key as it is now.
        current: Option<KeyValue>,
    },
}

impl WriteOutcome {
    /// The revision of a committed write.
    pub fn revision(&self) -> Option<Revision> {
        match self {
            WriteOutcome::Committed { revision, .. } => Some(*revision),
            WriteOutcome::Failed { .. } => None,
        }
    }
}

/// A change seen by a watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change to one key, as a watch delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for a delete, only `key` and `mod_revision`
    /// (the deletion's revision) are set.
    pub kv: KeyValue,
    /// The key before the change (`None` for a creation).
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of the write behind this event.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(b"a\xff\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), Vec::<u8>::new());
    }

    #[test]
    fn ranges_contain_what_they_name() {
        let pods = Range::prefix("/registry/pods/");
        assert!(pods.contains(b"/registry/pods/default/web"));
        assert!(!pods.contains(b"/registry/podtemplates/default/web"));
        let one = Range::key("/a");
        assert!(one.contains(b"/a") && !one.contains(b"/ab"));
        let after = Range::prefix("/p/").after("/p/b");
        assert!(!after.contains(b"/p/b") && after.contains(b"/p/b0") && !after.contains(b"/p/a"));
    }

    #[test]
    fn a_range_rebased_covers_the_same_keys_under_the_other_prefix() {
        let (from, to) = ("/registry/b.io/events/", "/registry/events/");
        let all = Range::prefix(from).limit(5).at(7);
        let rebased = all.rebase(from, to).unwrap();
        assert_eq!(rebased, Range::prefix(to).limit(5).at(7));
        let page = Range::prefix("/registry/b.io/events/ns/")
            .after("/registry/b.io/events/ns/x")
            .rebase(from, to)
            .unwrap();
        assert_eq!(
            page,
            Range::prefix("/registry/events/ns/").after("/registry/events/ns/x")
        );
        assert_eq!(
            Range::key("/registry/b.io/events/ns/x").rebase(from, to),
            Some(Range::key("/registry/events/ns/x"))
        );
        assert_eq!(Range::prefix("/registry/pods/").rebase(from, to), None);
        assert_eq!(Range::prefix("/registry/").rebase(from, to), None);
    }

    #[test]
    fn deleting_a_missing_key_never_applies() {
        assert!(!Write::delete("/k").condition_holds(None));
        let kv = KeyValue {
            key: "/k".into(),
            value: Bytes::new(),
            create_revision: 1,
            mod_revision: 3,
            version: 2,
        };
        assert!(Write::delete("/k").condition_holds(Some(&kv)));
        assert!(!Write::put("/k", "v").if_absent().condition_holds(Some(&kv)));
        assert!(
            Write::put("/k", "v")
                .if_mod_revision(3)
                .condition_holds(Some(&kv))
        );
        assert!(
            !Write::put("/k", "v")
                .if_mod_revision(2)
                .condition_holds(Some(&kv))
        );
    }
}
