//! The verbs: get, list, create, update, patch, delete, deletecollection, and
//! the subresources (status, scale, binding, eviction), over the store with
//! upstream's semantics. Watch lives in [`crate::watchcache`].

use std::sync::Arc;

use base64::Engine as _;
use bulwark_api::fields::{FieldSelector, object_fields};
use bulwark_api::labels::LabelSelector;
use bulwark_store::{Range, Store, StoreExt, Write, WriteOutcome};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};

use crate::defaults;
use crate::objects::{self, FieldValidation};
use crate::registry::ResourceType;
use crate::request::{ResourceRequest, Verb, content_type, decode_body, decode_body_checked};
use crate::status::{ApiError, ApiResult};

/// A successful answer: status code, body, and `Warning` headers.
#[derive(Debug)]
pub(crate) struct Reply {
    /// HTTP status.
    pub code: u16,
    /// The body (an object, a list, or a Status).
    pub body: Value,
    /// Warnings for the `Warning` header.
    pub warnings: Vec<String>,
    /// A list, already serialized (then `body` is `Null`).
    pub(crate) list: Option<Listed>,
}

/// A list answer: its metadata and each item already serialized (kind and
/// apiVersion dropped, resourceVersion stamped), so large lists are written
/// without building one big value.
#[derive(Debug)]
pub(crate) struct Listed {
    /// `ListMeta`.
    pub(crate) metadata: Value,
    /// The items' JSON.
    pub(crate) items: Vec<Bytes>,
}

impl Listed {
    /// The `<Kind>List` JSON as a response body written piece by piece:
    /// a list of 10,000 pods is tens of MiB, which as one buffer the
    /// allocator keeps long after the response is gone.
    pub(crate) fn into_body(self, resource: &ResourceType) -> ListBody {
        let head = Bytes::from(format!(
            r#"{{"kind":"{}List","apiVersion":"{}","metadata":{},"items":["#,
            resource.kind,
            resource.api_version(),
            self.metadata
        ));
        let commas = self.items.len().saturating_sub(1);
        let remaining = head.len()
            + self.items.iter().map(Bytes::len).sum::<usize>()
            + commas
            + LIST_TAIL.len();
        ListBody {
            head: Some(head),
            items: self.items.into_iter(),
            first: true,
            tail: true,
            remaining: remaining as u64,
        }
    }

    /// The items decoded (for Tables and deletecollection).
    pub(crate) fn values(&self) -> ApiResult<Vec<Value>> {
        self.items
            .iter()
            .map(|i| serde_json::from_slice(i).map_err(ApiError::internal))
            .collect()
    }
}

const LIST_TAIL: &[u8] = b"]}";

/// How much of a list one body frame carries.
const LIST_FRAME: usize = 64 * 1024;

/// A list answer's body: the head, the items (comma-separated, copied into
/// frames of about [`LIST_FRAME`] bytes), the tail. Its exact length is
/// known up front, so it is sent with a Content-Length and the audit log
/// can still read it whole at level RequestResponse.
pub(crate) struct ListBody {
    head: Option<Bytes>,
    items: std::vec::IntoIter<Bytes>,
    first: bool,
    tail: bool,
    remaining: u64,
}

impl ListBody {
    /// The next frame, counted off the length still to come.
    fn next_frame(&mut self) -> Option<Bytes> {
        let frame = self.build_frame();
        if let Some(bytes) = &frame {
            self.remaining = self.remaining.saturating_sub(bytes.len() as u64);
        }
        frame
    }

    fn build_frame(&mut self) -> Option<Bytes> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        let mut frame = Vec::new();
        for item in self.items.by_ref() {
            if !self.first {
                frame.push(b',');
            }
            self.first = false;
            frame.extend_from_slice(&item);
            if frame.len() >= LIST_FRAME {
                return Some(Bytes::from(frame));
            }
        }
        if std::mem::take(&mut self.tail) {
            frame.extend_from_slice(LIST_TAIL);
        }
        (!frame.is_empty()).then(|| Bytes::from(frame))
    }
}

impl hyper::body::Body for ListBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let frame = self.next_frame();
        std::task::Poll::Ready(frame.map(|bytes| Ok(hyper::body::Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

impl Reply {
    fn listed(listed: Listed) -> Self {
        Reply {
            code: 200,
            body: Value::Null,
            warnings: Vec::new(),
            list: Some(listed),
        }
    }

    fn ok(body: Value) -> Self {
        Reply {
            code: 200,
            body,
            warnings: Vec::new(),
            list: None,
        }
    }
}

/// The shared state handlers need.
pub(crate) struct Api {
    /// The cluster store.
    pub(crate) store: Arc<dyn Store>,
    /// The watch caches (also serving lists at resourceVersion 0).
    pub(crate) caches: crate::watchcache::Caches,
    /// The service-account token signing key.
    pub(crate) tokens: Arc<crate::tokens::SigningKey>,
    /// Service ClusterIP and NodePort allocation.
    pub(crate) services: Arc<crate::services::Allocators>,
    /// The encrypting layer of `store`, to tell values under an old key.
    pub(crate) encryption: Arc<crate::encryption::EncryptingStore>,
}

/// Whether `resource` is core/v1 Services (whose IPs and ports are allocated).
fn is_service(resource: &ResourceType) -> bool {
    resource.group.is_empty() && resource.kind == "Service"
}

/// Runs a resource request (everything but watch).
pub(crate) async fn handle(
    api: &Api,
    req: &ResourceRequest,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Reply> {
    match (req.verb, req.subresource.as_deref()) {
        (Verb::Get, None | Some("status" | "approval")) => get(api, req).await.map(Reply::ok),
        (Verb::Get, Some("scale")) => to_scale(&req.resource, &get(api, req).await?).map(Reply::ok),
        (Verb::List, _) => list(api, req).await.map(Reply::listed),
        (Verb::Create, None) => create(api, req, headers, body).await,
        (Verb::Create, Some("binding")) => bind(api, req, headers, body).await,
        (Verb::Create, Some("eviction")) => evict(api, req).await,
        (Verb::Create, Some("token")) => crate::tokenrequest::create(api, req, headers, body).await,
        (Verb::Update, _) => update(api, req, headers, body).await,
        (Verb::Patch, _) => patch(api, req, headers, body).await,
        (Verb::Delete, None) => delete(api, req, headers, body).await.map(Reply::ok),
        (Verb::DeleteCollection, None) => delete_collection(api, req, headers, body)
            .await
            .map(Reply::ok),
        (verb, _) => Err(ApiError::method_not_allowed(verb.as_str())),
    }
}

fn name_of(req: &ResourceRequest) -> ApiResult<&str> {
    req.name.as_deref().ok_or_else(ApiError::no_route)
}

fn key_of(req: &ResourceRequest) -> ApiResult<String> {
    Ok(req.resource.key(req.namespace.as_deref(), name_of(req)?))
}

fn not_found(req: &ResourceRequest) -> ApiError {
    ApiError::not_found(
        req.resource.plural,
        req.resource.group,
        req.name.as_deref().unwrap_or(""),
    )
}

pub(crate) fn dry_run(req: &ResourceRequest) -> ApiResult<bool> {
    match req.query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dry run value: {other:?}: valid values are \"All\""
        ))),
    }
}

/// Decodes a stored value and stamps its resourceVersion.
pub(crate) fn decode_stored(value: &[u8], revision: i64) -> ApiResult<Value> {
    let mut object: Value = serde_json::from_slice(value)
        .map_err(|err| ApiError::internal(format!("stored object does not decode: {err}")))?;
    objects::set_resource_version(&mut object, revision);
    Ok(object)
}

fn encode(object: &Value) -> ApiResult<Bytes> {
    // A copy only when there is a resourceVersion to leave out (not on
    // create: copying each new object cost 4% of a create's CPU).
    let text = if object.pointer("/metadata/resourceVersion").is_some() {
        let mut stored = object.clone();
        if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        serde_json::to_vec(&stored)
    } else {
        serde_json::to_vec(object)
    };
    text.map(Bytes::from).map_err(ApiError::internal)
}

async fn get(api: &Api, req: &ResourceRequest) -> ApiResult<Value> {
    let kv = api
        .store
        .get(&key_of(req)?)
        .await?
        .ok_or_else(|| not_found(req))?;
    decode_stored(&kv.value, kv.mod_revision)
}

/// Label and field selectors of a list or watch.
pub(crate) struct Selectors {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selectors {
    /// From the query (`labelSelector`, `fieldSelector`).
    pub(crate) fn from_request(req: &ResourceRequest) -> ApiResult<Self> {
        let labels =
            LabelSelector::parse(req.query.get("labelSelector").map_or("", String::as_str))
                .map_err(|err| ApiError::bad_request(err.0.clone()))?;
        let fields =
            FieldSelector::parse(req.query.get("fieldSelector").map_or("", String::as_str))
                .map_err(|err| ApiError::bad_request(err.0.clone()))?;
        fields
            .check_supported(&req.resource.api_version(), req.resource.kind)
            .map_err(|err| ApiError::bad_request(err.0.clone()))?;
        Ok(Selectors { labels, fields })
    }

    /// Whether nothing is filtered out.
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether an object of the watch cache is selected.
    pub(crate) fn matches_cached(&self, object: &crate::watchcache::Cached) -> bool {
        (self.labels.is_empty() || self.labels.matches(object.labels()))
            && (self.fields.is_empty() || self.fields.matches(|f| object.field(f)))
    }

    /// Whether `object` (of `resource`) is selected.
    pub(crate) fn matches(&self, resource: &ResourceType, object: &Value) -> bool {
        if !self.labels.is_empty() {
            let empty = serde_json::Map::new();
            let labels = object
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            if !self.labels.matches(labels) {
                return false;
            }
        }
        if !self.fields.is_empty() {
            let fields = object_fields(&resource.api_version(), resource.kind, object);
            if !self.fields.matches(|f| fields.get(f).map(String::as_str)) {
                return false;
            }
        }
        true
    }
}

/// The storage prefix a list or watch covers.
pub(crate) fn list_prefix(req: &ResourceRequest) -> String {
    match &req.namespace {
        Some(ns) => format!("{}{ns}/", req.resource.key_prefix()),
        None => req.resource.key_prefix(),
    }
}

/// The upstream-shaped continue token: base64 of the list revision and the
/// key to go on after.
fn continue_token(revision: i64, last_key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn parse_continue(token: &str, prefix: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rev = value["rv"].as_i64().ok_or_else(bad)?;
    let start = value["start"].as_str().ok_or_else(bad)?.to_owned();
    if !start.starts_with(prefix) {
        return Err(bad());
    }
    Ok((rev, start))
}

async fn list(api: &Api, req: &ResourceRequest) -> ApiResult<Listed> {
    let selectors = Selectors::from_request(req)?;
    let prefix = list_prefix(req);
    let any_version = req.query.get("resourceVersion").map(String::as_str) == Some("0");
    let paging = req.query.get("continue").is_some_and(|c| !c.is_empty());
    if any_version && !paging {
        // resourceVersion=0: any recent state will do; the watch cache has it.
        let cache = api.caches.get(&req.resource).await?;
        let (objects, revision) = cache.snapshot(&prefix);
        let items: Vec<Bytes> = objects
            .iter()
            .filter(|o| selectors.matches_cached(o))
            .map(|o| o.list_item())
            .collect();
        return Ok(Listed {
            metadata: json!({"resourceVersion": revision.to_string()}),
            items,
        });
    }
    let limit: usize = match req.query.get("limit").map(|l| l.parse::<i64>()) {
        None => 0,
        Some(Ok(n)) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(Ok(_)) => 0,
        Some(Err(_)) => return Err(ApiError::bad_request("limit must be an integer")),
    };
    let (mut at, mut after) = match req.query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rev, start) = parse_continue(token, &prefix)?;
            (Some(rev), Some(start))
        }
        None => (None, None),
    };
    let mut items = Vec::new();
    let mut next_token = None;
    let mut remaining = None;
    loop {
        let chunk = if limit > 0 { limit.max(100) } else { 0 };
        let mut range = Range::prefix(&prefix);
        if chunk > 0 {
            range = range.limit(chunk);
        }
        if let Some(rev) = at {
            range = range.at(rev);
        }
        if let Some(last) = &after {
            range = range.after(last);
        }
        let page = api.store.range(range).await.map_err(|err| match err {
            bulwark_store::StoreError::Compacted { .. } => ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ),
            other => other.into(),
        })?;
        at = Some(page.revision);
        let mut last_key = None;
        let page_len = page.kvs.len();
        for (i, kv) in page.kvs.iter().enumerate() {
            last_key = Some(kv.key.clone());
            if selectors.is_empty() {
                let item = objects::list_item_json(&kv.value, kv.mod_revision).map_err(|err| {
                    ApiError::internal(format!("stored object does not decode: {err}"))
                })?;
                items.push(item);
            } else {
                let object = decode_stored(&kv.value, kv.mod_revision)?;
                if selectors.matches(&req.resource, &object) {
                    items.push(objects::value_list_item(&object));
                }
            }
            if limit > 0 && items.len() == limit {
                let more_here = i + 1 < page_len;
                if more_here || page.more {
                    next_token = Some(continue_token(page.revision, &kv.key));
                    if selectors.is_empty() {
                        remaining = Some(page.count - (i as i64 + 1));
                    }
                }
                break;
            }
        }
        if next_token.is_some() || !page.more || (limit > 0 && items.len() == limit) {
            break;
        }
        after = last_key;
    }
    let revision = at.unwrap_or(0);
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(token) = next_token {
        metadata["continue"] = json!(token);
        if let Some(remaining) = remaining.filter(|r| *r > 0) {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(Listed { metadata, items })
}

/// Refuses creates in a namespace that is missing or terminating.
async fn check_namespace_open(
    api: &Api,
    resource: &ResourceType,
    namespace: Option<&str>,
) -> ApiResult<()> {
    let Some(ns) = namespace.filter(|_| resource.namespaced) else {
        return Ok(());
    };
    // From the watch cache (a namespace's deletion is final, so a cached
    // deletionTimestamp is never wrong), else the store: a namespace
    // created a moment ago may not have reached the cache yet.
    let Some(namespace) = crate::authn::lookup(api, &format!("/registry/namespaces/{ns}")).await?
    else {
        return Err(ApiError::not_found("namespaces", "", ns));
    };
    if namespace.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            resource.plural, ""
        )));
    }
    Ok(())
}

async fn create(
    api: &Api,
    req: &ResourceRequest,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Reply> {
    let validation = FieldValidation::parse(req.query.get("fieldValidation"))?;
    let (object, unknown) = decode_body_checked(headers, body)?;
    let warnings = unknown_field_warnings(unknown, validation)?;
    let manager = crate::apply::field_manager(req, headers)?;
    create_object(api, req, object, validation, warnings, &manager).await
}

/// The create path after decoding (also used by server-side apply of a new
/// object): type and metadata checks, defaulting, validation, system
/// fields, managed fields, then a create-if-absent in the store.
pub(crate) async fn create_object(
    api: &Api,
    req: &ResourceRequest,
    mut object: Value,
    validation: FieldValidation,
    mut warnings: Vec<String>,
    manager: &str,
) -> ApiResult<Reply> {
    let resource = &req.resource;
    objects::check_type_meta(resource, &mut object)?;
    objects::check_namespace(resource, &mut object, req.namespace.as_deref())?;
    objects::generate_name(&mut object);
    warnings.extend(objects::check_type(resource, &mut object, validation)?);
    let name = objects::object_name(&object).unwrap_or_default();
    let causes = objects::validate_metadata(resource, &object);
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            resource.kind,
            resource.group,
            &name,
            causes,
        ));
    }
    check_namespace_open(api, resource, req.namespace.as_deref()).await?;
    defaults::apply(resource, &mut object);
    // Ownership of what the request set (defaults included, as upstream's
    // decoder applies them), recorded before mutating admission as
    // upstream's create handler does: what admission adds (the token
    // volume, tolerations, priority) belongs to no manager.
    crate::apply::record(
        resource,
        &Value::Object(Default::default()),
        &mut object,
        manager,
        "",
    );
    // Mutating admission, before validation as upstream orders it.
    let limit_ranges = crate::resource_admission::limit_ranges(api, req).await?;
    crate::resource_admission::limit_ranger_defaults(&limit_ranges, &mut object);
    crate::admission::default_toleration_seconds(req, &mut object);
    crate::admission::pod_priority(api, req, &mut object).await?;
    crate::sa_admission::admit(api, req, &mut object).await?;
    crate::csr::prepare_create(req, &mut object);
    let mut causes = crate::validation::validate(resource, &object);
    if is_service(resource) {
        causes.extend(crate::services::validate(None, &object));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            resource.kind,
            resource.group,
            &name,
            causes,
        ));
    }
    crate::resource_admission::limit_ranger_check(req, &limit_ranges, &object)?;
    warnings.extend(crate::admission::pod_security(req, None, &object)?);
    crate::admission::deny_external_ips(req, None, &object)?;
    crate::noderestriction::admit(
        req,
        crate::noderestriction::Operation::Create,
        None,
        Some(&object),
    )?;
    crate::noderestriction::admit_mirror_owner(api, req, &object).await?;
    crate::csr::admit(req, None, &object)?;
    if let Some(authorizer) = &req.authorizer {
        authorizer.check_rbac_write(req, &object, None)?;
    }
    objects::initialize(resource, &mut object);
    defaults::on_create(resource, &mut object);
    let key = resource.key(req.namespace.as_deref(), &name);
    let dry_run = dry_run(req)?;
    if dry_run && api.store.get(&key).await?.is_some() {
        return Err(ApiError::already_exists(
            resource.plural,
            resource.group,
            &name,
        ));
    }
    // ResourceQuota, the last admission plugin.
    crate::resource_admission::charge_create(api, req, &object, dry_run).await?;
    let taken = if is_service(resource) {
        crate::services::on_create(&api.services, &mut object, dry_run).await?
    } else {
        crate::services::Held::default()
    };
    if dry_run {
        if api.store.get(&key).await?.is_some() {
            return Err(ApiError::already_exists(
                resource.plural,
                resource.group,
                &name,
            ));
        }
        return Ok(Reply {
            code: 201,
            body: object,
            warnings,
            list: None,
        });
    }
    match api
        .store
        .write(Write::put(&key, encode(&object)?).if_absent())
        .await?
    {
        WriteOutcome::Committed { revision, .. } => {
            objects::set_resource_version(&mut object, revision);
            Ok(Reply {
                code: 201,
                body: object,
                warnings,
                list: None,
            })
        }
        WriteOutcome::Failed { .. } => {
            api.services.release_logged(&taken).await;
            Err(ApiError::already_exists(
                resource.plural,
                resource.group,
                &name,
            ))
        }
    }
}

/// What strict decoding found while decoding the body (duplicate fields,
/// fields the protobuf decoder did not know): refused under `Strict`,
/// warned about under `Warn`.
fn unknown_field_warnings(
    messages: Vec<String>,
    validation: FieldValidation,
) -> ApiResult<Vec<String>> {
    match validation {
        FieldValidation::Strict if !messages.is_empty() => Err(ApiError::bad_request(
            bulwark_api::strict::strict_decoding_error(&messages),
        )),
        FieldValidation::Warn => Ok(messages),
        _ => Ok(Vec::new()),
    }
}

/// Read, change, compare-and-swap, retrying on a concurrent change (unless
/// the caller pinned a resourceVersion): upstream's `GuaranteedUpdate`.
/// `change` gets the current object and returns the new one.
pub(crate) async fn guaranteed_update(
    api: &Api,
    req: &ResourceRequest,
    pinned: Option<String>,
    mut change: impl FnMut(Value) -> ApiResult<Value>,
) -> ApiResult<Value> {
    let key = key_of(req)?;
    let name = name_of(req)?.to_owned();
    let resource = &req.resource;
    // The first attempt starts from the watch cache's copy, as upstream's
    // cacher hands its etcd store the cached object: a stale copy costs a
    // failed compare-and-swap, and every later attempt reads the store. An
    // answer that depends on the copy alone (a conflict, an error from
    // `change`, nothing to write) is only given from the store's.
    let dry_run = dry_run(req)?;
    let mut cached = !dry_run;
    for _ in 0..16 {
        let (current, mod_revision, is_current) = match cached
            .then(|| api.caches.object(&key))
            .flatten()
            .flatten()
            .filter(|c| {
                pinned
                    .as_ref()
                    .is_none_or(|p| *p == c.revision().to_string())
            }) {
            Some(copy) => (copy.value(), copy.revision(), false),
            None => {
                let kv = api.store.get(&key).await?.ok_or_else(|| not_found(req))?;
                (
                    decode_stored(&kv.value, kv.mod_revision)?,
                    kv.mod_revision,
                    true,
                )
            }
        };
        cached = false;
        if let Some(pinned) = &pinned
            && *pinned != mod_revision.to_string()
        {
            return Err(ApiError::conflict(
                resource.plural,
                resource.group,
                &name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let mut updated = match change(current.clone()) {
            Ok(updated) => updated,
            Err(_) if !is_current => continue,
            Err(err) => return Err(err),
        };
        objects::set_resource_version(&mut updated, mod_revision);
        // An update that changes nothing writes nothing, unless the value
        // is stored under an old encryption key: then it is rewritten under
        // the current one (how a rotation moves every Secret, as upstream).
        if updated == current {
            if !is_current {
                continue;
            }
            if !api.encryption.is_stale(&key).await? {
                return Ok(current);
            }
        }
        let finalized = updated.pointer("/metadata/deletionTimestamp").is_some()
            && updated
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            && !pod_awaits_node(&updated)
            && !namespace_awaits_finalizers(&updated);
        if !finalized {
            // ResourceQuota, last of the admission plugins, for what the
            // change adds (a Service gaining node ports, …).
            match crate::resource_admission::charge_update(api, req, &current, &updated, dry_run)
                .await
            {
                Ok(()) => {}
                Err(_) if !is_current => continue,
                Err(err) => return Err(err),
            }
        }
        let (taken, released) = if !is_service(resource) {
            Default::default()
        } else if finalized {
            (Default::default(), crate::services::held(&current))
        } else {
            match crate::services::on_update(&api.services, &current, &mut updated, dry_run).await {
                Ok(held) => held,
                Err(_) if !is_current => continue,
                Err(err) => return Err(err),
            }
        };
        if dry_run {
            return Ok(updated);
        }
        let write = if finalized {
            Write::delete(&key).if_mod_revision(mod_revision)
        } else {
            Write::put(&key, encode(&updated)?).if_mod_revision(mod_revision)
        };
        let outcome = match api.store.write(write).await {
            Ok(outcome) => outcome,
            Err(err) => {
                api.services.release_logged(&taken).await;
                return Err(err.into());
            }
        };
        match outcome {
            WriteOutcome::Committed { revision, .. } => {
                api.services.release_logged(&released).await;
                objects::set_resource_version(&mut updated, revision);
                return Ok(updated);
            }
            WriteOutcome::Failed { .. } if pinned.is_some() => {
                api.services.release_logged(&taken).await;
                return Err(ApiError::conflict(
                    resource.plural,
                    resource.group,
                    &name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            WriteOutcome::Failed { .. } => {
                api.services.release_logged(&taken).await;
                continue;
            }
        }
    }
    Err(ApiError::conflict(
        resource.plural,
        resource.group,
        &name,
        "too many concurrent updates",
    ))
}

/// A pod bound to a node and not yet terminal is deleted by its node's agent
/// once its containers stopped: the API server only marks it.
fn pod_awaits_node(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Pod")
        && object
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
        && !matches!(
            object.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        )
        && object
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            != Some(0)
}

/// Applies a full new object from the client onto `current` by the rules of
/// the main resource or of the status subresource.
pub(crate) fn merge_update(
    req: &ResourceRequest,
    current: &Value,
    mut new: Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
    manager: Option<&str>,
) -> ApiResult<Value> {
    let resource = &req.resource;
    objects::check_type_meta(resource, &mut new)?;
    objects::check_namespace(resource, &mut new, req.namespace.as_deref())?;
    let url_name = name_of(req)?;
    match objects::object_name(&new) {
        Some(name) if name == url_name => {}
        None => {
            objects::metadata(&mut new).insert("name".into(), json!(url_name));
        }
        Some(name) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({url_name})"
            )));
        }
    }
    warnings.extend(objects::check_type(resource, &mut new, validation)?);
    let csr_body = (resource.kind == "CertificateSigningRequest").then(|| new.clone());
    let mut merged = match req.subresource.as_deref() {
        Some("status") => {
            let mut merged = current.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            merged
        }
        Some("finalize") => {
            let mut merged = current.clone();
            merged["spec"]["finalizers"] = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or_else(|| json!([]));
            merged
        }
        _ => {
            if resource.kind == "Namespace" {
                // Only `namespaces/finalize` changes spec.finalizers.
                new["spec"]["finalizers"] = current
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or_else(|| json!([]));
            }
            if resource.subresource("status").is_some() {
                match current.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            new
        }
    };
    if let Some(body) = &csr_body {
        crate::csr::prepare_update(req.subresource.as_deref(), current, body, &mut merged);
    }
    let causes = objects::validate_metadata(resource, &merged);
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            resource.kind,
            resource.group,
            url_name,
            causes,
        ));
    }
    objects::check_immutable(resource, current, &merged)?;
    defaults::apply(resource, &mut merged);
    let service = is_service(resource) && req.subresource.is_none();
    if service {
        crate::services::prepare_update(current, &mut merged);
    }
    let mut causes = crate::validation::validate(resource, &merged);
    if service {
        causes.extend(crate::services::validate(Some(current), &merged));
    }
    if csr_body.is_some() {
        causes.extend(crate::csr::validate_update(current, &merged));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            resource.kind,
            resource.group,
            url_name,
            causes,
        ));
    }
    warnings.extend(crate::admission::pod_security(req, Some(current), &merged)?);
    crate::admission::deny_external_ips(req, Some(current), &merged)?;
    crate::noderestriction::admit(
        req,
        crate::noderestriction::Operation::Update,
        Some(current),
        Some(&merged),
    )?;
    crate::csr::admit(req, Some(current), &merged)?;
    if let Some(authorizer) = &req.authorizer {
        authorizer.check_rbac_write(req, &merged, Some(current))?;
    }
    objects::preserve_on_update(resource, current, &mut merged);
    if let Some(manager) = manager {
        let subresource = req.subresource.as_deref().unwrap_or("");
        crate::apply::record(resource, current, &mut merged, manager, subresource);
    }
    Ok(merged)
}

fn pinned_version(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
        .map(str::to_owned)
}

async fn update(
    api: &Api,
    req: &ResourceRequest,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Reply> {
    let validation = FieldValidation::parse(req.query.get("fieldValidation"))?;
    let (body, unknown) = decode_body_checked(headers, body)?;
    let mut warnings = unknown_field_warnings(unknown, validation)?;
    if req.subresource.as_deref() == Some("scale") {
        let replicas = body.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
        let pinned = pinned_version(&body);
        let updated = guaranteed_update(api, req, pinned, |mut current| {
            current["spec"]["replicas"] = replicas.clone();
            Ok(current)
        })
        .await?;
        return Ok(Reply::ok(to_scale(&req.resource, &updated)?));
    }
    let pinned = pinned_version(&body);
    let manager = crate::apply::field_manager(req, headers)?;
    let updated = guaranteed_update(api, req, pinned, |current| {
        merge_update(
            req,
            &current,
            body.clone(),
            validation,
            &mut warnings,
            Some(&manager),
        )
    })
    .await?;
    Ok(Reply {
        code: 200,
        body: updated,
        warnings,
        list: None,
    })
}

async fn patch(
    api: &Api,
    req: &ResourceRequest,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Reply> {
    use bulwark_api::patch::{
        PatchSchema, apply_json_patch, apply_merge_patch, apply_strategic_merge_patch,
    };
    let validation = FieldValidation::parse(req.query.get("fieldValidation"))?;
    let media = content_type(headers);
    if media == "application/apply-patch+yaml" {
        return crate::apply::server_side_apply(api, req, body, validation).await;
    }
    let manager = crate::apply::field_manager(req, headers)?;
    let resource = req.resource.clone();
    let patch_fn = |target: &Value| -> ApiResult<Value> {
        let result = match media.as_str() {
            "application/json-patch+json" => apply_json_patch(target, body),
            "application/merge-patch+json" => apply_merge_patch(target, body),
            "application/strategic-merge-patch+json" => {
                let api_version = target
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let kind = target.get("kind").and_then(Value::as_str).unwrap_or("");
                let schema = PatchSchema::for_kind(api_version, kind).ok_or_else(|| {
                    ApiError::unsupported_media_type("application/strategic-merge-patch+json")
                })?;
                apply_strategic_merge_patch(target, body, schema)
            }
            "application/apply-patch+yaml" => {
                return Err(ApiError::internal(
                    "server-side apply reached the merge-patch path",
                ));
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        result.map_err(|err| ApiError {
            code: err.code(),
            reason: err.reason(),
            message: err.to_string(),
            details: None,
        })
    };
    let mut warnings = Vec::new();
    if req.subresource.as_deref() == Some("scale") {
        let updated = guaranteed_update(api, req, None, |mut current| {
            let scale = patch_fn(&to_scale(&resource, &current)?)?;
            current["spec"]["replicas"] =
                scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            Ok(current)
        })
        .await?;
        return Ok(Reply::ok(to_scale(&resource, &updated)?));
    }
    // A resourceVersion in the patch pins the update to that version.
    let pinned = serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(pinned_version);
    let updated = guaranteed_update(api, req, pinned, |current| {
        let patched = patch_fn(&current)?;
        merge_update(
            req,
            &current,
            patched,
            validation,
            &mut warnings,
            Some(&manager),
        )
    })
    .await?;
    Ok(Reply {
        code: 200,
        body: updated,
        warnings,
        list: None,
    })
}

/// `DeleteOptions` from the body and the query.
struct DeleteOptions {
    grace_period: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
}

fn delete_options(
    req: &ResourceRequest,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<DeleteOptions> {
    let opts = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode_body(headers, body)?
    };
    let query_grace = req
        .query
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse().ok());
    Ok(DeleteOptions {
        grace_period: opts["gracePeriodSeconds"].as_i64().or(query_grace),
        propagation: opts["propagationPolicy"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| req.query.get("propagationPolicy").cloned()),
        uid: opts
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource_version: opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// A namespace being deleted stays until the namespace controller has
/// emptied it and cleared `spec.finalizers`.
fn namespace_awaits_finalizers(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Namespace")
        && object
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

async fn delete(
    api: &Api,
    req: &ResourceRequest,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Value> {
    let opts = delete_options(req, headers, body)?;
    let resource = req.resource.clone();
    let name = name_of(req)?.to_owned();
    let finalizer = match opts.propagation.as_deref() {
        None | Some("Background") => None,
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        Some(other) => {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "",
                "",
                vec![crate::status::Cause {
                    reason: "FieldValueNotSupported".into(),
                    message: format!(
                        "Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                    field: "propagationPolicy".into(),
                }],
            ));
        }
    };
    let mut deleted_now = false;
    let result = guaranteed_update(api, req, opts.resource_version.clone(), |mut current| {
        crate::noderestriction::admit(
            req,
            crate::noderestriction::Operation::Delete,
            Some(&current),
            None,
        )?;
        if let Some(uid) = &opts.uid
            && current.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
        {
            return Err(ApiError::conflict(
                resource.plural,
                resource.group,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    current
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
            ));
        }
        let meta = objects::metadata(&mut current);
        if let Some(finalizer) = finalizer {
            let list = meta.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut()
                && !list.iter().any(|f| f == finalizer)
            {
                list.push(json!(finalizer));
            }
        }
        let grace = if resource.kind == "Pod" {
            opts.grace_period.or_else(|| {
                current
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
        } else {
            Some(0)
        };
        let meta = objects::metadata(&mut current);
        if !meta.contains_key("deletionTimestamp") {
            let grace = grace.unwrap_or(0).max(0);
            let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
            meta.insert(
                "deletionTimestamp".into(),
                json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        } else if let Some(grace) = grace {
            // A later delete may shorten the grace period, never lengthen it.
            let old = meta
                .get("deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MAX);
            if grace < old {
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
        }
        if resource.kind == "Namespace" {
            current["status"]["phase"] = json!("Terminating");
        }
        let blocked = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
            || pod_awaits_node(&current)
            || namespace_awaits_finalizers(&current);
        deleted_now = !blocked;
        Ok(current)
    })
    .await?;
    if deleted_now && !dry_run(req)? {
        // Nothing holds it: remove it now (unless a concurrent write just
        // changed it, in which case the marked object stands).
        let key = key_of(req)?;
        if let Some(kv) = api.store.get(&key).await?
            && let WriteOutcome::Committed { .. } = api
                .store
                .write(Write::delete(&key).if_mod_revision(kv.mod_revision))
                .await?
            && is_service(&resource)
        {
            let deleted = decode_stored(&kv.value, kv.mod_revision)?;
            api.services
                .release_logged(&crate::services::held(&deleted))
                .await;
        }
    }
    Ok(result)
}

async fn delete_collection(
    api: &Api,
    req: &ResourceRequest,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Value> {
    let listed = list(api, req).await?;
    let mut deleted = Vec::new();
    for item in listed.values()? {
        let Some(name) = objects::object_name(&item) else {
            continue;
        };
        let mut one = req.clone();
        one.name = Some(name);
        one.verb = Verb::Delete;
        match delete(api, &one, headers, body).await {
            Ok(object) => deleted.push(object),
            Err(err) if err.code == 404 => {}
            Err(err) => return Err(err),
        }
    }
    for item in &mut deleted {
        if let Some(map) = item.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
    }
    Ok(json!({
        "kind": format!("{}List", req.resource.kind),
        "apiVersion": req.resource.api_version(),
        "metadata": {"resourceVersion": ""},
        "items": deleted,
    }))
}

/// The `autoscaling/v1 Scale` view of a scalable object.
fn to_scale(resource: &ResourceType, object: &Value) -> ApiResult<Value> {
    if resource.subresource("scale").is_none() {
        return Err(ApiError::no_route());
    }
    let selector = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &object["metadata"];
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    }))
}

fn success_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// `POST pods/{name}/binding`: assigns the pod to a node, once.
async fn bind(
    api: &Api,
    req: &ResourceRequest,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Reply> {
    let binding = decode_body(headers, body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "Binding",
                "",
                req.name.as_deref().unwrap_or(""),
                vec![crate::status::Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "target.name".into(),
                }],
            )
        })?
        .to_owned();
    let name = name_of(req)?.to_owned();
    let uid = binding
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    guaranteed_update(api, req, None, |mut pod| {
        // The binding may name the pod it was decided for: a pod deleted
        // and recreated under the same name meanwhile is not bound.
        if let Some(uid) = &uid
            && pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str())
        {
            return Err(ApiError::conflict(
                "pods",
                "",
                &name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("")),
            ));
        }
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict("pods", "", &name, "pod is being deleted, cannot be assigned to a host"));
        }
        if let Some(current) = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict("pods", "", &name, &format!("pod {name} is already assigned to node \"{current}\"")));
        }
        pod["spec"]["nodeName"] = json!(node);
        if !pod["status"].is_object() {
            pod["status"] = json!({});
        }
        let conditions = pod["status"]
            .as_object_mut()
            .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
        if let Some(Value::Array(conditions)) = conditions {
            conditions.retain(|c| c["type"] != "PodScheduled");
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": objects::now()}));
        }
        Ok(pod)
    })
    .await?;
    Ok(Reply {
        code: 201,
        body: success_status(),
        warnings: Vec::new(),
        list: None,
    })
}

/// `POST pods/{name}/eviction`: deletes the pod (disruption budgets are
/// honoured once their controller exists).
/// The Eviction API: a pod is deleted only if the one PodDisruptionBudget
/// that selects it allows a disruption now, which is spent (status
/// `disruptionsAllowed` decremented and the pod noted in `disruptedPods`)
/// by compare-and-swap, so concurrent evictions cannot overspend it.
async fn evict(api: &Api, req: &ResourceRequest) -> ApiResult<Reply> {
    let mut one = req.clone();
    one.subresource = None;
    one.verb = Verb::Delete;
    let pod_key = key_of(&one)?;
    let pod = api
        .store
        .get(&pod_key)
        .await?
        .ok_or_else(|| not_found(&one))?;
    let pod: Value = serde_json::from_slice(&pod.value).map_err(ApiError::internal)?;
    crate::noderestriction::admit(
        req,
        crate::noderestriction::Operation::Delete,
        Some(&pod),
        None,
    )?;
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    // As upstream's canIgnorePDB: a pod already going, finished, or not yet
    // running disrupts nothing.
    let ignores_budget = pod.pointer("/metadata/deletionTimestamp").is_some()
        || matches!(phase, Some("Succeeded" | "Failed" | "Pending") | None);
    if !ignores_budget {
        spend_disruption(api, &one, &pod).await?;
    }
    delete(api, &one, &HeaderMap::new(), &Bytes::new()).await?;
    Ok(Reply {
        code: 201,
        body: success_status(),
        warnings: Vec::new(),
        list: None,
    })
}

/// Finds the PodDisruptionBudget selecting `pod` and takes one disruption
/// from it, or refuses with upstream's 429.
async fn spend_disruption(api: &Api, req: &ResourceRequest, pod: &Value) -> ApiResult<()> {
    let namespace = req.namespace.clone().unwrap_or_default();
    let name = name_of(req)?.to_owned();
    let empty = serde_json::Map::new();
    let labels = pod
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let prefix = format!("/registry/poddisruptionbudgets/{namespace}/");
    let page = api
        .store
        .range(bulwark_store::Range::prefix(&prefix))
        .await?;
    let mut matching = Vec::new();
    for kv in page.kvs {
        let pdb: Value = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
        // An empty selector selects every pod of the namespace (policy/v1);
        // a missing one selects none.
        let selects = pdb.pointer("/spec/selector").is_some_and(|selector| {
            bulwark_api::labels::LabelSelector::from_object(selector)
                .is_ok_and(|s| s.matches(labels))
        });
        if selects {
            matching.push((kv.key, pdb));
        }
    }
    let (key, _) = match matching.len() {
        0 => return Ok(()),
        1 => matching.remove(0),
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    for _ in 0..16 {
        let kv = api.store.get(&key).await?.ok_or_else(|| {
            ApiError::internal("the disruption budget disappeared during the eviction")
        })?;
        let mut pdb = decode_stored(&kv.value, kv.mod_revision)?;
        let pdb_name = pdb
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let generation = pdb
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let observed = pdb
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let refused = |cause: String| {
            ApiError::too_many_requests(
                "Cannot evict pod as it would violate the pod's disruption budget.",
                vec![crate::status::Cause {
                    reason: "DisruptionBudget".into(),
                    message: cause,
                    field: String::new(),
                }],
            )
        };
        if observed < generation {
            return Err(refused(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )));
        }
        let allowed = pdb
            .pointer("/status/disruptionsAllowed")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if allowed <= 0 {
            let healthy = pdb
                .pointer("/status/currentHealthy")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let desired = pdb
                .pointer("/status/desiredHealthy")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            return Err(refused(format!(
                "The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"
            )));
        }
        pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        pdb["status"]["disruptedPods"][&name] = json!(now);
        if dry_run(req)? {
            return Ok(());
        }
        let write = Write::put(&key, encode(&pdb)?).if_mod_revision(kv.mod_revision);
        if let WriteOutcome::Committed { .. } = api.store.write(write).await? {
            return Ok(());
        }
    }
    Err(ApiError::conflict(
        "poddisruptionbudgets",
        "policy",
        "",
        "too many concurrent evictions",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> Arc<ResourceType> {
        crate::registry::Registry::builtin()
            .get("", "v1", "pods")
            .expect("pods are served")
    }

    /// Every frame of a list body, and the length it announced first.
    fn written(listed: Listed) -> (Vec<u8>, u64, usize) {
        use hyper::body::Body as _;
        let mut body = listed.into_body(&pods());
        let announced = body.size_hint().exact().unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let mut frames = 0;
        while let Some(frame) = body.next_frame() {
            out.extend_from_slice(&frame);
            frames += 1;
        }
        assert!(body.is_end_stream());
        (out, announced, frames)
    }

    /// An [`Api`] over `store` whose watch caches follow `cached` instead:
    /// another store given the same writes up to a point, so the caches
    /// hold copies as stale as a test needs.
    fn api_with_caches_of(
        store: Arc<dyn Store>,
        cached: Arc<dyn Store>,
        dir: &std::path::Path,
    ) -> Api {
        let registry = crate::registry::Registry::builtin();
        let config = bulwark_encryption::Config::parse(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources:\n- resources: [secrets]\n  providers: [{identity: {}}]\n",
        )
        .expect("an identity configuration");
        let keys = crate::encryption::Keys::new(&config, "", &registry);
        Api {
            store: store.clone(),
            caches: crate::watchcache::Caches::new(cached),
            tokens: Arc::new(crate::tokens::SigningKey::load_or_create(dir).expect("a key")),
            services: Arc::new(crate::services::Allocators::new(
                store.clone(),
                Default::default(),
            )),
            encryption: Arc::new(crate::encryption::EncryptingStore::new(store, keys)),
        }
    }

    fn config_map_request(name: &str, verb: Verb) -> ResourceRequest {
        let registry = crate::registry::Registry::builtin();
        let path = format!("/api/v1/namespaces/default/configmaps/{name}");
        match crate::request::parse(&registry, &http::Method::PUT, &path, "") {
            Ok(crate::request::Target::Resource(req)) => ResourceRequest { verb, ..*req },
            other => panic!("{other:?}"),
        }
    }

    fn flip(object: &Value) -> &str {
        object["data"]["flip"].as_str().unwrap_or_default()
    }

    #[tokio::test]
    async fn an_update_from_a_stale_cached_copy_is_judged_against_the_store() {
        use bulwark_store::StoreExt as _;
        use bulwark_store::{SqliteConfig, SqliteStore};
        let dir = tempfile::tempdir().expect("a temp dir");
        let open = |name: &str| -> Arc<dyn Store> {
            Arc::new(
                SqliteStore::open(dir.path().join(name), SqliteConfig::default()).expect("a store"),
            )
        };
        let (store, behind) = (open("store"), open("behind"));
        let key = "/registry/configmaps/default/cm";
        let object = |flip: &str| {
            Bytes::from(
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "cm", "namespace": "default", "uid": "u"},
                       "data": {"flip": flip}})
                .to_string(),
            )
        };
        // Both stores take the same first write, at the same revision.
        let first = store.create(key, object("x")).await.expect("create");
        assert_eq!(
            behind.create(key, object("x")).await.expect("create"),
            first
        );
        let api = api_with_caches_of(store.clone(), behind, dir.path());
        let req = config_map_request("cm", Verb::Patch);
        api.caches.get(&req.resource).await.expect("a cache");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !matches!(api.caches.object(key), Some(Some(_))) {
            assert!(
                std::time::Instant::now() < deadline,
                "the cache never saw the object"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let stored = || async {
            let kv = store.get(key).await.expect("get").expect("present");
            decode_stored(&kv.value, kv.mod_revision).expect("decodes")
        };
        let set = |to: &'static str| {
            move |mut o: Value| {
                o["data"]["flip"] = json!(to);
                Ok(o)
            }
        };

        // The store moves on; the cache keeps flip=x.
        store.put(key, object("1")).await.expect("put");
        // Setting flip back to x changes nothing in the cached copy, and
        // everything in the store's.
        let answered = guaranteed_update(&api, &req, None, set("x"))
            .await
            .expect("update");
        assert_eq!((flip(&answered), flip(&stored().await)), ("x", "x"));

        // A change refused for the cached copy is tried on the store's.
        store.put(key, object("1")).await.expect("put");
        let from_one = |mut o: Value| {
            if flip(&o) != "1" {
                return Err(ApiError::conflict("configmaps", "", "cm", "not from 1"));
            }
            o["data"]["flip"] = json!("2");
            Ok(o)
        };
        let answered = guaranteed_update(&api, &req, None, from_one)
            .await
            .expect("update");
        assert_eq!((flip(&answered), flip(&stored().await)), ("2", "2"));

        // A resourceVersion the cached copy does not have is the store's.
        let current = stored().await;
        let pinned = current["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_owned);
        let answered = guaranteed_update(&api, &req, pinned.clone(), set("3"))
            .await
            .expect("pinned update");
        assert_eq!(flip(&answered), "3");
        // And once used, it is out of date.
        let err = guaranteed_update(&api, &req, pinned, set("4"))
            .await
            .expect_err("stale pin");
        assert_eq!(err.code, 409);

        // A change made to the stale copy fails its compare-and-swap and is
        // made again to the store's: other fields written meanwhile stay.
        let both = |mut o: Value| {
            o["data"]["other"] = json!("y");
            Ok(o)
        };
        let answered = guaranteed_update(&api, &req, None, both)
            .await
            .expect("update");
        let now = stored().await;
        assert_eq!((flip(&answered), flip(&now)), ("3", "3"));
        assert_eq!(now["data"]["other"], "y");
    }

    #[test]
    fn a_list_body_is_the_list_json_with_its_exact_length() {
        let items: Vec<Bytes> = (0..3)
            .map(|i| Bytes::from(format!(r#"{{"metadata":{{"name":"p{i}"}}}}"#)))
            .collect();
        let (text, announced, _) = written(Listed {
            metadata: json!({"resourceVersion": "7"}),
            items,
        });
        assert_eq!(announced, text.len() as u64);
        let list: Value = serde_json::from_slice(&text).expect("valid JSON");
        assert_eq!(
            list,
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
                   "items": [{"metadata": {"name": "p0"}}, {"metadata": {"name": "p1"}},
                             {"metadata": {"name": "p2"}}]})
        );

        let (empty, announced, _) = written(Listed {
            metadata: json!({}),
            items: Vec::new(),
        });
        assert_eq!(announced, empty.len() as u64);
        let list: Value = serde_json::from_slice(&empty).expect("valid JSON");
        assert_eq!(list["items"], json!([]));
    }

    #[test]
    fn a_large_list_is_written_in_bounded_frames() {
        let item = Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000)));
        let items = vec![item; 1000];
        let (text, announced, frames) = written(Listed {
            metadata: json!({}),
            items,
        });
        assert_eq!(announced, text.len() as u64);
        assert!(frames > text.len() / (2 * LIST_FRAME), "{frames} frames");
        let list: Value = serde_json::from_slice(&text).expect("valid JSON");
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1000));
    }
}
