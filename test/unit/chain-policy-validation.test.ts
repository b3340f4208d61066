/** Every kind of bad policy is refused with the path to the bad entry and a message naming the problem. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfctlError } from '../../src/errors.ts';
import { lowerPolicy, PolicyError } from '../../src/ir/policy.ts';

const good = () => ({
  name: 'ok',
  functions: {
    upper: { instances: 2, handler: './upper.ts' },
    reverse: { instances: 1, handler: './reverse.ts' },
  } as Record<string, unknown>,
  routes: { '/hello': ['upper', 'reverse'], shout: ['upper'] } as Record<string, unknown>,
  pool: { bufferSize: 4096, bufferCount: 16 } as Record<string, unknown>,
});

/** Lowers `spec` expecting a PolicyError whose issues include `path` with a message matching `message`. */
function rejects(spec: unknown, path: string, message: RegExp): PolicyError {
  try {
    lowerPolicy(spec);
  } catch (err) {
    assert.instance(err, PolicyError);
    assert.instance(err, BpfctlError);
    const e = err as PolicyError;
    assert.is(e.code, 'E_POLICY');
    const hit = e.issues.find((i) => i.path === path);
    assert.ok(hit, `expected an issue at ${path}, got: ${JSON.stringify(e.issues)}`);
    assert.match(hit!.message, message);
    return e;
  }
  assert.unreachable(`policy was accepted, expected an error at ${path}`);
  throw new Error('unreachable');
}

test('a good policy lowers with ids in policy order', () => {
  const ir = lowerPolicy(good());
  assert.equal(
    ir.functions.map((f) => [f.id, f.name]),
    [
      [1, 'upper'],
      [2, 'reverse'],
    ],
  );
  assert.equal(
    ir.routes.map((r) => [r.id, r.name, r.hops]),
    [
      [0, '/hello', [1, 2]],
      [1, 'shout', [1]],
    ],
  );
  assert.equal(ir.gateway, { id: 0, name: 'gateway', instances: 1, engine: 'native' });
  assert.equal(JSON.parse(JSON.stringify(ir)), ir, 'the IR is plain JSON data');
});

test('unknown function in a route: path names the route and position', () => {
  const s = good();
  s.routes['/hello'] = ['upper', 'revrse'];
  const e = rejects(s, "routes['/hello'][1]", /route '\/hello' hop 1 names unknown function "revrse" \(functions: upper, reverse\)/);
  assert.is(e.path, "routes['/hello'][1]");
  assert.match(e.message, /^policy ok: routes\['\/hello'\]\[1\]: /);
});

test('empty route', () => {
  const s = good();
  s.routes.shout = [];
  rejects(s, 'routes.shout', /route 'shout' is empty: it must visit at least one function/);
});

test('route that is not an array', () => {
  const s = good();
  s.routes.shout = 'upper';
  rejects(s, 'routes.shout', /must be an array of function names or \{ functions, methods \}, got "upper"/);
});

test('the long route form: { functions, methods }', () => {
  const s = good();
  s.routes.shout = { functions: ['upper'], methods: ['get', 'PUT'] };
  const ir = lowerPolicy(s);
  const shout = ir.routes.find((r) => r.name === 'shout')!;
  assert.equal(shout.functions, ['upper']);
  // Upper-cased, in ROUTE_METHODS order; GET implies HEAD.
  assert.equal(shout.methods, ['GET', 'HEAD', 'PUT']);
  assert.equal(ir.routes.find((r) => r.name === '/hello')!.methods, ['POST'], 'the default is POST');
  const bad = good();
  bad.routes.shout = { functions: ['upper'], methods: ['BREW'] };
  rejects(bad, 'routes.shout.methods[0]', /unknown HTTP method "BREW"/);
  const empty = good();
  empty.routes.shout = { functions: ['upper'], methods: [] };
  rejects(empty, 'routes.shout.methods', /methods must be a non-empty array/);
  const hop = good();
  hop.routes.shout = { functions: ['upper', 'nope'] };
  rejects(hop, 'routes.shout.functions[1]', /hop 1 names unknown function "nope"/);
});

test('too many hops', () => {
  const s = good();
  s.routes.long = Array(17).fill('upper');
  rejects(s, 'routes.long', /has 17 hops \(at most 16\)/);
});

test('bad route names and duplicate routes', () => {
  const s = good();
  s.routes['no spaces'] = ['upper'];
  rejects(s, "routes['no spaces']", /must be a C identifier or a path like '\/hello'/);
  const d = good();
  d.routes['/hello/'] = ['upper'];
  rejects(d, "routes['/hello/']", /duplicate route '\/hello\/' \(same as '\/hello'\)/);
});

test('too many routes', () => {
  const s = good();
  for (let i = 0; i < 63; i++) s.routes[`r${i}`] = ['upper'];
  rejects(s, 'routes', /too many routes: 65 \(at most 64\)/);
});

test('no routes, no functions', () => {
  rejects({ ...good(), routes: {} }, 'routes', /at least one route/);
  rejects({ ...good(), functions: {}, routes: { a: ['x'] } }, 'functions', /at least one function/);
});

test('function names: C identifiers, not reserved, not duplicates by case', () => {
  const s = good();
  s.functions['my-fn'] = { instances: 1, handler: './x.ts' };
  rejects(s, "functions['my-fn']", /function name 'my-fn' must be a C identifier/);
  const g = good();
  g.functions.gateway = { instances: 1, handler: './g.ts' };
  rejects(g, 'functions.gateway', /reserved: function 0 is the gateway/);
  const c = good();
  c.functions.Upper = { instances: 1, handler: './U.ts' };
  rejects(c, 'functions.Upper', /duplicate function name 'Upper' \(same as 'upper'/);
  const k = good();
  k.functions.int = { instances: 1, handler: './i.ts' };
  rejects(k, 'functions.int', /is a C keyword/);
  const l = good();
  l.functions[`f${'x'.repeat(40)}`] = { instances: 1, handler: './i.ts' };
  rejects(l, `functions.f${'x'.repeat(40)}`, /at most 32 characters/);
});

test('too many functions', () => {
  const s = good();
  for (let i = 0; i < 62; i++) s.functions[`f${i}`] = { instances: 1, handler: './f.ts' };
  rejects(s, 'functions', /too many functions: 64 \(at most 63\)/);
});

test('instances out of range, bad handler, language, maxInFlight, unknown setting', () => {
  const s = good();
  s.functions.upper = { instances: 33, handler: './upper.ts' };
  rejects(s, 'functions.upper.instances', /instances must be between 1 and 32, got 33/);
  s.functions.upper = { instances: 0, handler: './upper.ts' };
  rejects(s, 'functions.upper.instances', /between 1 and 32, got 0/);
  s.functions.upper = { instances: 1.5, handler: './upper.ts' };
  rejects(s, 'functions.upper.instances', /must be an integer, got 1.5/);
  s.functions.upper = { instances: 1, handler: '' };
  rejects(s, 'functions.upper.handler', /handler must be a non-empty path/);
  s.functions.upper = { instances: 1, handler: './u.ts', language: 'rust' };
  rejects(s, 'functions.upper.language', /language must be 'ts' or 'c', got "rust"/);
  s.functions.upper = { instances: 1, handler: './u.ts', maxInFlight: 0 };
  rejects(s, 'functions.upper.maxInFlight', /between 1 and 65535/);
  s.functions.upper = { instance: 1, handler: './u.ts' };
  rejects(s, 'functions.upper.instance', /unknown setting 'instance'/);
});

test('pool bounds', () => {
  const s = good();
  s.pool = { bufferSize: 100, bufferCount: 16 };
  rejects(s, 'pool.bufferSize', /power of two/);
  s.pool = { bufferSize: 32, bufferCount: 16 };
  rejects(s, 'pool.bufferSize', /between 64 and 1048576, got 32/);
  s.pool = { bufferSize: 4096, bufferCount: 0 };
  rejects(s, 'pool.bufferCount', /between 1 and 65536, got 0/);
  s.pool = { bufferSize: 1 << 20, bufferCount: 2048 };
  rejects(s, 'pool', /exceeds 1073741824 B \(1 GiB\)/);
});

test('policy name and gateway', () => {
  rejects({ ...good(), name: 'Bad Name' }, 'name', /policy name must be 1-48 characters/);
  rejects({ ...good(), gateway: { instances: 40 } }, 'gateway.instances', /between 1 and 32, got 40/);
  rejects({ ...good(), gateway: { processes: 0 } }, 'gateway.processes', /processes must be between 1 and 32, got 0/);
  rejects({ ...good(), gateway: { engine: 'nginx' } }, 'gateway.engine', /engine must be one of 'node', 'native', got/);
  rejects({ ...good(), gateway: { processes: 2, instances: 2 } }, 'gateway.instances', /give processes or instances \(its older name\), not both/);
  rejects({ ...good(), gateway: { engine: 'native', threads: 2 } }, 'gateway.threads', /unknown setting 'threads'/);
  assert.equal(lowerPolicy({ ...good(), gateway: { engine: 'native', processes: 3 } }).gateway, { id: 0, name: 'gateway', instances: 3, engine: 'native' });
  assert.equal(lowerPolicy({ ...good(), gateway: { instances: 2 } }).gateway, { id: 0, name: 'gateway', instances: 2, engine: 'native' }, 'instances still works');
  rejects({ ...good(), extra: 1 }, 'extra', /unknown setting 'extra'/);
  rejects(42, '(policy)', /a policy must be an object/);
});

test('every problem is reported at once, and detail() lists them', () => {
  const s = good();
  s.routes['/hello'] = ['nope'];
  s.pool = { bufferSize: 3, bufferCount: 1 };
  const e = rejects(s, "routes['/hello'][0]", /unknown function "nope"/);
  assert.ok(e.issues.length >= 2);
  assert.match(e.message, /and \d+ more problem/);
  assert.match(e.detail(), /pool\.bufferSize: /);
  assert.equal(e.toJSON().path, "routes['/hello'][0]");
});

test.run();
