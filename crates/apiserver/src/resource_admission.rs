//! LimitRanger and ResourceQuota admission (upstream's plugins of those
//! names, both on by default), over `bulwark_api::limitrange` and
//! `bulwark_api::quota`.
//!
//! - LimitRanger: a new pod gets its namespace's LimitRange defaults
//!   (mutating, right after NamespaceLifecycle), then is refused with 403
//!   if it breaks a `min`, `max` or `maxLimitRequestRatio` (validating,
//!   before ServiceAccount, NodeRestriction and PodSecurity).
//! - ResourceQuota: last of all, a create is charged against every quota
//!   of its namespace whose `status.hard` tracks it: refused with
//!   upstream's `exceeded quota: …` if it does not fit, otherwise
//!   `status.used` grows by compare-and-swap on the quota's revision, so
//!   two creates racing for the last unit cannot both win. The
//!   resourcequota controller recomputes `status.used` from the objects
//!   (giving back what deleted objects, and creates that failed after
//!   their charge, held).

use std::collections::BTreeSet;

use bulwark_api::quota::{self, ResourceList};
use bulwark_store::{Range, Write, WriteOutcome};
use serde_json::Value;

use crate::handlers::Api;
use crate::request::ResourceRequest;
use crate::status::{ApiError, ApiResult};

/// How often a charge is retried when a quota changed under it.
const CHARGE_ATTEMPTS: usize = 16;

fn is_pod(req: &ResourceRequest) -> bool {
    req.resource.group.is_empty() && req.resource.kind == "Pod" && req.subresource.is_none()
}

/// `pods "web" is forbidden: <why>` (`deployments.apps "web" …` outside
/// the core group), as upstream's `admission.NewForbidden`.
fn forbidden(req: &ResourceRequest, object: &Value, why: &str) -> ApiError {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let resource = if req.resource.group.is_empty() {
        req.resource.plural.to_owned()
    } else {
        format!("{}.{}", req.resource.plural, req.resource.group)
    };
    ApiError::forbidden(format!("{resource} \"{name}\" is forbidden: {why}"))
}

/// The objects stored under `prefix`, with their revisions.
async fn objects_under(api: &Api, prefix: &str) -> ApiResult<Vec<(String, i64, Value)>> {
    let listed = api.store.range(Range::prefix(prefix)).await?;
    listed
        .kvs
        .into_iter()
        .map(|kv| {
            let object = crate::handlers::decode_stored(&kv.value, kv.mod_revision)?;
            Ok((kv.key, kv.mod_revision, object))
        })
        .collect()
}

/// One namespace's objects under `prefix` (`/registry/<plural>/<ns>/`),
/// as upstream's LimitRanger and ResourceQuota read them: from the watch
/// cache when it holds some; else from the store, whose answer that there
/// are none is trusted for a while ([`Caches::note_absent`]) — so a
/// namespace without quotas or limits costs no store read per create.
/// `fresh` reads the store regardless.
///
/// [`Caches::note_absent`]: crate::watchcache::Caches::note_absent
async fn namespace_objects(
    api: &Api,
    prefix: &str,
    fresh: bool,
) -> ApiResult<Vec<(String, i64, Value)>> {
    if !fresh && let Some(cached) = api.caches.objects_within(prefix) {
        if !cached.is_empty() {
            return Ok(cached
                .iter()
                .map(|object| {
                    let value = object.value();
                    let name = value
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    (format!("{prefix}{name}"), object.revision(), value)
                })
                .collect());
        }
        if api.caches.recently_absent(prefix) {
            return Ok(Vec::new());
        }
    }
    let objects = objects_under(api, prefix).await?;
    if objects.is_empty() {
        api.caches.note_absent(prefix);
    }
    Ok(objects)
}

/// The LimitRanges of the pod's namespace (none for anything but a pod).
pub(crate) async fn limit_ranges(api: &Api, req: &ResourceRequest) -> ApiResult<Vec<Value>> {
    let Some(namespace) = req.namespace.as_deref().filter(|_| is_pod(req)) else {
        return Ok(Vec::new());
    };
    Ok(
        namespace_objects(api, &format!("/registry/limitranges/{namespace}/"), false)
            .await?
            .into_iter()
            .map(|(_, _, o)| o)
            .collect(),
    )
}

/// LimitRanger's mutating half: defaults for a new pod's containers.
pub(crate) fn limit_ranger_defaults(ranges: &[Value], pod: &mut Value) {
    if !ranges.is_empty() {
        bulwark_api::limitrange::apply_defaults(ranges, pod);
    }
}

/// LimitRanger's validating half: 403 listing every limit the pod breaks.
pub(crate) fn limit_ranger_check(
    req: &ResourceRequest,
    ranges: &[Value],
    pod: &Value,
) -> ApiResult<()> {
    let errors = bulwark_api::limitrange::violations(ranges, pod);
    if errors.is_empty() {
        return Ok(());
    }
    Err(forbidden(
        req,
        pod,
        &bulwark_api::limitrange::aggregate(&errors),
    ))
}

/// The namespace whose quotas a write is charged to: none for
/// cluster-scoped objects and subresources.
fn quota_namespace(req: &ResourceRequest) -> Option<&str> {
    req.namespace
        .as_deref()
        .filter(|_| req.resource.namespaced && req.subresource.is_none())
}

/// ResourceQuota admission for a create: checks `object` against the
/// namespace's quotas and, unless `dry_run`, charges it to them.
pub(crate) async fn charge_create(
    api: &Api,
    req: &ResourceRequest,
    object: &Value,
    dry_run: bool,
) -> ApiResult<()> {
    let Some(namespace) = quota_namespace(req) else {
        return Ok(());
    };
    let (group, plural) = (req.resource.group, req.resource.plural);
    let usage = quota::usage(group, plural, object);
    charge(api, req, namespace, object, &usage, dry_run).await
}

/// ResourceQuota admission for an update: what the new object uses beyond
/// the old one (a Service turning into a LoadBalancer, a claim growing) is
/// checked and charged as a create's whole usage is.
pub(crate) async fn charge_update(
    api: &Api,
    req: &ResourceRequest,
    old: &Value,
    new: &Value,
    dry_run: bool,
) -> ApiResult<()> {
    let Some(namespace) = quota_namespace(req) else {
        return Ok(());
    };
    let (group, plural) = (req.resource.group, req.resource.plural);
    let before = quota::usage(group, plural, old);
    let delta: ResourceList = quota::usage(group, plural, new)
        .into_iter()
        .filter_map(|(name, q)| {
            let grown = match before.get(&name) {
                Some(had) => q.saturating_sub(had),
                None => q,
            };
            (!grown.is_zero()).then_some((name, grown))
        })
        .collect();
    if delta.is_empty() {
        return Ok(());
    }
    charge(api, req, namespace, new, &delta, dry_run).await
}

/// Checks `usage` of `object` against the namespace's quotas and, unless
/// `dry_run`, adds it to their `status.used`.
async fn charge(
    api: &Api,
    req: &ResourceRequest,
    namespace: &str,
    object: &Value,
    usage: &ResourceList,
    dry_run: bool,
) -> ApiResult<()> {
    let (group, plural) = (req.resource.group, req.resource.plural);
    let prefix = format!("/registry/resourcequotas/{namespace}/");
    // Quotas already charged in an earlier attempt (a later one's CAS failed).
    let mut charged = BTreeSet::new();
    // The first attempt reads the watch cache; a refusal, a conflict, or a
    // quota whose status does not yet follow its spec there is decided
    // again from the store.
    let mut fresh = false;
    'attempts: for _ in 0..CHARGE_ATTEMPTS {
        let quotas = namespace_objects(api, &prefix, fresh).await?;
        if !fresh
            && quotas
                .iter()
                .any(|(_, _, q)| q.pointer("/spec/hard") != q.pointer("/status/hard"))
        {
            fresh = true;
            continue;
        }
        let mut updates = Vec::new();
        for (key, revision, q) in &quotas {
            let name = q
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let hard = quota::resource_list(q.pointer("/status/hard"));
            let restricted: Vec<String> = hard
                .keys()
                .filter(|n| quota::tracks(group, plural, n))
                .cloned()
                .collect();
            if restricted.is_empty() || !quota::scopes_match(q, group, plural, object) {
                continue;
            }
            if group.is_empty()
                && plural == "pods"
                && let Some(why) = quota::pod_constraint_violation(&restricted, object)
            {
                if !fresh {
                    fresh = true;
                    continue 'attempts;
                }
                return Err(forbidden(
                    req,
                    object,
                    &format!("failed quota: {name}: {why}"),
                ));
            }
            let used = quota::resource_list(q.pointer("/status/used"));
            if restricted.iter().any(|r| !used.contains_key(r)) {
                if !fresh {
                    fresh = true;
                    continue 'attempts;
                }
                return Err(forbidden(
                    req,
                    object,
                    &format!(
                        "status unknown for quota: {name}, resources: {}",
                        restricted.join(",")
                    ),
                ));
            }
            let requested: ResourceList = usage
                .iter()
                .filter(|(n, _)| hard.contains_key(*n))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            if requested.is_empty() || charged.contains(&name) {
                continue;
            }
            let mut new_used = used.clone();
            quota::add_into(&mut new_used, &requested);
            let exceeded: Vec<&String> = requested
                .keys()
                .filter(|n| {
                    new_used
                        .get(*n)
                        .zip(hard.get(*n))
                        .is_some_and(|(u, h)| u > h)
                })
                .collect();
            if !exceeded.is_empty() {
                if !fresh {
                    fresh = true;
                    continue 'attempts;
                }
                let mask = |list: &ResourceList| -> ResourceList {
                    list.iter()
                        .filter(|(n, _)| exceeded.contains(n))
                        .map(|(n, v)| (n.clone(), v.clone()))
                        .collect()
                };
                return Err(forbidden(
                    req,
                    object,
                    &format!(
                        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                        quota::pretty(&mask(&requested)),
                        quota::pretty(&mask(&used)),
                        quota::pretty(&mask(&hard)),
                    ),
                ));
            }
            updates.push((key.clone(), *revision, name, q.clone(), new_used));
        }
        if dry_run {
            return Ok(());
        }
        let mut conflicted = false;
        for (key, revision, name, mut q, new_used) in updates {
            let mut used = quota::to_json(&quota::resource_list(q.pointer("/status/used")));
            if let (Some(used), Value::Object(new)) =
                (used.as_object_mut(), quota::to_json(&new_used))
            {
                used.extend(new);
            }
            q["status"]["used"] = used;
            if let Some(meta) = q.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
            let bytes = serde_json::to_vec(&q).map_err(ApiError::internal)?;
            match api
                .store
                .write(Write::put(&key, bytes).if_mod_revision(revision))
                .await?
            {
                WriteOutcome::Committed { .. } => {
                    charged.insert(name);
                }
                WriteOutcome::Failed { .. } => conflicted = true,
            }
        }
        if !conflicted {
            return Ok(());
        }
        fresh = true;
    }
    Err(ApiError::conflict(
        "resourcequotas",
        "",
        namespace,
        "too many concurrent changes to the namespace's quotas; please try again",
    ))
}
