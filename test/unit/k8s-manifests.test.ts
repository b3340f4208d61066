/**
 * examples/k8s: every manifest parses as YAML into objects Kubernetes would take (apiVersion,
 * kind, metadata.name), the DaemonSet asks for capabilities instead of privilege and mounts what
 * the agent needs, every volume it mounts exists, the Service selects its pods, and the policy in
 * the ConfigMap (with its handlers) loads as a placed policy. Not run against a cluster (none here).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAllDocuments } from 'yaml';
import { loadPolicyFile } from '../../src/load/index.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const K8S = join(repo, 'examples/k8s');
// biome-ignore lint/suspicious/noExplicitAny: parsed manifests are checked field by field below
type Obj = any;

const docs: Obj[] = readdirSync(K8S)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) =>
    parseAllDocuments(readFileSync(join(K8S, f), 'utf8')).map((d) => {
      assert.equal(d.errors, [], `${f}: ${d.errors.map((e) => e.message).join('; ')}`);
      return { file: f, ...d.toJS() };
    }),
  );
const byKind = (k: string) => docs.filter((d) => d.kind === k);

test('every object has apiVersion, kind, metadata.name, in the bpfctl namespace', () => {
  assert.ok(docs.length >= 5);
  for (const d of docs) {
    assert.type(d.apiVersion, 'string', d.file);
    assert.type(d.kind, 'string', d.file);
    assert.type(d.metadata?.name, 'string', d.file);
    if (d.kind !== 'Namespace') assert.is(d.metadata.namespace, 'bpfctl', `${d.file} ${d.kind}`);
  }
  assert.equal(byKind('DaemonSet').map((d) => d.apiVersion), ['apps/v1']);
});

test('the DaemonSet: host network, capabilities not privilege, bpffs/cgroup/shm/hugepages mounted, volumes exist', () => {
  const ds = byKind('DaemonSet')[0]!;
  const pod = ds.spec.template.spec;
  assert.is(pod.hostNetwork, true);
  assert.equal(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels);
  const c = pod.containers[0];
  assert.is(c.securityContext.privileged, false);
  for (const cap of ['BPF', 'NET_ADMIN', 'SYS_ADMIN']) assert.ok(c.securityContext.capabilities.add.includes(cap), cap);
  assert.equal(c.command.slice(0, 3), ['bpfctl', 'agent', 'run']);
  const vols = new Map(pod.volumes.map((v: Obj) => [v.name, v]));
  const mounts = new Map(c.volumeMounts.map((m: Obj) => [m.mountPath, m.name]));
  for (const m of c.volumeMounts) assert.ok(vols.has(m.name), `mount ${m.mountPath} names volume ${m.name}`);
  for (const [path, host] of [['/sys/fs/bpf', '/sys/fs/bpf'], ['/sys/fs/cgroup', '/sys/fs/cgroup'], ['/dev/shm', '/dev/shm']]) {
    assert.is((vols.get(mounts.get(path)) as Obj)?.hostPath?.path, host, path);
  }
  assert.is((vols.get(mounts.get('/dev/hugepages')) as Obj)?.emptyDir?.medium, 'HugePages-2Mi');
  assert.is((vols.get(mounts.get('/etc/bpfctl/policy')) as Obj)?.configMap?.name, byKind('ConfigMap')[0]!.metadata.name);
  assert.is((vols.get(mounts.get('/etc/bpfctl/secret')) as Obj)?.secret?.secretName, byKind('Secret')[0]!.metadata.name);
  const env = new Map(c.env.map((e: Obj) => [e.name, e]));
  for (const k of ['BPFCTL_NODE', 'BPFCTL_PEERS', 'BPFCTL_SECRET_FILE']) assert.ok(env.has(k), k);
  const svc = byKind('Service')[0]!;
  assert.equal(svc.spec.selector, ds.spec.template.metadata.labels);
  assert.ok(c.ports.some((p: Obj) => p.name === svc.spec.ports[0].targetPort));
});

test('the ConfigMap holds a policy (and its handlers) that loads, with placement', async () => {
  const cm = byKind('ConfigMap')[0]!;
  const dir = mkdtempSync(join(repo, `.test-${process.pid}-k8s-`));
  try {
    for (const [k, v] of Object.entries(cm.data as Record<string, string>)) writeFileSync(join(dir, k), v);
    const ir = await loadPolicyFile(join(dir, 'policy.ts'));
    assert.is(ir.name, 'hello-chain');
    assert.ok(ir.functions.some((f) => f.placement?.labels));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
