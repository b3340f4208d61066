/**
 * `bpfctl k8s manifests POLICY`: the Kubernetes objects that run a policy's agents on a cluster
 * (docs/kubernetes.md): YAML on stdout, one file per kind with `-o DIR`, a `List` with `--json`.
 * Needs no privileges and no cluster: it reads the policy and its files, nothing else.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { K8sManifestError } from '../../deploy/k8s/errors.ts';
import { FILES, generateManifests, type Manifests } from '../../deploy/k8s/manifests.ts';
import {
  DEFAULT_GATEWAY_PORT,
  DEFAULT_LINK_PORT,
  DEFAULT_NAMESPACE,
  parseHugepages,
  parsePeers,
  poolHugepagesBytes,
  type SecretSource,
} from '../../deploy/k8s/options.ts';
import { listObject, renderFiles, renderYaml } from '../../deploy/k8s/render.ts';
import { collectPolicyTree } from '../../deploy/k8s/tree.ts';
import { loadPolicyFile } from '../../load/index.ts';
import { VERSION } from '../../package.ts';
import { usage } from './catalog.ts';
import { type Args, defineCommand } from './types.ts';

interface ManifestsArgs {
  policy: string;
  namespace: string;
  image?: string;
  gatewayPort: number;
  linkPort: number;
  peers?: string;
  secretFromFile?: string;
  secretName?: string;
  hugepages: string;
  include?: string[];
  output?: string;
}

const manifests = defineCommand<ManifestsArgs>({
  command: 'manifests <policy>',
  describe: "Write what a cluster needs to run a policy's agents: Namespace, node-link Secret, policy ConfigMap, agent DaemonSet, gateway Service",
  builder: (y) =>
    y
      .positional('policy', { type: 'string', demandOption: true, describe: 'policy file (policy.ts); its handlers and the files they import come along' })
      .option('namespace', { alias: 'n', type: 'string', default: DEFAULT_NAMESPACE, describe: 'namespace of every object' })
      .option('image', { type: 'string', describe: `image with bpfctl, clang and libbpf (default bpfctl:${VERSION}; docs/kubernetes.md builds it)` })
      .option('gateway-port', { type: 'number', default: DEFAULT_GATEWAY_PORT, describe: "gateway HTTP port on each node (host network); the Service's port 80 goes there" })
      .option('link-port', { type: 'number', default: DEFAULT_LINK_PORT, describe: 'node-link port on each node (host network)' })
      .option('peers', { type: 'string', describe: 'every node of a multi-node policy, NAME=HOST[:PORT],... (Kubernetes node names, node IPs)' })
      .option('secret-from-file', { type: 'string', describe: 'node-link secret from this file (default: a random one; kept from the Secret already in -o DIR)' })
      .option('secret-name', { type: 'string', describe: 'use this existing Secret (key "secret") instead of writing one' })
      .option('hugepages', { type: 'string', default: 'auto', describe: "2Mi huge pages each agent requests: auto (the pool's size), 0 (none: the pool goes in /dev/shm), or e.g. 64Mi" })
      .option('include', { type: 'string', array: true, describe: 'more files or directories to put in the ConfigMap (what handlers read at run time)' })
      .option('output', { alias: 'o', type: 'string', describe: 'write one file per kind into this directory instead of YAML on stdout' }),
  handler: async (argv: Args<ManifestsArgs>) => {
    const { out } = argv;
    if (argv.secretName !== undefined && argv.secretFromFile !== undefined) throw new K8sManifestError('give --secret-name or --secret-from-file, not both');
    const ir = await loadPolicyFile(argv.policy);
    const peers = parsePeers(argv.peers ?? '', argv.linkPort);
    const tree = await collectPolicyTree(argv.policy, ir, argv.include ?? []);
    const dir = argv.output === undefined ? undefined : resolve(argv.output);
    const { secret, kept } = secretSource(argv, dir);
    const m = generateManifests(ir, tree, {
      namespace: argv.namespace,
      image: argv.image ?? `bpfctl:${VERSION}`,
      gatewayPort: argv.gatewayPort,
      linkPort: argv.linkPort,
      peers,
      secret,
      hugepagesBytes: argv.hugepages === 'auto' ? poolHugepagesBytes(ir) : parseHugepages(argv.hugepages),
    });
    if (kept) m.notes.unshift(`kept the node-link secret of ${kept}`);
    else if ('value' in secret && argv.secretFromFile === undefined) {
      m.notes.unshift('a new random node-link secret is in the Secret: apply it once (agents that started with another one cannot link); -o DIR keeps it on the next run, --secret-from-file or --secret-name give one');
    }
    const source = commandLine(argv);
    if (dir === undefined) {
      if (out.json) out.printJson(listObject(m));
      else out.stdout.write(renderYaml(m, source));
      for (const n of m.notes) out.progress(`note: ${n}`);
      return;
    }
    const files = writeFiles(m, dir, source);
    if (out.json) return void out.printJson({ policy: ir.name, dir, files, notes: m.notes });
    // The directory is in the title; the rows name the files in it, so the table fits 80 columns.
    out.table(
      files.map((f) => ({ ...f, file: basename(f.file) })),
      ['file', 'kind', 'name'],
      `policy ${ir.name}: ${m.documents.length} objects in ${dir} (kubectl apply -f ${argv.output})`,
    );
    for (const n of m.notes) out.line(`note: ${n}`);
  },
});

/** Where the node-link secret comes from. @throws K8sManifestError */
function secretSource(argv: Args<ManifestsArgs>, dir: string | undefined): { secret: SecretSource; kept?: string } {
  if (argv.secretName !== undefined) return { secret: { existing: argv.secretName } };
  if (argv.secretFromFile !== undefined) {
    try {
      return { secret: { value: readFileSync(argv.secretFromFile, 'utf8').trim() } };
    } catch (err) {
      throw new K8sManifestError(`cannot read the secret file ${argv.secretFromFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  // Regenerating into the same directory must not change the secret under running agents.
  const file = dir === undefined ? undefined : join(dir, FILES.secret);
  if (file && existsSync(file)) return { secret: { value: keptSecret(file) }, kept: file };
  return { secret: { value: randomBytes(32).toString('hex') } };
}

function keptSecret(file: string): string {
  const why = `cannot keep the node-link secret of ${file}`;
  let docs: unknown[];
  try {
    docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as unknown);
  } catch (err) {
    throw new K8sManifestError(`${why}: ${(err as Error).message.split('\n')[0]} (remove it for a new secret)`);
  }
  const s = docs.find((d): d is { data?: Record<string, string>; stringData?: Record<string, string> } => (d as { kind?: string } | null)?.kind === 'Secret');
  const value = s?.stringData?.secret ?? (s?.data?.secret !== undefined ? Buffer.from(s.data.secret, 'base64').toString('utf8') : undefined);
  if (!value) throw new K8sManifestError(`${why}: it holds no Secret with a "secret" key (remove it for a new secret)`);
  return value;
}

/** Writes one file per kind; removes the files of kinds this run no longer writes (a Secret now named). */
function writeFiles(m: Manifests, dir: string, source: string): { file: string; kind: string; name: string }[] {
  mkdirSync(dir, { recursive: true });
  const texts = renderFiles(m, source);
  for (const [file, text] of texts) writeFileSync(join(dir, file), text);
  for (const file of Object.values(FILES)) if (!texts.has(file)) rmSync(join(dir, file), { force: true });
  return m.documents.map((d) => ({ file: join(dir, d.file), kind: d.object.kind, name: d.object.metadata?.name ?? '' }));
}

/** The command line that makes these manifests again, for their header (options left at their defaults are left out). */
function commandLine(argv: Args<ManifestsArgs>): string {
  const parts = ['bpfctl k8s manifests', argv.policy];
  const opt = (flag: string, v: unknown, def?: unknown) => {
    if (v !== undefined && v !== def) parts.push(flag, String(v));
  };
  opt('--namespace', argv.namespace, DEFAULT_NAMESPACE);
  opt('--image', argv.image);
  opt('--gateway-port', argv.gatewayPort, DEFAULT_GATEWAY_PORT);
  opt('--link-port', argv.linkPort, DEFAULT_LINK_PORT);
  opt('--peers', argv.peers);
  opt('--secret-name', argv.secretName);
  opt('--secret-from-file', argv.secretFromFile);
  opt('--hugepages', argv.hugepages, 'auto');
  for (const i of argv.include ?? []) opt('--include', i);
  opt('-o', argv.output);
  return parts.join(' ');
}

export const k8sCommand = defineCommand({
  ...usage('k8s'),
  builder: (y) => y.command(manifests).demandCommand(1),
  handler: () => {},
});
