//! Leader election through a coordination.k8s.io/v1 Lease, as client-go's
//! `leaderelection` package does it: a candidate takes the Lease when it is
//! free or its holder has not renewed it for `lease_duration` (measured on
//! the candidate's own clock from when it last saw the record change, so
//! clock skew between servers does not matter), the leader renews it every
//! `retry_period`, and a leader that cannot renew within `renew_deadline`
//! stops its work before anyone else may take over. Every write is a
//! compare-and-swap on the Lease's resourceVersion, so two candidates can
//! never both believe they won.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

/// One election: which Lease, who we are, and upstream's timings.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// The Lease's namespace (`kube-system`).
    pub namespace: String,
    /// The Lease's name (`kube-scheduler`, `kube-controller-manager`).
    pub lease_name: String,
    /// This candidate's identity, unique per process (`<host>_<uuid>`).
    pub holder: String,
    /// How long a Lease not renewed stays the holder's (15 s).
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before giving up (10 s).
    pub renew_deadline: Duration,
    /// How often candidates try, and leaders renew (2 s).
    pub retry_period: Duration,
}

impl LeaderElection {
    /// Upstream's defaults (15 s / 10 s / 2 s) for `lease_name` in
    /// kube-system.
    pub fn new(lease_name: &str, holder: &str) -> Self {
        LeaderElection {
            namespace: "kube-system".to_owned(),
            lease_name: lease_name.to_owned(),
            holder: holder.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The same election with another lease duration; the renew deadline
    /// and retry period keep upstream's proportions (2/3 and 2/15).
    pub fn with_lease_duration(mut self, lease_duration: Duration) -> Self {
        self.lease_duration = lease_duration;
        self.renew_deadline = lease_duration * 2 / 3;
        self.retry_period = (lease_duration * 2 / 15).max(Duration::from_millis(100));
        self
    }
}

/// Runs `work` whenever this candidate leads, forever: campaign, lead (work
/// runs; the Lease is renewed), and when leadership is lost, stop the work
/// (its future is dropped) and campaign again. `work` returning ends the
/// term early (the Lease is released so another candidate takes over at
/// once) and its result is returned.
pub async fn run_elected<F, Fut>(
    client: kube::Client,
    election: LeaderElection,
    mut work: F,
) -> WorkResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = WorkResult> + Send + 'static,
{
    let leases: Api<Lease> = Api::namespaced(client, &election.namespace);
    let mut observed = Observed::default();
    loop {
        campaign(&leases, &election, &mut observed).await;
        tracing::info!(lease = %election.lease_name, holder = %election.holder, "became leader");
        let mut task = tokio::spawn(work());
        let lost = tokio::select! {
            result = &mut task => {
                release(&leases, &election).await;
                return match result {
                    Ok(result) => result,
                    Err(join) => Err(Box::new(join)),
                };
            }
            () = keep(&leases, &election, &mut observed) => true,
        };
        if lost {
            task.abort();
            let _ = task.await;
            tracing::warn!(lease = %election.lease_name, holder = %election.holder, "lost the lease; work stopped");
        }
    }
}

/// What elected work returns: done, or failed with any error.
pub type WorkResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The Lease record as this candidate last saw it, and when (on our clock).
#[derive(Default)]
struct Observed {
    record: Option<(Option<String>, Option<jiff::Timestamp>)>,
    at: Option<Instant>,
}

impl Observed {
    fn see(&mut self, lease: &Lease) {
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Some((spec.holder_identity, spec.renew_time.map(|t| t.0)));
        if record != self.record {
            self.record = record;
            self.at = Some(Instant::now());
        }
    }

    fn expired(&self, duration: Duration) -> bool {
        self.at.is_none_or(|at| at.elapsed() > duration)
    }
}

/// Loops until this candidate holds the Lease.
async fn campaign(leases: &Api<Lease>, election: &LeaderElection, observed: &mut Observed) {
    loop {
        match try_acquire_or_renew(leases, election, observed).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(err) => tracing::debug!(lease = %election.lease_name, error = %err, "campaign"),
        }
        tokio::time::sleep(election.retry_period).await;
    }
}

/// Renews the Lease while we hold it; returns when leadership is lost (a
/// renewal did not succeed within the renew deadline, or someone else holds
/// the Lease).
async fn keep(leases: &Api<Lease>, election: &LeaderElection, observed: &mut Observed) {
    let mut last_renewal = Instant::now();
    loop {
        tokio::time::sleep(election.retry_period).await;
        let attempt = tokio::time::timeout(
            election
                .renew_deadline
                .saturating_sub(last_renewal.elapsed()),
            try_acquire_or_renew(leases, election, observed),
        )
        .await;
        match attempt {
            Ok(Ok(true)) => last_renewal = Instant::now(),
            Ok(Ok(false)) => return,
            Ok(Err(err)) => {
                tracing::warn!(lease = %election.lease_name, error = %err, "renewing the lease")
            }
            Err(_) => {}
        }
        if last_renewal.elapsed() >= election.renew_deadline {
            return;
        }
    }
}

/// One attempt: create the Lease, or take it over when it is free, ours or
/// expired. `Ok(true)` when we hold it afterwards.
async fn try_acquire_or_renew(
    leases: &Api<Lease>,
    election: &LeaderElection,
    observed: &mut Observed,
) -> Result<bool, kube::Error> {
    let now = MicroTime(jiff::Timestamp::now());
    let seconds = i32::try_from(election.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let Some(mut lease) = leases.get_opt(&election.lease_name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(election.lease_name.clone()),
                namespace: Some(election.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(election.holder.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match leases.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                observed.see(&created);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err),
        };
    };
    observed.see(&lease);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == election.holder;
    let held_duration = spec
        .lease_duration_seconds
        .map_or(election.lease_duration, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
        });
    if !ours && !holder.is_empty() && !observed.expired(held_duration) {
        return Ok(false);
    }
    if !ours {
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.holder_identity = Some(election.holder.clone());
    }
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(seconds);
    // `replace` carries the resourceVersion we read: a concurrent writer
    // makes it fail with 409, and we lose this round.
    match leases
        .replace(&election.lease_name, &PostParams::default(), &lease)
        .await
    {
        Ok(updated) => {
            observed.see(&updated);
            Ok(true)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}

/// Gives the Lease up (holder cleared) so another candidate need not wait
/// for it to expire.
async fn release(leases: &Api<Lease>, election: &LeaderElection) {
    let Ok(Some(mut lease)) = leases.get_opt(&election.lease_name).await else {
        return;
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(election.holder.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    let _ = leases
        .replace(&election.lease_name, &PostParams::default(), &lease)
        .await;
}
