import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { XdpSectionSpec } from '../../src/dsl/xdp.ts';
import { drop, pass, redirect, set, toXsk, xdpSection } from '../../src/dsl/xdp.ts';
import { BpfctlError } from '../../src/errors.ts';
import { PolicyError } from '../../src/ir/policy.ts';
import { canonicalSetElement, lowerXdpSections, parseIpv6, parsePrefix } from '../../src/ir/xdp.ts';

const test = suite('xdp validation');

/** Lowers one section whose rules are `rules`, expecting an error at `path` whose message contains `text`. */
function rejects(section: Partial<XdpSectionSpec> & Record<string, unknown>, path: string, text: string | RegExp): void {
  try {
    lowerXdpSections([{ interface: 'eth0', ...section } as XdpSectionSpec], 'xdp');
  } catch (err) {
    assert.instance(err, PolicyError);
    assert.instance(err, BpfctlError);
    const e = err as PolicyError;
    assert.is(e.code, 'E_POLICY');
    assert.is(e.path, path, e.message);
    if (typeof text === 'string') assert.ok(e.message.includes(text), `"${e.message}" should mention "${text}"`);
    else assert.match(e.message, text);
    assert.equal(e.toJSON().path, path);
    return;
  }
  assert.unreachable(`expected an error at ${path}`);
}

const rule = (match: Record<string, unknown>, action: unknown = 'drop') => ({ rules: [{ match, action }] as never });

test('a full section lowers to plain data', () => {
  const [s] = lowerXdpSections(
    [
      xdpSection({
        interface: 'eth0',
        default: 'drop',
        sets: { admins: { type: 'ipv4-prefix', elements: ['10.1.0.0/16', '10.1.0.0/16', '192.0.2.1'] }, web: { type: 'port', elements: [80, '443'] } },
        rules: [
          pass({ src: set('admins'), proto: 'tcp', dport: 22 }, { name: 'ssh' }),
          pass({ dport: set('web') }),
          drop({ src: '2001:db8::/32', tcpFlags: { syn: true, ack: false } }),
          redirect('eth1', { vlan: 100 }),
          toXsk('ids', { proto: 'udp', dport: '4000-4010' }, { count: false }),
          pass({ dst: 'fd00::1', icmpType: 'echo-request' }),
        ],
      }),
    ],
    'xdp',
  );
  assert.ok(s);
  assert.equal(JSON.parse(JSON.stringify(s)), s, 'IR is plain JSON');
  assert.equal(s.sets[0]!.elements, ['10.1.0.0/16', '192.0.2.1/32']);
  assert.equal(s.sets[1]!.elements, ['80', '443']);
  assert.is(s.default.kind, 'drop');
  assert.is(s.malformed, 'drop');
  assert.is(s.mode, 'auto');
  assert.equal(s.redirects, ['eth1']);
  assert.equal(s.xskGroups, ['ids']);
  assert.equal(
    s.rules.map((r) => r.summary),
    [
      'ip4 src @admins tcp dport 22 -> pass',
      'ip tcp|udp dport @web -> pass',
      'ip6 src 2001:db8::/32 tcp flags syn,!ack -> drop',
      'vlan 100 -> redirect eth1',
      'ip udp dport 4000-4010 -> xsk ids',
      'ip6 dst fd00::1/128 icmpv6 type 128 -> pass',
    ],
  );
  assert.is(s.rules[0]!.name, 'ssh');
  assert.is(s.rules[1]!.name, 'rule1');
  assert.is(s.rules[4]!.count, false);
  assert.equal(s.rules[2]!.match.tcpFlags, { mask: 0x12, value: 0x02, text: 'syn,!ack' });
  assert.equal(s.rules[4]!.match.dport, { lo: 4000, hi: 4010 });
});

test('no sections, no rules', () => {
  assert.equal(lowerXdpSections(undefined, 'xdp'), []);
  const [s] = lowerXdpSections([{ interface: 'lo' }], 'xdp');
  assert.equal(s!.rules, []);
  assert.equal(s!.default, { kind: 'pass' });
});

test('bad prefixes name the rule', () => {
  rejects(rule({ src: '10.0.0.0/33' }), 'xdp[0].rules[0].match.src', 'length must be 0..32');
  rejects(rule({ src: '10.0.0.1/8' }), 'xdp[0].rules[0].match.src', 'did you mean 10.0.0.0/8');
  rejects(rule({ dst: '300.1.2.3' }), 'xdp[0].rules[0].match.dst', 'bad prefix');
  rejects(rule({ dst: '2001:db8::1/32' }), 'xdp[0].rules[0].match.dst', 'did you mean 2001:db8::/32');
  rejects({ rules: [{ action: 'pass' }, { match: { src: 'nope' }, action: 'pass' }] as never }, 'xdp[0].rules[1].match.src', "bad prefix 'nope'");
});

test('ports: range reversed, out of range, wrong shape', () => {
  rejects(rule({ proto: 'tcp', dport: [2000, 1000] }), 'xdp[0].rules[0].match.dport', 'port range reversed: 2000 > 1000');
  rejects(rule({ dport: '9-1' }), 'xdp[0].rules[0].match.dport', 'reversed');
  rejects(rule({ sport: 70000 }), 'xdp[0].rules[0].match.sport', '0..65535');
  rejects(rule({ sport: 'http' }), 'xdp[0].rules[0].match.sport', 'expected a port');
});

test('unknown sets and sets of the wrong kind', () => {
  rejects(rule({ src: { set: 'nope' } }), 'xdp[0].rules[0].match.src.set', 'unknown set "nope" (this section declares no sets)');
  rejects({ sets: { a: { type: 'port' } }, ...rule({ src: { set: 'b' } }) }, 'xdp[0].rules[0].match.src.set', 'this section has: a');
  rejects({ sets: { a: { type: 'port' } }, ...rule({ src: { set: 'a' } }) }, 'xdp[0].rules[0].match.src.set', 'holds port elements');
  rejects({ sets: { a: { type: 'ipv4' } }, ...rule({ dport: { set: 'a' } }) }, 'xdp[0].rules[0].match.dport.set', 'needs a port set');
});

test('impossible matches', () => {
  rejects(rule({ proto: 'udp', tcpFlags: 'syn' }), 'xdp[0].rules[0].match.tcpFlags', 'tcpFlags needs proto tcp but proto is udp');
  rejects(rule({ ethType: 'ipv6', src: '10.0.0.0/8' }), 'xdp[0].rules[0].match.src', 'needs IPv4 but ethType 0x86dd only matches IPv6');
  rejects(rule({ src: '10.0.0.0/8', dst: 'fd00::/8' }), 'xdp[0].rules[0].match.dst', 'impossible match');
  rejects(rule({ ethType: 'arp', proto: 'tcp' }), 'xdp[0].rules[0].match.proto', 'non-IP');
  rejects(rule({ proto: 'icmp', dport: 53 }), 'xdp[0].rules[0].match.dport', 'dport needs proto tcp or udp');
  rejects(rule({ proto: 'icmp', src: 'fd00::/8' }), 'xdp[0].rules[0].match.proto', 'impossible match');
  rejects(rule({ proto: 'tcp', icmpType: 8 }), 'xdp[0].rules[0].match.icmpType', 'impossible match');
  rejects(rule({ icmpType: 8 }), 'xdp[0].rules[0].match.icmpType', "needs proto 'icmp' or 'icmpv6'");
  rejects(rule({ tcpFlags: 'syn,!syn' }), 'xdp[0].rules[0].match.tcpFlags', 'both set and clear');
  rejects(rule({ tcpFlags: 'sin' }), 'xdp[0].rules[0].match.tcpFlags', "unknown TCP flag 'sin'");
  rejects(rule({ dport: 53, icmpCode: 0, src: '10.0.0.0/8' }), 'xdp[0].rules[0].match.icmpCode', 'ICMP has no ports');
});

test('other field checks', () => {
  rejects(rule({ vlan: 4096 }), 'xdp[0].rules[0].match.vlan', '0..4095');
  rejects(rule({ dscp: 64 }), 'xdp[0].rules[0].match.dscp', '0..63');
  rejects(rule({ srcMac: '02:00:00:00:00' }), 'xdp[0].rules[0].match.srcMac', 'bad MAC');
  rejects(rule({ ethType: 'ipx' }), 'xdp[0].rules[0].match.ethType', 'unknown ethType');
  rejects(rule({ ethType: 0x100 }), 'xdp[0].rules[0].match.ethType', 'EtherType');
  rejects(rule({ port: 80 }), 'xdp[0].rules[0].match.port', "unknown field 'port'");
  rejects(rule({ proto: 'sctp' }), 'xdp[0].rules[0].match.proto', 'unknown proto');
  rejects(rule({ icmpType: 'echo', proto: 'icmp' }), 'xdp[0].rules[0].match.icmpType', "unknown ICMP type 'echo'");
});

test('actions, names, sections', () => {
  rejects(rule({}, 'reject'), 'xdp[0].rules[0].action', 'unknown action "reject"');
  rejects(rule({}, { redirect: 'a/b' }), 'xdp[0].rules[0].action.redirect', 'bad interface name');
  rejects(rule({}, { xsk: 'bad-name' }), 'xdp[0].rules[0].action.xsk', 'bad AF_XDP group');
  rejects({ rules: [{ match: {} }] as never }, 'xdp[0].rules[0].action', 'missing');
  rejects({ rules: [{ name: 'a', action: 'pass' }, { name: 'a', action: 'drop' }] as never }, 'xdp[0].rules[1].name', "duplicate rule name 'a' (also rules[0])");
  rejects({ mode: 'fast' } as never, 'xdp[0].mode', "'auto', 'native' or 'generic'");
  rejects({ default: 'maybe' } as never, 'xdp[0].default', 'unknown action');
  rejects({ interface: '' }, 'xdp[0].interface', 'bad interface name');
  rejects({ rule: [] }, 'xdp[0].rule', "unknown field 'rule'");
  assert.throws(
    () => lowerXdpSections([{ interface: 'eth0' }, { interface: 'eth0' }], 'xdp'),
    (e: PolicyError) => e.path === 'xdp[1].interface' && e.message.includes('already has xdp[0]'),
  );
});

test('every problem is reported, each with its path, in one run', () => {
  try {
    lowerXdpSections(
      [
        {
          interface: 'eth0',
          mode: 'fast',
          sets: { '1x': { type: 'port' }, ok: { type: 'port', elements: [1, 'x'] } },
          rules: [
            { match: { proto: 'tcp', dport: 70000, vlan: 5000 }, action: 'drop' },
            { match: { src: { set: 'ok' } }, action: 'reject' },
            { match: { dport: { set: 'ok' } }, action: 'pass' },
          ],
        },
        { interface: 'a/b' },
      ] as never,
      'xdp',
    );
    assert.unreachable('expected a PolicyError');
  } catch (err) {
    assert.instance(err, PolicyError);
    const paths = (err as PolicyError).issues.map((i) => i.path);
    assert.equal(paths, [
      'xdp[0].mode',
      "xdp[0].sets['1x']",
      'xdp[0].sets.ok.elements[1]',
      'xdp[0].rules[0].match.vlan',
      'xdp[0].rules[0].match.dport',
      'xdp[0].rules[1].action',
      'xdp[1].interface',
    ]);
    // rules[2] names the set that did not validate: that is reported once, at the set.
    assert.match((err as PolicyError).message, /and 6 more problems/);
  }
});

test('too many inline rules point at sets', () => {
  rejects({ rules: Array.from({ length: 1025 }, () => ({ action: 'pass' })) as never }, 'xdp[0].rules', 'put long lists in a set');
});

test('sets: names, types, elements, capacity', () => {
  rejects({ sets: { '1x': { type: 'port' } } }, "xdp[0].sets['1x']", 'bad set name');
  rejects({ sets: { a: { type: 'cidr' as 'port' } } }, 'xdp[0].sets.a.type', 'unknown set type "cidr"');
  rejects({ sets: { a: { type: 'ipv4-prefix', elements: ['10.0.0.0/8', 'fd00::/8'] } } }, 'xdp[0].sets.a.elements[1]', 'expected an IPv4 prefix');
  rejects({ sets: { a: { type: 'ipv4', elements: ['10.0.0.0/8'] } } }, 'xdp[0].sets.a.elements[0]', "use type 'ipv4-prefix'");
  rejects({ sets: { a: { type: 'port', elements: [1, 2, 3], maxEntries: 2 } } }, 'xdp[0].sets.a.elements', 'do not fit maxEntries 2');
  rejects({ sets: { a: { type: 'mac', elements: ['zz'] } } }, 'xdp[0].sets.a.elements[0]', 'bad MAC');
});

test('address helpers', () => {
  assert.equal(parseIpv6('::ffff:192.0.2.1')?.slice(10), [0xff, 0xff, 192, 0, 2, 1]);
  assert.equal(parseIpv6('2001:db8::1')?.slice(0, 4), [0x20, 0x01, 0x0d, 0xb8]);
  const p = parsePrefix('2001:db8:0:0:1::/80');
  assert.equal(typeof p === 'string' ? p : p.text, '2001:db8:0:0:1::/80');
  const q = parsePrefix('2001:0db8:0000:0000:0000:0000:0000:0000/32');
  assert.equal(typeof q === 'string' ? q : q.text, '2001:db8::/32');
  assert.equal(canonicalSetElement('mac', '02-AA-00-00-00-01'), { text: '02:aa:00:00:00:01' });
  assert.equal(canonicalSetElement('ipv6', 'fd00:0::1'), { text: 'fd00::1' });
});

test.run();
