/**
 * Golden files: `actual` must equal `<dir>/<file>`; with UPDATE_GOLDEN=1 the file is rewritten
 * instead (review the diff before committing it).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';

export const UPDATE_GOLDEN = process.env.UPDATE_GOLDEN === '1';

export function matchGolden(dir: string, file: string, actual: string): void {
  const path = join(dir, file);
  if (UPDATE_GOLDEN) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  assert.ok(existsSync(path), `golden file ${path} is missing (run with UPDATE_GOLDEN=1)`);
  assert.fixture(actual, readFileSync(path, 'utf8'), `${file} drifted from its golden file (UPDATE_GOLDEN=1 rewrites it)`);
}
