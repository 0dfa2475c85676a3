//! The store conformance suite: one set of behaviours every backend must
//! show, run against each by `tests/sqlite.rs` and `tests/etcd.rs`.
//!
//! Each case takes a [`Harness`], which opens the backend and can restart
//! it (the embedded store is closed and reopened; etcd is killed and
//! restarted).

#![allow(dead_code)] // each backend's test file uses the cases it can run
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bulwark_store::{
    Event, EventKind, MAX_VALUE_BYTES, Range, Revision, Store, StoreError, StoreExt, WatchStream,
    WriteOutcome,
};

/// A backend under test.
pub(crate) trait Harness: Sized {
    /// The store type.
    type S: Store + Clone;
    /// Starts a fresh, empty backend whose watchers buffer `watch_buffer`
    /// events.
    fn open(watch_buffer: usize) -> Self;
    /// The store handle.
    fn store(&self) -> Self::S;
    /// Stops the backend and starts it again on the same data.
    fn restart(&mut self);
    /// How many watchers receive live events now, for backends whose
    /// watches first replay history (`None`: live as soon as created).
    fn live_watchers(&self) -> Option<usize>;
}

/// Generates one `#[tokio::test]` per named case for harness `$h`.
#[macro_export]
macro_rules! conformance_tests {
    ($h:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                conformance::$case::<$h>().await;
            }
        )*
    };
}

const TIMEOUT: Duration = Duration::from_secs(20);

fn committed(outcome: WriteOutcome) -> Revision {
    match outcome {
        WriteOutcome::Committed { revision, .. } => revision,
        WriteOutcome::Failed { current } => panic!("write failed; current: {current:?}"),
    }
}

async fn next(watch: &mut WatchStream) -> Event {
    tokio::time::timeout(TIMEOUT, watch.next_event())
        .await
        .expect("an event within the deadline")
        .expect("the watch is still open")
        .expect("no watch error")
}

/// Create, read, conditional update, delete: the shapes optimistic
/// concurrency is built from.
pub(crate) async fn create_update_delete<H: Harness>() {
    let h = H::open(1024);
    let s = h.store();
    let key = "/registry/configmaps/default/a";
    let r1 = committed(s.create(key, "v1").await.unwrap());

    match s.create(key, "again").await.unwrap() {
        WriteOutcome::Failed { current: Some(kv) } => {
            assert_eq!(kv.value, "v1");
            assert_eq!(kv.mod_revision, r1);
        }
        other => panic!("second create must fail with the current value: {other:?}"),
    }
    let kv = s.get(key).await.unwrap().expect("created key is readable");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r1, 1)
    );

    let r2 = committed(s.update(key, "v2", r1).await.unwrap());
    assert!(r2 > r1);
    match s.update(key, "stale", r1).await.unwrap() {
        WriteOutcome::Failed { current: Some(kv) } => assert_eq!(kv.mod_revision, r2),
        other => panic!("stale update must fail with the current value: {other:?}"),
    }
    let kv = s.get(key).await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_ref(), kv.create_revision, kv.version),
        (&b"v2"[..], r1, 2)
    );

    match s.delete(key).await.unwrap() {
        WriteOutcome::Committed {
            prev: Some(prev), ..
        } => assert_eq!(prev.value, "v2"),
        other => panic!("delete returns the previous value: {other:?}"),
    }
    assert_eq!(s.get(key).await.unwrap(), None);
    assert!(matches!(
        s.delete(key).await.unwrap(),
        WriteOutcome::Failed { current: None }
    ));
    // A guarded update of a missing key fails too.
    assert!(matches!(
        s.update(key, "x", r2).await.unwrap(),
        WriteOutcome::Failed { current: None }
    ));
    let r5 = committed(s.create(key, "reborn").await.unwrap());
    let kv = s.get(key).await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.version),
        (r5, 1),
        "re-creation starts over"
    );
}

/// One global revision: every committed write increments it by one, across
/// keys; failed writes do not.
pub(crate) async fn revisions_are_global<H: Harness>() {
    let h = H::open(1024);
    let s = h.store();
    let (start, _) = s.revisions().await.unwrap();
    let mut expected = start;
    for i in 0..20 {
        expected += 1;
        let rev = committed(
            s.put(&format!("/r/{}", i % 3), format!("{i}"))
                .await
                .unwrap(),
        );
        assert_eq!(rev, expected);
        assert!(matches!(
            s.create(&format!("/r/{}", i % 3), "dup").await.unwrap(),
            WriteOutcome::Failed { .. }
        ));
    }
    assert_eq!(s.revisions().await.unwrap().0, expected);
    let page = s.range(Range::prefix("/r/")).await.unwrap();
    assert_eq!(page.revision, expected);
}

/// Prefix ranges in key order, limits with `more` and `count`, and paging
/// with a continuation key at a fixed revision.
pub(crate) async fn range_paging<H: Harness>() {
    let h = H::open(1024);
    let s = h.store();
    for i in 0..25 {
        s.put(&format!("/registry/pods/ns/p{i:02}"), format!("{i}"))
            .await
            .unwrap();
    }
    s.put("/registry/pods-x/ns", "outside (sibling prefix)")
        .await
        .unwrap();
    s.put("/registry/podtemplates/ns/t", "outside")
        .await
        .unwrap();

    let all = s.range(Range::prefix("/registry/pods/")).await.unwrap();
    assert_eq!(all.kvs.len(), 25);
    assert_eq!(all.count, 25);
    assert!(!all.more);
    assert!(all.kvs.windows(2).all(|w| w[0].key < w[1].key), "key order");

    let at = all.revision;
    let mut seen = Vec::new();
    let mut range = Range::prefix("/registry/pods/").limit(10).at(at);
    let mut pages = 0;
    loop {
        let page = s.range(range.clone()).await.unwrap();
        pages += 1;
        assert_eq!(
            page.count,
            25 - seen.len() as i64,
            "count covers the rest of the range"
        );
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        // A write between pages must not show up: the pages read at `at`.
        s.put("/registry/pods/ns/p00a", "late").await.unwrap();
        if !page.more {
            break;
        }
        range = Range::prefix("/registry/pods/")
            .limit(10)
            .at(at)
            .after(&page.kvs.last().unwrap().key);
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25)
        .map(|i| format!("/registry/pods/ns/p{i:02}"))
        .collect();
    assert_eq!(seen, expected);
}

/// Reads at a past revision see the state as it was, deletions included.
pub(crate) async fn read_past_revisions<H: Harness>() {
    let h = H::open(1024);
    let s = h.store();
    let r1 = committed(s.put("/p/a", "a1").await.unwrap());
    let r2 = committed(s.put("/p/b", "b1").await.unwrap());
    let r3 = committed(s.put("/p/a", "a2").await.unwrap());
    let r4 = committed(s.delete("/p/b").await.unwrap());
    let r5 = committed(s.put("/p/c", "c1").await.unwrap());
    let state = |rev| {
        let s = s.clone();
        async move {
            s.range(Range::prefix("/p/").at(rev))
                .await
                .unwrap()
                .kvs
                .into_iter()
                .map(|kv| (kv.key, String::from_utf8(kv.value.to_vec()).unwrap()))
                .collect::<Vec<_>>()
        }
    };
    let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(state(r1).await, vec![kv("/p/a", "a1")]);
    assert_eq!(state(r2).await, vec![kv("/p/a", "a1"), kv("/p/b", "b1")]);
    assert_eq!(state(r3).await, vec![kv("/p/a", "a2"), kv("/p/b", "b1")]);
    assert_eq!(state(r4).await, vec![kv("/p/a", "a2")]);
    assert_eq!(state(r5).await, vec![kv("/p/a", "a2"), kv("/p/c", "c1")]);
    let old = s.range(Range::key("/p/a").at(r2)).await.unwrap();
    assert_eq!(old.kvs[0].mod_revision, r1);
    assert!(matches!(
        s.range(Range::prefix("/p/").at(r5 + 100)).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

/// Many tasks race a compare-and-swap on one key: exactly one wins each
/// round, and the losers learn the winner's revision.
pub(crate) async fn cas_race<H: Harness>() {
    let h = H::open(1024);
    let s = h.store();
    let key = "/race/key";
    let mut rev = committed(s.create(key, "0").await.unwrap());
    for round in 1..=10 {
        let mut tasks = Vec::new();
        for racer in 0..32 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.update(key, format!("{round}:{racer}"), rev)
                    .await
                    .unwrap()
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                WriteOutcome::Committed { revision, .. } => winners.push(revision),
                WriteOutcome::Failed { current } => losers.push(current.unwrap().mod_revision),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner");
        assert!(
            losers.iter().all(|r| *r == winners[0]),
            "losers see the winner"
        );
        rev = winners[0];
    }
    let kv = s.get(key).await.unwrap().unwrap();
    assert_eq!(kv.version, 11);
}

/// A watch from a past revision replays every event after it in order, with
/// previous values, then follows live writes; keys outside the range never
/// appear.
pub(crate) async fn watch_replay_then_live<H: Harness>() {
    let h = H::open(1024);
    let s = h.store();
    let mut expected = Vec::new();
    let mut from = 0;
    for i in 0..60 {
        let key = format!("/w/k{}", i % 7);
        let rev = if i % 10 == 9 {
            match s.delete(&key).await.unwrap() {
                WriteOutcome::Committed { revision, .. } => Some((revision, EventKind::Delete)),
                WriteOutcome::Failed { .. } => None,
            }
        } else {
            Some((
                committed(s.put(&key, format!("v{i}")).await.unwrap()),
                EventKind::Put,
            ))
        };
        s.put(&format!("/other/{i}"), "noise").await.unwrap();
        if i == 20 {
            from = rev.map(|(r, _)| r).unwrap();
        }
        if let Some((rev, kind)) = rev {
            expected.push((rev, kind, key));
        }
    }
    let mut watch = s.watch(Range::prefix("/w/"), from).await.unwrap();
    let replayed: Vec<_> = expected
        .iter()
        .filter(|(r, _, _)| *r >= from)
        .cloned()
        .collect();
    let mut last_values: BTreeMap<String, String> = BTreeMap::new();
    for (rev, kind, key) in &replayed {
        let event = next(&mut watch).await;
        assert_eq!(
            (event.revision(), event.kind, &event.kv.key),
            (*rev, *kind, key)
        );
        if let Some(prev) = &event.prev {
            assert!(prev.mod_revision < *rev);
            if let Some(seen) = last_values.get(key) {
                assert_eq!(&String::from_utf8(prev.value.to_vec()).unwrap(), seen);
            }
        }
        last_values.insert(
            key.clone(),
            String::from_utf8(event.kv.value.to_vec()).unwrap(),
        );
    }
    // Live from here on.
    let live = committed(s.put("/w/live", "now").await.unwrap());
    s.put("/other/live", "noise").await.unwrap();
    let event = next(&mut watch).await;
    assert_eq!((event.revision(), event.kv.key.as_str()), (live, "/w/live"));
    assert_eq!(event.prev, None);
}

/// Watchers started while writers run see every write exactly once, in
/// revision order: the hand-off from history to live events loses nothing
/// and repeats nothing.
pub(crate) async fn watch_during_writes<H: Harness>() {
    let h = H::open(100_000);
    let s = h.store();
    let (start, _) = s.revisions().await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..150 {
                    revs.push(committed(
                        s.put(&format!("/c/{w}/{}", i % 5), format!("{i}"))
                            .await
                            .unwrap(),
                    ));
                }
                revs
            })
        })
        .collect();
    // Watchers join at different moments while the writers run.
    let mut watches = Vec::new();
    for _ in 0..4 {
        watches.push(s.watch(Range::prefix("/c/"), start + 1).await.unwrap());
        tokio::task::yield_now().await;
    }
    let mut all = Vec::new();
    for writer in writers {
        all.extend(writer.await.unwrap());
    }
    all.sort_unstable();
    for mut watch in watches {
        let mut got = Vec::with_capacity(all.len());
        while got.len() < all.len() {
            got.push(next(&mut watch).await.revision());
        }
        assert_eq!(got, all, "every write once, in order");
    }
}

/// A watch from a revision taken before a restart of the store resumes
/// exactly after it.
pub(crate) async fn watch_after_restart<H: Harness>() {
    let mut h = H::open(1024);
    let s = h.store();
    let before = committed(s.put("/rs/a", "1").await.unwrap());
    let r2 = committed(s.put("/rs/b", "1").await.unwrap());
    let r3 = committed(s.put("/rs/a", "2").await.unwrap());
    drop(s);
    h.restart();
    let s = h.store();
    let r4 = committed(s.delete("/rs/b").await.unwrap());
    assert!(r4 > r3, "revisions keep growing across restarts");
    let mut watch = s.watch(Range::prefix("/rs/"), before + 1).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = next(&mut watch).await;
        got.push((e.revision(), e.kind, e.prev.map(|p| p.mod_revision)));
    }
    assert_eq!(
        got,
        vec![
            (r2, EventKind::Put, None),
            (r3, EventKind::Put, Some(before)),
            (r4, EventKind::Delete, Some(r2)),
        ]
    );
}

/// After compaction at R: reads below R and watches from R or earlier answer
/// `Compacted`; reads at R and later still see the right state, and watches
/// after R work.
pub(crate) async fn compaction<H: Harness>() {
    let h = H::open(1024);
    let s = h.store();
    let mut revs = Vec::new();
    for i in 0..30 {
        revs.push(committed(
            s.put(&format!("/cp/{}", i % 4), format!("{i}"))
                .await
                .unwrap(),
        ));
    }
    let kept = committed(s.put("/cp/untouched", "still here").await.unwrap());
    for i in 30..40 {
        revs.push(committed(
            s.put(&format!("/cp/{}", i % 4), format!("{i}"))
                .await
                .unwrap(),
        ));
    }
    let at = revs[35];
    let before: Vec<_> = s.range(Range::prefix("/cp/").at(at)).await.unwrap().kvs;
    s.compact(at).await.unwrap();

    match s.range(Range::prefix("/cp/").at(at - 1)).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!((requested, compacted), (at - 1, at));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(matches!(
        s.watch(Range::prefix("/cp/"), at - 5).await.err(),
        Some(StoreError::Compacted { .. })
    ));
    // Whatever the backend sweeps in the background, the state at `at`
    // stays readable and intact.
    for _ in 0..3 {
        assert_eq!(
            s.range(Range::prefix("/cp/").at(at)).await.unwrap().kvs,
            before
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(before.iter().any(|kv| kv.mod_revision == kept));
    let mut watch = s.watch(Range::prefix("/cp/"), at + 1).await.unwrap();
    assert_eq!(next(&mut watch).await.revision(), revs[36]);
    assert!(matches!(
        s.compact(at - 1).await,
        Err(StoreError::Compacted { .. })
    ));
    let (newest, compacted) = s.revisions().await.unwrap();
    assert_eq!(compacted, at);
    assert!(matches!(
        s.compact(newest + 10).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

/// A watcher that stops reading is cut off with `WatcherTooSlow` once its
/// buffer is full; writers never wait for it, and a new watch from the
/// revision it names resumes without a gap.
pub(crate) async fn slow_watcher_is_cut_off<H: Harness>() {
    let h = H::open(16);
    let s = h.store();
    let mut slow = s.watch(Range::prefix("/slow/"), 0).await.unwrap();
    // Writers can only be stalled by a watcher that follows them live.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while h.live_watchers().is_some_and(|n| n == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch never went live"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut revs = Vec::new();
    let writes = tokio::time::timeout(TIMEOUT, async {
        for i in 0..200 {
            revs.push(committed(s.put(&format!("/slow/{i}"), "x").await.unwrap()));
        }
    });
    writes
        .await
        .expect("writers are never stalled by a slow watcher");
    while !slow.fell_behind() {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow watcher was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut delivered = Vec::new();
    let err = loop {
        match tokio::time::timeout(TIMEOUT, slow.next_event())
            .await
            .unwrap()
        {
            Some(Ok(event)) => delivered.push(event.revision()),
            Some(Err(err)) => break err,
            None => panic!("the watch ended without saying why"),
        }
    };
    assert!(
        delivered.len() <= 16 + 1,
        "at most a buffer's worth was delivered: {delivered:?}"
    );
    assert_eq!(
        delivered[..],
        revs[..delivered.len()],
        "what was delivered came in order"
    );
    let resume_from = match err {
        StoreError::WatcherTooSlow { resume_from, .. } => resume_from,
        other => panic!("expected WatcherTooSlow, got {other}"),
    };
    assert_eq!(
        resume_from,
        revs[delivered.len()],
        "resumes right after the last delivered"
    );
    assert!(
        slow.next_event().await.is_none(),
        "the stream ends after its error"
    );

    let mut resumed = s.watch(Range::prefix("/slow/"), resume_from).await.unwrap();
    for rev in &revs[delivered.len()..] {
        assert_eq!(next(&mut resumed).await.revision(), *rev);
    }
}

/// Values over the limit are refused by name; a large value under it works.
pub(crate) async fn value_size_limit<H: Harness>() {
    let h = H::open(16);
    let s = h.store();
    let big = vec![b'x'; 1024 * 1024];
    committed(s.put("/big/ok", big.clone()).await.unwrap());
    assert_eq!(
        s.get("/big/ok").await.unwrap().unwrap().value.len(),
        big.len()
    );
    match s.put("/big/too", vec![b'x'; MAX_VALUE_BYTES + 1]).await {
        Err(StoreError::ValueTooLarge { key, size, limit }) => {
            assert_eq!(
                (key.as_str(), size, limit),
                ("/big/too", MAX_VALUE_BYTES + 1, MAX_VALUE_BYTES)
            );
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(
        s.get("/big/too").await.unwrap(),
        None,
        "nothing was written"
    );
}

/// Holds a store for cases that share one across tasks.
pub(crate) type Shared<S> = Arc<S>;
