//! Field ownership: `metadata.managedFields` recorded on every write, and
//! server-side apply (`PATCH` with `application/apply-patch+yaml`), through
//! `bulwark-api`'s `ssa` module.

use bulwark_api::patch::PatchSchema;
use bulwark_api::ssa::{self, ApplyError, Writer};
use bulwark_store::StoreExt as _;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use crate::handlers::{Api, Reply, create_object, guaranteed_update, merge_update};
use crate::objects::{self, FieldValidation};
use crate::registry::ResourceType;
use crate::request::{ResourceRequest, decode_yaml};
use crate::status::{ApiError, ApiResult};

/// The field manager of a write: `?fieldManager=`, else the user agent's
/// first word (as upstream derives it), else `unknown`.
pub(crate) fn field_manager(req: &ResourceRequest, headers: &HeaderMap) -> ApiResult<String> {
    if let Some(manager) = req.query.get("fieldManager").filter(|m| !m.is_empty()) {
        if manager.len() > 128 {
            return Err(ApiError::bad_request(
                "fieldManager: Too long: must have at most 128 bytes",
            ));
        }
        return Ok(manager.clone());
    }
    let agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|ua| !ua.is_empty())
        .unwrap_or("unknown");
    Ok(agent.chars().take(128).collect())
}

fn schema(resource: &ResourceType) -> &'static PatchSchema {
    PatchSchema::for_kind(&resource.api_version(), resource.kind)
        .unwrap_or_else(PatchSchema::untagged)
}

/// Records `manager`'s ownership of what changed from `old` to `new` in
/// `new`'s managedFields (an `Update` entry). A failure to compute it is
/// logged; the write itself goes on.
pub(crate) fn record(
    resource: &ResourceType,
    old: &Value,
    new: &mut Value,
    manager: &str,
    subresource: &str,
) {
    let time = objects::now();
    let api_version = resource.api_version();
    let writer = Writer {
        manager,
        api_version: &api_version,
        subresource,
        time: &time,
    };
    if let Err(err) = ssa::record_update(old, new, schema(resource), &writer) {
        tracing::warn!(%err, kind = resource.kind, "managedFields not updated");
    }
}

fn apply_error(err: &ApplyError) -> ApiError {
    let status = err.status();
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(500);
    ApiError {
        code,
        reason: match code {
            409 => "Conflict",
            400 => "BadRequest",
            _ => "InternalError",
        },
        message: status["message"].as_str().unwrap_or_default().to_owned(),
        details: status.get("details").cloned(),
    }
}

/// `PATCH` with `application/apply-patch+yaml`: creates the object if
/// missing, else merges the applied configuration with field ownership;
/// other managers' fields conflict (409) unless `force=true`.
pub(crate) async fn server_side_apply(
    api: &Api,
    req: &ResourceRequest,
    body: &Bytes,
    validation: FieldValidation,
) -> ApiResult<Reply> {
    let Some(manager) = req
        .query
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .cloned()
    else {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml requests must have a fieldManager query parameter",
        ));
    };
    let force = req.query.get("force").map(String::as_str) == Some("true");
    let mut config = decode_yaml(body)?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    let resource = req.resource.clone();
    let api_version = resource.api_version();
    if config
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        || config
            .get("kind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in a server-side apply configuration",
        ));
    }
    objects::check_type_meta(&resource, &mut config)?;
    let url_name = req.name.clone().unwrap_or_default();
    match objects::object_name(&config) {
        Some(name) if name != url_name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({url_name})"
            )));
        }
        _ => {
            objects::metadata(&mut config).insert("name".into(), Value::from(url_name.clone()));
        }
    }
    let time = objects::now();
    let writer = Writer {
        manager: &manager,
        api_version: &api_version,
        subresource: req.subresource.as_deref().unwrap_or(""),
        time: &time,
    };
    let key = resource.key(req.namespace.as_deref(), &url_name);
    if api.store.get(&key).await.map_err(ApiError::from)?.is_none() {
        let created = ssa::apply(
            &Value::Object(Default::default()),
            &config,
            schema(&resource),
            &writer,
            force,
        )
        .map_err(|err| apply_error(&err))?;
        return create_object(api, req, created, validation, Vec::new(), &manager)
            .await
            .map(|mut reply| {
                reply.code = 201;
                reply
            });
    }
    let mut warnings = Vec::new();
    let updated = guaranteed_update(api, req, None, |current| {
        let applied = ssa::apply(&current, &config, schema(&resource), &writer, force)
            .map_err(|err| apply_error(&err))?;
        // The apply recorded ownership itself (as an Apply entry).
        merge_update(req, &current, applied, validation, &mut warnings, None)
    })
    .await?;
    Ok(Reply {
        code: 200,
        body: updated,
        warnings,
        list: None,
    })
}
