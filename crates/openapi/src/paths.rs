//! The `paths` of one document, laid out as kube-apiserver lays them out:
//! collection and item paths per resource (namespaced ones under
//! `namespaces/{namespace}`, plus the all-namespaces list), then one path
//! per subresource.

use crate::ResourceInfo;
use crate::components::{Components, schema_ref};
use crate::kinds::{Gvk, Shape, find_builtin};
use crate::params::{self, Param};
use serde_json::{Map, Value, json};

/// The content types a PATCH request body of a built-in kind may have.
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
/// Strategic merge patch needs a built-in kind's merge keys, so custom
/// kinds do not offer it.
const CUSTOM_PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
];

/// A served group-version, and the names derived from it.
#[derive(Clone, Copy)]
pub(crate) struct GroupVersion<'a> {
    pub(crate) group: &'a str,
    pub(crate) version: &'a str,
}

impl<'a> GroupVersion<'a> {
    /// Where its document and resources live: `api/v1`, `apis/apps/v1`.
    pub(crate) fn key(self) -> String {
        if self.group.is_empty() {
            format!("api/{}", self.version)
        } else {
            format!("apis/{}/{}", self.group, self.version)
        }
    }

    /// The part of an operation id naming the group-version: `CoreV1`,
    /// `AppsV1`, `RbacAuthorizationV1`.
    fn id_part(self) -> String {
        let mut out: String = self.words().iter().map(|w| capitalize(w)).collect();
        out.push_str(&capitalize(self.version));
        out
    }

    /// The tag its operations are grouped under: `core_v1`,
    /// `rbacAuthorization_v1`.
    pub(crate) fn tag(self) -> String {
        let mut out = String::new();
        for (i, w) in self.words().iter().enumerate() {
            out.push_str(&if i == 0 {
                (*w).to_owned()
            } else {
                capitalize(w)
            });
        }
        format!("{out}_{}", self.version)
    }

    /// The group as words, as upstream names operations: `core` for the
    /// core group, and `.k8s.io` dropped.
    fn words(self) -> Vec<&'a str> {
        if self.group.is_empty() {
            return vec!["core"];
        }
        let group = self.group.strip_suffix(".k8s.io").unwrap_or(self.group);
        group.split('.').filter(|w| !w.is_empty()).collect()
    }
}

/// The schemas every document's operations name besides the kinds.
pub(crate) struct Common {
    pub(crate) status: String,
    pub(crate) delete_options: String,
    pub(crate) patch: String,
    pub(crate) api_resource_list: String,
}

/// `GET /apis/<group>/<version>/`: the resources of the group-version.
pub(crate) fn add_discovery(paths: &mut Map<String, Value>, gv: GroupVersion<'_>, common: &Common) {
    let op = Operation {
        id: format!("get{}APIResources", gv.id_part()),
        description: "get available resources".to_owned(),
        action: None,
        gvk: None,
        params: &[],
        body: None,
        responses: responses(&[OK], &schema_ref(&common.api_resource_list), false),
    };
    paths.insert(format!("/{}/", gv.key()), json!({ "get": op.to_json(gv) }));
}

/// Adds the paths of one resource and its subresources.
pub(crate) fn add_resource(
    paths: &mut Map<String, Value>,
    components: &mut Components,
    common: &Common,
    gv: GroupVersion<'_>,
    info: &ResourceInfo<'_>,
) {
    let gvk = Gvk {
        group: info.group,
        version: info.version,
        kind: info.kind,
    };
    let builtin = find_builtin(gvk);
    let schema = components.kind(gvk);
    let r = Resource {
        gv,
        info,
        gvk,
        object: schema_ref(&schema),
        patch_types: if builtin.is_some() {
            PATCH_TYPES
        } else {
            CUSTOM_PATCH_TYPES
        },
    };
    if builtin.is_some_and(|b| b.shape == Shape::CreateOnly) {
        // Reviews and bindings: POST to the collection, nothing else.
        let mut item = r.path_item(false);
        item.insert("post".to_owned(), r.create());
        paths.insert(r.collection_path(), Value::Object(item));
        return;
    }
    let list = schema_ref(&components.list(gvk, &schema));

    let mut collection = r.path_item(false);
    collection.insert("get".to_owned(), r.list(&list, false));
    collection.insert("post".to_owned(), r.create());
    collection.insert("delete".to_owned(), r.delete_collection(common));
    paths.insert(r.collection_path(), Value::Object(collection));

    if info.namespaced {
        let all = json!({ "parameters": params::to_json(&[&params::PRETTY]), "get": r.list(&list, true) });
        paths.insert(format!("/{}/{}", gv.key(), info.plural), all);
    }

    let mut item = r.path_item(true);
    item.insert("get".to_owned(), r.read(&r.object, gvk, ""));
    item.insert("put".to_owned(), r.replace(&r.object, gvk, ""));
    item.insert("patch".to_owned(), r.patch(common, &r.object, gvk, ""));
    item.insert("delete".to_owned(), r.delete(common));
    paths.insert(r.item_path(), Value::Object(item));

    for &(name, target) in info.subresources {
        let target = target.map(|(group, version, kind)| Gvk {
            group,
            version,
            kind,
        });
        let item = r.subresource(components, common, name, target);
        paths.insert(format!("{}/{name}", r.item_path()), Value::Object(item));
    }
}

/// One resource while its paths are laid out.
struct Resource<'a> {
    gv: GroupVersion<'a>,
    info: &'a ResourceInfo<'a>,
    gvk: Gvk<'a>,
    /// A `$ref` to the kind's schema.
    object: Value,
    patch_types: &'static [&'static str],
}

/// What a subresource is for, which decides its operations.
enum Subresource {
    /// Reads and writes a part or a view of the object (status, scale).
    Object(&'static [&'static str]),
    /// Only created (binding, eviction, token).
    Create,
    /// A container's log, as text.
    Log,
    /// A stream or a proxy.
    Connect {
        methods: &'static [&'static str],
        /// Between the kind and `Options` in the GVK upstream gives its
        /// operations: `Exec` in `PodExecOptions`.
        options: &'static str,
        query: &'static [&'static Param],
    },
}

impl Subresource {
    fn of(name: &str) -> Subresource {
        match name {
            "binding" | "eviction" | "token" => Subresource::Create,
            "finalize" => Subresource::Object(&["put"]),
            "log" => Subresource::Log,
            "exec" => Subresource::Connect {
                methods: &["get", "post"],
                options: "Exec",
                query: params::EXEC,
            },
            "attach" => Subresource::Connect {
                methods: &["get", "post"],
                options: "Attach",
                query: params::ATTACH,
            },
            "portforward" => Subresource::Connect {
                methods: &["get", "post"],
                options: "PortForward",
                query: params::PORT_FORWARD,
            },
            "proxy" => Subresource::Connect {
                methods: &["delete", "get", "head", "options", "patch", "post", "put"],
                options: "Proxy",
                query: params::PROXY,
            },
            _ => Subresource::Object(&["get", "put", "patch"]),
        }
    }
}

impl Resource<'_> {
    /// `Namespaced` in the operation ids of namespaced resources.
    fn scope(&self) -> &'static str {
        if self.info.namespaced {
            "Namespaced"
        } else {
            ""
        }
    }

    fn collection_path(&self) -> String {
        if self.info.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}",
                self.gv.key(),
                self.info.plural
            )
        } else {
            format!("/{}/{}", self.gv.key(), self.info.plural)
        }
    }

    fn item_path(&self) -> String {
        format!("{}/{{name}}", self.collection_path())
    }

    /// A path item with the parameters all its operations share.
    fn path_item(&self, item: bool) -> Map<String, Value> {
        let mut shared = Vec::new();
        if item {
            shared.push(params::name_param(self.info.kind));
        }
        if self.info.namespaced {
            shared.push(params::NAMESPACE.to_json());
        }
        shared.push(params::PRETTY.to_json());
        let mut m = Map::new();
        m.insert("parameters".to_owned(), Value::Array(shared));
        m
    }

    /// An operation id: `{verb}{GroupVersion}{Namespaced}{Kind}{suffix}`.
    fn id(&self, verb: &str, suffix: &str) -> String {
        format!(
            "{verb}{}{}{}{suffix}",
            self.gv.id_part(),
            self.scope(),
            self.info.kind
        )
    }

    fn list(&self, list: &Value, all_namespaces: bool) -> Value {
        let id = if all_namespaces {
            format!(
                "list{}{}ForAllNamespaces",
                self.gv.id_part(),
                self.info.kind
            )
        } else {
            self.id("list", "")
        };
        Operation {
            id,
            description: format!("list or watch objects of kind {}", self.info.kind),
            action: Some("list"),
            gvk: Some(self.gvk),
            params: params::LIST,
            body: None,
            responses: responses(&[OK], list, true),
        }
        .to_json(self.gv)
    }

    fn create(&self) -> Value {
        Operation {
            id: self.id("create", ""),
            description: format!("create a {}", self.info.kind),
            action: Some("post"),
            gvk: Some(self.gvk),
            params: params::WRITE,
            body: Some(body(&self.object, &["*/*"], true)),
            responses: responses(&[OK, CREATED, ACCEPTED], &self.object, false),
        }
        .to_json(self.gv)
    }

    fn delete_collection(&self, common: &Common) -> Value {
        Operation {
            id: format!(
                "delete{}Collection{}{}",
                self.gv.id_part(),
                self.scope(),
                self.info.kind
            ),
            description: format!("delete collection of {}", self.info.kind),
            action: Some("deletecollection"),
            gvk: Some(self.gvk),
            params: params::DELETE_COLLECTION,
            body: Some(body(&schema_ref(&common.delete_options), &["*/*"], false)),
            responses: responses(&[OK], &schema_ref(&common.status), false),
        }
        .to_json(self.gv)
    }

    /// `what` is empty for the object itself, else the subresource name
    /// as it reads in a description (`status`, `scale`).
    fn read(&self, object: &Value, gvk: Gvk<'_>, what: &str) -> Value {
        Operation {
            id: self.id("read", &capitalize(what)),
            description: describe("read", what, self.info.kind),
            action: Some("get"),
            gvk: Some(gvk),
            params: &[],
            body: None,
            responses: responses(&[OK], object, false),
        }
        .to_json(self.gv)
    }

    fn replace(&self, object: &Value, gvk: Gvk<'_>, what: &str) -> Value {
        Operation {
            id: self.id("replace", &capitalize(what)),
            description: describe("replace", what, self.info.kind),
            action: Some("put"),
            gvk: Some(gvk),
            params: params::WRITE,
            body: Some(body(object, &["*/*"], true)),
            responses: responses(&[OK, CREATED], object, false),
        }
        .to_json(self.gv)
    }

    fn patch(&self, common: &Common, object: &Value, gvk: Gvk<'_>, what: &str) -> Value {
        Operation {
            id: self.id("patch", &capitalize(what)),
            description: describe("partially update", what, self.info.kind),
            action: Some("patch"),
            gvk: Some(gvk),
            params: params::PATCH,
            body: Some(body(&schema_ref(&common.patch), self.patch_types, true)),
            responses: responses(&[OK, CREATED], object, false),
        }
        .to_json(self.gv)
    }

    fn delete(&self, common: &Common) -> Value {
        Operation {
            id: self.id("delete", ""),
            description: format!("delete a {}", self.info.kind),
            action: Some("delete"),
            gvk: Some(self.gvk),
            params: params::DELETE,
            body: Some(body(&schema_ref(&common.delete_options), &["*/*"], false)),
            responses: responses(&[OK, ACCEPTED], &schema_ref(&common.status), false),
        }
        .to_json(self.gv)
    }

    /// The path item of subresource `name`, whose object is of kind
    /// `target` (the resource's own kind when `None`).
    fn subresource(
        &self,
        components: &mut Components,
        common: &Common,
        name: &str,
        target: Option<Gvk<'_>>,
    ) -> Map<String, Value> {
        let mut item = self.path_item(true);
        let suffix = capitalize(name);
        let target_gvk = target.unwrap_or(self.gvk);
        // Only subresources that carry an object name a schema for it; a
        // connect's options kind has none.
        let mut object = || match target {
            Some(gvk) => schema_ref(&components.kind(gvk)),
            None => self.object.clone(),
        };
        match Subresource::of(name) {
            Subresource::Object(verbs) => {
                let object = object();
                for &verb in verbs {
                    let op = match verb {
                        "get" => self.read(&object, target_gvk, name),
                        "put" => self.replace(&object, target_gvk, name),
                        _ => self.patch(common, &object, target_gvk, name),
                    };
                    item.insert(verb.to_owned(), op);
                }
            }
            Subresource::Create => {
                let object = object();
                let op = Operation {
                    id: self.id("create", &suffix),
                    description: format!("create {name} of a {}", self.info.kind),
                    action: Some("post"),
                    gvk: Some(target_gvk),
                    params: params::WRITE,
                    body: Some(body(&object, &["*/*"], true)),
                    responses: responses(&[OK, CREATED, ACCEPTED], &object, false),
                };
                item.insert("post".to_owned(), op.to_json(self.gv));
            }
            Subresource::Log => {
                let op = Operation {
                    id: self.id("read", &suffix),
                    description: format!("read {name} of the specified {}", self.info.kind),
                    action: Some("get"),
                    gvk: Some(self.gvk),
                    params: params::LOG,
                    body: None,
                    responses: text_response(),
                };
                item.insert("get".to_owned(), op.to_json(self.gv));
            }
            Subresource::Connect {
                methods,
                options,
                query,
            } => {
                let kind = format!("{}{options}Options", self.info.kind);
                let gvk = target.unwrap_or(Gvk {
                    kind: &kind,
                    ..self.gvk
                });
                for &method in methods {
                    let op = Operation {
                        id: format!(
                            "connect{}{}{}{}{suffix}",
                            self.gv.id_part(),
                            capitalize(method),
                            self.scope(),
                            self.info.kind
                        ),
                        description: format!(
                            "connect {} requests to {name} of {}",
                            method.to_uppercase(),
                            self.info.kind
                        ),
                        action: Some("connect"),
                        gvk: Some(gvk),
                        params: query,
                        body: None,
                        responses: text_response(),
                    };
                    item.insert(method.to_owned(), op.to_json(self.gv));
                }
            }
        }
        item
    }
}

/// One operation, before it becomes JSON.
struct Operation<'a> {
    id: String,
    description: String,
    /// `x-kubernetes-action`: get, list, post, put, patch, delete,
    /// deletecollection or connect.
    action: Option<&'static str>,
    /// `x-kubernetes-group-version-kind`: what kubectl matches an object
    /// against.
    gvk: Option<Gvk<'a>>,
    params: &'a [&'a Param],
    body: Option<Value>,
    responses: Value,
}

impl Operation<'_> {
    fn to_json(&self, gv: GroupVersion<'_>) -> Value {
        let mut op = json!({
            "operationId": self.id,
            "description": self.description,
            "tags": [gv.tag()],
            "responses": self.responses,
        });
        if !self.params.is_empty() {
            op["parameters"] = params::to_json(self.params);
        }
        if let Some(body) = &self.body {
            op["requestBody"] = body.clone();
        }
        if let Some(action) = self.action {
            op["x-kubernetes-action"] = action.into();
        }
        if let Some(gvk) = self.gvk {
            op["x-kubernetes-group-version-kind"] = gvk.to_json();
        }
        op
    }
}

const OK: (&str, &str) = ("200", "OK");
const CREATED: (&str, &str) = ("201", "Created");
const ACCEPTED: (&str, &str) = ("202", "Accepted");

/// Responses with these status codes, each a JSON body of `schema`; with
/// `watch`, also the newline-delimited watch stream.
fn responses(codes: &[(&str, &str)], schema: &Value, watch: bool) -> Value {
    let mut content = Map::new();
    content.insert("application/json".to_owned(), json!({ "schema": schema }));
    if watch {
        content.insert(
            "application/json;stream=watch".to_owned(),
            json!({ "schema": schema }),
        );
    }
    let mut out = Map::new();
    for &(code, description) in codes {
        out.insert(
            code.to_owned(),
            json!({ "description": description, "content": content }),
        );
    }
    Value::Object(out)
}

/// The response of a log read or a connection: text.
fn text_response() -> Value {
    json!({ "200": { "description": "OK", "content": { "*/*": { "schema": { "type": "string" } } } } })
}

/// A request body of `schema` in each of these content types.
fn body(schema: &Value, content_types: &[&str], required: bool) -> Value {
    let content: Map<String, Value> = content_types
        .iter()
        .map(|t| ((*t).to_owned(), json!({ "schema": schema })))
        .collect();
    let mut b = json!({ "content": content });
    if required {
        b["required"] = true.into();
    }
    b
}

/// `read the specified Pod`, `read status of the specified Pod`.
fn describe(verb: &str, what: &str, kind: &str) -> String {
    if what.is_empty() {
        format!("{verb} the specified {kind}")
    } else {
        format!("{verb} {what} of the specified {kind}")
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_versions_name_operations_as_upstream() {
        let check = |group, version, key: &str, id: &str, tag: &str| {
            let gv = GroupVersion { group, version };
            assert_eq!(
                (gv.key().as_str(), gv.id_part().as_str(), gv.tag().as_str()),
                (key, id, tag)
            );
        };
        check("", "v1", "api/v1", "CoreV1", "core_v1");
        check("apps", "v1", "apis/apps/v1", "AppsV1", "apps_v1");
        check(
            "rbac.authorization.k8s.io",
            "v1",
            "apis/rbac.authorization.k8s.io/v1",
            "RbacAuthorizationV1",
            "rbacAuthorization_v1",
        );
        check(
            "stable.example.com",
            "v1beta1",
            "apis/stable.example.com/v1beta1",
            "StableExampleComV1beta1",
            "stableExampleCom_v1beta1",
        );
    }
}
