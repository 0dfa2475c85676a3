//! The controller manager: the control loops that drive the cluster toward
//! what its objects ask for (ReplicaSets keep their pods, Deployments roll
//! out, deleted owners take their dependents along, …).
//!
//! Each controller talks to the API server only through `kube` (DESIGN.md,
//! invariant 1) and writes as its own service account,
//! `system:serviceaccount:kube-system:<controller>`, which upstream's
//! bootstrap `system:controller:<controller>` roles grant exactly what that
//! controller needs. Reads come from shared informers (`informer.rs`) that
//! watch as `system:kube-controller-manager`. Work flows through
//! deduplicating queues (`queue.rs`): a change names a key, a worker
//! reconciles the key from the cached state (level-triggered, idempotent).
//!
//! With several servers on one etcd, [`run`] campaigns for the
//! `kube-system/kube-controller-manager` Lease and runs the controllers only
//! while it leads.

mod certificates;
mod cronjob;
mod daemonset;
mod deployment;
mod discovery;
mod disruption;
mod endpoints;
mod expectations;
mod gc;
mod informer;
mod job;
mod loadbalancer;
mod namespace;
mod nodeipam;
mod nodelifecycle;
mod owned;
mod ownership;
mod podgc;
mod pods;
mod queue;
mod replicaset;
mod resourcequota;
mod revisions;
mod rootca;
mod serviceaccount;
mod statefulset;
mod ttl;

use std::sync::Arc;

use bulwark_client::leader::{self, LeaderElection};
use bulwark_client::{Clock, ClusterAccess, Identity, events::Recorder};
use futures::future::BoxFuture;
pub use ipnet::Ipv4Net;

pub use certificates::{
    CLIENT_SIGNER, CsrSigner, KUBELET_CLIENT_SIGNER, MAX_SIGNING_DURATION, SignRequest,
};

/// How to run the controller manager.
#[derive(Clone, Debug)]
pub struct Options {
    /// How to reach the API server and obtain identities.
    pub access: ClusterAccess,
    /// Campaign for leadership first (`None`: run at once, the only
    /// instance).
    pub election: Option<LeaderElection>,
    /// The clock schedules and deadlines read.
    pub clock: Arc<dyn Clock>,
    /// Controllers to run by name (`replicaset-controller`, …); empty: all.
    pub only: Vec<String>,
    /// How long a node may go without a heartbeat before it is marked
    /// unreachable (upstream's `--node-monitor-grace-period`, 50 s).
    pub node_monitor_grace_period: std::time::Duration,
    /// How many terminated pods may remain before the pod garbage
    /// collector deletes the oldest (upstream's
    /// `--terminated-pod-gc-threshold`, 12,500; 0 keeps them all).
    pub terminated_pod_gc_threshold: usize,
    /// The cluster CA (PEM) the `root-ca-cert-publisher` puts in every
    /// namespace's `kube-root-ca.crt` (`None`: that controller idles).
    pub root_ca_pem: Option<String>,
    /// Signs approved CertificateSigningRequests with the cluster CA
    /// (upstream's csrsigning controller); `None`: CSRs are approved but
    /// never signed.
    pub csr_signer: Option<CsrSigner>,
    /// The cluster's pod CIDR, from which the node IPAM controller gives
    /// each Node a `spec.podCIDR` (upstream's `--cluster-cidr` with
    /// `--allocate-node-cidrs`); `None` turns node IPAM off.
    pub cluster_cidr: Option<Ipv4Net>,
    /// The prefix length of each node's range (upstream's
    /// `--node-cidr-mask-size`, 24 for IPv4).
    pub node_cidr_mask_size: u8,
}

/// Bulwark's default cluster CIDR (k3s's): `10.42.0.0/16`.
pub fn default_cluster_cidr() -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(10, 42, 0, 0), 16).expect("16 is a valid prefix length")
}

/// Upstream's `--node-cidr-mask-size` default for IPv4.
pub const NODE_CIDR_MASK_SIZE: u8 = 24;

/// Upstream's `--node-monitor-grace-period` default.
pub const NODE_MONITOR_GRACE_PERIOD: std::time::Duration = std::time::Duration::from_secs(50);

/// Why the controller manager stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client for an identity could not be made.
    #[error(transparent)]
    Access(#[from] bulwark_client::AccessError),
    /// An option cannot be used.
    #[error("invalid controller manager options: {0}")]
    Config(String),
    /// The controllers stopped (they do not, unless something failed).
    #[error("the controllers stopped: {0}")]
    Stopped(String),
}

/// The names of the controllers [`run`] can run, as upstream names them.
pub fn controller_names() -> impl Iterator<Item = &'static str> {
    CONTROLLERS.iter().map(|c| c.name)
}

/// Runs the controllers until an error (or forever).
pub async fn run(options: Options) -> Result<(), Error> {
    if let Some(cluster) = options.cluster_cidr {
        nodeipam::validate(cluster, options.node_cidr_mask_size).map_err(Error::Config)?;
    }
    let manager = options
        .access
        .client(&Identity::user("system:kube-controller-manager", &[]))?;
    match options.election.clone() {
        None => run_controllers(manager, options).await,
        // The election has a client (a connection) of its own, so that
        // renewals never queue behind the controllers' requests.
        Some(election) => leader::run_elected(
            options
                .access
                .client(&Identity::user("system:kube-controller-manager", &[]))?,
            election,
            move || {
                let (manager, options) = (manager.clone(), options.clone());
                async move {
                    run_controllers(manager, options)
                        .await
                        .map_err(|err| Box::new(err) as Box<dyn std::error::Error + Send + Sync>)
                }
            },
        )
        .await
        .map_err(|err| Error::Stopped(err.to_string())),
    }
}

async fn run_controllers(manager: kube::Client, options: Options) -> Result<(), Error> {
    let informers = informer::Informers::new(manager);
    let mut tasks = tokio::task::JoinSet::new();
    for controller in CONTROLLERS {
        if !options.only.is_empty() && !options.only.iter().any(|n| n == controller.name) {
            continue;
        }
        let client = options.access.client(&Identity::service_account(
            "kube-system",
            controller.account(),
        ))?;
        let context = Context {
            recorder: Recorder::new(client.clone(), controller.component),
            client,
            informers: informers.clone(),
            clock: Arc::clone(&options.clock),
            node_monitor_grace_period: options.node_monitor_grace_period,
            terminated_pod_gc_threshold: options.terminated_pod_gc_threshold,
            root_ca_pem: options.root_ca_pem.clone(),
            signer: options.csr_signer.clone(),
            cluster_cidr: options.cluster_cidr,
            node_cidr_mask_size: options.node_cidr_mask_size,
        };
        let name = controller.name;
        let run = controller.run;
        tasks.spawn(async move {
            tracing::debug!(controller = name, "starting");
            run(context).await;
            name
        });
    }
    match tasks.join_next().await {
        Some(Ok(name)) => Err(Error::Stopped(format!("{name} returned"))),
        Some(Err(err)) => Err(Error::Stopped(err.to_string())),
        None => std::future::pending().await,
    }
}

/// What a controller is given.
#[derive(Clone)]
struct Context {
    /// Writes as the controller's own identity.
    client: kube::Client,
    /// Reads (shared caches).
    informers: informer::Informers,
    /// Events as the controller's component.
    recorder: Recorder,
    /// Now.
    clock: Arc<dyn Clock>,
    /// See [`Options::node_monitor_grace_period`].
    node_monitor_grace_period: std::time::Duration,
    /// See [`Options::terminated_pod_gc_threshold`].
    terminated_pod_gc_threshold: usize,
    /// See [`Options::root_ca_pem`].
    root_ca_pem: Option<String>,
    /// See [`Options::csr_signer`].
    signer: Option<CsrSigner>,
    /// See [`Options::cluster_cidr`].
    cluster_cidr: Option<Ipv4Net>,
    /// See [`Options::node_cidr_mask_size`].
    node_cidr_mask_size: u8,
}

/// One controller: its service account name, the component its Events
/// name, and its loop.
struct Controller {
    name: &'static str,
    component: &'static str,
    run: fn(Context) -> BoxFuture<'static, ()>,
}

impl Controller {
    /// The service account it writes as: its own name, except where
    /// upstream shares one (node IPAM runs as `node-controller`).
    fn account(&self) -> &'static str {
        match self.name {
            "node-ipam-controller" => "node-controller",
            name => name,
        }
    }
}

const CONTROLLERS: &[Controller] = &[
    Controller {
        name: "certificate-controller",
        component: "certificate-controller",
        run: |cx| Box::pin(certificates::run(cx)),
    },
    Controller {
        name: "cronjob-controller",
        component: "cronjob-controller",
        run: |cx| Box::pin(cronjob::run(cx)),
    },
    Controller {
        name: "daemon-set-controller",
        component: "daemonset-controller",
        run: |cx| Box::pin(daemonset::run(cx)),
    },
    Controller {
        name: "deployment-controller",
        component: "deployment-controller",
        run: |cx| Box::pin(deployment::run(cx)),
    },
    Controller {
        name: "disruption-controller",
        component: "controllermanager",
        run: |cx| Box::pin(disruption::run(cx)),
    },
    Controller {
        name: "endpoint-controller",
        component: "endpoint-controller",
        run: |cx| Box::pin(endpoints::run_endpoints(cx)),
    },
    Controller {
        name: "endpointslice-controller",
        component: "endpoint-slice-controller",
        run: |cx| Box::pin(endpoints::run_slices(cx)),
    },
    Controller {
        name: "generic-garbage-collector",
        component: "garbage-collector-controller",
        run: |cx| Box::pin(gc::run(cx)),
    },
    Controller {
        name: "job-controller",
        component: "job-controller",
        run: |cx| Box::pin(job::run(cx)),
    },
    Controller {
        name: "namespace-controller",
        component: "namespace-controller",
        run: |cx| Box::pin(namespace::run(cx)),
    },
    Controller {
        name: "node-ipam-controller",
        component: "cidrAllocator",
        run: |cx| Box::pin(nodeipam::run(cx)),
    },
    Controller {
        name: "node-controller",
        component: "node-controller",
        run: |cx| Box::pin(nodelifecycle::run(cx)),
    },
    Controller {
        name: "pod-garbage-collector",
        component: "pod-garbage-collector",
        run: |cx| Box::pin(podgc::run(cx)),
    },
    Controller {
        name: "replicaset-controller",
        component: "replicaset-controller",
        run: |cx| Box::pin(replicaset::run(cx)),
    },
    Controller {
        name: "resourcequota-controller",
        component: "resource-quota-controller",
        run: |cx| Box::pin(resourcequota::run(cx)),
    },
    Controller {
        name: "root-ca-cert-publisher",
        component: "root-ca-cert-publisher",
        run: |cx| Box::pin(rootca::run(cx)),
    },
    Controller {
        name: "service-controller",
        component: "service-controller",
        run: |cx| Box::pin(loadbalancer::run(cx)),
    },
    Controller {
        name: "service-account-controller",
        component: "service-account-controller",
        run: |cx| Box::pin(serviceaccount::run(cx)),
    },
    Controller {
        name: "statefulset-controller",
        component: "statefulset-controller",
        run: |cx| Box::pin(statefulset::run(cx)),
    },
    Controller {
        name: "ttl-after-finished-controller",
        component: "ttl-after-finished-controller",
        run: |cx| Box::pin(ttl::run(cx)),
    },
];
