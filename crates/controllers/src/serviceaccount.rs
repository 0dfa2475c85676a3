//! The ServiceAccount controller: every active namespace has a `default`
//! ServiceAccount (recreated if deleted), as upstream's
//! `serviceaccounts-controller`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};

use crate::Context;
use crate::informer::Change;
use crate::queue::{Next, WorkQueue, run_workers};

/// The service accounts every namespace gets.
const MANAGED: &[&str] = &["default"];

pub(crate) async fn run(cx: Context) {
    let namespaces = cx.informers.get::<Namespace>();
    let accounts = cx.informers.get::<ServiceAccount>();
    let queue = WorkQueue::<String>::new();
    let (mut ns_changes, mut sa_changes) = (namespaces.subscribe(), accounts.subscribe());
    namespaces.ready().await;
    accounts.ready().await;
    let enqueue_all = namespaces.enqueue_all(&queue, |ns| ns.name_any());
    enqueue_all();
    let feeder = {
        let queue = Arc::clone(&queue);
        async move {
            loop {
                tokio::select! {
                    change = ns_changes.next() => match change {
                        Some(Change::Applied(ns)) => queue.add(ns.name_any()),
                        Some(Change::Deleted(_)) => {}
                        Some(Change::Resynced) => enqueue_all(),
                        None => return,
                    },
                    change = sa_changes.next() => match change {
                        Some(Change::Deleted(sa)) => queue.add(sa.namespace().unwrap_or_default()),
                        // A deletion may have been missed while relisting.
                        Some(Change::Resynced) => enqueue_all(),
                        Some(Change::Applied(_)) => {}
                        None => return,
                    },
                }
            }
        }
    };
    let reconcile = move |namespace: String| {
        let (cx, namespaces, accounts) = (cx.clone(), namespaces.clone(), accounts.clone());
        async move {
            let Some(ns) = namespaces.store().get(&ObjectRef::new(&namespace)) else {
                return Ok::<_, kube::Error>(Next::Done);
            };
            if ns.metadata.deletion_timestamp.is_some()
                || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
            {
                return Ok(Next::Done);
            }
            let api: Api<ServiceAccount> = Api::namespaced(cx.client.clone(), &namespace);
            for name in MANAGED {
                if accounts
                    .store()
                    .get(&ObjectRef::new(name).within(&namespace))
                    .is_some()
                {
                    continue;
                }
                let account = ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some((*name).to_owned()),
                        namespace: Some(namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    ..ServiceAccount::default()
                };
                match api.create(&PostParams::default(), &account).await {
                    Ok(_) => {}
                    // Exists (our cache is behind) or the namespace is going away.
                    Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
                    Err(err) => return Err(err),
                }
            }
            Ok(Next::Done)
        }
    };
    tokio::join!(
        feeder,
        run_workers("service-account-controller", queue, 2, reconcile)
    );
}
