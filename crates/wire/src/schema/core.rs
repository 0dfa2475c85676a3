//! `v1` messages: field numbers and names as in upstream `generated.proto`,
//! pointer-ness and `omitempty` as in upstream `types.go`.

use super::Ty::*;
use super::{Message, map, one, rep};

pub(crate) static AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE: Message = Message::new(
    "AWSElasticBlockStoreVolumeSource",
    &[
        one(1, "volumeID", Str),
        one(2, "fsType", Str).omit_zero(),
        one(3, "partition", I32).omit_zero(),
        one(4, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static AFFINITY: Message = Message::new(
    "Affinity",
    &[
        one(1, "nodeAffinity", Msg(&NODE_AFFINITY)),
        one(2, "podAffinity", Msg(&POD_AFFINITY)),
        one(3, "podAntiAffinity", Msg(&POD_ANTI_AFFINITY)),
    ],
);

pub(crate) static APP_ARMOR_PROFILE: Message = Message::new(
    "AppArmorProfile",
    &[one(1, "type", Str), one(2, "localhostProfile", Str)],
);

pub(crate) static ATTACHED_VOLUME: Message = Message::new(
    "AttachedVolume",
    &[one(1, "name", Str), one(2, "devicePath", Str)],
);

pub(crate) static AZURE_DISK_VOLUME_SOURCE: Message = Message::new(
    "AzureDiskVolumeSource",
    &[
        one(1, "diskName", Str),
        one(2, "diskURI", Str),
        one(3, "cachingMode", Str),
        one(4, "fsType", Str),
        one(5, "readOnly", Bool),
        one(6, "kind", Str),
    ],
);

pub(crate) static AZURE_FILE_PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "AzureFilePersistentVolumeSource",
    &[
        one(1, "secretName", Str),
        one(2, "shareName", Str),
        one(3, "readOnly", Bool).omit_zero(),
        one(4, "secretNamespace", Str),
    ],
);

pub(crate) static AZURE_FILE_VOLUME_SOURCE: Message = Message::new(
    "AzureFileVolumeSource",
    &[
        one(1, "secretName", Str),
        one(2, "shareName", Str),
        one(3, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static BINDING: Message = Message::new(
    "Binding",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "target", Msg(&OBJECT_REFERENCE)),
    ],
);

pub(crate) static CSI_PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "CSIPersistentVolumeSource",
    &[
        one(1, "driver", Str),
        one(2, "volumeHandle", Str),
        one(3, "readOnly", Bool).omit_zero(),
        one(4, "fsType", Str).omit_zero(),
        map(5, "volumeAttributes", Str),
        one(6, "controllerPublishSecretRef", Msg(&SECRET_REFERENCE)),
        one(7, "nodeStageSecretRef", Msg(&SECRET_REFERENCE)),
        one(8, "nodePublishSecretRef", Msg(&SECRET_REFERENCE)),
        one(9, "controllerExpandSecretRef", Msg(&SECRET_REFERENCE)),
        one(10, "nodeExpandSecretRef", Msg(&SECRET_REFERENCE)),
    ],
);

pub(crate) static CSI_VOLUME_SOURCE: Message = Message::new(
    "CSIVolumeSource",
    &[
        one(1, "driver", Str),
        one(2, "readOnly", Bool),
        one(3, "fsType", Str),
        map(4, "volumeAttributes", Str),
        one(5, "nodePublishSecretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
);

pub(crate) static CAPABILITIES: Message =
    Message::new("Capabilities", &[rep(1, "add", Str), rep(2, "drop", Str)]);

pub(crate) static CEPH_FS_PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "CephFSPersistentVolumeSource",
    &[
        rep(1, "monitors", Str),
        one(2, "path", Str).omit_zero(),
        one(3, "user", Str).omit_zero(),
        one(4, "secretFile", Str).omit_zero(),
        one(5, "secretRef", Msg(&SECRET_REFERENCE)),
        one(6, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static CEPH_FS_VOLUME_SOURCE: Message = Message::new(
    "CephFSVolumeSource",
    &[
        rep(1, "monitors", Str),
        one(2, "path", Str).omit_zero(),
        one(3, "user", Str).omit_zero(),
        one(4, "secretFile", Str).omit_zero(),
        one(5, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        one(6, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static CINDER_PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "CinderPersistentVolumeSource",
    &[
        one(1, "volumeID", Str),
        one(2, "fsType", Str).omit_zero(),
        one(3, "readOnly", Bool).omit_zero(),
        one(4, "secretRef", Msg(&SECRET_REFERENCE)),
    ],
);

pub(crate) static CINDER_VOLUME_SOURCE: Message = Message::new(
    "CinderVolumeSource",
    &[
        one(1, "volumeID", Str),
        one(2, "fsType", Str).omit_zero(),
        one(3, "readOnly", Bool).omit_zero(),
        one(4, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
);

pub(crate) static CLIENT_IP_CONFIG: Message =
    Message::new("ClientIPConfig", &[one(1, "timeoutSeconds", I32)]);

pub(crate) static CLUSTER_TRUST_BUNDLE_PROJECTION: Message = Message::new(
    "ClusterTrustBundleProjection",
    &[
        one(1, "name", Str),
        one(2, "signerName", Str),
        one(3, "labelSelector", Msg(&super::meta::LABEL_SELECTOR)),
        one(4, "path", Str),
        one(5, "optional", Bool),
        one(6, "user", I64),
    ],
);

pub(crate) static CONFIG_MAP: Message = Message::new(
    "ConfigMap",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        map(2, "data", Str),
        map(3, "binaryData", Bytes),
        one(4, "immutable", Bool),
    ],
);

pub(crate) static CONFIG_MAP_ENV_SOURCE: Message = Message::new(
    "ConfigMapEnvSource",
    &[
        one(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)).inline(),
        one(2, "optional", Bool),
    ],
);

pub(crate) static CONFIG_MAP_KEY_SELECTOR: Message = Message::new(
    "ConfigMapKeySelector",
    &[
        one(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)).inline(),
        one(2, "key", Str),
        one(3, "optional", Bool),
    ],
);

pub(crate) static CONFIG_MAP_NODE_CONFIG_SOURCE: Message = Message::new(
    "ConfigMapNodeConfigSource",
    &[
        one(1, "namespace", Str),
        one(2, "name", Str),
        one(3, "uid", Str).omit_zero(),
        one(4, "resourceVersion", Str).omit_zero(),
        one(5, "kubeletConfigKey", Str),
    ],
);

pub(crate) static CONFIG_MAP_PROJECTION: Message = Message::new(
    "ConfigMapProjection",
    &[
        one(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)).inline(),
        rep(2, "items", Msg(&KEY_TO_PATH)),
        one(4, "optional", Bool),
    ],
);

pub(crate) static CONFIG_MAP_VOLUME_SOURCE: Message = Message::new(
    "ConfigMapVolumeSource",
    &[
        one(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)).inline(),
        rep(2, "items", Msg(&KEY_TO_PATH)),
        one(3, "defaultMode", I32),
        one(4, "optional", Bool),
        one(5, "defaultUser", I64),
    ],
);

pub(crate) static CONTAINER: Message = Message::new(
    "Container",
    &[
        one(1, "name", Str),
        one(2, "image", Str).omit_zero(),
        rep(3, "command", Str),
        rep(4, "args", Str),
        one(5, "workingDir", Str).omit_zero(),
        rep(6, "ports", Msg(&CONTAINER_PORT)),
        rep(7, "env", Msg(&ENV_VAR)),
        one(8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        rep(9, "volumeMounts", Msg(&VOLUME_MOUNT)),
        one(10, "livenessProbe", Msg(&PROBE)),
        one(11, "readinessProbe", Msg(&PROBE)),
        one(12, "lifecycle", Msg(&LIFECYCLE)),
        one(13, "terminationMessagePath", Str).omit_zero(),
        one(14, "imagePullPolicy", Str).omit_zero(),
        one(15, "securityContext", Msg(&SECURITY_CONTEXT)),
        one(16, "stdin", Bool).omit_zero(),
        one(17, "stdinOnce", Bool).omit_zero(),
        one(18, "tty", Bool).omit_zero(),
        rep(19, "envFrom", Msg(&ENV_FROM_SOURCE)),
        one(20, "terminationMessagePolicy", Str).omit_zero(),
        rep(21, "volumeDevices", Msg(&VOLUME_DEVICE)),
        one(22, "startupProbe", Msg(&PROBE)),
        rep(23, "resizePolicy", Msg(&CONTAINER_RESIZE_POLICY)),
        one(24, "restartPolicy", Str),
        rep(25, "restartPolicyRules", Msg(&CONTAINER_RESTART_RULE)),
    ],
);

pub(crate) static CONTAINER_EXTENDED_RESOURCE_REQUEST: Message = Message::new(
    "ContainerExtendedResourceRequest",
    &[
        one(1, "containerName", Str),
        one(2, "resourceName", Str),
        one(3, "requestName", Str),
    ],
);

pub(crate) static CONTAINER_IMAGE: Message = Message::new(
    "ContainerImage",
    &[rep(1, "names", Str), one(2, "sizeBytes", I64).omit_zero()],
);

pub(crate) static CONTAINER_PORT: Message = Message::new(
    "ContainerPort",
    &[
        one(1, "name", Str).omit_zero(),
        one(2, "hostPort", I32).omit_zero(),
        one(3, "containerPort", I32),
        one(4, "protocol", Str).omit_zero(),
        one(5, "hostIP", Str).omit_zero(),
    ],
);

pub(crate) static CONTAINER_RESIZE_POLICY: Message = Message::new(
    "ContainerResizePolicy",
    &[one(1, "resourceName", Str), one(2, "restartPolicy", Str)],
);

pub(crate) static CONTAINER_RESTART_RULE: Message = Message::new(
    "ContainerRestartRule",
    &[
        one(1, "action", Str).omit_zero(),
        one(2, "exitCodes", Msg(&CONTAINER_RESTART_RULE_ON_EXIT_CODES)),
    ],
);

pub(crate) static CONTAINER_RESTART_RULE_ON_EXIT_CODES: Message = Message::new(
    "ContainerRestartRuleOnExitCodes",
    &[one(1, "operator", Str).omit_zero(), rep(2, "values", I32)],
);

pub(crate) static CONTAINER_STATE: Message = Message::new(
    "ContainerState",
    &[
        one(1, "waiting", Msg(&CONTAINER_STATE_WAITING)),
        one(2, "running", Msg(&CONTAINER_STATE_RUNNING)),
        one(3, "terminated", Msg(&CONTAINER_STATE_TERMINATED)),
    ],
);

pub(crate) static CONTAINER_STATE_RUNNING: Message =
    Message::new("ContainerStateRunning", &[one(1, "startedAt", Time)]);

pub(crate) static CONTAINER_STATE_TERMINATED: Message = Message::new(
    "ContainerStateTerminated",
    &[
        one(1, "exitCode", I32),
        one(2, "signal", I32).omit_zero(),
        one(3, "reason", Str).omit_zero(),
        one(4, "message", Str).omit_zero(),
        one(5, "startedAt", Time),
        one(6, "finishedAt", Time),
        one(7, "containerID", Str).omit_zero(),
    ],
);

pub(crate) static CONTAINER_STATE_WAITING: Message = Message::new(
    "ContainerStateWaiting",
    &[
        one(1, "reason", Str).omit_zero(),
        one(2, "message", Str).omit_zero(),
    ],
);

pub(crate) static CONTAINER_STATUS: Message = Message::new(
    "ContainerStatus",
    &[
        one(1, "name", Str),
        one(2, "state", Msg(&CONTAINER_STATE)),
        one(3, "lastState", Msg(&CONTAINER_STATE)),
        one(4, "ready", Bool),
        one(5, "restartCount", I32),
        one(6, "image", Str),
        one(7, "imageID", Str),
        one(8, "containerID", Str).omit_zero(),
        one(9, "started", Bool),
        map(10, "allocatedResources", Quantity),
        one(11, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        rep(12, "volumeMounts", Msg(&VOLUME_MOUNT_STATUS)),
        one(13, "user", Msg(&CONTAINER_USER)),
        rep(14, "allocatedResourcesStatus", Msg(&RESOURCE_STATUS)),
        one(15, "stopSignal", Str),
    ],
);

pub(crate) static CONTAINER_USER: Message = Message::new(
    "ContainerUser",
    &[one(1, "linux", Msg(&LINUX_CONTAINER_USER))],
);

pub(crate) static DAEMON_ENDPOINT: Message = Message::new("DaemonEndpoint", &[one(1, "Port", I32)]);

pub(crate) static DOWNWARD_API_PROJECTION: Message = Message::new(
    "DownwardAPIProjection",
    &[rep(1, "items", Msg(&DOWNWARD_API_VOLUME_FILE))],
);

pub(crate) static DOWNWARD_API_VOLUME_FILE: Message = Message::new(
    "DownwardAPIVolumeFile",
    &[
        one(1, "path", Str),
        one(2, "fieldRef", Msg(&OBJECT_FIELD_SELECTOR)),
        one(3, "resourceFieldRef", Msg(&RESOURCE_FIELD_SELECTOR)),
        one(4, "mode", I32),
        one(5, "user", I64),
    ],
);

pub(crate) static DOWNWARD_API_VOLUME_SOURCE: Message = Message::new(
    "DownwardAPIVolumeSource",
    &[
        rep(1, "items", Msg(&DOWNWARD_API_VOLUME_FILE)),
        one(2, "defaultMode", I32),
        one(3, "defaultUser", I64),
    ],
);

pub(crate) static EMPTY_DIR_VOLUME_SOURCE: Message = Message::new(
    "EmptyDirVolumeSource",
    &[
        one(1, "medium", Str).omit_zero(),
        one(2, "sizeLimit", Quantity),
        one(3, "mode", I32),
    ],
);

pub(crate) static ENDPOINT_ADDRESS: Message = Message::new(
    "EndpointAddress",
    &[
        one(1, "ip", Str),
        one(2, "targetRef", Msg(&OBJECT_REFERENCE)),
        one(3, "hostname", Str).omit_zero(),
        one(4, "nodeName", Str),
    ],
);

pub(crate) static ENDPOINT_PORT: Message = Message::new(
    "EndpointPort",
    &[
        one(1, "name", Str).omit_zero(),
        one(2, "port", I32),
        one(3, "protocol", Str).omit_zero(),
        one(4, "appProtocol", Str),
    ],
);

pub(crate) static ENDPOINT_SUBSET: Message = Message::new(
    "EndpointSubset",
    &[
        rep(1, "addresses", Msg(&ENDPOINT_ADDRESS)),
        rep(2, "notReadyAddresses", Msg(&ENDPOINT_ADDRESS)),
        rep(3, "ports", Msg(&ENDPOINT_PORT)),
    ],
);

pub(crate) static ENDPOINTS: Message = Message::new(
    "Endpoints",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        rep(2, "subsets", Msg(&ENDPOINT_SUBSET)),
    ],
);

pub(crate) static ENV_FROM_SOURCE: Message = Message::new(
    "EnvFromSource",
    &[
        one(1, "prefix", Str).omit_zero(),
        one(2, "configMapRef", Msg(&CONFIG_MAP_ENV_SOURCE)),
        one(3, "secretRef", Msg(&SECRET_ENV_SOURCE)),
    ],
);

pub(crate) static ENV_VAR: Message = Message::new(
    "EnvVar",
    &[
        one(1, "name", Str),
        one(2, "value", Str).omit_zero(),
        one(3, "valueFrom", Msg(&ENV_VAR_SOURCE)),
    ],
);

pub(crate) static ENV_VAR_SOURCE: Message = Message::new(
    "EnvVarSource",
    &[
        one(1, "fieldRef", Msg(&OBJECT_FIELD_SELECTOR)),
        one(2, "resourceFieldRef", Msg(&RESOURCE_FIELD_SELECTOR)),
        one(3, "configMapKeyRef", Msg(&CONFIG_MAP_KEY_SELECTOR)),
        one(4, "secretKeyRef", Msg(&SECRET_KEY_SELECTOR)),
        one(5, "fileKeyRef", Msg(&FILE_KEY_SELECTOR)),
    ],
);

pub(crate) static EPHEMERAL_CONTAINER: Message = Message::new(
    "EphemeralContainer",
    &[
        one(
            1,
            "ephemeralContainerCommon",
            Msg(&EPHEMERAL_CONTAINER_COMMON),
        )
        .inline(),
        one(2, "targetContainerName", Str).omit_zero(),
    ],
);

pub(crate) static EPHEMERAL_CONTAINER_COMMON: Message = Message::new(
    "EphemeralContainerCommon",
    &[
        one(1, "name", Str),
        one(2, "image", Str).omit_zero(),
        rep(3, "command", Str),
        rep(4, "args", Str),
        one(5, "workingDir", Str).omit_zero(),
        rep(6, "ports", Msg(&CONTAINER_PORT)),
        rep(7, "env", Msg(&ENV_VAR)),
        one(8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        rep(9, "volumeMounts", Msg(&VOLUME_MOUNT)),
        one(10, "livenessProbe", Msg(&PROBE)),
        one(11, "readinessProbe", Msg(&PROBE)),
        one(12, "lifecycle", Msg(&LIFECYCLE)),
        one(13, "terminationMessagePath", Str).omit_zero(),
        one(14, "imagePullPolicy", Str).omit_zero(),
        one(15, "securityContext", Msg(&SECURITY_CONTEXT)),
        one(16, "stdin", Bool).omit_zero(),
        one(17, "stdinOnce", Bool).omit_zero(),
        one(18, "tty", Bool).omit_zero(),
        rep(19, "envFrom", Msg(&ENV_FROM_SOURCE)),
        one(20, "terminationMessagePolicy", Str).omit_zero(),
        rep(21, "volumeDevices", Msg(&VOLUME_DEVICE)),
        one(22, "startupProbe", Msg(&PROBE)),
        rep(23, "resizePolicy", Msg(&CONTAINER_RESIZE_POLICY)),
        one(24, "restartPolicy", Str),
        rep(25, "restartPolicyRules", Msg(&CONTAINER_RESTART_RULE)),
    ],
);

pub(crate) static EPHEMERAL_VOLUME_SOURCE: Message = Message::new(
    "EphemeralVolumeSource",
    &[one(
        1,
        "volumeClaimTemplate",
        Msg(&PERSISTENT_VOLUME_CLAIM_TEMPLATE),
    )],
);

pub(crate) static EVENT: Message = Message::new(
    "Event",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "involvedObject", Msg(&OBJECT_REFERENCE)),
        one(3, "reason", Str).omit_zero(),
        one(4, "message", Str).omit_zero(),
        one(5, "source", Msg(&EVENT_SOURCE)),
        one(6, "firstTimestamp", Time),
        one(7, "lastTimestamp", Time),
        one(8, "count", I32).omit_zero(),
        one(9, "type", Str).omit_zero(),
        one(10, "eventTime", MicroTime),
        one(11, "series", Msg(&EVENT_SERIES)),
        one(12, "action", Str).omit_zero(),
        one(13, "related", Msg(&OBJECT_REFERENCE)),
        one(14, "reportingComponent", Str),
        one(15, "reportingInstance", Str),
    ],
);

pub(crate) static EVENT_SERIES: Message = Message::new(
    "EventSeries",
    &[
        one(1, "count", I32).omit_zero(),
        one(2, "lastObservedTime", MicroTime),
    ],
);

pub(crate) static EVENT_SOURCE: Message = Message::new(
    "EventSource",
    &[
        one(1, "component", Str).omit_zero(),
        one(2, "host", Str).omit_zero(),
    ],
);

pub(crate) static EVICTION_RESPONDER: Message = Message::new(
    "EvictionResponder",
    &[one(1, "name", Str), one(2, "priority", I32)],
);

pub(crate) static EXEC_ACTION: Message = Message::new("ExecAction", &[rep(1, "command", Str)]);

pub(crate) static FC_VOLUME_SOURCE: Message = Message::new(
    "FCVolumeSource",
    &[
        rep(1, "targetWWNs", Str),
        one(2, "lun", I32),
        one(3, "fsType", Str).omit_zero(),
        one(4, "readOnly", Bool).omit_zero(),
        rep(5, "wwids", Str),
    ],
);

pub(crate) static FILE_KEY_SELECTOR: Message = Message::new(
    "FileKeySelector",
    &[
        one(1, "volumeName", Str),
        one(2, "path", Str),
        one(3, "key", Str),
        one(4, "optional", Bool),
    ],
);

pub(crate) static FLEX_PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "FlexPersistentVolumeSource",
    &[
        one(1, "driver", Str),
        one(2, "fsType", Str).omit_zero(),
        one(3, "secretRef", Msg(&SECRET_REFERENCE)),
        one(4, "readOnly", Bool).omit_zero(),
        map(5, "options", Str),
    ],
);

pub(crate) static FLEX_VOLUME_SOURCE: Message = Message::new(
    "FlexVolumeSource",
    &[
        one(1, "driver", Str),
        one(2, "fsType", Str).omit_zero(),
        one(3, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        one(4, "readOnly", Bool).omit_zero(),
        map(5, "options", Str),
    ],
);

pub(crate) static FLOCKER_VOLUME_SOURCE: Message = Message::new(
    "FlockerVolumeSource",
    &[
        one(1, "datasetName", Str).omit_zero(),
        one(2, "datasetUUID", Str).omit_zero(),
    ],
);

pub(crate) static GCE_PERSISTENT_DISK_VOLUME_SOURCE: Message = Message::new(
    "GCEPersistentDiskVolumeSource",
    &[
        one(1, "pdName", Str),
        one(2, "fsType", Str).omit_zero(),
        one(3, "partition", I32).omit_zero(),
        one(4, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static GRPC_ACTION: Message = Message::new(
    "GRPCAction",
    &[
        one(1, "port", I32),
        one(2, "service", Str),
        one(3, "mode", Str),
    ],
);

pub(crate) static GIT_REPO_VOLUME_SOURCE: Message = Message::new(
    "GitRepoVolumeSource",
    &[
        one(1, "repository", Str),
        one(2, "revision", Str).omit_zero(),
        one(3, "directory", Str).omit_zero(),
    ],
);

pub(crate) static GLUSTERFS_PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "GlusterfsPersistentVolumeSource",
    &[
        one(1, "endpoints", Str),
        one(2, "path", Str),
        one(3, "readOnly", Bool).omit_zero(),
        one(4, "endpointsNamespace", Str),
    ],
);

pub(crate) static GLUSTERFS_VOLUME_SOURCE: Message = Message::new(
    "GlusterfsVolumeSource",
    &[
        one(1, "endpoints", Str),
        one(2, "path", Str),
        one(3, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static HTTP_GET_ACTION: Message = Message::new(
    "HTTPGetAction",
    &[
        one(1, "path", Str).omit_zero(),
        one(2, "port", IntOrString),
        one(3, "host", Str).omit_zero(),
        one(4, "scheme", Str).omit_zero(),
        rep(5, "httpHeaders", Msg(&HTTP_HEADER)),
        one(6, "protocol", Str),
    ],
);

pub(crate) static HTTP_HEADER: Message =
    Message::new("HTTPHeader", &[one(1, "name", Str), one(2, "value", Str)]);

pub(crate) static HOST_ALIAS: Message =
    Message::new("HostAlias", &[one(1, "ip", Str), rep(2, "hostnames", Str)]);

pub(crate) static HOST_IP: Message = Message::new("HostIP", &[one(1, "ip", Str)]);

pub(crate) static HOST_PATH_VOLUME_SOURCE: Message = Message::new(
    "HostPathVolumeSource",
    &[one(1, "path", Str), one(2, "type", Str)],
);

pub(crate) static ISCSI_PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "ISCSIPersistentVolumeSource",
    &[
        one(1, "targetPortal", Str),
        one(2, "iqn", Str),
        one(3, "lun", I32),
        one(4, "iscsiInterface", Str).omit_zero(),
        one(5, "fsType", Str).omit_zero(),
        one(6, "readOnly", Bool).omit_zero(),
        rep(7, "portals", Str),
        one(8, "chapAuthDiscovery", Bool).omit_zero(),
        one(10, "secretRef", Msg(&SECRET_REFERENCE)),
        one(11, "chapAuthSession", Bool).omit_zero(),
        one(12, "initiatorName", Str),
    ],
);

pub(crate) static ISCSI_VOLUME_SOURCE: Message = Message::new(
    "ISCSIVolumeSource",
    &[
        one(1, "targetPortal", Str),
        one(2, "iqn", Str),
        one(3, "lun", I32),
        one(4, "iscsiInterface", Str).omit_zero(),
        one(5, "fsType", Str).omit_zero(),
        one(6, "readOnly", Bool).omit_zero(),
        rep(7, "portals", Str),
        one(8, "chapAuthDiscovery", Bool).omit_zero(),
        one(10, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        one(11, "chapAuthSession", Bool).omit_zero(),
        one(12, "initiatorName", Str),
    ],
);

pub(crate) static IMAGE_VOLUME_SOURCE: Message = Message::new(
    "ImageVolumeSource",
    &[
        one(1, "reference", Str).omit_zero(),
        one(2, "pullPolicy", Str).omit_zero(),
    ],
);

pub(crate) static IMAGE_VOLUME_STATUS: Message =
    Message::new("ImageVolumeStatus", &[one(1, "imageRef", Str).omit_zero()]);

pub(crate) static KEY_TO_PATH: Message = Message::new(
    "KeyToPath",
    &[
        one(1, "key", Str),
        one(2, "path", Str),
        one(3, "mode", I32),
        one(4, "user", I64),
    ],
);

pub(crate) static LIFECYCLE: Message = Message::new(
    "Lifecycle",
    &[
        one(1, "postStart", Msg(&LIFECYCLE_HANDLER)),
        one(2, "preStop", Msg(&LIFECYCLE_HANDLER)),
        one(3, "stopSignal", Str),
    ],
);

pub(crate) static LIFECYCLE_HANDLER: Message = Message::new(
    "LifecycleHandler",
    &[
        one(1, "exec", Msg(&EXEC_ACTION)),
        one(2, "httpGet", Msg(&HTTP_GET_ACTION)),
        one(3, "tcpSocket", Msg(&TCP_SOCKET_ACTION)),
        one(4, "sleep", Msg(&SLEEP_ACTION)),
    ],
);

pub(crate) static LIMIT_RANGE: Message = Message::new(
    "LimitRange",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&LIMIT_RANGE_SPEC)),
    ],
);

pub(crate) static LIMIT_RANGE_ITEM: Message = Message::new(
    "LimitRangeItem",
    &[
        one(1, "type", Str),
        map(2, "max", Quantity),
        map(3, "min", Quantity),
        map(4, "default", Quantity),
        map(5, "defaultRequest", Quantity),
        map(6, "maxLimitRequestRatio", Quantity),
    ],
);

pub(crate) static LIMIT_RANGE_SPEC: Message = Message::new(
    "LimitRangeSpec",
    &[rep(1, "limits", Msg(&LIMIT_RANGE_ITEM))],
);

pub(crate) static LINUX_CONTAINER_USER: Message = Message::new(
    "LinuxContainerUser",
    &[
        one(1, "uid", I64),
        one(2, "gid", I64),
        rep(3, "supplementalGroups", I64),
    ],
);

pub(crate) static LOAD_BALANCER_INGRESS: Message = Message::new(
    "LoadBalancerIngress",
    &[
        one(1, "ip", Str).omit_zero(),
        one(2, "hostname", Str).omit_zero(),
        one(3, "ipMode", Str),
        rep(4, "ports", Msg(&PORT_STATUS)),
    ],
);

pub(crate) static LOAD_BALANCER_STATUS: Message = Message::new(
    "LoadBalancerStatus",
    &[rep(1, "ingress", Msg(&LOAD_BALANCER_INGRESS))],
);

pub(crate) static LOCAL_OBJECT_REFERENCE: Message =
    Message::new("LocalObjectReference", &[one(1, "name", Str).omit_zero()]);

pub(crate) static LOCAL_VOLUME_SOURCE: Message = Message::new(
    "LocalVolumeSource",
    &[one(1, "path", Str), one(2, "fsType", Str)],
);

pub(crate) static MODIFY_VOLUME_STATUS: Message = Message::new(
    "ModifyVolumeStatus",
    &[
        one(1, "targetVolumeAttributesClassName", Str).omit_zero(),
        one(2, "status", Str),
    ],
);

pub(crate) static NFS_VOLUME_SOURCE: Message = Message::new(
    "NFSVolumeSource",
    &[
        one(1, "server", Str),
        one(2, "path", Str),
        one(3, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static NAMESPACE: Message = Message::new(
    "Namespace",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&NAMESPACE_SPEC)),
        one(3, "status", Msg(&NAMESPACE_STATUS)),
    ],
);

pub(crate) static NAMESPACE_CONDITION: Message = Message::new(
    "NamespaceCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str).omit_zero(),
        one(6, "message", Str).omit_zero(),
    ],
);

pub(crate) static NAMESPACE_SPEC: Message =
    Message::new("NamespaceSpec", &[rep(1, "finalizers", Str)]);

pub(crate) static NAMESPACE_STATUS: Message = Message::new(
    "NamespaceStatus",
    &[
        one(1, "phase", Str).omit_zero(),
        rep(2, "conditions", Msg(&NAMESPACE_CONDITION)),
    ],
);

pub(crate) static NODE: Message = Message::new(
    "Node",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&NODE_SPEC)),
        one(3, "status", Msg(&NODE_STATUS)),
    ],
);

pub(crate) static NODE_ADDRESS: Message = Message::new(
    "NodeAddress",
    &[one(1, "type", Str), one(2, "address", Str)],
);

pub(crate) static NODE_AFFINITY: Message = Message::new(
    "NodeAffinity",
    &[
        one(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Msg(&NODE_SELECTOR),
        ),
        rep(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Msg(&PREFERRED_SCHEDULING_TERM),
        ),
    ],
);

pub(crate) static NODE_ALLOCATABLE_MAPPED_RESOURCES: Message = Message::new(
    "NodeAllocatableMappedResources",
    &[one(1, "name", Str), one(2, "quantity", Quantity)],
);

pub(crate) static NODE_ALLOCATABLE_OVERHEAD_RESOURCES: Message = Message::new(
    "NodeAllocatableOverheadResources",
    &[
        one(1, "name", Str),
        one(2, "perPod", Quantity),
        one(3, "perContainer", Quantity),
    ],
);

pub(crate) static NODE_ALLOCATABLE_RESOURCE_CLAIM_STATUS: Message = Message::new(
    "NodeAllocatableResourceClaimStatus",
    &[
        one(1, "resourceClaimName", Str),
        rep(2, "containers", Str),
        rep(4, "mapping", Msg(&NODE_ALLOCATABLE_MAPPED_RESOURCES)),
        rep(5, "overhead", Msg(&NODE_ALLOCATABLE_OVERHEAD_RESOURCES)),
    ],
);

pub(crate) static NODE_CONDITION: Message = Message::new(
    "NodeCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastHeartbeatTime", Time),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str).omit_zero(),
        one(6, "message", Str).omit_zero(),
    ],
);

pub(crate) static NODE_CONFIG_SOURCE: Message = Message::new(
    "NodeConfigSource",
    &[one(2, "configMap", Msg(&CONFIG_MAP_NODE_CONFIG_SOURCE))],
);

pub(crate) static NODE_CONFIG_STATUS: Message = Message::new(
    "NodeConfigStatus",
    &[
        one(1, "assigned", Msg(&NODE_CONFIG_SOURCE)),
        one(2, "active", Msg(&NODE_CONFIG_SOURCE)),
        one(3, "lastKnownGood", Msg(&NODE_CONFIG_SOURCE)),
        one(4, "error", Str).omit_zero(),
    ],
);

pub(crate) static NODE_DAEMON_ENDPOINTS: Message = Message::new(
    "NodeDaemonEndpoints",
    &[one(1, "kubeletEndpoint", Msg(&DAEMON_ENDPOINT))],
);

pub(crate) static NODE_FEATURES: Message =
    Message::new("NodeFeatures", &[one(1, "supplementalGroupsPolicy", Bool)]);

pub(crate) static NODE_POD_PREEMPTION_POLICY: Message = Message::new(
    "NodePodPreemptionPolicy",
    &[rep(1, "disableResizePreemption", Str)],
);

pub(crate) static NODE_RUNTIME_HANDLER: Message = Message::new(
    "NodeRuntimeHandler",
    &[
        one(1, "name", Str),
        one(2, "features", Msg(&NODE_RUNTIME_HANDLER_FEATURES)),
    ],
);

pub(crate) static NODE_RUNTIME_HANDLER_FEATURES: Message = Message::new(
    "NodeRuntimeHandlerFeatures",
    &[
        one(1, "recursiveReadOnlyMounts", Bool),
        one(2, "userNamespaces", Bool),
    ],
);

pub(crate) static NODE_SELECTOR: Message = Message::new(
    "NodeSelector",
    &[rep(1, "nodeSelectorTerms", Msg(&NODE_SELECTOR_TERM))],
);

pub(crate) static NODE_SELECTOR_REQUIREMENT: Message = Message::new(
    "NodeSelectorRequirement",
    &[
        one(1, "key", Str),
        one(2, "operator", Str),
        rep(3, "values", Str),
    ],
);

pub(crate) static NODE_SELECTOR_TERM: Message = Message::new(
    "NodeSelectorTerm",
    &[
        rep(1, "matchExpressions", Msg(&NODE_SELECTOR_REQUIREMENT)),
        rep(2, "matchFields", Msg(&NODE_SELECTOR_REQUIREMENT)),
    ],
);

pub(crate) static NODE_SPEC: Message = Message::new(
    "NodeSpec",
    &[
        one(1, "podCIDR", Str).omit_zero(),
        one(2, "externalID", Str).omit_zero(),
        one(3, "providerID", Str).omit_zero(),
        one(4, "unschedulable", Bool).omit_zero(),
        rep(5, "taints", Msg(&TAINT)),
        one(6, "configSource", Msg(&NODE_CONFIG_SOURCE)),
        rep(7, "podCIDRs", Str),
        one(8, "podPreemptionPolicy", Msg(&NODE_POD_PREEMPTION_POLICY)),
    ],
);

pub(crate) static NODE_STATUS: Message = Message::new(
    "NodeStatus",
    &[
        map(1, "capacity", Quantity),
        map(2, "allocatable", Quantity),
        one(3, "phase", Str).omit_zero(),
        rep(4, "conditions", Msg(&NODE_CONDITION)),
        rep(5, "addresses", Msg(&NODE_ADDRESS)),
        one(6, "daemonEndpoints", Msg(&NODE_DAEMON_ENDPOINTS)),
        one(7, "nodeInfo", Msg(&NODE_SYSTEM_INFO)),
        rep(8, "images", Msg(&CONTAINER_IMAGE)),
        rep(9, "volumesInUse", Str),
        rep(10, "volumesAttached", Msg(&ATTACHED_VOLUME)),
        one(11, "config", Msg(&NODE_CONFIG_STATUS)),
        rep(12, "runtimeHandlers", Msg(&NODE_RUNTIME_HANDLER)),
        one(13, "features", Msg(&NODE_FEATURES)),
        rep(14, "declaredFeatures", Str),
    ],
);

pub(crate) static NODE_SWAP_STATUS: Message =
    Message::new("NodeSwapStatus", &[one(1, "capacity", I64)]);

pub(crate) static NODE_SYSTEM_INFO: Message = Message::new(
    "NodeSystemInfo",
    &[
        one(1, "machineID", Str),
        one(2, "systemUUID", Str),
        one(3, "bootID", Str),
        one(4, "kernelVersion", Str),
        one(5, "osImage", Str),
        one(6, "containerRuntimeVersion", Str),
        one(7, "kubeletVersion", Str),
        one(8, "kubeProxyVersion", Str),
        one(9, "operatingSystem", Str),
        one(10, "architecture", Str),
        one(11, "swap", Msg(&NODE_SWAP_STATUS)),
    ],
);

pub(crate) static OBJECT_FIELD_SELECTOR: Message = Message::new(
    "ObjectFieldSelector",
    &[
        one(1, "apiVersion", Str).omit_zero(),
        one(2, "fieldPath", Str),
    ],
);

pub(crate) static OBJECT_REFERENCE: Message = Message::new(
    "ObjectReference",
    &[
        one(1, "kind", Str).omit_zero(),
        one(2, "namespace", Str).omit_zero(),
        one(3, "name", Str).omit_zero(),
        one(4, "uid", Str).omit_zero(),
        one(5, "apiVersion", Str).omit_zero(),
        one(6, "resourceVersion", Str).omit_zero(),
        one(7, "fieldPath", Str).omit_zero(),
    ],
);

pub(crate) static PERSISTENT_VOLUME: Message = Message::new(
    "PersistentVolume",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&PERSISTENT_VOLUME_SPEC)),
        one(3, "status", Msg(&PERSISTENT_VOLUME_STATUS)),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM: Message = Message::new(
    "PersistentVolumeClaim",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&PERSISTENT_VOLUME_CLAIM_SPEC)),
        one(3, "status", Msg(&PERSISTENT_VOLUME_CLAIM_STATUS)),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM_CONDITION: Message = Message::new(
    "PersistentVolumeClaimCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastProbeTime", Time),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str).omit_zero(),
        one(6, "message", Str).omit_zero(),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM_SPEC: Message = Message::new(
    "PersistentVolumeClaimSpec",
    &[
        rep(1, "accessModes", Str),
        one(2, "resources", Msg(&VOLUME_RESOURCE_REQUIREMENTS)),
        one(3, "volumeName", Str).omit_zero(),
        one(4, "selector", Msg(&super::meta::LABEL_SELECTOR)),
        one(5, "storageClassName", Str),
        one(6, "volumeMode", Str),
        one(7, "dataSource", Msg(&TYPED_LOCAL_OBJECT_REFERENCE)),
        one(8, "dataSourceRef", Msg(&TYPED_OBJECT_REFERENCE)),
        one(9, "volumeAttributesClassName", Str),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM_STATUS: Message = Message::new(
    "PersistentVolumeClaimStatus",
    &[
        one(1, "phase", Str).omit_zero(),
        rep(2, "accessModes", Str),
        map(3, "capacity", Quantity),
        rep(4, "conditions", Msg(&PERSISTENT_VOLUME_CLAIM_CONDITION)),
        map(5, "allocatedResources", Quantity),
        map(7, "allocatedResourceStatuses", Str),
        one(8, "currentVolumeAttributesClassName", Str),
        one(9, "modifyVolumeStatus", Msg(&MODIFY_VOLUME_STATUS)),
        one(10, "healthStatus", Msg(&VOLUME_HEALTH_STATUS)),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM_TEMPLATE: Message = Message::new(
    "PersistentVolumeClaimTemplate",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&PERSISTENT_VOLUME_CLAIM_SPEC)),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Message = Message::new(
    "PersistentVolumeClaimVolumeSource",
    &[
        one(1, "claimName", Str),
        one(2, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "PersistentVolumeSource",
    &[
        one(
            1,
            "gcePersistentDisk",
            Msg(&GCE_PERSISTENT_DISK_VOLUME_SOURCE),
        ),
        one(
            2,
            "awsElasticBlockStore",
            Msg(&AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE),
        ),
        one(3, "hostPath", Msg(&HOST_PATH_VOLUME_SOURCE)),
        one(4, "glusterfs", Msg(&GLUSTERFS_PERSISTENT_VOLUME_SOURCE)),
        one(5, "nfs", Msg(&NFS_VOLUME_SOURCE)),
        one(6, "rbd", Msg(&RBD_PERSISTENT_VOLUME_SOURCE)),
        one(7, "iscsi", Msg(&ISCSI_PERSISTENT_VOLUME_SOURCE)),
        one(8, "cinder", Msg(&CINDER_PERSISTENT_VOLUME_SOURCE)),
        one(9, "cephfs", Msg(&CEPH_FS_PERSISTENT_VOLUME_SOURCE)),
        one(10, "fc", Msg(&FC_VOLUME_SOURCE)),
        one(11, "flocker", Msg(&FLOCKER_VOLUME_SOURCE)),
        one(12, "flexVolume", Msg(&FLEX_PERSISTENT_VOLUME_SOURCE)),
        one(13, "azureFile", Msg(&AZURE_FILE_PERSISTENT_VOLUME_SOURCE)),
        one(
            14,
            "vsphereVolume",
            Msg(&VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE),
        ),
        one(15, "quobyte", Msg(&QUOBYTE_VOLUME_SOURCE)),
        one(16, "azureDisk", Msg(&AZURE_DISK_VOLUME_SOURCE)),
        one(
            17,
            "photonPersistentDisk",
            Msg(&PHOTON_PERSISTENT_DISK_VOLUME_SOURCE),
        ),
        one(18, "portworxVolume", Msg(&PORTWORX_VOLUME_SOURCE)),
        one(19, "scaleIO", Msg(&SCALE_IO_PERSISTENT_VOLUME_SOURCE)),
        one(20, "local", Msg(&LOCAL_VOLUME_SOURCE)),
        one(21, "storageos", Msg(&STORAGE_OS_PERSISTENT_VOLUME_SOURCE)),
        one(22, "csi", Msg(&CSI_PERSISTENT_VOLUME_SOURCE)),
    ],
);

pub(crate) static PERSISTENT_VOLUME_SPEC: Message = Message::new(
    "PersistentVolumeSpec",
    &[
        map(1, "capacity", Quantity),
        one(2, "persistentVolumeSource", Msg(&PERSISTENT_VOLUME_SOURCE)).inline(),
        rep(3, "accessModes", Str),
        one(4, "claimRef", Msg(&OBJECT_REFERENCE)),
        one(5, "persistentVolumeReclaimPolicy", Str).omit_zero(),
        one(6, "storageClassName", Str).omit_zero(),
        rep(7, "mountOptions", Str),
        one(8, "volumeMode", Str),
        one(9, "nodeAffinity", Msg(&VOLUME_NODE_AFFINITY)),
        one(10, "volumeAttributesClassName", Str),
    ],
);

pub(crate) static PERSISTENT_VOLUME_STATUS: Message = Message::new(
    "PersistentVolumeStatus",
    &[
        one(1, "phase", Str).omit_zero(),
        one(2, "message", Str).omit_zero(),
        one(3, "reason", Str).omit_zero(),
        one(4, "lastPhaseTransitionTime", Time),
    ],
);

pub(crate) static PHOTON_PERSISTENT_DISK_VOLUME_SOURCE: Message = Message::new(
    "PhotonPersistentDiskVolumeSource",
    &[one(1, "pdID", Str), one(2, "fsType", Str).omit_zero()],
);

pub(crate) static POD: Message = Message::new(
    "Pod",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&POD_SPEC)),
        one(3, "status", Msg(&POD_STATUS)),
    ],
);

pub(crate) static POD_AFFINITY: Message = Message::new(
    "PodAffinity",
    &[
        rep(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Msg(&POD_AFFINITY_TERM),
        ),
        rep(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Msg(&WEIGHTED_POD_AFFINITY_TERM),
        ),
    ],
);

pub(crate) static POD_AFFINITY_TERM: Message = Message::new(
    "PodAffinityTerm",
    &[
        one(1, "labelSelector", Msg(&super::meta::LABEL_SELECTOR)),
        rep(2, "namespaces", Str),
        one(3, "topologyKey", Str),
        one(4, "namespaceSelector", Msg(&super::meta::LABEL_SELECTOR)),
        rep(5, "matchLabelKeys", Str),
        rep(6, "mismatchLabelKeys", Str),
    ],
);

pub(crate) static POD_ANTI_AFFINITY: Message = Message::new(
    "PodAntiAffinity",
    &[
        rep(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Msg(&POD_AFFINITY_TERM),
        ),
        rep(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Msg(&WEIGHTED_POD_AFFINITY_TERM),
        ),
    ],
);

pub(crate) static POD_CERTIFICATE_PROJECTION: Message = Message::new(
    "PodCertificateProjection",
    &[
        one(1, "signerName", Str).omit_zero(),
        one(2, "keyType", Str).omit_zero(),
        one(3, "maxExpirationSeconds", I32),
        one(4, "credentialBundlePath", Str).omit_zero(),
        one(5, "keyPath", Str).omit_zero(),
        one(6, "certificateChainPath", Str).omit_zero(),
        map(7, "userAnnotations", Str),
        one(8, "user", I64),
    ],
);

pub(crate) static POD_CONDITION: Message = Message::new(
    "PodCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastProbeTime", Time),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str).omit_zero(),
        one(6, "message", Str).omit_zero(),
        one(7, "observedGeneration", I64).omit_zero(),
    ],
);

pub(crate) static POD_DNS_CONFIG: Message = Message::new(
    "PodDNSConfig",
    &[
        rep(1, "nameservers", Str),
        rep(2, "searches", Str),
        rep(3, "options", Msg(&POD_DNS_CONFIG_OPTION)),
    ],
);

pub(crate) static POD_DNS_CONFIG_OPTION: Message = Message::new(
    "PodDNSConfigOption",
    &[one(1, "name", Str).omit_zero(), one(2, "value", Str)],
);

pub(crate) static POD_EXTENDED_RESOURCE_CLAIM_STATUS: Message = Message::new(
    "PodExtendedResourceClaimStatus",
    &[
        rep(
            1,
            "requestMappings",
            Msg(&CONTAINER_EXTENDED_RESOURCE_REQUEST),
        ),
        one(2, "resourceClaimName", Str),
    ],
);

pub(crate) static POD_IP: Message = Message::new("PodIP", &[one(1, "ip", Str)]);

pub(crate) static POD_OS: Message = Message::new("PodOS", &[one(1, "name", Str)]);

pub(crate) static POD_READINESS_GATE: Message =
    Message::new("PodReadinessGate", &[one(1, "conditionType", Str)]);

pub(crate) static POD_RESOURCE_CLAIM: Message = Message::new(
    "PodResourceClaim",
    &[
        one(1, "name", Str),
        one(3, "resourceClaimName", Str),
        one(4, "resourceClaimTemplateName", Str),
    ],
);

pub(crate) static POD_RESOURCE_CLAIM_STATUS: Message = Message::new(
    "PodResourceClaimStatus",
    &[one(1, "name", Str), one(2, "resourceClaimName", Str)],
);

pub(crate) static POD_SCHEDULING_GATE: Message =
    Message::new("PodSchedulingGate", &[one(1, "name", Str)]);

pub(crate) static POD_SCHEDULING_GROUP: Message =
    Message::new("PodSchedulingGroup", &[one(1, "podGroupName", Str)]);

pub(crate) static POD_SECURITY_CONTEXT: Message = Message::new(
    "PodSecurityContext",
    &[
        one(1, "seLinuxOptions", Msg(&SE_LINUX_OPTIONS)),
        one(2, "runAsUser", I64),
        one(3, "runAsNonRoot", Bool),
        rep(4, "supplementalGroups", I64),
        one(5, "fsGroup", I64),
        one(6, "runAsGroup", I64),
        rep(7, "sysctls", Msg(&SYSCTL)),
        one(8, "windowsOptions", Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        one(9, "fsGroupChangePolicy", Str),
        one(10, "seccompProfile", Msg(&SECCOMP_PROFILE)),
        one(11, "appArmorProfile", Msg(&APP_ARMOR_PROFILE)),
        one(12, "supplementalGroupsPolicy", Str),
        one(13, "seLinuxChangePolicy", Str),
    ],
);

pub(crate) static POD_SPEC: Message = Message::new(
    "PodSpec",
    &[
        rep(1, "volumes", Msg(&VOLUME)),
        rep(2, "containers", Msg(&CONTAINER)),
        one(3, "restartPolicy", Str).omit_zero(),
        one(4, "terminationGracePeriodSeconds", I64),
        one(5, "activeDeadlineSeconds", I64),
        one(6, "dnsPolicy", Str).omit_zero(),
        map(7, "nodeSelector", Str),
        one(8, "serviceAccountName", Str).omit_zero(),
        one(9, "serviceAccount", Str).omit_zero(),
        one(10, "nodeName", Str).omit_zero(),
        one(11, "hostNetwork", Bool).omit_zero(),
        one(12, "hostPID", Bool).omit_zero(),
        one(13, "hostIPC", Bool).omit_zero(),
        one(14, "securityContext", Msg(&POD_SECURITY_CONTEXT)),
        rep(15, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        one(16, "hostname", Str).omit_zero(),
        one(17, "subdomain", Str).omit_zero(),
        one(18, "affinity", Msg(&AFFINITY)),
        one(19, "schedulerName", Str).omit_zero(),
        rep(20, "initContainers", Msg(&CONTAINER)),
        one(21, "automountServiceAccountToken", Bool),
        rep(22, "tolerations", Msg(&TOLERATION)),
        rep(23, "hostAliases", Msg(&HOST_ALIAS)),
        one(24, "priorityClassName", Str).omit_zero(),
        one(25, "priority", I32),
        one(26, "dnsConfig", Msg(&POD_DNS_CONFIG)),
        one(27, "shareProcessNamespace", Bool),
        rep(28, "readinessGates", Msg(&POD_READINESS_GATE)),
        one(29, "runtimeClassName", Str),
        one(30, "enableServiceLinks", Bool),
        one(31, "preemptionPolicy", Str),
        map(32, "overhead", Quantity),
        rep(
            33,
            "topologySpreadConstraints",
            Msg(&TOPOLOGY_SPREAD_CONSTRAINT),
        ),
        rep(34, "ephemeralContainers", Msg(&EPHEMERAL_CONTAINER)),
        one(35, "setHostnameAsFQDN", Bool),
        one(36, "os", Msg(&POD_OS)),
        one(37, "hostUsers", Bool),
        rep(38, "schedulingGates", Msg(&POD_SCHEDULING_GATE)),
        rep(39, "resourceClaims", Msg(&POD_RESOURCE_CLAIM)),
        one(40, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        one(41, "hostnameOverride", Str),
        one(43, "schedulingGroup", Msg(&POD_SCHEDULING_GROUP)),
        rep(44, "evictionResponders", Msg(&EVICTION_RESPONDER)),
    ],
);

pub(crate) static POD_STATUS: Message = Message::new(
    "PodStatus",
    &[
        one(1, "phase", Str).omit_zero(),
        rep(2, "conditions", Msg(&POD_CONDITION)),
        one(3, "message", Str).omit_zero(),
        one(4, "reason", Str).omit_zero(),
        one(5, "hostIP", Str).omit_zero(),
        one(6, "podIP", Str).omit_zero(),
        one(7, "startTime", Time),
        rep(8, "containerStatuses", Msg(&CONTAINER_STATUS)),
        one(9, "qosClass", Str).omit_zero(),
        rep(10, "initContainerStatuses", Msg(&CONTAINER_STATUS)),
        one(11, "nominatedNodeName", Str).omit_zero(),
        rep(12, "podIPs", Msg(&POD_IP)),
        rep(13, "ephemeralContainerStatuses", Msg(&CONTAINER_STATUS)),
        one(14, "resize", Str).omit_zero(),
        rep(15, "resourceClaimStatuses", Msg(&POD_RESOURCE_CLAIM_STATUS)),
        rep(16, "hostIPs", Msg(&HOST_IP)),
        one(17, "observedGeneration", I64).omit_zero(),
        one(
            18,
            "extendedResourceClaimStatus",
            Msg(&POD_EXTENDED_RESOURCE_CLAIM_STATUS),
        ),
        map(19, "allocatedResources", Quantity),
        one(20, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        rep(
            21,
            "nodeAllocatableResourceClaimStatuses",
            Msg(&NODE_ALLOCATABLE_RESOURCE_CLAIM_STATUS),
        ),
        rep(22, "volumeHealth", Msg(&POD_VOLUME_HEALTH)),
    ],
);

pub(crate) static POD_TEMPLATE: Message = Message::new(
    "PodTemplate",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "template", Msg(&POD_TEMPLATE_SPEC)),
    ],
);

pub(crate) static POD_TEMPLATE_SPEC: Message = Message::new(
    "PodTemplateSpec",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&POD_SPEC)),
    ],
);

pub(crate) static POD_VOLUME_HEALTH: Message = Message::new(
    "PodVolumeHealth",
    &[
        one(1, "name", Str),
        rep(2, "healthConditions", Msg(&VOLUME_HEALTH_CONDITION)),
        one(3, "lastTransitionTime", Time),
    ],
);

pub(crate) static PORT_STATUS: Message = Message::new(
    "PortStatus",
    &[
        one(1, "port", I32),
        one(2, "protocol", Str),
        one(3, "error", Str),
    ],
);

pub(crate) static PORTWORX_VOLUME_SOURCE: Message = Message::new(
    "PortworxVolumeSource",
    &[
        one(1, "volumeID", Str),
        one(2, "fsType", Str).omit_zero(),
        one(3, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static PREFERRED_SCHEDULING_TERM: Message = Message::new(
    "PreferredSchedulingTerm",
    &[
        one(1, "weight", I32),
        one(2, "preference", Msg(&NODE_SELECTOR_TERM)),
    ],
);

pub(crate) static PROBE: Message = Message::new(
    "Probe",
    &[
        one(1, "handler", Msg(&PROBE_HANDLER)).inline(),
        one(2, "initialDelaySeconds", I32).omit_zero(),
        one(3, "timeoutSeconds", I32).omit_zero(),
        one(4, "periodSeconds", I32).omit_zero(),
        one(5, "successThreshold", I32).omit_zero(),
        one(6, "failureThreshold", I32).omit_zero(),
        one(7, "terminationGracePeriodSeconds", I64),
    ],
);

pub(crate) static PROBE_HANDLER: Message = Message::new(
    "ProbeHandler",
    &[
        one(1, "exec", Msg(&EXEC_ACTION)),
        one(2, "httpGet", Msg(&HTTP_GET_ACTION)),
        one(3, "tcpSocket", Msg(&TCP_SOCKET_ACTION)),
        one(4, "grpc", Msg(&GRPC_ACTION)),
    ],
);

pub(crate) static PROJECTED_VOLUME_SOURCE: Message = Message::new(
    "ProjectedVolumeSource",
    &[
        rep(1, "sources", Msg(&VOLUME_PROJECTION)),
        one(2, "defaultMode", I32),
        one(3, "defaultUser", I64),
    ],
);

pub(crate) static QUOBYTE_VOLUME_SOURCE: Message = Message::new(
    "QuobyteVolumeSource",
    &[
        one(1, "registry", Str),
        one(2, "volume", Str),
        one(3, "readOnly", Bool).omit_zero(),
        one(4, "user", Str).omit_zero(),
        one(5, "group", Str).omit_zero(),
        one(6, "tenant", Str).omit_zero(),
    ],
);

pub(crate) static RBD_PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "RBDPersistentVolumeSource",
    &[
        rep(1, "monitors", Str),
        one(2, "image", Str),
        one(3, "fsType", Str).omit_zero(),
        one(4, "pool", Str).omit_zero(),
        one(5, "user", Str).omit_zero(),
        one(6, "keyring", Str).omit_zero(),
        one(7, "secretRef", Msg(&SECRET_REFERENCE)),
        one(8, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static RBD_VOLUME_SOURCE: Message = Message::new(
    "RBDVolumeSource",
    &[
        rep(1, "monitors", Str),
        one(2, "image", Str),
        one(3, "fsType", Str).omit_zero(),
        one(4, "pool", Str).omit_zero(),
        one(5, "user", Str).omit_zero(),
        one(6, "keyring", Str).omit_zero(),
        one(7, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        one(8, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static REPLICATION_CONTROLLER: Message = Message::new(
    "ReplicationController",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&REPLICATION_CONTROLLER_SPEC)),
        one(3, "status", Msg(&REPLICATION_CONTROLLER_STATUS)),
    ],
);

pub(crate) static REPLICATION_CONTROLLER_CONDITION: Message = Message::new(
    "ReplicationControllerCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastTransitionTime", Time),
        one(4, "reason", Str).omit_zero(),
        one(5, "message", Str).omit_zero(),
    ],
);

pub(crate) static REPLICATION_CONTROLLER_SPEC: Message = Message::new(
    "ReplicationControllerSpec",
    &[
        one(1, "replicas", I32),
        map(2, "selector", Str),
        one(3, "template", Msg(&POD_TEMPLATE_SPEC)),
        one(4, "minReadySeconds", I32).omit_zero(),
    ],
);

pub(crate) static REPLICATION_CONTROLLER_STATUS: Message = Message::new(
    "ReplicationControllerStatus",
    &[
        one(1, "replicas", I32),
        one(2, "fullyLabeledReplicas", I32).omit_zero(),
        one(3, "observedGeneration", I64).omit_zero(),
        one(4, "readyReplicas", I32).omit_zero(),
        one(5, "availableReplicas", I32).omit_zero(),
        rep(6, "conditions", Msg(&REPLICATION_CONTROLLER_CONDITION)),
    ],
);

pub(crate) static RESOURCE_CLAIM: Message = Message::new(
    "ResourceClaim",
    &[one(1, "name", Str), one(2, "request", Str).omit_zero()],
);

pub(crate) static RESOURCE_FIELD_SELECTOR: Message = Message::new(
    "ResourceFieldSelector",
    &[
        one(1, "containerName", Str).omit_zero(),
        one(2, "resource", Str),
        one(3, "divisor", Quantity),
    ],
);

pub(crate) static RESOURCE_HEALTH: Message = Message::new(
    "ResourceHealth",
    &[
        one(1, "resourceID", Str),
        one(2, "health", Str).omit_zero(),
        one(6, "message", Str),
    ],
);

pub(crate) static RESOURCE_QUOTA: Message = Message::new(
    "ResourceQuota",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&RESOURCE_QUOTA_SPEC)),
        one(3, "status", Msg(&RESOURCE_QUOTA_STATUS)),
    ],
);

pub(crate) static RESOURCE_QUOTA_SPEC: Message = Message::new(
    "ResourceQuotaSpec",
    &[
        map(1, "hard", Quantity),
        rep(2, "scopes", Str),
        one(3, "scopeSelector", Msg(&SCOPE_SELECTOR)),
    ],
);

pub(crate) static RESOURCE_QUOTA_STATUS: Message = Message::new(
    "ResourceQuotaStatus",
    &[map(1, "hard", Quantity), map(2, "used", Quantity)],
);

pub(crate) static RESOURCE_REQUIREMENTS: Message = Message::new(
    "ResourceRequirements",
    &[
        map(1, "limits", Quantity),
        map(2, "requests", Quantity),
        rep(3, "claims", Msg(&RESOURCE_CLAIM)),
    ],
);

pub(crate) static RESOURCE_STATUS: Message = Message::new(
    "ResourceStatus",
    &[
        one(1, "name", Str),
        rep(2, "resources", Msg(&RESOURCE_HEALTH)),
    ],
);

pub(crate) static SE_LINUX_OPTIONS: Message = Message::new(
    "SELinuxOptions",
    &[
        one(1, "user", Str).omit_zero(),
        one(2, "role", Str).omit_zero(),
        one(3, "type", Str).omit_zero(),
        one(4, "level", Str).omit_zero(),
    ],
);

pub(crate) static SCALE_IO_PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "ScaleIOPersistentVolumeSource",
    &[
        one(1, "gateway", Str),
        one(2, "system", Str),
        one(3, "secretRef", Msg(&SECRET_REFERENCE)),
        one(4, "sslEnabled", Bool).omit_zero(),
        one(5, "protectionDomain", Str).omit_zero(),
        one(6, "storagePool", Str).omit_zero(),
        one(7, "storageMode", Str).omit_zero(),
        one(8, "volumeName", Str).omit_zero(),
        one(9, "fsType", Str).omit_zero(),
        one(10, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static SCALE_IO_VOLUME_SOURCE: Message = Message::new(
    "ScaleIOVolumeSource",
    &[
        one(1, "gateway", Str),
        one(2, "system", Str),
        one(3, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        one(4, "sslEnabled", Bool).omit_zero(),
        one(5, "protectionDomain", Str).omit_zero(),
        one(6, "storagePool", Str).omit_zero(),
        one(7, "storageMode", Str).omit_zero(),
        one(8, "volumeName", Str).omit_zero(),
        one(9, "fsType", Str).omit_zero(),
        one(10, "readOnly", Bool).omit_zero(),
    ],
);

pub(crate) static SCOPE_SELECTOR: Message = Message::new(
    "ScopeSelector",
    &[rep(
        1,
        "matchExpressions",
        Msg(&SCOPED_RESOURCE_SELECTOR_REQUIREMENT),
    )],
);

pub(crate) static SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Message = Message::new(
    "ScopedResourceSelectorRequirement",
    &[
        one(1, "scopeName", Str),
        one(2, "operator", Str),
        rep(3, "values", Str),
    ],
);

pub(crate) static SECCOMP_PROFILE: Message = Message::new(
    "SeccompProfile",
    &[one(1, "type", Str), one(2, "localhostProfile", Str)],
);

pub(crate) static SECRET: Message = Message::new(
    "Secret",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        map(2, "data", Bytes),
        one(3, "type", Str).omit_zero(),
        map(4, "stringData", Str),
        one(5, "immutable", Bool),
    ],
);

pub(crate) static SECRET_ENV_SOURCE: Message = Message::new(
    "SecretEnvSource",
    &[
        one(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)).inline(),
        one(2, "optional", Bool),
    ],
);

pub(crate) static SECRET_KEY_SELECTOR: Message = Message::new(
    "SecretKeySelector",
    &[
        one(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)).inline(),
        one(2, "key", Str),
        one(3, "optional", Bool),
    ],
);

pub(crate) static SECRET_PROJECTION: Message = Message::new(
    "SecretProjection",
    &[
        one(1, "localObjectReference", Msg(&LOCAL_OBJECT_REFERENCE)).inline(),
        rep(2, "items", Msg(&KEY_TO_PATH)),
        one(4, "optional", Bool),
    ],
);

pub(crate) static SECRET_REFERENCE: Message = Message::new(
    "SecretReference",
    &[
        one(1, "name", Str).omit_zero(),
        one(2, "namespace", Str).omit_zero(),
    ],
);

pub(crate) static SECRET_VOLUME_SOURCE: Message = Message::new(
    "SecretVolumeSource",
    &[
        one(1, "secretName", Str).omit_zero(),
        rep(2, "items", Msg(&KEY_TO_PATH)),
        one(3, "defaultMode", I32),
        one(4, "optional", Bool),
        one(5, "defaultUser", I64),
    ],
);

pub(crate) static SECURITY_CONTEXT: Message = Message::new(
    "SecurityContext",
    &[
        one(1, "capabilities", Msg(&CAPABILITIES)),
        one(2, "privileged", Bool),
        one(3, "seLinuxOptions", Msg(&SE_LINUX_OPTIONS)),
        one(4, "runAsUser", I64),
        one(5, "runAsNonRoot", Bool),
        one(6, "readOnlyRootFilesystem", Bool),
        one(7, "allowPrivilegeEscalation", Bool),
        one(8, "runAsGroup", I64),
        one(9, "procMount", Str),
        one(10, "windowsOptions", Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        one(11, "seccompProfile", Msg(&SECCOMP_PROFILE)),
        one(12, "appArmorProfile", Msg(&APP_ARMOR_PROFILE)),
    ],
);

pub(crate) static SERVICE: Message = Message::new(
    "Service",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        one(2, "spec", Msg(&SERVICE_SPEC)),
        one(3, "status", Msg(&SERVICE_STATUS)),
    ],
);

pub(crate) static SERVICE_ACCOUNT: Message = Message::new(
    "ServiceAccount",
    &[
        one(1, "metadata", Msg(&super::meta::OBJECT_META)),
        rep(2, "secrets", Msg(&OBJECT_REFERENCE)),
        rep(3, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        one(4, "automountServiceAccountToken", Bool),
    ],
);

pub(crate) static SERVICE_ACCOUNT_TOKEN_PROJECTION: Message = Message::new(
    "ServiceAccountTokenProjection",
    &[
        one(1, "audience", Str).omit_zero(),
        one(2, "expirationSeconds", I64),
        one(3, "path", Str),
        one(4, "user", I64),
    ],
);

pub(crate) static SERVICE_PORT: Message = Message::new(
    "ServicePort",
    &[
        one(1, "name", Str).omit_zero(),
        one(2, "protocol", Str).omit_zero(),
        one(3, "port", I32),
        one(4, "targetPort", IntOrString),
        one(5, "nodePort", I32).omit_zero(),
        one(6, "appProtocol", Str),
    ],
);

pub(crate) static SERVICE_SPEC: Message = Message::new(
    "ServiceSpec",
    &[
        rep(1, "ports", Msg(&SERVICE_PORT)),
        map(2, "selector", Str),
        one(3, "clusterIP", Str).omit_zero(),
        one(4, "type", Str).omit_zero(),
        rep(5, "externalIPs", Str),
        one(7, "sessionAffinity", Str).omit_zero(),
        one(8, "loadBalancerIP", Str).omit_zero(),
        rep(9, "loadBalancerSourceRanges", Str),
        one(10, "externalName", Str).omit_zero(),
        one(11, "externalTrafficPolicy", Str).omit_zero(),
        one(12, "healthCheckNodePort", I32).omit_zero(),
        one(13, "publishNotReadyAddresses", Bool).omit_zero(),
        one(14, "sessionAffinityConfig", Msg(&SESSION_AFFINITY_CONFIG)),
        one(17, "ipFamilyPolicy", Str),
        rep(18, "clusterIPs", Str),
        rep(19, "ipFamilies", Str),
        one(20, "allocateLoadBalancerNodePorts", Bool),
        one(21, "loadBalancerClass", Str),
        one(22, "internalTrafficPolicy", Str),
        one(23, "trafficDistribution", Str),
    ],
);

pub(crate) static SERVICE_STATUS: Message = Message::new(
    "ServiceStatus",
    &[
        one(1, "loadBalancer", Msg(&LOAD_BALANCER_STATUS)),
        rep(2, "conditions", Msg(&super::meta::CONDITION)),
    ],
);

pub(crate) static SESSION_AFFINITY_CONFIG: Message = Message::new(
    "SessionAffinityConfig",
    &[one(1, "clientIP", Msg(&CLIENT_IP_CONFIG))],
);

pub(crate) static SLEEP_ACTION: Message = Message::new("SleepAction", &[one(1, "seconds", I64)]);

pub(crate) static STORAGE_OS_PERSISTENT_VOLUME_SOURCE: Message = Message::new(
    "StorageOSPersistentVolumeSource",
    &[
        one(1, "volumeName", Str).omit_zero(),
        one(2, "volumeNamespace", Str).omit_zero(),
        one(3, "fsType", Str).omit_zero(),
        one(4, "readOnly", Bool).omit_zero(),
        one(5, "secretRef", Msg(&OBJECT_REFERENCE)),
    ],
);

pub(crate) static STORAGE_OS_VOLUME_SOURCE: Message = Message::new(
    "StorageOSVolumeSource",
    &[
        one(1, "volumeName", Str).omit_zero(),
        one(2, "volumeNamespace", Str).omit_zero(),
        one(3, "fsType", Str).omit_zero(),
        one(4, "readOnly", Bool).omit_zero(),
        one(5, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
);

pub(crate) static SYSCTL: Message =
    Message::new("Sysctl", &[one(1, "name", Str), one(2, "value", Str)]);

pub(crate) static TCP_SOCKET_ACTION: Message = Message::new(
    "TCPSocketAction",
    &[one(1, "port", IntOrString), one(2, "host", Str).omit_zero()],
);

pub(crate) static TAINT: Message = Message::new(
    "Taint",
    &[
        one(1, "key", Str),
        one(2, "value", Str).omit_zero(),
        one(3, "effect", Str),
        one(4, "timeAdded", Time),
    ],
);

pub(crate) static TOLERATION: Message = Message::new(
    "Toleration",
    &[
        one(1, "key", Str).omit_zero(),
        one(2, "operator", Str).omit_zero(),
        one(3, "value", Str).omit_zero(),
        one(4, "effect", Str).omit_zero(),
        one(5, "tolerationSeconds", I64),
    ],
);

pub(crate) static TOPOLOGY_SPREAD_CONSTRAINT: Message = Message::new(
    "TopologySpreadConstraint",
    &[
        one(1, "maxSkew", I32),
        one(2, "topologyKey", Str),
        one(3, "whenUnsatisfiable", Str),
        one(4, "labelSelector", Msg(&super::meta::LABEL_SELECTOR)),
        one(5, "minDomains", I32),
        one(6, "nodeAffinityPolicy", Str),
        one(7, "nodeTaintsPolicy", Str),
        rep(8, "matchLabelKeys", Str),
    ],
);

pub(crate) static TYPED_LOCAL_OBJECT_REFERENCE: Message = Message::new(
    "TypedLocalObjectReference",
    &[
        one(1, "apiGroup", Str),
        one(2, "kind", Str),
        one(3, "name", Str),
    ],
);

pub(crate) static TYPED_OBJECT_REFERENCE: Message = Message::new(
    "TypedObjectReference",
    &[
        one(1, "apiGroup", Str),
        one(2, "kind", Str),
        one(3, "name", Str),
        one(4, "namespace", Str),
    ],
);

pub(crate) static VOLUME: Message = Message::new(
    "Volume",
    &[
        one(1, "name", Str),
        one(2, "volumeSource", Msg(&VOLUME_SOURCE)).inline(),
    ],
);

pub(crate) static VOLUME_DEVICE: Message = Message::new(
    "VolumeDevice",
    &[one(1, "name", Str), one(2, "devicePath", Str)],
);

pub(crate) static VOLUME_HEALTH_CONDITION: Message = Message::new(
    "VolumeHealthCondition",
    &[
        one(1, "status", Str),
        one(2, "reason", Str),
        one(3, "message", Str).omit_zero(),
    ],
);

pub(crate) static VOLUME_HEALTH_STATUS: Message = Message::new(
    "VolumeHealthStatus",
    &[
        rep(1, "healthConditions", Msg(&VOLUME_HEALTH_CONDITION)),
        one(2, "lastTransitionTime", Time),
    ],
);

pub(crate) static VOLUME_MOUNT: Message = Message::new(
    "VolumeMount",
    &[
        one(1, "name", Str),
        one(2, "readOnly", Bool).omit_zero(),
        one(3, "mountPath", Str),
        one(4, "subPath", Str).omit_zero(),
        one(5, "mountPropagation", Str),
        one(6, "subPathExpr", Str).omit_zero(),
        one(7, "recursiveReadOnly", Str),
        rep(8, "bindMountOptions", Str),
    ],
);

pub(crate) static VOLUME_MOUNT_STATUS: Message = Message::new(
    "VolumeMountStatus",
    &[
        one(1, "name", Str),
        one(2, "mountPath", Str),
        one(3, "readOnly", Bool).omit_zero(),
        one(4, "recursiveReadOnly", Str),
        one(5, "volumeStatus", Msg(&VOLUME_STATUS)),
    ],
);

pub(crate) static VOLUME_NODE_AFFINITY: Message = Message::new(
    "VolumeNodeAffinity",
    &[one(1, "required", Msg(&NODE_SELECTOR))],
);

pub(crate) static VOLUME_PROJECTION: Message = Message::new(
    "VolumeProjection",
    &[
        one(1, "secret", Msg(&SECRET_PROJECTION)),
        one(2, "downwardAPI", Msg(&DOWNWARD_API_PROJECTION)),
        one(3, "configMap", Msg(&CONFIG_MAP_PROJECTION)),
        one(
            4,
            "serviceAccountToken",
            Msg(&SERVICE_ACCOUNT_TOKEN_PROJECTION),
        ),
        one(
            5,
            "clusterTrustBundle",
            Msg(&CLUSTER_TRUST_BUNDLE_PROJECTION),
        ),
        one(6, "podCertificate", Msg(&POD_CERTIFICATE_PROJECTION)),
    ],
);

pub(crate) static VOLUME_RESOURCE_REQUIREMENTS: Message = Message::new(
    "VolumeResourceRequirements",
    &[map(1, "limits", Quantity), map(2, "requests", Quantity)],
);

pub(crate) static VOLUME_SOURCE: Message = Message::new(
    "VolumeSource",
    &[
        one(1, "hostPath", Msg(&HOST_PATH_VOLUME_SOURCE)),
        one(2, "emptyDir", Msg(&EMPTY_DIR_VOLUME_SOURCE)),
        one(
            3,
            "gcePersistentDisk",
            Msg(&GCE_PERSISTENT_DISK_VOLUME_SOURCE),
        ),
        one(
            4,
            "awsElasticBlockStore",
            Msg(&AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE),
        ),
        one(5, "gitRepo", Msg(&GIT_REPO_VOLUME_SOURCE)),
        one(6, "secret", Msg(&SECRET_VOLUME_SOURCE)),
        one(7, "nfs", Msg(&NFS_VOLUME_SOURCE)),
        one(8, "iscsi", Msg(&ISCSI_VOLUME_SOURCE)),
        one(9, "glusterfs", Msg(&GLUSTERFS_VOLUME_SOURCE)),
        one(
            10,
            "persistentVolumeClaim",
            Msg(&PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE),
        ),
        one(11, "rbd", Msg(&RBD_VOLUME_SOURCE)),
        one(12, "flexVolume", Msg(&FLEX_VOLUME_SOURCE)),
        one(13, "cinder", Msg(&CINDER_VOLUME_SOURCE)),
        one(14, "cephfs", Msg(&CEPH_FS_VOLUME_SOURCE)),
        one(15, "flocker", Msg(&FLOCKER_VOLUME_SOURCE)),
        one(16, "downwardAPI", Msg(&DOWNWARD_API_VOLUME_SOURCE)),
        one(17, "fc", Msg(&FC_VOLUME_SOURCE)),
        one(18, "azureFile", Msg(&AZURE_FILE_VOLUME_SOURCE)),
        one(19, "configMap", Msg(&CONFIG_MAP_VOLUME_SOURCE)),
        one(
            20,
            "vsphereVolume",
            Msg(&VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE),
        ),
        one(21, "quobyte", Msg(&QUOBYTE_VOLUME_SOURCE)),
        one(22, "azureDisk", Msg(&AZURE_DISK_VOLUME_SOURCE)),
        one(
            23,
            "photonPersistentDisk",
            Msg(&PHOTON_PERSISTENT_DISK_VOLUME_SOURCE),
        ),
        one(24, "portworxVolume", Msg(&PORTWORX_VOLUME_SOURCE)),
        one(25, "scaleIO", Msg(&SCALE_IO_VOLUME_SOURCE)),
        one(26, "projected", Msg(&PROJECTED_VOLUME_SOURCE)),
        one(27, "storageos", Msg(&STORAGE_OS_VOLUME_SOURCE)),
        one(28, "csi", Msg(&CSI_VOLUME_SOURCE)),
        one(29, "ephemeral", Msg(&EPHEMERAL_VOLUME_SOURCE)),
        one(30, "image", Msg(&IMAGE_VOLUME_SOURCE)),
    ],
);

pub(crate) static VOLUME_STATUS: Message = Message::new(
    "VolumeStatus",
    &[one(1, "image", Msg(&IMAGE_VOLUME_STATUS))],
);

pub(crate) static VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE: Message = Message::new(
    "VsphereVirtualDiskVolumeSource",
    &[
        one(1, "volumePath", Str),
        one(2, "fsType", Str).omit_zero(),
        one(3, "storagePolicyName", Str).omit_zero(),
        one(4, "storagePolicyID", Str).omit_zero(),
    ],
);

pub(crate) static WEIGHTED_POD_AFFINITY_TERM: Message = Message::new(
    "WeightedPodAffinityTerm",
    &[
        one(1, "weight", I32),
        one(2, "podAffinityTerm", Msg(&POD_AFFINITY_TERM)),
    ],
);

pub(crate) static WINDOWS_SECURITY_CONTEXT_OPTIONS: Message = Message::new(
    "WindowsSecurityContextOptions",
    &[
        one(1, "gmsaCredentialSpecName", Str),
        one(2, "gmsaCredentialSpec", Str),
        one(3, "runAsUserName", Str),
        one(4, "hostProcess", Bool),
    ],
);
