//! Authorization: Node, then RBAC (through `bulwark-rbac`), over a snapshot
//! of the stored roles and bindings that a background task rebuilds when
//! they change — as upstream's RBAC authorizer reads them from informers.
//! Also the default policy (reconciled at start), escalation prevention on
//! RBAC writes, and the access reviews `kubectl auth can-i` asks.

use std::sync::{Arc, RwLock};

use bulwark_rbac::bootstrap::{Reconcile, reconcile_defaults};
use bulwark_rbac::{Attributes, Decision, RbacKind, RbacSnapshot};
use bulwark_store::{Range, Store, Write};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::auth::UserInfo;
use crate::request::{ResourceRequest, Verb};
use crate::status::{ApiError, ApiResult};

const PREFIXES: [&str; 4] = [
    "/registry/roles/",
    "/registry/clusterroles/",
    "/registry/rolebindings/",
    "/registry/clusterrolebindings/",
];

/// The authorizer: a snapshot of RBAC objects and the Node authorizer's
/// graph, both kept current.
pub(crate) struct Authorizer {
    snapshot: RwLock<Arc<RbacSnapshot>>,
    nodes: Arc<crate::nodegraph::Graph>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

fn rbac_user(user: &UserInfo) -> bulwark_rbac::UserInfo {
    bulwark_rbac::UserInfo {
        name: user.username.clone(),
        groups: user.groups.clone(),
        uid: user.uid.clone(),
        extra: user.extra.clone(),
    }
}

async fn list(store: &dyn Store, prefix: &str) -> ApiResult<Vec<Value>> {
    let page = store.range(Range::prefix(prefix)).await?;
    page.kvs
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).map_err(ApiError::internal))
        .collect()
}

async fn build(store: &dyn Store) -> ApiResult<RbacSnapshot> {
    let roles = list(store, PREFIXES[0]).await?;
    let cluster_roles = aggregate(store).await?;
    let role_bindings = list(store, PREFIXES[2]).await?;
    let cluster_role_bindings = list(store, PREFIXES[3]).await?;
    RbacSnapshot::new(
        &roles,
        &cluster_roles,
        &role_bindings,
        &cluster_role_bindings,
    )
    .map_err(|err| ApiError::internal(format!("RBAC snapshot: {err}")))
}

/// The ClusterRoles with aggregated rules computed, written back where they
/// changed — what upstream's ClusterRole aggregation controller does, so
/// `kubectl get clusterrole view -o yaml` shows the rules too.
async fn aggregate(store: &dyn Store) -> ApiResult<Vec<Value>> {
    let page = store.range(Range::prefix(PREFIXES[1])).await?;
    let stored: Vec<Value> = page
        .kvs
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).map_err(ApiError::internal))
        .collect::<ApiResult<_>>()?;
    let aggregated = bulwark_rbac::aggregate_cluster_roles(&stored);
    for ((kv, before), after) in page.kvs.iter().zip(&stored).zip(&aggregated) {
        if before.get("rules") != after.get("rules") {
            let bytes = serde_json::to_vec(after).map_err(ApiError::internal)?;
            // A concurrent write wins; the next rebuild aggregates again.
            store
                .write(Write::put(&kv.key, bytes).if_mod_revision(kv.mod_revision))
                .await?;
        }
    }
    Ok(aggregated)
}

fn stamp(object: &mut Value) {
    let meta = crate::objects::metadata(object);
    meta.entry("uid")
        .or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
    meta.entry("creationTimestamp")
        .or_insert_with(|| json!(crate::objects::now()));
}

/// Creates or updates the default ClusterRoles and ClusterRoleBindings
/// (upstream's bootstrap policy), keeping user changes and objects marked
/// `rbac.authorization.kubernetes.io/autoupdate: "false"`.
async fn reconcile(store: &dyn Store) -> ApiResult<()> {
    let roles = list(store, PREFIXES[1]).await?;
    let bindings = list(store, PREFIXES[3]).await?;
    for step in reconcile_defaults(&roles, &bindings) {
        let prefix = if step.kind == "ClusterRole" {
            PREFIXES[1]
        } else {
            PREFIXES[3]
        };
        let key = format!("{prefix}{}", step.name);
        let mut object = match step.action {
            Reconcile::Create(o) | Reconcile::Update(o) | Reconcile::Recreate(o) => o,
            Reconcile::Unchanged | Reconcile::Protected => continue,
        };
        stamp(&mut object);
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        let bytes = serde_json::to_vec(&object).map_err(ApiError::internal)?;
        store.write(Write::put(&key, bytes)).await?;
    }
    Ok(())
}

impl Authorizer {
    /// Reconciles the default policy, loads the snapshot, and starts the
    /// task that rebuilds it when roles or bindings change.
    pub(crate) async fn start(store: Arc<dyn Store>) -> ApiResult<Arc<Self>> {
        reconcile(&*store).await?;
        let authorizer = Arc::new(Authorizer {
            snapshot: RwLock::new(Arc::new(build(&*store).await?)),
            nodes: crate::nodegraph::Graph::start(store.clone()).await?,
        });
        let changed = Arc::new(Notify::new());
        let (revision, _) = store.revisions().await?;
        for prefix in PREFIXES {
            tokio::spawn(follow(store.clone(), prefix, revision + 1, changed.clone()));
        }
        let weak = Arc::downgrade(&authorizer);
        tokio::spawn(async move {
            loop {
                changed.notified().await;
                let Some(authorizer) = weak.upgrade() else {
                    return;
                };
                match build(&*store).await {
                    Ok(snapshot) => {
                        *authorizer
                            .snapshot
                            .write()
                            .unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
                    }
                    Err(err) => tracing::warn!(?err, "RBAC snapshot not rebuilt"),
                }
            }
        });
        Ok(authorizer)
    }

    fn snapshot(&self) -> Arc<RbacSnapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Decides `attrs`.
    pub(crate) fn decide(&self, attrs: &Attributes) -> Decision {
        bulwark_rbac::authorize(&*self.nodes, &self.snapshot(), attrs)
    }

    /// Refuses the request (403, upstream's wording) unless authorized.
    pub(crate) fn check(&self, attrs: &Attributes) -> ApiResult<()> {
        match self.decide(attrs) {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                let status = bulwark_rbac::forbidden_status(attrs, &reason);
                Err(ApiError {
                    code: 403,
                    reason: "Forbidden",
                    message: status["message"].as_str().unwrap_or("forbidden").to_owned(),
                    details: status.get("details").cloned(),
                })
            }
        }
    }

    /// Escalation prevention for writes of roles and bindings.
    pub(crate) fn check_rbac_write(
        &self,
        req: &ResourceRequest,
        object: &Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        if req.resource.group != bulwark_rbac::RBAC_GROUP || req.subresource.is_some() {
            return Ok(());
        }
        let Some(user) = &req.user else { return Ok(()) };
        let user = rbac_user(user);
        let snapshot = self.snapshot();
        let result = match req.resource.plural {
            "roles" => snapshot.check_role_write(&user, RbacKind::Role, object, old),
            "clusterroles" => snapshot.check_role_write(&user, RbacKind::ClusterRole, object, old),
            "rolebindings" => {
                snapshot.check_binding_write(&user, RbacKind::RoleBinding, object, old)
            }
            "clusterrolebindings" => {
                snapshot.check_binding_write(&user, RbacKind::ClusterRoleBinding, object, old)
            }
            _ => Ok(()),
        };
        result.map_err(|forbidden| ApiError {
            code: 403,
            reason: "Forbidden",
            message: forbidden.message.clone(),
            details: forbidden.status().get("details").cloned(),
        })
    }

    /// An access review (`SelfSubjectAccessReview`, `SubjectAccessReview`,
    /// `LocalSubjectAccessReview` — `kind`): may `user` do what the spec
    /// says? A local review's namespace comes from its URL.
    pub(crate) fn access_review(
        &self,
        kind: &str,
        user: &UserInfo,
        review: &Value,
        namespace: Option<&str>,
    ) -> Value {
        let attrs = if let Some(r) = review.pointer("/spec/resourceAttributes") {
            let text = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
            let resource = match text("subresource").as_str() {
                "" => text("resource"),
                sub => format!("{}/{sub}", text("resource")),
            };
            let review_namespace = namespace.map_or_else(|| text("namespace"), str::to_owned);
            Attributes::resource(
                rbac_user(user),
                &text("verb"),
                &text("group"),
                &resource,
                &review_namespace,
                &text("name"),
            )
        } else {
            let n = review.pointer("/spec/nonResourceAttributes");
            let text = |f: &str| {
                n.and_then(|n| n.get(f))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            Attributes::non_resource(rbac_user(user), &text("verb"), &text("path"))
        };
        let (allowed, reason) = match self.decide(&attrs) {
            Decision::Allow(reason) => (true, reason),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => (false, reason),
        };
        let mut out = json!({
            "kind": kind,
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": review.get("spec").cloned().unwrap_or(json!({})),
            "status": {"allowed": allowed},
        });
        if !reason.is_empty() {
            out["status"]["reason"] = json!(reason);
        }
        out
    }

    /// `SelfSubjectRulesReview`: what may the requesting user do in a namespace?
    pub(crate) fn self_subject_rules_review(&self, user: &UserInfo, review: &Value) -> Value {
        let namespace = review
            .pointer("/spec/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let rules = self.snapshot().rules_for(&rbac_user(user), namespace);
        let mut resource_rules = serde_json::to_value(&rules.resource_rules).unwrap_or(json!([]));
        let mut non_resource_rules =
            serde_json::to_value(&rules.non_resource_rules).unwrap_or(json!([]));
        if user.groups.iter().any(|g| g == "system:masters") {
            resource_rules = json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]);
            non_resource_rules = json!([{"verbs": ["*"], "nonResourceURLs": ["*"]}]);
        }
        let mut status = json!({
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": rules.incomplete,
        });
        if !rules.evaluation_error.is_empty() {
            status["evaluationError"] = json!(rules.evaluation_error);
        }
        json!({
            "kind": "SelfSubjectRulesReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": review.get("spec").cloned().unwrap_or(json!({})),
            "status": status,
        })
    }
}

/// Wakes the rebuild task on every change under `prefix`, forever.
async fn follow(store: Arc<dyn Store>, prefix: &'static str, mut from: i64, changed: Arc<Notify>) {
    loop {
        match store.watch(Range::prefix(prefix), from).await {
            Ok(mut stream) => {
                while let Some(Ok(event)) = stream.next_event().await {
                    from = event.revision() + 1;
                    changed.notify_one();
                }
            }
            Err(err) => tracing::warn!(%err, prefix, "RBAC watch failed; retrying"),
        }
        // Whatever was missed, a rebuild reads the current state.
        changed.notify_one();
        from = store
            .revisions()
            .await
            .map(|(newest, _)| newest + 1)
            .unwrap_or(from);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The attributes of a resource request, as RBAC sees them: a list or
/// watch for one `metadata.name` is a request on that name.
pub(crate) fn resource_attributes(req: &ResourceRequest, user: &UserInfo) -> Attributes {
    let resource = match &req.subresource {
        Some(sub) => format!("{}/{sub}", req.resource.plural),
        None => req.resource.plural.to_owned(),
    };
    let mut name = req.name.clone().unwrap_or_default();
    if name.is_empty()
        && matches!(req.verb, Verb::List | Verb::Watch)
        && let Some(selector) = req.query.get("fieldSelector")
        && let Some(value) = selector
            .split(',')
            .find_map(|t| t.strip_prefix("metadata.name="))
    {
        name = value.to_owned();
    }
    let mut attrs = Attributes::resource(
        rbac_user(user),
        req.verb.as_str(),
        req.resource.group,
        &resource,
        req.namespace.as_deref().unwrap_or(""),
        &name,
    );
    if let Some(selector) = req.query.get("fieldSelector") {
        attrs.field_selector = selector.clone();
    }
    attrs
}

/// What RBAC checks for a request that is not a stored resource: the review
/// APIs are resources (`create` on `selfsubjectaccessreviews`, which the
/// default `system:basic-user` role grants every authenticated user; a
/// `localsubjectaccessreviews` in its namespace); the rest are non-resource
/// URLs (discovery, health, version, metrics).
pub(crate) fn other_attributes(method: &http::Method, path: &str, user: &UserInfo) -> Attributes {
    if method == http::Method::GET
        && let Some(metrics) = crate::resourcemetrics::parse(path)
    {
        return Attributes::resource(
            rbac_user(user),
            metrics.verb(),
            crate::resourcemetrics::GROUP,
            metrics.resource,
            metrics.namespace.as_deref().unwrap_or(""),
            metrics.name.as_deref().unwrap_or(""),
        );
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let review = match segments.as_slice() {
        ["apis", group, _, "namespaces", namespace, resource] => {
            Some((*group, *namespace, *resource))
        }
        ["apis", group, _, resource] => Some((*group, "", *resource)),
        _ => None,
    };
    match review {
        Some((group, namespace, resource))
            if method == http::Method::POST && resource.ends_with("reviews") =>
        {
            Attributes::resource(rbac_user(user), "create", group, resource, namespace, "")
        }
        _ => non_resource_attributes(method, path, user),
    }
}

/// The attributes of a non-resource request (`/healthz`, `/apis`, …).
fn non_resource_attributes(method: &http::Method, path: &str, user: &UserInfo) -> Attributes {
    Attributes::non_resource(rbac_user(user), &method.as_str().to_ascii_lowercase(), path)
}

/// Applies `Impersonate-User` / `Impersonate-Group` / `Impersonate-Uid` /
/// `Impersonate-Extra-*` headers: each needs the `impersonate` verb on
/// the user, group, uid or extra named (as upstream checks it); the request
/// then runs as the impersonated identity.
pub(crate) fn impersonate(
    authorizer: &Authorizer,
    user: UserInfo,
    headers: &http::HeaderMap,
) -> ApiResult<UserInfo> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    };
    let target_user = values("Impersonate-User").into_iter().next();
    let groups = values("Impersonate-Group");
    let uid = values("Impersonate-Uid").into_iter().next();
    let extras: Vec<(String, Vec<String>)> = headers
        .keys()
        .filter_map(|k| {
            k.as_str()
                .strip_prefix("impersonate-extra-")
                .map(str::to_owned)
        })
        .map(|key| {
            let header = format!("impersonate-extra-{key}");
            (key, values(&header))
        })
        .collect();
    let Some(target_user) = target_user else {
        if groups.is_empty() && uid.is_none() && extras.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups, uid or extra without a user: set Impersonate-User",
        ));
    };
    let check = |group: &str, resource: &str, name: &str| {
        authorizer.check(&Attributes::resource(
            rbac_user(&user),
            "impersonate",
            group,
            resource,
            "",
            name,
        ))
    };
    match target_user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, name)) => authorizer.check(&Attributes::resource(
            rbac_user(&user),
            "impersonate",
            "",
            "serviceaccounts",
            namespace,
            name,
        ))?,
        None => check("", "users", &target_user)?,
    }
    for group in &groups {
        check("", "groups", group)?;
    }
    if let Some(uid) = &uid {
        check("authentication.k8s.io", "uids", uid)?;
    }
    for (key, values) in &extras {
        for value in values {
            check("authentication.k8s.io", &format!("userextras/{key}"), value)?;
        }
    }
    let mut impersonated_groups = groups;
    if !impersonated_groups
        .iter()
        .any(|g| g == "system:authenticated")
        && target_user != "system:anonymous"
    {
        impersonated_groups.push("system:authenticated".to_owned());
    }
    tracing::debug!(from = %user.username, to = %target_user, "impersonating");
    let mut impersonated = UserInfo::new(target_user, impersonated_groups);
    impersonated.uid = uid.unwrap_or_default();
    impersonated.extra = extras.into_iter().collect();
    Ok(impersonated)
}
