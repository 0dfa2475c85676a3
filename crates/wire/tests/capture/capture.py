#!/usr/bin/env python3
"""Captures the protobuf request bodies the real kubectl sends.

Starts a plain-HTTP fake API server on 127.0.0.1 (discovery, and just enough
answers for each command to finish), writes a temporary kubeconfig pointing
at it, runs each kubectl command below and saves every
`application/vnd.kubernetes.protobuf` body it receives to
`tests/fixtures/<name>.pb` (`<name>-<n>.pb` when a command sends several).
For `kubectl create …` commands it also saves kubectl's own JSON for the same
object (`--dry-run=client -o json`) as `<name>.kubectl.json`.

Run from crates/wire:  python3 tests/capture/capture.py [path/to/kubectl]
Default kubectl: /usr/lib/google-cloud-sdk/bin/kubectl.1.32 (the
/usr/bin/kubectl dispatcher would pick a version from /version).
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KUBECTL = sys.argv[1] if len(sys.argv) > 1 else '/usr/lib/google-cloud-sdk/bin/kubectl.1.32'
FIXTURES = os.environ.get('FIXTURES') or os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures')
PROTOBUF = 'application/vnd.kubernetes.protobuf'

# The commands, each with the fixture name its bodies are saved under.
COMMANDS = [
    ('configmap', ['create', 'configmap', 'x', '--from-literal=a=b', '--from-literal=empty=']),
    ('secret', ['create', 'secret', 'generic', 's', '--from-literal=password=hunter2', '--type=Opaque']),
    ('namespace', ['create', 'namespace', 'prod']),
    ('serviceaccount', ['create', 'serviceaccount', 'robot']),
    ('deployment', ['create', 'deployment', 'web', '--image=busybox', '--replicas=2', '--port=8080',
                    '--', 'sleep', '3600']),
    ('pod', ['run', 'p', '--image=busybox', '--labels=app=p,tier=x', '--env=A=1', '--port=80',
             '--restart=Never', '--', 'sleep', '1']),
    ('job', ['create', 'job', 'j', '--image=busybox', '--', 'echo', 'hi']),
    ('job-from-cronjob', ['create', 'job', 'j2', '--from=cronjob/c']),
    ('job-from-rich-cronjob', ['create', 'job', 'rich-1', '--from=cronjob/rich']),
    ('debug-copy-pod', ['debug', 'rich', '--copy-to=rich-copy', '--image=busybox', '--container=dbg',
                        '--share-processes', '--profile=general']),
    ('cronjob', ['create', 'cronjob', 'c', '--image=busybox', '--schedule=*/5 * * * *', '--', 'date']),
    ('role', ['create', 'role', 'reader', '--verb=get,list', '--resource=pods,deployments.apps',
              '--resource-name=a']),
    ('clusterrole', ['create', 'clusterrole', 'agg', '--aggregation-rule=team=a']),
    ('rolebinding', ['create', 'rolebinding', 'rb', '--role=reader', '--user=alice',
                     '--serviceaccount=default:robot', '--group=devs']),
    ('clusterrolebinding', ['create', 'clusterrolebinding', 'crb', '--clusterrole=view', '--user=bob']),
    ('service', ['create', 'service', 'clusterip', 'svc', '--tcp=80:8080', '--tcp=443']),
    ('quota', ['create', 'quota', 'q', '--hard=cpu=1,memory=1Gi,pods=10', '--scopes=NotTerminating']),
    ('priorityclass', ['create', 'priorityclass', 'high', '--value=1000', '--global-default=false',
                       '--description=important', '--preemption-policy=Never']),
    ('pdb', ['create', 'poddisruptionbudget', 'pdb', '--selector=app=web', '--min-available=50%']),
    ('ingress', ['create', 'ingress', 'ing', '--class=nginx', '--rule=foo.com/bar*=svc:8080,tls=my-cert',
                 '--annotation=a=b']),
    ('can-i', ['auth', 'can-i', 'get', 'pods']),
    ('can-i-subresource', ['auth', 'can-i', 'create', 'deployments.apps', '--subresource=scale', '-n', 'prod']),
    ('can-i-nonresource', ['auth', 'can-i', 'get', '/logs']),
    ('can-i-list', ['auth', 'can-i', '--list', '-n', 'prod']),
    ('whoami', ['auth', 'whoami']),
    ('token', ['create', 'token', 'robot', '--duration=10m', '--audience=api', '--bound-object-kind=Pod',
               '--bound-object-name=p', '--bound-object-uid=1234']),
    ('certificate-approve', ['certificate', 'approve', 'csr1']),
    ('docker-registry', ['create', 'secret', 'docker-registry', 'pull', '--docker-server=r.example',
                         '--docker-username=u', '--docker-password=p']),
    ('debug-node', ['debug', 'node/n1', '--image=busybox', '--profile=general']),
    ('autoscale', ['autoscale', 'deployment', 'web', '--min=2', '--max=5', '--cpu-percent=80']),
    # drain evicts in JSON (kubectl 1.32 and 1.33); without evictions it
    # deletes pods with a protobuf DeleteOptions body.
    ('drain', ['drain', 'n1', '--force', '--ignore-daemonsets', '--grace-period=5', '--timeout=20s']),
    ('drain-delete', ['drain', 'n1', '--force', '--ignore-daemonsets', '--grace-period=5', '--timeout=20s',
                      '--disable-eviction']),
]

CORE = [('configmaps', 'ConfigMap', True), ('secrets', 'Secret', True), ('namespaces', 'Namespace', False),
        ('serviceaccounts', 'ServiceAccount', True), ('serviceaccounts/token', 'TokenRequest', True),
        ('services', 'Service', True), ('pods', 'Pod', True), ('nodes', 'Node', False),
        ('resourcequotas', 'ResourceQuota', True)]
GROUPS = {
    'apps/v1': [('deployments', 'Deployment', True), ('deployments/scale', 'Scale', True)],
    'batch/v1': [('jobs', 'Job', True), ('cronjobs', 'CronJob', True)],
    'rbac.authorization.k8s.io/v1': [('roles', 'Role', True), ('rolebindings', 'RoleBinding', True),
                                     ('clusterroles', 'ClusterRole', False),
                                     ('clusterrolebindings', 'ClusterRoleBinding', False)],
    'policy/v1': [('poddisruptionbudgets', 'PodDisruptionBudget', True)],
    'networking.k8s.io/v1': [('ingresses', 'Ingress', True)],
    'autoscaling/v1': [('horizontalpodautoscalers', 'HorizontalPodAutoscaler', True)],
    'scheduling.k8s.io/v1': [('priorityclasses', 'PriorityClass', False)],
    'authorization.k8s.io/v1': [('selfsubjectaccessreviews', 'SelfSubjectAccessReview', False),
                                ('selfsubjectrulesreviews', 'SelfSubjectRulesReview', False)],
    'authentication.k8s.io/v1': [('selfsubjectreviews', 'SelfSubjectReview', False)],
    'certificates.k8s.io/v1': [('certificatesigningrequests', 'CertificateSigningRequest', False),
                               ('certificatesigningrequests/approval', 'CertificateSigningRequest', False)],
}

NODE = {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': 'n1', 'resourceVersion': '1'}, 'spec': {}}
POD = {'apiVersion': 'v1', 'kind': 'Pod',
       'metadata': {'name': 'web-1', 'namespace': 'default', 'uid': 'u1', 'resourceVersion': '1',
                    'ownerReferences': [{'apiVersion': 'apps/v1', 'kind': 'ReplicaSet', 'name': 'web',
                                         'uid': 'rs1', 'controller': True}]},
       'spec': {'nodeName': 'n1', 'containers': [{'name': 'c', 'image': 'busybox'}]}}
DEPLOYMENT = {'apiVersion': 'apps/v1', 'kind': 'Deployment',
              'metadata': {'name': 'web', 'namespace': 'default', 'resourceVersion': '1'},
              'spec': {'replicas': 1, 'selector': {'matchLabels': {'app': 'web'}},
                       'template': {'metadata': {'labels': {'app': 'web'}},
                                    'spec': {'containers': [{'name': 'c', 'image': 'busybox'}]}}}}
CRONJOB = {'apiVersion': 'batch/v1', 'kind': 'CronJob',
           'metadata': {'name': 'c', 'namespace': 'default', 'uid': 'cj1', 'resourceVersion': '1'},
           'spec': {'schedule': '*/5 * * * *', 'jobTemplate': {
               'metadata': {'labels': {'team': 'a'}},
               'spec': {'backoffLimit': 2, 'template': {'spec': {
                   'restartPolicy': 'OnFailure',
                   'containers': [{'name': 'c', 'image': 'busybox', 'args': ['date'],
                                   'resources': {'limits': {'cpu': '500m', 'memory': '64Mi'}}}]}}}}}}
# A pod spec that touches most PodSpec fields, served by GET so that kubectl
# sends it back in protobuf (create job --from=cronjob/rich, debug --copy-to).
RICH_POD_SPEC = {
    'initContainers': [{'name': 'init', 'image': 'busybox', 'command': ['true'], 'restartPolicy': 'Always'}],
    'containers': [{
        'name': 'main', 'image': 'nginx:1.27', 'imagePullPolicy': 'IfNotPresent', 'workingDir': '/w',
        'args': ['-g', 'daemon off;'], 'stdin': True, 'tty': True,
        'terminationMessagePath': '/dev/termination-log', 'terminationMessagePolicy': 'FallbackToLogsOnError',
        'ports': [{'name': 'http', 'containerPort': 80, 'protocol': 'TCP', 'hostPort': 8080, 'hostIP': '0.0.0.0'}],
        'env': [
            {'name': 'PLAIN', 'value': 'v'},
            {'name': 'NODE', 'valueFrom': {'fieldRef': {'apiVersion': 'v1', 'fieldPath': 'spec.nodeName'}}},
            {'name': 'CPU', 'valueFrom': {'resourceFieldRef': {'containerName': 'main', 'resource': 'limits.cpu',
                                                               'divisor': '1m'}}},
            {'name': 'CM', 'valueFrom': {'configMapKeyRef': {'name': 'cm', 'key': 'k', 'optional': True}}},
            {'name': 'SEC', 'valueFrom': {'secretKeyRef': {'name': 's', 'key': 'k', 'optional': False}}},
        ],
        'envFrom': [{'prefix': 'CM_', 'configMapRef': {'name': 'cm'}}, {'secretRef': {'name': 's', 'optional': True}}],
        'resources': {'limits': {'cpu': '500m', 'memory': '128Mi'}, 'requests': {'cpu': '100m', 'memory': '64Mi'}},
        'volumeMounts': [{'name': 'cache', 'mountPath': '/cache', 'readOnly': True, 'subPath': 'a',
                          'mountPropagation': 'HostToContainer'},
                         {'name': 'pvc', 'mountPath': '/data', 'subPathExpr': '$(NODE)'}],
        'livenessProbe': {'httpGet': {'path': '/healthz', 'port': 'http', 'scheme': 'HTTPS',
                                      'httpHeaders': [{'name': 'X-A', 'value': 'b'}]},
                          'initialDelaySeconds': 3, 'periodSeconds': 10, 'timeoutSeconds': 2,
                          'successThreshold': 1, 'failureThreshold': 5, 'terminationGracePeriodSeconds': 7},
        'readinessProbe': {'tcpSocket': {'port': 80}, 'periodSeconds': 5},
        'startupProbe': {'grpc': {'port': 9090, 'service': 'health'}},
        'lifecycle': {'postStart': {'exec': {'command': ['sh', '-c', 'echo hi']}},
                      'preStop': {'sleep': {'seconds': 5}}},
        'securityContext': {'capabilities': {'add': ['NET_BIND_SERVICE'], 'drop': ['ALL']}, 'privileged': False,
                            'runAsUser': 1000, 'runAsGroup': 1000, 'runAsNonRoot': True,
                            'readOnlyRootFilesystem': True, 'allowPrivilegeEscalation': False,
                            'seccompProfile': {'type': 'RuntimeDefault'}, 'procMount': 'Default'},
    }],
    'volumes': [
        {'name': 'cache', 'emptyDir': {'medium': 'Memory', 'sizeLimit': '1Gi'}},
        {'name': 'cfg', 'configMap': {'name': 'cm', 'items': [{'key': 'k', 'path': 'p', 'mode': 0o400}],
                                      'defaultMode': 0o644, 'optional': True}},
        {'name': 'sec', 'secret': {'secretName': 's', 'defaultMode': 0o400}},
        {'name': 'host', 'hostPath': {'path': '/var/log', 'type': 'Directory'}},
        {'name': 'pvc', 'persistentVolumeClaim': {'claimName': 'data', 'readOnly': True}},
        {'name': 'down', 'downwardAPI': {'items': [{'path': 'labels', 'fieldRef': {'fieldPath': 'metadata.labels'}}]}},
        {'name': 'proj', 'projected': {'defaultMode': 0o440, 'sources': [
            {'serviceAccountToken': {'audience': 'vault', 'expirationSeconds': 3600, 'path': 'token'}},
            {'configMap': {'name': 'cm', 'items': [{'key': 'k', 'path': 'k'}]}},
            {'secret': {'name': 's'}},
            {'downwardAPI': {'items': [{'path': 'cpu', 'resourceFieldRef': {'containerName': 'main',
                                                                            'resource': 'requests.cpu'}}]}}]}},
    ],
    'restartPolicy': 'OnFailure', 'terminationGracePeriodSeconds': 45, 'activeDeadlineSeconds': 600,
    'dnsPolicy': 'ClusterFirstWithHostNet', 'nodeSelector': {'disk': 'ssd'},
    'serviceAccountName': 'robot', 'automountServiceAccountToken': False, 'hostNetwork': False,
    'shareProcessNamespace': True, 'hostname': 'h', 'subdomain': 'sub', 'schedulerName': 'default-scheduler',
    'priorityClassName': 'high', 'priority': 1000, 'preemptionPolicy': 'Never', 'enableServiceLinks': False,
    'runtimeClassName': 'runc', 'setHostnameAsFQDN': False, 'hostUsers': False,
    'securityContext': {'runAsUser': 1000, 'runAsGroup': 3000, 'fsGroup': 2000, 'supplementalGroups': [4000],
                        'fsGroupChangePolicy': 'OnRootMismatch', 'sysctls': [{'name': 'net.ipv4.ip_local_port_range',
                                                                             'value': '1024 65535'}],
                        'seccompProfile': {'type': 'Localhost', 'localhostProfile': 'p.json'}},
    'imagePullSecrets': [{'name': 'pull'}],
    'tolerations': [{'key': 'k', 'operator': 'Equal', 'value': 'v', 'effect': 'NoExecute', 'tolerationSeconds': 30}],
    'hostAliases': [{'ip': '10.0.0.1', 'hostnames': ['a', 'b']}],
    'dnsConfig': {'nameservers': ['1.1.1.1'], 'searches': ['svc'], 'options': [{'name': 'ndots', 'value': '2'}]},
    'readinessGates': [{'conditionType': 'example.com/ready'}],
    'topologySpreadConstraints': [{'maxSkew': 1, 'topologyKey': 'zone', 'whenUnsatisfiable': 'DoNotSchedule',
                                   'labelSelector': {'matchLabels': {'app': 'rich'}}, 'minDomains': 2,
                                   'nodeAffinityPolicy': 'Honor', 'matchLabelKeys': ['pod-template-hash']}],
    'affinity': {
        'nodeAffinity': {
            'requiredDuringSchedulingIgnoredDuringExecution': {'nodeSelectorTerms': [
                {'matchExpressions': [{'key': 'zone', 'operator': 'In', 'values': ['a', 'b']}],
                 'matchFields': [{'key': 'metadata.name', 'operator': 'NotIn', 'values': ['n9']}]}]},
            'preferredDuringSchedulingIgnoredDuringExecution': [
                {'weight': 10, 'preference': {'matchExpressions': [{'key': 'gpu', 'operator': 'Exists'}]}}]},
        'podAffinity': {'requiredDuringSchedulingIgnoredDuringExecution': [
            {'labelSelector': {'matchExpressions': [{'key': 'app', 'operator': 'In', 'values': ['db']}]},
             'topologyKey': 'kubernetes.io/hostname', 'namespaces': ['data'],
             'namespaceSelector': {'matchLabels': {'team': 'a'}}}]},
        'podAntiAffinity': {'preferredDuringSchedulingIgnoredDuringExecution': [
            {'weight': 100, 'podAffinityTerm': {'labelSelector': {'matchLabels': {'app': 'rich'}},
                                                'topologyKey': 'zone'}}]},
    },
}
RICH_CRONJOB = {'apiVersion': 'batch/v1', 'kind': 'CronJob',
                'metadata': {'name': 'rich', 'namespace': 'default', 'uid': 'cj2', 'resourceVersion': '1'},
                'spec': {'schedule': '0 * * * *', 'jobTemplate': {
                    'metadata': {'labels': {'app': 'rich'}, 'annotations': {'a': 'b'}},
                    'spec': {'parallelism': 2, 'completions': 4, 'completionMode': 'Indexed', 'backoffLimit': 3,
                             'backoffLimitPerIndex': 1, 'maxFailedIndexes': 2, 'activeDeadlineSeconds': 900,
                             'ttlSecondsAfterFinished': 60, 'suspend': False, 'podReplacementPolicy': 'Failed',
                             'manualSelector': False,
                             'podFailurePolicy': {'rules': [
                                 {'action': 'FailJob', 'onExitCodes': {'containerName': 'main', 'operator': 'In',
                                                                       'values': [42]}},
                                 {'action': 'Ignore', 'onPodConditions': [{'type': 'DisruptionTarget',
                                                                           'status': 'True'}]}]},
                             'successPolicy': {'rules': [{'succeededIndexes': '0-2', 'succeededCount': 2}]},
                             'template': {'metadata': {'labels': {'app': 'rich'}}, 'spec': RICH_POD_SPEC}}}}}
RICH_POD = {'apiVersion': 'v1', 'kind': 'Pod',
            'metadata': {'name': 'rich', 'namespace': 'default', 'uid': 'p2', 'resourceVersion': '1',
                         'labels': {'app': 'rich'}},
            'spec': dict(RICH_POD_SPEC, restartPolicy='Always', nodeName='n1')}
CSR = {'apiVersion': 'certificates.k8s.io/v1', 'kind': 'CertificateSigningRequest',
       'metadata': {'name': 'csr1', 'resourceVersion': '1'},
       'spec': {'request': 'LS0tLS0=', 'signerName': 'kubernetes.io/kube-apiserver-client',
                'usages': ['client auth'], 'username': 'alice'},
       'status': {}}


def resources(items):
    out = []
    for name, kind, namespaced in items:
        r = {'name': name, 'singularName': '' if '/' in name else kind.lower(), 'namespaced': namespaced,
             'kind': kind, 'verbs': ['create', 'get', 'list', 'update', 'patch', 'delete']}
        out.append(r)
    return out


def envelope_kind(body):
    """(apiVersion, kind) from a protobuf envelope: enough to echo an answer."""
    def fields(buf):
        i = 0
        while i < len(buf):
            key, i = varint(buf, i)
            if key & 7 == 2:
                n, i = varint(buf, i)
                yield key >> 3, buf[i:i + n]
                i += n
            elif key & 7 == 0:
                _, i = varint(buf, i)
            else:
                return

    def varint(buf, i):
        shift = value = 0
        while True:
            b = buf[i]
            i += 1
            value |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                return value, i

    meta = dict(fields(body[4:])).get(1, b'')
    tm = dict(fields(meta))
    return tm.get(1, b'').decode(), tm.get(2, b'').decode()


class Handler(BaseHTTPRequestHandler):
    captured = []

    def log_message(self, *args):
        pass

    def send_json(self, obj, code=200):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split('?')[0]
        if path == '/version':
            return self.send_json({'major': '1', 'minor': '32', 'gitVersion': 'v1.32.0'})
        if path == '/api':
            return self.send_json({'kind': 'APIVersions', 'versions': ['v1']})
        if path == '/apis':
            groups = []
            for gv in GROUPS:
                g, v = gv.split('/')
                groups.append({'name': g, 'versions': [{'groupVersion': gv, 'version': v}],
                               'preferredVersion': {'groupVersion': gv, 'version': v}})
            return self.send_json({'kind': 'APIGroupList', 'apiVersion': 'v1', 'groups': groups})
        if path == '/api/v1':
            items = resources(CORE)
            items.append({'name': 'pods/eviction', 'singularName': '', 'namespaced': True, 'group': 'policy',
                          'version': 'v1', 'kind': 'Eviction', 'verbs': ['create']})
            return self.send_json({'kind': 'APIResourceList', 'groupVersion': 'v1', 'resources': items})
        for gv, items in GROUPS.items():
            if path == '/apis/' + gv:
                return self.send_json({'kind': 'APIResourceList', 'groupVersion': gv,
                                       'resources': resources(items)})
        if path == '/api/v1/nodes/n1':
            return self.send_json(NODE)
        if path == '/api/v1/pods':
            return self.send_json({'apiVersion': 'v1', 'kind': 'PodList', 'metadata': {}, 'items': [POD]})
        if path == '/api/v1/namespaces/default/pods/rich':
            return self.send_json(RICH_POD)
        if path.startswith('/api/v1/namespaces/default/pods/'):
            # Evicted: drain waits until the pod is gone.
            return self.send_json({'apiVersion': 'v1', 'kind': 'Status', 'status': 'Failure',
                                   'reason': 'NotFound', 'code': 404}, 404)
        if path == '/apis/apps/v1/namespaces/default/deployments/web':
            return self.send_json(DEPLOYMENT)
        if path == '/apis/batch/v1/namespaces/default/cronjobs/rich':
            return self.send_json(RICH_CRONJOB)
        if path == '/apis/batch/v1/namespaces/default/cronjobs/c':
            return self.send_json(CRONJOB)
        if path == '/apis/certificates.k8s.io/v1/certificatesigningrequests/csr1':
            return self.send_json(CSR)
        self.send_json({'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'reason': 'NotFound',
                        'code': 404}, 404)

    def do_PATCH(self):
        self.rfile.read(int(self.headers.get('Content-Length', 0)))
        path = self.path.split('?')[0]
        if path == '/api/v1/nodes/n1':
            return self.send_json(dict(NODE, spec={'unschedulable': True}))
        self.send_json({'kind': 'Status', 'code': 404}, 404)

    def do_DELETE(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0) or 0))
        self.captured.append((self.command, self.path, self.headers.get('Content-Type', ''), body))
        self.send_json({'apiVersion': 'v1', 'kind': 'Status', 'status': 'Success'})

    def do_PUT(self):
        self.do_POST()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        ctype = self.headers.get('Content-Type', '')
        self.captured.append((self.command, self.path, ctype, body))
        if not ctype.startswith(PROTOBUF):
            # kubectl 1.32's run and drain still send JSON: echo it.
            obj = json.loads(body or b'{}')
            if obj.get('kind') == 'Eviction':
                obj = {'apiVersion': 'v1', 'kind': 'Status', 'status': 'Success', 'code': 201}
            return self.send_json(obj, 201)
        api_version, kind = envelope_kind(body)
        answer = {'apiVersion': api_version, 'kind': kind,
                  'metadata': {'name': 'x', 'namespace': 'default', 'resourceVersion': '1'}}
        if kind == 'SelfSubjectAccessReview':
            answer['status'] = {'allowed': True}
        elif kind == 'SelfSubjectRulesReview':
            answer['status'] = {'resourceRules': [{'verbs': ['get'], 'apiGroups': [''], 'resources': ['pods']}],
                                'nonResourceRules': [], 'incomplete': False}
        elif kind == 'SelfSubjectReview':
            answer['status'] = {'userInfo': {'username': 'admin', 'groups': ['system:masters']}}
        elif kind == 'TokenRequest':
            answer['status'] = {'token': 'tok', 'expirationTimestamp': '2030-01-01T00:00:00Z'}
        elif kind == 'Eviction':
            answer = {'apiVersion': 'v1', 'kind': 'Status', 'status': 'Success', 'code': 201}
        elif kind == 'Pod':
            answer['spec'] = {'containers': [{'name': 'debugger', 'image': 'busybox'}]}
        elif kind == 'CertificateSigningRequest':
            answer = CSR
        self.send_json(answer, 201)


def main():
    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    os.makedirs(FIXTURES, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = os.path.join(tmp, 'config')
        with open(kubeconfig, 'w') as f:
            f.write(f'''apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: fake, user: {{}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]
current-context: fake
''')
        for name, args in COMMANDS:
            Handler.captured.clear()
            cmd = [KUBECTL, '--kubeconfig', kubeconfig, '--cache-dir', os.path.join(tmp, 'cache')] + args
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            bodies = [c for c in Handler.captured if c[2].startswith(PROTOBUF)]
            others = [c[:3] for c in Handler.captured if not c[2].startswith(PROTOBUF)]
            print(f'{name}: exit {run.returncode}, {len(bodies)} protobuf bodies'
                  + (f', other writes {others}' if others else '')
                  + (f'\n  {run.stderr.strip()}' if run.returncode else ''))
            if args[0] == 'create' and args[1] != 'token':
                # The same object as kubectl's own JSON: what a JSON client sends.
                at = cmd.index('--') if '--' in cmd else len(cmd)
                dry_cmd = cmd[:at] + ['--dry-run=client', '-o', 'json'] + cmd[at:]
                dry = subprocess.run(dry_cmd, capture_output=True, text=True, timeout=60, check=True)
                with open(os.path.join(FIXTURES, f'{name}.kubectl.json'), 'w') as f:
                    f.write(dry.stdout)
            for i, (method, path, _, body) in enumerate(bodies):
                suffix = '' if len(bodies) == 1 else f'-{i + 1}'
                with open(os.path.join(FIXTURES, f'{name}{suffix}.pb'), 'wb') as f:
                    f.write(body)
                print(f'  {method} {path} -> {name}{suffix}.pb ({len(body)} bytes)')
    server.shutdown()


if __name__ == '__main__':
    main()
