//! Upstream's `UIDTrackingControllerExpectations`: per owner, how many
//! creations and which deletions it made that its informer has not shown
//! yet. Until they are seen the owner's cache is known to be behind, and it
//! must not create or delete again (or a burst of events would double its
//! pods). Expectations that are never met expire.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long unmet expectations hold (upstream's `ExpectationsTimeout`).
const TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Default)]
pub(crate) struct Expectations {
    owners: Mutex<HashMap<String, Pending>>,
}

#[derive(Debug)]
struct Pending {
    creations: i64,
    deletions: HashSet<String>,
    since: Instant,
}

impl Expectations {
    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `owner` may act: everything it expected was seen (or it
    /// expected nothing, or its expectations expired).
    pub(crate) fn satisfied(&self, owner: &str) -> bool {
        self.owners().get(owner).is_none_or(|p| {
            (p.creations <= 0 && p.deletions.is_empty()) || p.since.elapsed() > TIMEOUT
        })
    }

    /// `owner` is about to create `count` objects.
    pub(crate) fn expect_creations(&self, owner: &str, count: usize) {
        self.owners().insert(
            owner.to_owned(),
            Pending {
                creations: i64::try_from(count).unwrap_or(i64::MAX),
                deletions: HashSet::new(),
                since: Instant::now(),
            },
        );
    }

    /// `owner` is about to delete the objects with these keys.
    pub(crate) fn expect_deletions(&self, owner: &str, keys: impl IntoIterator<Item = String>) {
        self.owners().insert(
            owner.to_owned(),
            Pending {
                creations: 0,
                deletions: keys.into_iter().collect(),
                since: Instant::now(),
            },
        );
    }

    /// One creation of `owner`'s was seen (or will never be).
    pub(crate) fn creation_observed(&self, owner: &str) {
        if let Some(p) = self.owners().get_mut(owner) {
            p.creations -= 1;
        }
    }

    /// The deletion of `key` was seen (or will never be); idempotent.
    pub(crate) fn deletion_observed(&self, owner: &str, key: &str) {
        if let Some(p) = self.owners().get_mut(owner) {
            p.deletions.remove(key);
        }
    }

    /// Forgets `owner` (it was deleted).
    pub(crate) fn forget(&self, owner: &str) {
        self.owners().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_and_deletions_must_be_seen() {
        let e = Expectations::default();
        assert!(e.satisfied("rs"), "nothing expected");
        e.expect_creations("rs", 2);
        assert!(!e.satisfied("rs"));
        e.creation_observed("rs");
        assert!(!e.satisfied("rs"));
        e.creation_observed("rs");
        assert!(e.satisfied("rs"));
        e.expect_deletions("rs", ["ns/a".to_owned(), "ns/b".to_owned()]);
        e.deletion_observed("rs", "ns/a");
        e.deletion_observed("rs", "ns/a");
        assert!(!e.satisfied("rs"), "a repeated observation counts once");
        e.deletion_observed("rs", "ns/b");
        assert!(e.satisfied("rs"));
        e.expect_creations("rs", 1);
        e.forget("rs");
        assert!(e.satisfied("rs"));
    }
}
