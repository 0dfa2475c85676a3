//! Kubernetes API machinery without IO, for Bulwark's API server.
//!
//! This crate sits beside `apiserver` in the map (`DESIGN.md`: "API server —
//! `apiserver` (+ `api` for resource metadata, defaulting, validation)"): it
//! holds the request semantics that are pure functions over JSON, so the
//! server stays a thin layer of HTTP, storage and watch plumbing, and each
//! rule is tested here against upstream's behaviour as the spec.
//!
//! - [`patch`]: JSON patch, JSON merge patch and strategic merge patch, with
//!   upstream's status codes and messages.
//! - [`labels`] and [`fields`]: label and field selectors, parsed and matched
//!   as upstream does, with the field labels each kind supports.
//! - [`validation`]: name, label and metadata checks returning the field
//!   errors of a 422 `Invalid` `Status`.
//! - [`ssa`]: server-side apply and `managedFields` bookkeeping, with
//!   upstream's conflict message.
//! - [`strict`]: duplicate and unknown fields for `fieldValidation`.
//! - [`defaults`]: the defaults kube-apiserver fills in on writes.
//! - [`quantity`]: resource quantities and their canonical form.
//! - [`quota`] and [`limitrange`]: ResourceQuota usage and LimitRanger
//!   defaults and limits, as upstream's admission plugins compute them.
//!
//! Nothing here touches the network, the store or the clock.
//!
//! ```
//! use bulwark_api::patch::{apply_strategic_merge_patch, PatchSchema};
//! use serde_json::json;
//!
//! let live = json!({"metadata": {"name": "web", "labels": {"app": "web", "tier": "x"}}});
//! let schema = PatchSchema::for_kind("apps/v1", "Deployment").expect("built-in kind");
//! let patched = apply_strategic_merge_patch(&live, br#"{"metadata":{"labels":{"tier":null}}}"#, schema)?;
//! assert_eq!(patched, json!({"metadata": {"name": "web", "labels": {"app": "web"}}}));
//! # Ok::<(), bulwark_api::patch::PatchError>(())
//! ```

pub mod defaults;
pub mod fields;
mod gofmt;
mod gojson;
pub mod labels;
pub mod limitrange;
pub mod patch;
pub mod quantity;
pub mod quota;
pub mod ssa;
pub mod strict;
pub mod validation;
