//! A read-only view of a pod (or pod template) in its JSON API form.
//!
//! Upstream decodes into typed structs first; here a field that is missing,
//! `null` or of the wrong JSON type reads as Go's zero value (absent pointer,
//! `false`, `""`, `0`), so a malformed object can never panic a check.

use serde_json::Value;

/// The pod metadata and spec the checks look at.
#[derive(Clone, Copy)]
pub(crate) struct PodView<'a> {
    pub(crate) metadata: &'a Value,
    pub(crate) spec: &'a Value,
}

/// One container of any kind (init, regular, ephemeral).
#[derive(Clone, Copy)]
pub(crate) struct Container<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a Value,
}

static NULL: Value = Value::Null;

impl<'a> PodView<'a> {
    /// Views a Pod object (`metadata` + `spec`) or a PodTemplateSpec.
    pub(crate) fn new(object: &'a Value) -> Self {
        PodView {
            metadata: field(object, "metadata").unwrap_or(&NULL),
            spec: field(object, "spec").unwrap_or(&NULL),
        }
    }

    /// Containers in upstream's visiting order: init, regular, ephemeral.
    pub(crate) fn containers(&self) -> impl Iterator<Item = Container<'a>> + use<'a> {
        let spec = self.spec;
        ["initContainers", "containers", "ephemeralContainers"]
            .into_iter()
            .flat_map(move |key| array(spec, key).iter())
            .map(|value| Container {
                name: string(value, "name"),
                value,
            })
    }

    /// `spec.securityContext`, if set.
    pub(crate) fn security_context(&self) -> Option<&'a Value> {
        field(self.spec, "securityContext")
    }

    /// A metadata annotation, if present.
    pub(crate) fn annotation(&self, key: &str) -> Option<&'a str> {
        field(self.metadata, "annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }

    /// All string-valued annotations.
    pub(crate) fn annotations(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        field(self.metadata, "annotations")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
    }

    /// `spec.os.name == "windows"`.
    pub(crate) fn is_windows(&self) -> bool {
        path(self.spec, &["os", "name"]).and_then(Value::as_str) == Some("windows")
    }

    /// `spec.hostUsers == false`: the pod runs in a user namespace.
    pub(crate) fn in_user_namespace(&self) -> bool {
        boolean(self.spec, "hostUsers") == Some(false)
    }

    /// `spec.runtimeClassName`, if non-empty.
    pub(crate) fn runtime_class_name(&self) -> Option<&'a str> {
        Some(string(self.spec, "runtimeClassName")).filter(|s| !s.is_empty())
    }
}

impl<'a> Container<'a> {
    /// `securityContext`, if set.
    pub(crate) fn security_context(&self) -> Option<&'a Value> {
        field(self.value, "securityContext")
    }

    /// A field of `securityContext`, if set.
    pub(crate) fn sc(&self, key: &str) -> Option<&'a Value> {
        self.security_context().and_then(|sc| field(sc, key))
    }
}

/// `object[key]`, treating `null` (and non-objects) as absent.
pub(crate) fn field<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// A nested field, each step as [`field`].
pub(crate) fn path<'a>(object: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(object, |v, key| field(v, key))
}

/// `object[key]` as an array; anything else reads as empty.
pub(crate) fn array<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `object[key]` as a string; anything else reads as `""`.
pub(crate) fn string<'a>(object: &'a Value, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `object[key]` as a boolean pointer.
pub(crate) fn boolean(object: &Value, key: &str) -> Option<bool> {
    object.get(key).and_then(Value::as_bool)
}
