/**
 * `bpfctl k8s manifests`' generator (src/deploy/k8s): for hello-chain (one node class, no peers),
 * examples/k8s/policy (placed by label and by name over three nodes) and boutique (handlers
 * importing ../lib), every object is checked three ways:
 * - against the Kubernetes OpenAPI schemas (kubernetes-models' validators), as parsed back from
 *   the YAML a person would apply;
 * - against the rules the API server adds to the schemas (api-rules.ts);
 * - by running what the cluster would run, where that runs here: the ConfigMap written out as
 *   the kubelet writes a volume (..data, items' paths) and read by the agent's own code down to
 *   built handlers; the container's command expanded as Kubernetes expands it and run by sh with
 *   the real cgroup tree.
 * Each check also has a case that it rejects, so none of them passes by accepting everything.
 * Not run against a cluster (none here): docs/kubernetes.md says what is left.
 */

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAllDocuments } from 'yaml';
import { agentScript, MOUNT } from '../../src/deploy/k8s/agent-script.ts';
import { objectProblems, referenceProblems } from '../../src/deploy/k8s/api-rules.ts';
import { keyOf } from '../../src/deploy/k8s/configmap.ts';
import { K8sManifestError } from '../../src/deploy/k8s/errors.ts';
import { generateManifests, type K8sObject, type Manifests } from '../../src/deploy/k8s/manifests.ts';
import { type ManifestOptions, parseHugepages, parsePeers, poolHugepagesBytes } from '../../src/deploy/k8s/options.ts';
import { renderFiles, renderYaml } from '../../src/deploy/k8s/render.ts';
import { collectPolicyTree } from '../../src/deploy/k8s/tree.ts';
import { cgroup2Mount } from '../../src/deploy/paths.ts';
import { localShare } from '../../src/ir/placement.ts';
import { loadPolicyFile } from '../../src/load/index.ts';
import { relativeImports } from '../../src/load/local-imports.ts';
import { resolveHandler } from '../../src/load/policy-file.ts';
import { parsePeers as agentPeers, checkSelfEntry, parseLabels, policyFileOf } from '../../src/runtime/agent/agent.ts';
import { buildFunctionCode } from '../../src/runtime/function-code.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const HELLO = join(repo, 'examples/hello-chain/policy.ts');
const CLUSTER = join(repo, 'examples/k8s/policy/policy.ts');
const BOUTIQUE = join(repo, 'examples/boutique/policy.ts');
const CLUSTER_PEERS = 'node-a=10.0.0.11,node-b=10.0.0.12,node-c=10.0.0.13';
/** What examples/k8s/manifests were made with (their header says so); the drift test re-makes them. */
const EXAMPLE_COMMAND = `bpfctl k8s manifests examples/k8s/policy/policy.ts --image registry.example.com/bpfctl:0.1.0 --peers ${CLUSTER_PEERS} --secret-name bpfctl-hello-cluster-link -o examples/k8s/manifests`;
const SECRET = 'a-test-secret-of-more-than-16-bytes';

// biome-ignore lint/suspicious/noExplicitAny: objects parsed back from YAML are checked field by field
type Obj = any;

const temps: string[] = [];
function temp(what: string): string {
  const d = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-k8s-${what}-`));
  temps.push(d);
  return d;
}
test.after(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

function options(o: Partial<ManifestOptions> = {}): ManifestOptions {
  return { namespace: 'bpfctl', image: 'bpfctl:test', gatewayPort: 8080, linkPort: 7946, peers: [], secret: { value: SECRET }, hugepagesBytes: 0, ...o };
}

async function generate(policy: string, o: Partial<ManifestOptions> = {}, include: string[] = []): Promise<Manifests> {
  const ir = await loadPolicyFile(policy);
  return generateManifests(ir, await collectPolicyTree(policy, ir, include), options(o));
}

const MODELS: Record<string, new (data: Obj) => { validate(): void }> = { Namespace, Secret, ConfigMap, DaemonSet, Service };

/** The schema's verdict on one object: null, or what it says is wrong. */
function schemaError(o: Obj): string | null {
  const M = MODELS[o?.kind];
  if (!M) return `no schema for kind ${o?.kind}`;
  try {
    new M(o).validate();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The YAML parsed back (what kubectl reads): every document must parse, and give the objects. */
function parsed(m: Manifests): Obj[] {
  return parseAllDocuments(renderYaml(m)).map((d) => {
    assert.equal(d.errors, [], d.errors.map((e) => e.message).join('; '));
    return d.toJS();
  });
}

function checkAll(m: Manifests, existingSecrets: string[] = []): Obj[] {
  const objs = parsed(m);
  assert.equal(objs, JSON.parse(JSON.stringify(m.documents.map((d) => d.object))), 'the YAML gives back the objects');
  for (const o of objs) {
    assert.is(schemaError(o), null, `${o.kind} ${o.metadata?.name}`);
    assert.equal(objectProblems(o), [], `${o.kind} ${o.metadata?.name}`);
  }
  assert.equal(referenceProblems(objs, existingSecrets), []);
  return objs;
}

const ofKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);

// ---- The kubelet's ConfigMap volume, as pkg/volume/util/atomic_writer.go lays it out ----

/**
 * Writes `cm` as the kubelet mounts it through `volume` into `dir`: the payload (items at their
 * paths, modes) in a timestamped `..` directory, `..data` linking to it, and each top-level name
 * linking into `..data`. Again on `dir`: an update (new directory, `..data` swapped by rename).
 */
function mountConfigMap(cm: Obj, volume: Obj, dir: string, stamp: string): void {
  const items: { key: string; path: string; mode?: number }[] = volume.configMap.items ?? Object.keys({ ...cm.data, ...cm.binaryData }).map((k) => ({ key: k, path: k }));
  const payload = join(dir, `..${stamp}`);
  mkdirSync(payload, { recursive: true });
  for (const it of items) {
    const text = cm.data?.[it.key];
    const bin = cm.binaryData?.[it.key];
    // The kubelet fails the mount on a missing key (unless the volume is optional): so does this.
    if (text === undefined && bin === undefined) throw new Error(`configmap references non-existent config key: ${it.key}`);
    const file = join(payload, it.path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text ?? Buffer.from(bin, 'base64'));
    chmodSync(file, it.mode ?? volume.configMap.defaultMode ?? 0o644);
  }
  const old = existsSync(join(dir, '..data')) ? readlinkSync(join(dir, '..data')) : null;
  symlinkSync(`..${stamp}`, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const top of new Set(items.map((it) => it.path.split('/')[0]!))) {
    if (!existsSync(join(dir, top))) symlinkSync(join('..data', top), join(dir, top));
  }
  if (old) rmSync(join(dir, old), { recursive: true, force: true });
}

/** Every mounted file by path, read through the links as the agent reads them. */
function mountedFiles(dir: string, paths: string[]): Map<string, Buffer> {
  return new Map(paths.map((p) => [p, readFileSync(join(dir, p))]));
}

// ---- Kubernetes' $(VAR) expansion of a container's command (third_party/forked/golang/expansion) ----

function expand(input: string, env: Record<string, string>): string {
  let out = '';
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue;
    out += input.slice(checkpoint, cursor);
    const rest = input.slice(cursor + 1);
    let read: string;
    let advance = 1;
    if (rest[0] === '$') read = '$';
    else if (rest[0] === '(') {
      const close = rest.indexOf(')');
      if (close < 0) read = '$(';
      else {
        const name = rest.slice(1, close);
        read = name in env ? env[name]! : `$(${name})`;
        advance = close + 1;
      }
    } else read = `$${rest[0]}`;
    out += read;
    cursor += advance;
    checkpoint = cursor + 1;
  }
  return out + input.slice(checkpoint);
}

/** Runs a DaemonSet's command as the container would (env resolved, $() expanded), `bpfctl` a recorder of what it was given. */
function runCommand(ds: Obj, node: string, podIp: string, cgroupRoot: string): { code: number; stderr: string; argv: string[]; env: Record<string, string> } {
  const c = ds.spec.template.spec.containers[0];
  const env: Record<string, string> = {};
  for (const e of c.env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom.fieldRef.fieldPath === 'spec.nodeName') env[e.name] = node;
    else if (e.valueFrom.fieldRef.fieldPath === 'status.podIP') env[e.name] = podIp;
  }
  const [sh, flag, script] = c.command.map((a: string) => expand(a, env));
  assert.equal([sh, flag], ['/bin/sh', '-c']);
  const bin = temp('bin');
  const rec = join(bin, 'rec');
  // The agent itself cannot run as a pod here; this stands in for it and records its argv and env.
  writeFileSync(join(bin, 'bpfctl'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${rec}.argv\nenv > ${rec}.env\n`, { mode: 0o755 });
  const r = spawnSync(sh, [flag, script.replace(`cg=${MOUNT.cgroup}\n`, `cg=${cgroupRoot}\n`)], { env: { ...env, PATH: `${bin}:/usr/bin:/bin` }, encoding: 'utf8' });
  const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
  const envOut = Object.fromEntries(
    read(`${rec}.env`)
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return { code: r.status ?? -1, stderr: r.stderr, argv: read(`${rec}.argv`).split('\n').filter(Boolean), env: envOut };
}

/** Does a node with these name and labels match a pod's required node affinity (ORed terms, ANDed requirements)? */
function nodeMatches(ds: Obj, node: { name: string; labels: Record<string, string> }): boolean {
  const terms = ds.spec.template.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (!terms) return true;
  const req = (r: Obj, value: string | undefined) => (r.operator === 'In' ? value !== undefined && r.values.includes(value) : r.operator === 'NotIn' ? value === undefined || !r.values.includes(value) : false);
  return terms.some((t: Obj) => (t.matchExpressions ?? []).every((r: Obj) => req(r, node.labels[r.key])) && (t.matchFields ?? []).every((r: Obj) => req(r, r.key === 'metadata.name' ? node.name : undefined)));
}

// ---- hello-chain: one node class, no peers ----

test('hello-chain: every object passes the schemas and the API rules, in apply order', async () => {
  const m = await generate(HELLO, { hugepagesBytes: poolHugepagesBytes(await loadPolicyFile(HELLO)) });
  const objs = checkAll(m);
  assert.equal(
    objs.map((o) => o.kind),
    ['Namespace', 'Secret', 'ConfigMap', 'DaemonSet', 'Service'],
  );
  for (const o of objs) if (o.kind !== 'Namespace') assert.is(o.metadata.namespace, 'bpfctl', o.kind);
  assert.is(ofKind(objs, 'Namespace')[0].metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
  assert.not.ok(objs.some((o) => ['ServiceAccount', 'Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'].includes(o.kind)), 'no RBAC: the agent reads no API');
});

test('hello-chain: the DaemonSet is on the host network, with capabilities, not privilege, and the host mounts bpfctl needs', async () => {
  const ir = await loadPolicyFile(HELLO);
  const objs = checkAll(await generate(HELLO, { hugepagesBytes: poolHugepagesBytes(ir) }));
  const ds = ofKind(objs, 'DaemonSet');
  assert.is(ds.length, 1);
  const pod = ds[0].spec.template.spec;
  assert.is(pod.hostNetwork, true);
  assert.is(pod.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.is(pod.automountServiceAccountToken, false);
  assert.is(pod.affinity, undefined, 'no placement, no peers: every node');
  const c = pod.containers[0];
  const sc = c.securityContext;
  assert.is(sc.privileged, false);
  assert.equal(sc.capabilities.drop, ['ALL']);
  for (const cap of ['BPF', 'PERFMON', 'NET_ADMIN', 'SYS_ADMIN']) assert.ok(sc.capabilities.add.includes(cap), cap);
  assert.not.ok(sc.capabilities.add.includes('NET_RAW'), 'no packet chains: no AF_XDP');
  const vols = new Map(pod.volumes.map((v: Obj) => [v.name, v]));
  const byPath = new Map(c.volumeMounts.map((m: Obj) => [m.mountPath, m]));
  for (const path of ['/sys/fs/bpf', '/sys/fs/cgroup', '/dev/shm', '/dev/hugepages']) {
    const mount = byPath.get(path) as Obj;
    assert.ok(mount, `${path} is mounted`);
    assert.is((vols.get(mount.name) as Obj).hostPath?.path, path, `${path} is the host's`);
  }
  assert.is((byPath.get('/sys/fs/bpf') as Obj).mountPropagation, 'HostToContainer');
  // 1024 x 4 KiB buffers and their metadata on 2 MiB pages: three pages.
  assert.is(poolHugepagesBytes(ir), 6 * 1024 * 1024);
  assert.is(c.resources.requests['hugepages-2Mi'], '6Mi');
  assert.is(c.resources.limits['hugepages-2Mi'], '6Mi');
  const env = new Map(c.env.map((e: Obj) => [e.name, e]));
  assert.is((env.get('BPFCTL_NODE') as Obj).valueFrom.fieldRef.fieldPath, 'spec.nodeName');
  assert.is((env.get('BPFCTL_SECRET_FILE') as Obj).value, '/etc/bpfctl/secret/secret');
  assert.not.ok(env.has('BPFCTL_PEERS'));
  assert.not.ok(env.has('BPFCTL_NODE_LABELS'));
});

test('hello-chain: --hugepages 0 leaves huge pages out entirely (the pool goes in /dev/shm)', async () => {
  const objs = checkAll(await generate(HELLO, { hugepagesBytes: 0 }));
  const pod = ofKind(objs, 'DaemonSet')[0].spec.template.spec;
  assert.not.ok(pod.volumes.some((v: Obj) => v.name === 'hugepages'));
  assert.not.ok(pod.containers[0].volumeMounts.some((m: Obj) => m.mountPath === '/dev/hugepages'));
  assert.not.ok(JSON.stringify(pod.containers[0].resources).includes('hugepages'));
});

test('hello-chain: the Service selects the agent pods and targets their gateway port', async () => {
  const objs = checkAll(await generate(HELLO, { gatewayPort: 9090 }));
  const svc = ofKind(objs, 'Service')[0];
  const ds = ofKind(objs, 'DaemonSet')[0];
  const labels = ds.spec.template.metadata.labels;
  for (const [k, v] of Object.entries(svc.spec.selector)) assert.is(labels[k], v, k);
  const port = ds.spec.template.spec.containers[0].ports.find((p: Obj) => p.name === svc.spec.ports[0].targetPort);
  assert.is(port.containerPort, 9090);
  assert.is(svc.spec.ports[0].port, 80);
  assert.equal(ds.spec.template.spec.containers[0].readinessProbe.tcpSocket, { port: 'gateway' });
});

test('hello-chain: the ConfigMap, mounted as the kubelet mounts it, is the policy tree, and the agent loads and builds it', async () => {
  const m = await generate(HELLO);
  const objs = checkAll(m);
  const cm = ofKind(objs, 'ConfigMap')[0];
  const volume = ofKind(objs, 'DaemonSet')[0].spec.template.spec.volumes.find((v: Obj) => v.name === 'policy');
  for (const k of Object.keys(cm.data)) assert.match(k, /^[-._a-zA-Z0-9]+$/);
  const dir = temp('mount');
  mountConfigMap(cm, volume, dir, '2026_01_01_00_00_00.000000001');
  assert.ok(lstatSync(join(dir, 'functions')).isSymbolicLink(), 'functions links into ..data');
  const want = ['functions/reverse.ts', 'functions/stamp.ts', 'functions/upper.ts', 'policy.ts'];
  const got = mountedFiles(dir, want);
  for (const p of want) assert.equal(got.get(p), readFileSync(join(repo, 'examples/hello-chain', p)), p);
  // What the agent does with --policy /etc/bpfctl/policy: find policy.ts, load it, build each handler.
  const file = policyFileOf(dir);
  assert.is(file, join(dir, 'policy.ts'));
  const mounted = await loadPolicyFile(file);
  assert.is(mounted.hash, (await loadPolicyFile(HELLO)).hash, 'the same policy');
  for (const f of mounted.functions) {
    assert.ok(existsSync(resolveHandler(file, f)), f.name);
    const code = await buildFunctionCode(file, f);
    assert.type((await import(code.handler)).default, 'function', f.name);
  }
});

test('a ConfigMap update (a handler changed) shows at the same paths after the ..data swap', async () => {
  const src = temp('update');
  const copy = (p: string) => {
    mkdirSync(dirname(join(src, p)), { recursive: true });
    writeFileSync(join(src, p), readFileSync(join(repo, 'examples/hello-chain', p)));
  };
  for (const p of ['policy.ts', 'functions/upper.ts', 'functions/reverse.ts', 'functions/stamp.ts']) copy(p);
  const mount = temp('mount2');
  const first = checkAll(await generate(join(src, 'policy.ts')));
  const vol = (objs: Obj[]) => ofKind(objs, 'DaemonSet')[0].spec.template.spec.volumes.find((v: Obj) => v.name === 'policy');
  mountConfigMap(ofKind(first, 'ConfigMap')[0], vol(first), mount, '2026_01_01_00_00_00.000000001');
  writeFileSync(join(src, 'functions/stamp.ts'), 'export default (req: { text(): string }) => req.text() + " [v2]";\n');
  const second = checkAll(await generate(join(src, 'policy.ts')));
  mountConfigMap(ofKind(second, 'ConfigMap')[0], vol(second), mount, '2026_01_01_00_01_00.000000001');
  assert.match(readFileSync(join(mount, 'functions/stamp.ts'), 'utf8'), /\[v2\]/);
  assert.not.ok(existsSync(join(mount, '..2026_01_01_00_00_00.000000001')), 'the old payload is gone');
  const f = (await loadPolicyFile(policyFileOf(mount))).functions.find((x) => x.name === 'stamp')!;
  const stamp = (await import((await buildFunctionCode(policyFileOf(mount), f)).handler)).default as (r: { text(): string }) => string;
  assert.is(stamp({ text: () => 'hi' }), 'hi [v2]');
});

// ---- examples/k8s/policy: placed by label and by name over three nodes ----

test('multi-node: one DaemonSet per node class, each telling its agents their labels; every node in exactly one', async () => {
  const peers = parsePeers(CLUSTER_PEERS, 7946);
  const objs = checkAll(await generate(CLUSTER, { peers, secret: { existing: 'bpfctl-hello-cluster-link' } }), ['bpfctl-hello-cluster-link']);
  assert.not.ok(ofKind(objs, 'Secret').length, 'an existing Secret is named, none written');
  const ds = ofKind(objs, 'DaemonSet');
  assert.equal(
    ds.map((d) => d.metadata.name),
    ['bpfctl-hello-cluster-role-edge', 'bpfctl-hello-cluster-rest'],
  );
  const labelsOf = (d: Obj) => d.spec.template.spec.containers[0].env.find((e: Obj) => e.name === 'BPFCTL_NODE_LABELS')?.value;
  assert.equal(ds.map(labelsOf), ['bpfctl.io/role=edge', undefined]);
  // The selectors of two DaemonSets must not overlap (each would adopt the other's pods).
  assert.is.not(ds[0].spec.selector.matchLabels['bpfctl.io/node-class'], ds[1].spec.selector.matchLabels['bpfctl.io/node-class']);
  const ir = await loadPolicyFile(CLUSTER);
  const nodes: { name: string; labels: Record<string, string> }[] = [
    { name: 'node-a', labels: { 'bpfctl.io/role': 'edge' } },
    { name: 'node-b', labels: { 'bpfctl.io/role': 'core' } },
    { name: 'node-c', labels: {} },
    { name: 'node-x', labels: { 'bpfctl.io/role': 'edge' } },
  ];
  const expect: Record<string, Record<string, number> | null> = {
    'node-a': { upper: 2, reverse: 0, stamp: 1 },
    'node-b': { upper: 0, reverse: 2, stamp: 1 },
    'node-c': { upper: 0, reverse: 1, stamp: 1 },
    'node-x': null, // not in --peers: no agent
  };
  for (const n of nodes) {
    const mine = ds.filter((d) => nodeMatches(d, n));
    if (expect[n.name] === null) {
      assert.is(mine.length, 0, n.name);
      continue;
    }
    assert.is(mine.length, 1, `${n.name} is in exactly one class`);
    const share = localShare(ir, { name: n.name, labels: parseLabels(labelsOf(mine[0])) });
    assert.equal(Object.fromEntries(share.functions.map((f) => [f.name, f.instances])), expect[n.name], n.name);
  }
  const svc = ofKind(objs, 'Service')[0];
  for (const d of ds) for (const [k, v] of Object.entries(svc.spec.selector)) assert.is(d.spec.template.metadata.labels[k], v, `${d.metadata.name} ${k}`);
});

test('multi-node: two label keys give every combination as a class, and each node still matches one', async () => {
  const dir = temp('twokeys');
  mkdirSync(join(dir, 'f'));
  writeFileSync(join(dir, 'f/h.ts'), 'export default (req: { body: Uint8Array }) => req.body.length;\n');
  writeFileSync(
    join(dir, 'policy.ts'),
    `import { definePolicy } from 'bpfctl';
export default definePolicy({
  name: 'two_keys',
  functions: {
    a: { instances: 1, handler: './f/h.ts', placement: { labels: { role: 'edge', 'topology.kubernetes.io/zone': 'z1' } } },
    b: { instances: 1, handler: './f/h.ts', placement: { labels: { role: 'core' } } },
    c: { instances: 1, handler: './f/h.ts' },
  },
  routes: { '/x': ['a', 'b', 'c'] },
});
`,
  );
  const peers = parsePeers('n1=10.1.0.1,n2=10.1.0.2', 7946);
  const objs = checkAll(await generate(join(dir, 'policy.ts'), { peers }));
  const ds = ofKind(objs, 'DaemonSet');
  // role: edge | core | neither, zone: z1 | not z1
  assert.is(ds.length, 6);
  assert.ok(ds.every((d) => d.metadata.name.startsWith('bpfctl-two-keys-')), 'policy name made a DNS name');
  for (const labels of [{}, { role: 'edge' }, { role: 'core', 'topology.kubernetes.io/zone': 'z1' }, { role: 'other', 'topology.kubernetes.io/zone': 'z2' }, { 'topology.kubernetes.io/zone': 'z1' }] as Record<string, string>[]) {
    assert.is(ds.filter((d) => nodeMatches(d, { name: 'n2', labels })).length, 1, JSON.stringify(labels));
  }
});

test('multi-node: the command, expanded as Kubernetes does and run by sh, gives the agent every node (it skips itself), the node IP and its own cgroup', async () => {
  const peers = parsePeers(CLUSTER_PEERS, 7946);
  const objs = checkAll(await generate(CLUSTER, { peers }));
  const ds = ofKind(objs, 'DaemonSet')[0];
  const r = runCommand(ds, 'node-b', '10.0.0.12', cgroup2Mount());
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.argv, ['agent', 'run', '--policy', '/etc/bpfctl/policy', '--listen', '[10.0.0.12]:7946', '--host', '0.0.0.0', '--port', '8080']);
  // The same list for every pod: no shell filters it.
  assert.is(r.env.BPFCTL_PEERS, 'node-a=10.0.0.11:7946,node-b=10.0.0.12:7946,node-c=10.0.0.13:7946');
  assert.not.match(ds.spec.template.spec.containers[0].command[2], /PEERS/);
  assert.is(r.env.BPFCTL_NODE, 'node-b');
  // The agent's own parser takes the list: the others are its peers, its own entry is where it listens.
  const parsed = agentPeers(r.env.BPFCTL_PEERS!, 'node-b');
  assert.equal(
    parsed.peers.map((p) => p.name),
    ['node-a', 'node-c'],
  );
  assert.equal(parsed.self, { name: 'node-b', host: '10.0.0.12', port: 7946 });
  const listen = { host: r.argv[5]!.replace(/^\[(.*)\]:\d+$/, '$1'), port: Number(r.argv[5]!.split(':').pop()) };
  await checkSelfEntry(parsed.self!, listen);
  // A pod whose node IP is not the one the list gives its node: refused in one line, naming both.
  const wrong = runCommand(ds, 'node-b', '10.0.0.99', cgroup2Mount());
  const err = await checkSelfEntry(agentPeers(wrong.env.BPFCTL_PEERS!, 'node-b').self!, { host: '10.0.0.99', port: 7946 }).catch((e: Error) => e);
  assert.match(String((err as Error).message), /^--peers gives this node \(node-b\) the address 10\.0\.0\.12:7946, but its node-link listens on 10\.0\.0\.99:7946: /);
  // The shell's own cgroup (what it ran in, as /proc says), under the cgroup v2 mount.
  const own = readFileSync(`/proc/${process.pid}/cgroup`, 'utf8').match(/^0::(.*)$/m)![1]!;
  assert.is(r.env.BPFCTL_CGROUP_PARENT, join(cgroup2Mount(), own, 'bpfctl'));
});

test('the command refuses a node without cgroup v2 in one line, and without peers listens on loopback only', async () => {
  const objs = checkAll(await generate(HELLO));
  const ds = ofKind(objs, 'DaemonSet')[0];
  const bad = runCommand(ds, 'node-a', '10.0.0.11', temp('nocgroup'));
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /^bpfctl: .* is not a cgroup v2 hierarchy: the node must run cgroup v2 \(docs\/kubernetes.md\)\n$/);
  assert.equal(bad.argv, [], 'the agent is not started');
  const ok = runCommand(ds, 'node-a', '10.0.0.11', cgroup2Mount());
  assert.is(ok.code, 0, ok.stderr);
  assert.equal(ok.argv.slice(4, 6), ['--listen', '127.0.0.1:0']);
  assert.is(ok.env.BPFCTL_PEERS, undefined);
  // What sh runs is the script bpfctl wrote, every $ given back by the expansion.
  assert.is(expand(ds.spec.template.spec.containers[0].command[2], {}), agentScript({ gatewayPort: 8080, linkPort: 7946, linked: false }));
});

test('examples/k8s/manifests are what the generator writes (regenerate: the command in their header)', async () => {
  const m = await generate(CLUSTER, {
    image: 'registry.example.com/bpfctl:0.1.0',
    peers: parsePeers(CLUSTER_PEERS, 7946),
    secret: { existing: 'bpfctl-hello-cluster-link' },
    hugepagesBytes: poolHugepagesBytes(await loadPolicyFile(CLUSTER)),
  });
  const files = renderFiles(m, EXAMPLE_COMMAND);
  const dir = join(repo, 'examples/k8s/manifests');
  assert.equal([...files.keys()].sort(), ['00-namespace.yaml', '20-configmap.yaml', '30-daemonset.yaml', '40-service.yaml']);
  for (const [file, text] of files) assert.fixture(readFileSync(join(dir, file), 'utf8'), text);
  assert.not.ok(existsSync(join(dir, '10-secret.yaml')), 'no secret in git');
});

// ---- The policy tree ----

test('boutique: the files handlers import (../lib) come along, at their paths, and build from the mount', async () => {
  const m = await generate(BOUTIQUE);
  const objs = checkAll(m);
  const cm = ofKind(objs, 'ConfigMap')[0];
  const volume = ofKind(objs, 'DaemonSet')[0].spec.template.spec.volumes.find((v: Obj) => v.name === 'policy');
  const paths = volume.configMap.items.map((i: Obj) => i.path);
  for (const p of ['policy.ts', 'lib/json.ts', 'lib/money.ts', 'lib/catalog-data.ts', 'functions/catalog.ts']) assert.ok(paths.includes(p), p);
  const dir = temp('boutique');
  mountConfigMap(cm, volume, dir, '2026_01_01_00_00_00.000000001');
  const file = policyFileOf(dir);
  for (const f of (await loadPolicyFile(file)).functions) await buildFunctionCode(file, f);
});

test('import scanning: relative imports outside comments, not type-only ones', () => {
  const src = `import a from './a.ts';
// import b from './commented.ts';
/* import c from './block.ts'; */
import type { T } from './types-only.ts';
export { x } from '../x.ts';
import './side-effect.ts';
const url = 'http://example.com/'; import { y } from "./after-url.ts";
const m = await import('./dynamic.ts');
import pkg from 'some-package';
export type { U } from './type-export.ts';
`;
  assert.equal(relativeImports(src).sort(), ['../x.ts', './a.ts', './after-url.ts', './dynamic.ts', './side-effect.ts']);
});

test('a file outside the policy directory, and nested paths, are refused or mapped as the mount can hold them', async () => {
  // middlenet's packet functions are ../packet-nat/nf/*.c: a ConfigMap mounted as its directory cannot hold them.
  try {
    await generate(join(repo, 'examples/middlenet/policy.ts'));
    assert.unreachable('generated');
  } catch (err) {
    assert.instance(err, K8sManifestError);
    assert.match((err as Error).message, /packet-nat\/nf\/vxlan_decap\.c \(the handler of packet function decap\) is outside the policy's directory .*examples\/middlenet/);
  }
  assert.is(keyOf('functions/upper.ts'), 'functions_upper.ts');
  assert.is(keyOf('a b/ü.ts'), 'a-b_-.ts');
});

test('--include: a prebuilt program goes in binaryData, mounted executable; text stays text', async () => {
  const src = temp('include');
  mkdirSync(join(src, 'functions'));
  mkdirSync(join(src, 'bin'));
  writeFileSync(join(src, 'functions/h.ts'), 'export default (req: { body: Uint8Array }) => req.body.length;\n');
  writeFileSync(join(src, 'policy.ts'), "import { definePolicy } from 'bpfctl';\nexport default definePolicy({ name: 'inc', functions: { h: { instances: 1, handler: './functions/h.ts' } }, routes: { '/h': ['h'] } });\n");
  writeFileSync(join(src, 'bin/tool'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 0xff]), { mode: 0o755 });
  writeFileSync(join(src, 'bin/data.txt'), 'plain text\n');
  const objs = checkAll(await generate(join(src, 'policy.ts'), {}, [join(src, 'bin')]));
  const cm = ofKind(objs, 'ConfigMap')[0];
  assert.equal(Buffer.from(cm.binaryData['bin_tool'], 'base64'), readFileSync(join(src, 'bin/tool')));
  assert.is(cm.data['bin_data.txt'], 'plain text\n');
  const items = ofKind(objs, 'DaemonSet')[0].spec.template.spec.volumes.find((v: Obj) => v.name === 'policy').configMap.items;
  assert.equal(items.find((i: Obj) => i.path === 'bin/tool'), { key: 'bin_tool', path: 'bin/tool', mode: 0o755 });
  assert.is(items.find((i: Obj) => i.path === 'bin/data.txt').mode, undefined);
  const dir = temp('mount3');
  mountConfigMap(cm, ofKind(objs, 'DaemonSet')[0].spec.template.spec.volumes.find((v: Obj) => v.name === 'policy'), dir, '2026_01_01_00_00_00.000000001');
  assert.ok((lstatSync(join(dir, '..data/bin/tool')).mode & 0o111) !== 0, 'executable in the mount');
  // More than a ConfigMap holds: refused with the largest files named.
  writeFileSync(join(src, 'bin/big.bin'), Buffer.alloc(1024 * 1024 + 1, 1));
  try {
    await generate(join(src, 'policy.ts'), {}, [join(src, 'bin')]);
    assert.unreachable('generated');
  } catch (err) {
    assert.match((err as Error).message, /more than the 1048576 a ConfigMap holds \(largest: bin\/big\.bin 1048577 B/);
  }
});

test('a C handler brings the headers it includes with quotes from beside it, not bpfctl\'s own', async () => {
  const src = temp('c');
  mkdirSync(join(src, 'functions/inc'), { recursive: true });
  writeFileSync(join(src, 'functions/shout.c'), '#include "bpfctl/fn.h"\n#include "inc/util.h"\nint x;\n');
  writeFileSync(join(src, 'functions/inc/util.h'), '#include "more.h"\n');
  writeFileSync(join(src, 'functions/inc/more.h'), '/* more */\n');
  writeFileSync(join(src, 'policy.ts'), "import { definePolicy } from 'bpfctl';\nexport default definePolicy({ name: 'c', functions: { shout: { instances: 1, handler: './functions/shout.c' } }, routes: { '/s': ['shout'] } });\n");
  const ir = await loadPolicyFile(join(src, 'policy.ts'));
  const tree = await collectPolicyTree(join(src, 'policy.ts'), ir);
  assert.equal(
    tree.files.map((f) => f.path),
    ['functions/inc/more.h', 'functions/inc/util.h', 'functions/shout.c', 'policy.ts'],
  );
  assert.equal(tree.packages, []);
});

// ---- Options that Kubernetes or the agent would refuse ----

test('options and placements Kubernetes or the agent cannot run are refused, each in one line', async () => {
  const refuse = async (what: RegExp, policy: string, o: Partial<ManifestOptions>) => {
    try {
      await generate(policy, o);
      assert.unreachable(`generated (${what})`);
    } catch (err) {
      assert.instance(err, K8sManifestError, String(err));
      assert.match((err as Error).message, what);
      assert.not.match((err as Error).message, /\n/);
    }
  };
  await refuse(/--namespace 'Bpf_ctl' must be a DNS label/, HELLO, { namespace: 'Bpf_ctl' });
  await refuse(/--gateway-port must be a port number 1-65535, got 0/, HELLO, { gatewayPort: 0 });
  await refuse(/--secret-name 'Bad Name' must be a DNS subdomain/, HELLO, { secret: { existing: 'Bad Name' } });
  await refuse(/at least 16 bytes/, HELLO, { secret: { value: 'short' } });
  await refuse(/places functions on nodes \(upper, reverse\): give --peers/, CLUSTER, {});
  await refuse(/functions\.reverse\.placement\.nodes\[1\]: node 'node-c' is not in --peers \(node-a, node-b\)/, CLUSTER, { peers: parsePeers('node-a=1.1.1.1,node-b=1.1.1.2', 7946) });
  const many = Array.from({ length: 33 }, (_, i) => `n${i}=10.0.0.${i}`).join(',');
  await refuse(/33 nodes x 1 gateway processes exceed the 32 gateway instance ids/, HELLO, { peers: parsePeers(many, 7946) });
  assert.throws(() => parsePeers('a=1.2.3.4:7000', 7946), /every agent listens on the node-link port 7946/);
  assert.throws(() => parsePeers('A=1.2.3.4', 7946), /must be a Kubernetes node name/);
  assert.throws(() => parsePeers('a=1.2.3.4,a=1.2.3.5', 7946), /names a twice/);
  assert.equal(parsePeers('a=[fd00::1]', 7946), [{ name: 'a', host: 'fd00::1', port: 7946 }]);
  assert.is(parseHugepages('64Mi'), 64 * 1024 * 1024);
  assert.is(parseHugepages('off'), 0);
  assert.throws(() => parseHugepages('3Mi'), /not a whole number of 2Mi pages/);
  assert.throws(() => parseHugepages('lots'), /must be auto, 0/);
});

// ---- The checks themselves can fail ----

test('the schemas reject broken objects (so passing them means something)', async () => {
  const objs = parsed(await generate(HELLO));
  const ds = ofKind(objs, 'DaemonSet')[0];
  const broken: [string, (o: Obj) => void][] = [
    ['data/spec must have required property selector', (o) => delete o.spec.selector],
    ['hostNetwork must be boolean', (o) => (o.spec.template.spec.hostNetwork = 'yes')],
    ['containerPort must be integer', (o) => (o.spec.template.spec.containers[0].ports[0].containerPort = '8080')],
    ['capabilities/add must be array', (o) => (o.spec.template.spec.containers[0].securityContext.capabilities.add = 'BPF')],
    ['apiVersion must be equal to one of the allowed values', (o) => (o.apiVersion = 'extensions/v1beta1')],
  ];
  for (const [want, breakIt] of broken) {
    const o = structuredClone(ds);
    breakIt(o);
    assert.match(schemaError(o) ?? 'accepted', want);
  }
  const svc = structuredClone(ofKind(objs, 'Service')[0]);
  svc.spec.ports[0].port = 'eighty';
  assert.match(schemaError(svc) ?? 'accepted', /port must be integer/);
});

test('the API rules reject what the schemas let through', async () => {
  const objs = parsed(await generate(HELLO, { hugepagesBytes: 4 * 1024 * 1024 }));
  const ds = ofKind(objs, 'DaemonSet')[0];
  const cm = ofKind(objs, 'ConfigMap')[0];
  const cases: [RegExp, Obj, (o: Obj) => void][] = [
    [/data key 'functions\/upper\.ts' must be/, cm, (o) => (o.data['functions/upper.ts'] = 'x')],
    [/Bidirectional mount propagation is only for privileged containers/, ds, (o) => (o.spec.template.spec.containers[0].volumeMounts[2].mountPropagation = 'Bidirectional')],
    [/matchFields\[0\] must have exactly one value, has 2/, ds, (o) => (o.spec.template.spec.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['a', 'b'] }] }] } } })],
    [/hugepages-2Mi requests must equal limits/, ds, (o) => (o.spec.template.spec.containers[0].resources.limits['hugepages-2Mi'] = '8Mi')],
    [/allowPrivilegeEscalation false cannot go with privileged or CAP_SYS_ADMIN/, ds, (o) => (o.spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation = false)],
    [/volumeMounts\[0\] names no volume \('policy'\)/, ds, (o) => o.spec.template.spec.volumes.shift()],
    [/port name 'gateway-http-port' must be at most 15/, ds, (o) => (o.spec.template.spec.containers[0].ports[0].name = 'gateway-http-port')],
    [/items\[0\]\.path '\.\.\/escape\.ts' must be relative, without '\.\.'/, ds, (o) => (o.spec.template.spec.volumes[0].configMap.items[0].path = '../escape.ts')],
    [/spec\.selector does not match the template's labels/, ds, (o) => (o.spec.selector.matchLabels['app.kubernetes.io/name'] = 'other')],
    [/metadata\.name 'Bad_Name' must be a DNS subdomain/, cm, (o) => (o.metadata.name = 'Bad_Name')],
    [/label value 'has space' must be/, cm, (o) => (o.metadata.labels.x = 'has space')],
  ];
  for (const [want, base, breakIt] of cases) {
    const o = structuredClone(base);
    breakIt(o);
    assert.is(schemaError(o), null, `the schema lets it through: ${want}`);
    assert.match(objectProblems(o).join('\n'), want);
  }
  // Objects valid alone that do not run together.
  const svc = structuredClone(ofKind(objs, 'Service')[0]);
  svc.spec.selector = { 'app.kubernetes.io/name': 'nobody' };
  assert.match(referenceProblems([...objs.filter((o) => o.kind !== 'Service'), svc] as K8sObject[]).join('\n'), /selector matches no pod template/);
  const lacking = structuredClone(cm);
  delete lacking.data['functions_upper.ts'];
  assert.match(referenceProblems(objs.map((o) => (o.kind === 'ConfigMap' ? lacking : o)) as K8sObject[]).join('\n'), /item functions_upper\.ts is not a key of ConfigMap/);
  assert.match(referenceProblems(objs.filter((o) => o.kind !== 'Secret') as K8sObject[]).join('\n'), /names Secret bpfctl-hello-chain-link, which is not among the objects/);
});

test.run();
