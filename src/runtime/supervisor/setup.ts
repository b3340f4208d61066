/**
 * Small pieces of a chain's start that have nothing to do with processes: the pool file and the
 * gateway's HTTP port.
 */
import net from 'node:net';
import type { PolicyIR } from '../../ir/policy.ts';
import { Pool } from '../pool/index.ts';
import { ChainStartError } from './errors.ts';

/**
 * Creates the pool. An existing file is replaced only when `staleOk` (our own dead predecessor
 * left it): any other may be mapped by a running chain (the same policy under another run dir),
 * whose instances would then open ours.
 */
export function createPool(name: string, ir: PolicyIR, staleOk: boolean, extSize = 0): Pool {
  const create = () => Pool.create({ name, bufferSize: ir.pool.bufferSize, bufferCount: ir.pool.bufferCount, extSize });
  try {
    return create();
  } catch (err) {
    if ((err as { code?: string }).code !== 'E_POOL_EXISTS') throw err;
    if (!staleOk) {
      throw new ChainStartError(`pool ${name} already exists: another chain uses it, or a killed one left it (remove it: bpfctl pool rm ${name}; or choose another name)`, { cause: err });
    }
    // Every file of that name, on every backing: the dead one may have had huge pages that are
    // still held by its file, so this pool would land on /dev/shm and the old one still win.
    for (;;) {
      try {
        Pool.remove(name);
      } catch (e) {
        if ((e as { code?: string }).code === 'E_POOL_NOENT') break;
        throw e;
      }
    }
    return create();
  }
}

/** A port free right now on `host` (a race with other binders remains; listen() reports it). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ port: 0, host, exclusive: true }, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
