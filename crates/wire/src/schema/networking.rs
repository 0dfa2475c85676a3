//! `networking/v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, one, rep};

pub(crate) static HTTP_INGRESS_PATH: Message = Message::new(
    "HTTPIngressPath",
    &[
        one(1, "path", Str).omit_zero(),
        one(2, "backend", Msg(&INGRESS_BACKEND)),
        one(3, "pathType", Str),
    ],
);

pub(crate) static HTTP_INGRESS_RULE_VALUE: Message = Message::new(
    "HTTPIngressRuleValue",
    &[rep(1, "paths", Msg(&HTTP_INGRESS_PATH))],
);

pub(crate) static IP_BLOCK: Message =
    Message::new("IPBlock", &[one(1, "cidr", Str), rep(2, "except", Str)]);

pub(crate) static INGRESS: Message = Message::new(
    "Ingress",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&INGRESS_SPEC)),
        one(3, "status", Msg(&INGRESS_STATUS)),
    ],
);

pub(crate) static INGRESS_BACKEND: Message = Message::new(
    "IngressBackend",
    &[
        one(
            3,
            "resource",
            Msg(&super::core::TYPED_LOCAL_OBJECT_REFERENCE),
        ),
        one(4, "service", Msg(&INGRESS_SERVICE_BACKEND)),
    ],
);

pub(crate) static INGRESS_CLASS: Message = Message::new(
    "IngressClass",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&INGRESS_CLASS_SPEC)),
    ],
);

pub(crate) static INGRESS_CLASS_PARAMETERS_REFERENCE: Message = Message::new(
    "IngressClassParametersReference",
    &[
        one(1, "apiGroup", Str),
        one(2, "kind", Str),
        one(3, "name", Str),
        one(4, "scope", Str),
        one(5, "namespace", Str),
    ],
);

pub(crate) static INGRESS_CLASS_SPEC: Message = Message::new(
    "IngressClassSpec",
    &[
        one(1, "controller", Str).omit_zero(),
        one(2, "parameters", Msg(&INGRESS_CLASS_PARAMETERS_REFERENCE)),
    ],
);

pub(crate) static INGRESS_LOAD_BALANCER_INGRESS: Message = Message::new(
    "IngressLoadBalancerIngress",
    &[
        one(1, "ip", Str).omit_zero(),
        one(2, "hostname", Str).omit_zero(),
        rep(4, "ports", Msg(&INGRESS_PORT_STATUS)),
    ],
);

pub(crate) static INGRESS_LOAD_BALANCER_STATUS: Message = Message::new(
    "IngressLoadBalancerStatus",
    &[rep(1, "ingress", Msg(&INGRESS_LOAD_BALANCER_INGRESS))],
);

pub(crate) static INGRESS_PORT_STATUS: Message = Message::new(
    "IngressPortStatus",
    &[
        one(1, "port", I32),
        one(2, "protocol", Str),
        one(3, "error", Str),
    ],
);

pub(crate) static INGRESS_RULE: Message = Message::new(
    "IngressRule",
    &[
        one(1, "host", Str).omit_zero(),
        one(2, "ingressRuleValue", Msg(&INGRESS_RULE_VALUE)).inline(),
    ],
);

pub(crate) static INGRESS_RULE_VALUE: Message = Message::new(
    "IngressRuleValue",
    &[one(1, "http", Msg(&HTTP_INGRESS_RULE_VALUE))],
);

pub(crate) static INGRESS_SERVICE_BACKEND: Message = Message::new(
    "IngressServiceBackend",
    &[
        one(1, "name", Str),
        one(2, "port", Msg(&SERVICE_BACKEND_PORT)),
    ],
);

pub(crate) static INGRESS_SPEC: Message = Message::new(
    "IngressSpec",
    &[
        one(1, "defaultBackend", Msg(&INGRESS_BACKEND)),
        rep(2, "tls", Msg(&INGRESS_TLS)),
        rep(3, "rules", Msg(&INGRESS_RULE)),
        one(4, "ingressClassName", Str),
    ],
);

pub(crate) static INGRESS_STATUS: Message = Message::new(
    "IngressStatus",
    &[one(1, "loadBalancer", Msg(&INGRESS_LOAD_BALANCER_STATUS))],
);

pub(crate) static INGRESS_TLS: Message = Message::new(
    "IngressTLS",
    &[rep(1, "hosts", Str), one(2, "secretName", Str).omit_zero()],
);

pub(crate) static NETWORK_POLICY: Message = Message::new(
    "NetworkPolicy",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&NETWORK_POLICY_SPEC)),
    ],
);

pub(crate) static NETWORK_POLICY_EGRESS_RULE: Message = Message::new(
    "NetworkPolicyEgressRule",
    &[
        rep(1, "ports", Msg(&NETWORK_POLICY_PORT)),
        rep(2, "to", Msg(&NETWORK_POLICY_PEER)),
    ],
);

pub(crate) static NETWORK_POLICY_INGRESS_RULE: Message = Message::new(
    "NetworkPolicyIngressRule",
    &[
        rep(1, "ports", Msg(&NETWORK_POLICY_PORT)),
        rep(2, "from", Msg(&NETWORK_POLICY_PEER)),
    ],
);

pub(crate) static NETWORK_POLICY_PEER: Message = Message::new(
    "NetworkPolicyPeer",
    &[
        one(1, "podSelector", Msg(&super::meta::LABEL_SELECTOR)),
        one(2, "namespaceSelector", Msg(&super::meta::LABEL_SELECTOR)),
        one(3, "ipBlock", Msg(&IP_BLOCK)),
    ],
);

pub(crate) static NETWORK_POLICY_PORT: Message = Message::new(
    "NetworkPolicyPort",
    &[
        one(1, "protocol", Str),
        one(2, "port", IntOrString),
        one(3, "endPort", I32),
    ],
);

pub(crate) static NETWORK_POLICY_SPEC: Message = Message::new(
    "NetworkPolicySpec",
    &[
        one(1, "podSelector", Msg(&super::meta::LABEL_SELECTOR)),
        rep(2, "ingress", Msg(&NETWORK_POLICY_INGRESS_RULE)),
        rep(3, "egress", Msg(&NETWORK_POLICY_EGRESS_RULE)),
        rep(4, "policyTypes", Str),
    ],
);

pub(crate) static SERVICE_BACKEND_PORT: Message = Message::new(
    "ServiceBackendPort",
    &[
        one(1, "name", Str).omit_zero(),
        one(2, "number", I32).omit_zero(),
    ],
);
