/**
 * The README's settings table is the reference for every server flag: each setting the server accepts has
 * its row there, with the flag and the environment variable spelled as the server reads them.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { SERVER_SETTINGS } from '../src/config/server-config';
import { PACKAGE_ROOT } from './common';

test('every server setting has its row in the README, flag and variable as the server reads them', () => {
  const readme = fs.readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');
  // Rows like "| `--flag` | `TENSORGATE_FLAG` | default and meaning |"; one row may hold a pair ("`--a`, `--b`").
  const rows = readme.split('\n').filter((line) => line.startsWith('| `--')).map((line) => line.split(' | '));
  const documented = (flag: string, env: string) => rows.some(([flags, envs]) => flags!.includes(`\`--${flag}\``) && envs!.includes(`\`${env}\``));
  const missing = SERVER_SETTINGS.filter((s) => !documented(s.flag, s.env)).map((s) => `--${s.flag} (${s.env})`);
  assert.deepEqual(missing, []);
});
