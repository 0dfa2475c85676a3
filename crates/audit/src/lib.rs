//! Audit logging as kube-apiserver does it.
//!
//! This crate sits beside `apiserver` in the map: the API server builds a
//! [`RequestInfo`] for every request (allowed, denied or unauthenticated) and
//! calls the [`Auditor`] at each stage; the auditor evaluates the
//! `audit.k8s.io/v1` [`Policy`] (first matching rule wins, no match → no
//! event), builds [`Event`]s in upstream's JSON shape and hands them to the
//! [`LogBackend`], which writes JSON lines off the request path, rotates and
//! prunes the file, and reports loudly when it cannot write.
//!
//! Bulwark is on by default with [`default_policy`]: Metadata for every
//! request, so no request or response body — a Secret's data, a ConfigMap,
//! a token — ever reaches the log.
//!
//! The crate knows nothing of HTTP or the store; it takes facts and writes
//! lines.
//!
//! ```no_run
//! use bulwark_audit::{Auditor, LogBackend, LogConfig, ObjectRef, RequestInfo, UserInfo, default_policy};
//!
//! let backend = LogBackend::open(LogConfig::new("/var/lib/bulwark/audit/audit.log"))?;
//! let auditor = Auditor::new(default_policy(), backend);
//!
//! let user = UserInfo { username: "alice".into(), groups: vec!["system:authenticated".into()], ..Default::default() };
//! let mut info = RequestInfo::new("get", "/api/v1/namespaces/prod/pods/web", user);
//! info.object_ref = Some(ObjectRef {
//!     resource: "pods".into(), namespace: "prod".into(), name: "web".into(),
//!     api_version: "v1".into(), ..Default::default()
//! });
//! auditor.request_received(&info);
//! // … authorize, handle …
//! auditor.response_complete(&info, 200, None, None, None);
//! if !auditor.healthy() { /* block mode and the log is failing: refuse requests */ }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod event;
mod log;
mod policy;

use jiff::Timestamp;
use serde_json::Value;

pub use event::{Event, ObjectRef, RequestInfo, ResponseStatus, UserInfo};
pub use log::{AuditMetrics, FailureMode, LogBackend, LogConfig, LogError};
pub use policy::{
    Decision, Level, Policy, PolicyError, Stage, default_policy, default_policy_yaml,
};

use event::Response;

/// The API server's handle on auditing: a policy and the log it writes to.
#[derive(Debug)]
pub struct Auditor {
    policy: Policy,
    backend: LogBackend,
}

impl Auditor {
    /// An auditor writing what `policy` selects to `backend`.
    pub fn new(policy: Policy, backend: LogBackend) -> Self {
        Self { policy, backend }
    }

    /// The level the policy gives this request (`None`: not audited).
    pub fn level(&self, info: &RequestInfo) -> Level {
        self.policy.decide(info).level
    }

    /// Records the `RequestReceived` stage, before authorization.
    pub fn request_received(&self, info: &RequestInfo) {
        self.emit(info, Stage::RequestReceived, Response::default());
    }

    /// Records the `ResponseStarted` stage of a long-running request (watch,
    /// exec, port-forward) when its headers are sent.
    pub fn response_started(&self, info: &RequestInfo, code: u16) {
        let response = Response {
            code: Some(code),
            ..Response::default()
        };
        self.emit(info, Stage::ResponseStarted, response);
    }

    /// Records the `ResponseComplete` stage. `status` is the response when it
    /// is a `meta/v1` `Status` (its status, reason, message and details are
    /// copied); the bodies are logged only at the levels that allow them.
    pub fn response_complete(
        &self,
        info: &RequestInfo,
        code: u16,
        status: Option<&Value>,
        request_body: Option<&Value>,
        response_body: Option<&Value>,
    ) {
        let response = Response {
            code: Some(code),
            status,
            request_body,
            response_body,
        };
        self.emit(info, Stage::ResponseComplete, response);
    }

    /// Records the `Panic` stage: the handler failed with `message`; the
    /// client got a 500.
    pub fn panicked(&self, info: &RequestInfo, message: &str) {
        let status = serde_json::json!({
            "status": "Failure",
            "message": format!("APIServer panic'd: {message}"),
            "reason": "InternalError",
        });
        let response = Response {
            code: Some(500),
            status: Some(&status),
            ..Response::default()
        };
        self.emit(info, Stage::Panic, response);
    }

    /// Whether the server should keep serving: `false` only in
    /// [`FailureMode::Block`] while the log cannot be written.
    pub fn healthy(&self) -> bool {
        self.backend.healthy()
    }

    /// The audit counters for `/metrics`.
    pub fn metrics(&self) -> AuditMetrics {
        self.backend.metrics()
    }

    /// Waits until every event recorded so far is written (or has failed).
    pub fn flush(&self) {
        self.backend.flush();
    }

    fn emit(&self, info: &RequestInfo, stage: Stage, response: Response<'_>) {
        let decision = self.policy.decide(info);
        if decision.level == Level::None || decision.omit_stages.contains(&stage) {
            return;
        }
        let event = event::build(
            info,
            decision.level,
            stage,
            decision.omit_managed_fields,
            response,
            Timestamp::now(),
        );
        self.backend.send(event);
    }
}

#[cfg(test)]
mod tests;
