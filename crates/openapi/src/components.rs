//! `components.schemas` of one document: the schemas its operations name,
//! and everything those reference, each once.

use crate::kinds::{Gvk, custom_schema_name, find_builtin};
use crate::patch_tags::add_patch_tags;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Where OpenAPI v3 keeps named schemas; every `$ref` points below it.
const SCHEMAS_PATH: &str = "/components/schemas";

/// A `$ref` to the named schema of the same document.
pub(crate) fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#{SCHEMAS_PATH}/{name}") })
}

/// Collects the schemas of one document.
pub(crate) struct Components {
    /// Generates schemas from `k8s-openapi`'s types, following references.
    generator: SchemaGenerator,
    /// Schemas no Rust type describes: lists and custom kinds.
    synthesized: Map<String, Value>,
    /// The `x-kubernetes-group-version-kind` entries per schema name.
    gvks: BTreeMap<String, BTreeSet<(String, String, String)>>,
}

impl Components {
    pub(crate) fn new() -> Components {
        // No meta-schema and no transforms: k8s-openapi's schemas are
        // already OpenAPI-shaped (no boolean schemas, no type arrays); only
        // the place of definitions differs from the JSON Schema default.
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = SCHEMAS_PATH.into();
            s.meta_schema = None;
            s.transforms.clear();
        });
        Components {
            generator: SchemaGenerator::new(settings),
            synthesized: Map::new(),
            gvks: BTreeMap::new(),
        }
    }

    /// Adds the schema of a kind (a permissive one for kinds without a
    /// built-in type) and tags it with its GVK; returns its name.
    pub(crate) fn kind(&mut self, gvk: Gvk<'_>) -> String {
        let name = match find_builtin(gvk) {
            Some(builtin) => {
                (builtin.generate)(&mut self.generator);
                (builtin.schema_name)().into_owned()
            }
            None => {
                let name = custom_schema_name(gvk);
                if !self.synthesized.contains_key(&name) {
                    let metadata = self.named::<ObjectMeta>();
                    self.synthesized
                        .insert(name.clone(), custom_kind_schema(gvk, &metadata));
                }
                name
            }
        };
        self.tag(&name, gvk);
        name
    }

    /// Adds the list schema of a kind whose schema `item` is already added;
    /// returns its name (`io.k8s.api.core.v1.PodList`).
    pub(crate) fn list(&mut self, gvk: Gvk<'_>, item: &str) -> String {
        let name = format!("{item}List");
        let list_kind = format!("{}List", gvk.kind);
        if !self.synthesized.contains_key(&name) {
            let list_meta = self.named::<ListMeta>();
            // apiVersion and kind read as on the item: reuse its property
            // schemas (and their descriptions) rather than restating them.
            let property = |key: &str| {
                self.schema(item)
                    .and_then(|s| s.pointer(&format!("/properties/{key}")))
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "string"}))
            };
            let schema = json!({
                "description": format!("{list_kind} is a list of {} objects.", gvk.kind),
                "type": "object",
                "properties": {
                    "apiVersion": property("apiVersion"),
                    "kind": property("kind"),
                    "items": {
                        "description": format!("The {} objects in the list.", gvk.kind),
                        "type": "array",
                        "items": schema_ref(item),
                    },
                    "metadata": with_description(schema_ref(&list_meta), "Standard list metadata."),
                },
                "required": ["items"],
            });
            self.synthesized.insert(name.clone(), schema);
        }
        self.tag(
            &name,
            Gvk {
                kind: &list_kind,
                ..gvk
            },
        );
        name
    }

    /// Adds the schema of a type that is not a served kind (`Status`,
    /// `DeleteOptions`, `Patch`); returns its name.
    pub(crate) fn named<T: JsonSchema>(&mut self) -> String {
        self.generator.subschema_for::<T>();
        T::schema_name().into_owned()
    }

    /// Adds a `x-kubernetes-group-version-kind` entry to a schema.
    pub(crate) fn tag(&mut self, name: &str, gvk: Gvk<'_>) {
        self.gvks.entry(name.to_owned()).or_default().insert((
            gvk.group.to_owned(),
            gvk.version.to_owned(),
            gvk.kind.to_owned(),
        ));
    }

    /// The schema added under `name`, if any.
    fn schema(&self, name: &str) -> Option<&Value> {
        self.generator
            .definitions()
            .get(name)
            .or_else(|| self.synthesized.get(name))
    }

    /// The `components.schemas` object, every schema tagged with its GVKs.
    pub(crate) fn into_schemas(mut self) -> Map<String, Value> {
        let mut schemas = self.generator.take_definitions(false);
        schemas.append(&mut self.synthesized);
        add_patch_tags(&mut schemas);
        for schema in schemas.values_mut() {
            wrap_refs_with_siblings(schema);
        }
        for (name, gvks) in self.gvks {
            if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
                let entries = gvks
                    .iter()
                    .map(|(group, version, kind)| {
                        Gvk {
                            group,
                            version,
                            kind,
                        }
                        .to_json()
                    })
                    .collect();
                schema.insert(
                    "x-kubernetes-group-version-kind".to_owned(),
                    Value::Array(entries),
                );
            }
        }
        schemas
    }
}

/// Rewrites `{"$ref": R, "description": D}` as
/// `{"allOf": [{"$ref": R}], "description": D}`, everywhere below `v`.
///
/// OpenAPI 3.0 ignores a `$ref`'s siblings, and kubectl explain (its
/// `plaintext.tmpl`) does too: it prints the description of the schema a
/// `$ref` names, so a field such as `maxSurge` would show IntOrString's
/// text instead of its own. Wrapped in `allOf`, the field's description is
/// printed first, then the type's, as kube-apiserver's documents read.
fn wrap_refs_with_siblings(schema: &mut Value) {
    let Value::Object(o) = schema else { return };
    if o.len() > 1
        && let Some(reference) = o.remove("$ref")
    {
        o.insert("allOf".to_owned(), json!([{ "$ref": reference }]));
    }
    // Only subschemas: a property may well be named `$ref` (JSONSchemaProps).
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(named)) = o.get_mut(key) {
            named.values_mut().for_each(wrap_refs_with_siblings);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = o.get_mut(key) {
            wrap_refs_with_siblings(sub);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = o.get_mut(key) {
            subs.iter_mut().for_each(wrap_refs_with_siblings);
        }
    }
}

/// `schema` with a description beside its `$ref`, as upstream writes a
/// property whose type is a named schema.
pub(crate) fn with_description(mut schema: Value, description: &str) -> Value {
    if let Value::Object(o) = &mut schema {
        o.insert("description".to_owned(), description.into());
    }
    schema
}

/// What the server knows of a kind that has no built-in type: an object
/// with the usual type and object metadata, and anything else allowed.
fn custom_kind_schema(gvk: Gvk<'_>, object_meta: &str) -> Value {
    let api_version = if gvk.group.is_empty() {
        gvk.version.to_owned()
    } else {
        format!("{}/{}", gvk.group, gvk.version)
    };
    json!({
        "description": format!("{} of {api_version}; the server keeps no schema for it, so any fields are accepted.", gvk.kind),
        "type": "object",
        "properties": {
            "apiVersion": {"description": "The versioned schema of this object.", "type": "string"},
            "kind": {"description": "The kind of this object.", "type": "string"},
            "metadata": with_description(schema_ref(object_meta), "Standard object's metadata."),
        },
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
