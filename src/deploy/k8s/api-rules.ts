/**
 * What the API server and the kubelet refuse in these objects beyond their OpenAPI schemas. A
 * schema says a volume name is a string; the server also wants it a DNS label, a node field
 * selector with one value, huge page requests equal to their limits, Bidirectional propagation
 * only in a privileged container. And a manifest can be valid object by object and still not run:
 * a mount naming no volume, a ConfigMap item naming no key, a Service selecting no pod. The
 * generator checks its own output with these (a problem is a bug in it, reported as one), and the
 * tests check that each rule fires.
 *
 * The rules are Kubernetes' own (pkg/apis/core/validation, apimachinery's validation), the subset
 * that applies to the kinds generated here.
 */
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { K8sObject } from './objects.ts';
import { CONFIGMAP_KEY, DNS_1035, DNS_LABEL, DNS_SUBDOMAIN, LABEL_VALUE } from './names.ts';

const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
/** Port names: at most 15 of a-z, 0-9, '-', a letter among them, no '-' at either end or twice. */
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const MAX_CONFIGMAP_BYTES = 1024 * 1024;
const VOLUME_SOURCES = ['hostPath', 'emptyDir', 'configMap', 'secret', 'projected', 'persistentVolumeClaim', 'downwardAPI', 'csi', 'ephemeral', 'image'];

type Problems = string[];

function labelKeyProblem(key: string): string | null {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : null;
  const name = key.slice(slash + 1);
  if (prefix !== null && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return `prefix '${prefix}' is not a DNS subdomain`;
  if (name.length > 63 || !LABEL_NAME.test(name)) return `name '${name}' must be at most 63 of A-Z, a-z, 0-9, '-', '_', '.', alphanumeric at both ends`;
  return null;
}

function checkLabels(at: string, labels: Record<string, string> | undefined, p: Problems): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    const kp = labelKeyProblem(k);
    if (kp) p.push(`${at}: label key '${k}': ${kp}`);
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) p.push(`${at}['${k}']: label value '${v}' must be at most 63 of A-Z, a-z, 0-9, '-', '_', '.', alphanumeric at both ends`);
  }
}

function portNameProblem(name: string): string | null {
  if (name.length > 15 || !IANA_SVC_NAME.test(name) || name.includes('--') || !/[a-z]/.test(name)) return `port name '${name}' must be at most 15 of a-z, 0-9, '-' with a letter, no '--' and no '-' at either end`;
  return null;
}

const isPort = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;

/** Every problem of one object, each as `Kind name: path: what`. */
export function objectProblems(o: K8sObject): string[] {
  const p: Problems = [];
  const name = o.metadata?.name ?? '';
  const at = (path: string) => `${o.kind} ${name || '(unnamed)'}: ${path}`;
  const nameRule = o.kind === 'Namespace' ? { re: DNS_LABEL, max: 63, what: 'a DNS label' } : o.kind === 'Service' ? { re: DNS_1035, max: 63, what: 'a DNS-1035 label (starting with a letter)' } : { re: DNS_SUBDOMAIN, max: 253, what: 'a DNS subdomain' };
  if (!name || name.length > nameRule.max || !nameRule.re.test(name)) p.push(at(`metadata.name '${name}' must be ${nameRule.what}`));
  if (o.kind !== 'Namespace' && (!o.metadata?.namespace || !DNS_LABEL.test(o.metadata.namespace))) p.push(at(`metadata.namespace '${o.metadata?.namespace ?? ''}' must be a DNS label`));
  checkLabels(at('metadata.labels'), o.metadata?.labels, p);

  if (o.kind === 'ConfigMap' || o.kind === 'Secret') {
    const data = (o.data ?? {}) as Record<string, string>;
    const binary = (o.kind === 'ConfigMap' ? (o.binaryData ?? {}) : {}) as Record<string, string>;
    let bytes = 0;
    for (const [k, v] of [...Object.entries(data), ...Object.entries(binary)]) {
      if (k.length > 253 || !CONFIGMAP_KEY.test(k)) p.push(at(`data key '${k}' must be at most 253 of -._a-zA-Z0-9`));
      bytes += o.kind === 'ConfigMap' && !(k in binary) ? Buffer.byteLength(v) : Buffer.from(v, 'base64').length;
      if ((o.kind === 'Secret' || k in binary) && Buffer.from(v, 'base64').toString('base64') !== v) p.push(at(`data['${k}'] is not base64`));
    }
    for (const k of Object.keys(binary)) if (k in data) p.push(at(`key '${k}' is in both data and binaryData`));
    if (bytes > MAX_CONFIGMAP_BYTES) p.push(at(`data adds up to ${bytes} bytes, more than ${MAX_CONFIGMAP_BYTES}`));
  }

  if (o.kind === 'Service') {
    checkLabels(at('spec.selector'), o.spec?.selector, p);
    const ports = o.spec?.ports ?? [];
    ports.forEach((port, i) => {
      if (!isPort(port.port)) p.push(at(`spec.ports[${i}].port ${port.port} is not a port`));
      if (ports.length > 1 && !port.name) p.push(at(`spec.ports[${i}].name is required when there are several ports`));
      const np = port.name ? portNameProblem(port.name) : null;
      if (np) p.push(at(`spec.ports[${i}]: ${np}`));
      const t = port.targetPort;
      if (typeof t === 'number' && !isPort(t)) p.push(at(`spec.ports[${i}].targetPort ${t} is not a port`));
      const tp = typeof t === 'string' ? portNameProblem(t) : null;
      if (tp) p.push(at(`spec.ports[${i}].targetPort: ${tp}`));
    });
  }

  if (o.kind === 'DaemonSet') {
    const sel = o.spec?.selector?.matchLabels ?? {};
    const tpl = o.spec?.template?.metadata?.labels ?? {};
    checkLabels(at('spec.selector.matchLabels'), sel, p);
    checkLabels(at('spec.template.metadata.labels'), tpl, p);
    if (!Object.keys(sel).length) p.push(at('spec.selector selects nothing (empty)'));
    for (const [k, v] of Object.entries(sel)) if (tpl[k] !== v) p.push(at(`spec.selector does not match the template's labels (${k}=${v})`));
    const spec = o.spec?.template?.spec;
    if (!spec) p.push(at('spec.template.spec is missing'));
    else podProblems(spec, (path) => at(`spec.template.spec.${path}`), p);
  }
  return p;
}

function podProblems(spec: IPodSpec, at: (path: string) => string, p: Problems): void {
  const volumes = new Map<string, number>();
  (spec.volumes ?? []).forEach((v, i) => {
    if (v.name.length > 63 || !DNS_LABEL.test(v.name)) p.push(at(`volumes[${i}].name '${v.name}' must be a DNS label`));
    if (volumes.has(v.name)) p.push(at(`volumes[${i}].name '${v.name}' is used twice`));
    volumes.set(v.name, i);
    const sources = VOLUME_SOURCES.filter((s) => (v as unknown as Record<string, unknown>)[s] !== undefined);
    if (sources.length !== 1) p.push(at(`volumes[${i}] must have exactly one source, has ${sources.join(', ') || 'none'}`));
    if (v.hostPath && !v.hostPath.path.startsWith('/')) p.push(at(`volumes[${i}].hostPath.path '${v.hostPath.path}' must be absolute`));
    const projection = v.configMap ?? v.secret;
    const mode = (m: number | undefined, path: string) => {
      if (m !== undefined && (!Number.isInteger(m) || m < 0 || m > 0o777)) p.push(at(`${path} ${m} is not a file mode (0-0777)`));
    };
    mode(projection?.defaultMode, `volumes[${i}].defaultMode`);
    (projection?.items ?? []).forEach((it, j) => {
      const w = `volumes[${i}].items[${j}]`;
      if (!it.key) p.push(at(`${w}.key is empty`));
      if (!it.path || it.path.startsWith('/') || it.path.split('/').some((s) => s === '..' || s.startsWith('..'))) p.push(at(`${w}.path '${it.path}' must be relative, without '..'`));
      mode(it.mode, `${w}.mode`);
    });
  });
  if (spec.shareProcessNamespace && spec.hostPID) p.push(at('shareProcessNamespace and hostPID cannot both be set'));
  const containerNames = new Set<string>();
  (spec.containers ?? []).forEach((c, i) => {
    const w = `containers[${i}]`;
    if (!DNS_LABEL.test(c.name) || c.name.length > 63) p.push(at(`${w}.name '${c.name}' must be a DNS label`));
    if (containerNames.has(c.name)) p.push(at(`${w}.name '${c.name}' is used twice`));
    containerNames.add(c.name);
    containerProblems(c, spec, volumes, (path) => at(`${w}.${path}`), p);
  });
  for (const [i, term] of (spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? []).entries()) {
    const w = `affinity.nodeAffinity.required.nodeSelectorTerms[${i}]`;
    if (!term.matchExpressions?.length && !term.matchFields?.length) p.push(at(`${w} is empty (matches no node)`));
    (term.matchExpressions ?? []).forEach((e, j) => {
      const kp = labelKeyProblem(e.key);
      if (kp) p.push(at(`${w}.matchExpressions[${j}].key: ${kp}`));
      const needsValues = e.operator === 'In' || e.operator === 'NotIn';
      if (needsValues && !e.values?.length) p.push(at(`${w}.matchExpressions[${j}]: ${e.operator} needs values`));
      if (!needsValues && (e.operator === 'Exists' || e.operator === 'DoesNotExist') && e.values?.length) p.push(at(`${w}.matchExpressions[${j}]: ${e.operator} takes no values`));
      for (const v of e.values ?? []) if (v.length > 63 || !LABEL_VALUE.test(v)) p.push(at(`${w}.matchExpressions[${j}]: value '${v}' is not a label value`));
    });
    (term.matchFields ?? []).forEach((f, j) => {
      if (f.key !== 'metadata.name') p.push(at(`${w}.matchFields[${j}].key '${f.key}': only metadata.name is supported`));
      if (f.operator !== 'In' && f.operator !== 'NotIn') p.push(at(`${w}.matchFields[${j}].operator ${f.operator}: only In and NotIn`));
      if (f.values?.length !== 1) p.push(at(`${w}.matchFields[${j}] must have exactly one value, has ${f.values?.length ?? 0}`));
    });
  }
}

function containerProblems(c: IContainer, spec: IPodSpec, volumes: Map<string, number>, at: (path: string) => string, p: Problems): void {
  const sc = c.securityContext;
  const ports = new Set<string>();
  (c.ports ?? []).forEach((port, i) => {
    if (!isPort(port.containerPort)) p.push(at(`ports[${i}].containerPort ${port.containerPort} is not a port`));
    if (spec.hostNetwork && port.hostPort !== undefined && port.hostPort !== port.containerPort) p.push(at(`ports[${i}].hostPort must equal containerPort on the host network`));
    if (port.name) {
      const np = portNameProblem(port.name);
      if (np) p.push(at(`ports[${i}]: ${np}`));
      if (ports.has(port.name)) p.push(at(`ports[${i}].name '${port.name}' is used twice`));
      ports.add(port.name);
    }
  });
  (c.env ?? []).forEach((e, i) => {
    if (!ENV_NAME.test(e.name)) p.push(at(`env[${i}].name '${e.name}' is not a valid variable name`));
    if (e.value !== undefined && e.valueFrom !== undefined) p.push(at(`env[${i}] has both value and valueFrom`));
  });
  const paths = new Set<string>();
  (c.volumeMounts ?? []).forEach((m, i) => {
    if (!volumes.has(m.name)) p.push(at(`volumeMounts[${i}] names no volume ('${m.name}')`));
    if (!m.mountPath.startsWith('/')) p.push(at(`volumeMounts[${i}].mountPath '${m.mountPath}' must be absolute`));
    if (paths.has(m.mountPath)) p.push(at(`volumeMounts[${i}].mountPath '${m.mountPath}' is used twice`));
    paths.add(m.mountPath);
    if (m.mountPropagation === 'Bidirectional' && !sc?.privileged) p.push(at(`volumeMounts[${i}]: Bidirectional mount propagation is only for privileged containers`));
  });
  const adds = (sc?.capabilities?.add ?? []).map((x) => x.replace(/^CAP_/, ''));
  if (sc?.allowPrivilegeEscalation === false && (sc.privileged || adds.includes('SYS_ADMIN'))) p.push(at('securityContext: allowPrivilegeEscalation false cannot go with privileged or CAP_SYS_ADMIN'));
  const req = (c.resources?.requests ?? {}) as Record<string, unknown>;
  const lim = (c.resources?.limits ?? {}) as Record<string, unknown>;
  const huge = [...new Set([...Object.keys(req), ...Object.keys(lim)].filter((k) => k.startsWith('hugepages-')))];
  for (const k of huge) {
    if (req[k] !== undefined && String(req[k]) !== String(lim[k])) p.push(at(`resources: ${k} requests must equal limits`));
  }
  if (huge.length && req.cpu === undefined && req.memory === undefined && lim.cpu === undefined && lim.memory === undefined) p.push(at('resources: huge pages need a cpu or memory request or limit'));
  for (const [which, probe] of [['readinessProbe', c.readinessProbe], ['livenessProbe', c.livenessProbe]] as const) {
    const port = probe?.tcpSocket?.port ?? probe?.httpGet?.port;
    if (typeof port === 'string' && !ports.has(port)) p.push(at(`${which} port '${port}' names no port of the container`));
  }
}

/**
 * What would make the objects not run together: a ConfigMap or Secret volume naming an object
 * that is not there (unless `existingSecrets` has it) or a key it lacks, a Service selecting no
 * pod template, or a target port its pods do not name.
 */
export function referenceProblems(objects: readonly K8sObject[], existingSecrets: readonly string[] = []): string[] {
  const p: Problems = [];
  const find = <K extends K8sObject['kind']>(kind: K, name: string | undefined) => objects.find((o): o is Extract<K8sObject, { kind: K }> => o.kind === kind && o.metadata?.name === name);
  const pods = objects.filter((o) => o.kind === 'DaemonSet').map((d) => ({ ds: d.metadata?.name, labels: d.spec?.template?.metadata?.labels ?? {}, spec: d.spec?.template?.spec }));
  for (const pod of pods) {
    for (const v of pod.spec?.volumes ?? []) {
      if (v.configMap) {
        const cm = find('ConfigMap', v.configMap.name);
        if (!cm) p.push(`DaemonSet ${pod.ds}: volume ${v.name} names ConfigMap ${v.configMap.name}, which is not among the objects`);
        for (const it of v.configMap.items ?? []) if (cm && !(it.key in (cm.data ?? {})) && !(it.key in (cm.binaryData ?? {}))) p.push(`DaemonSet ${pod.ds}: volume ${v.name} item ${it.key} is not a key of ConfigMap ${v.configMap.name}`);
      }
      if (v.secret && !existingSecrets.includes(v.secret.secretName ?? '')) {
        const s = find('Secret', v.secret.secretName);
        if (!s) p.push(`DaemonSet ${pod.ds}: volume ${v.name} names Secret ${v.secret.secretName}, which is not among the objects`);
        for (const it of v.secret.items ?? []) if (s && !(it.key in (s.data ?? {})) && !(it.key in (s.stringData ?? {}))) p.push(`DaemonSet ${pod.ds}: volume ${v.name} item ${it.key} is not a key of Secret ${v.secret.secretName}`);
      }
    }
  }
  for (const svc of objects.filter((o) => o.kind === 'Service')) {
    const sel = svc.spec?.selector ?? {};
    const selected = pods.filter((pod) => Object.entries(sel).every(([k, v]) => pod.labels[k] === v));
    if (!selected.length) p.push(`Service ${svc.metadata?.name}: its selector matches no pod template`);
    for (const port of svc.spec?.ports ?? []) {
      const t = port.targetPort;
      if (typeof t !== 'string') continue;
      for (const pod of selected) {
        if (!(pod.spec?.containers ?? []).some((c) => (c.ports ?? []).some((cp) => cp.name === t))) p.push(`Service ${svc.metadata?.name}: targetPort '${t}' is no port of DaemonSet ${pod.ds}'s pods`);
      }
    }
  }
  return p;
}
