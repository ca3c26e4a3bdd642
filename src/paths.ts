/**
 * Locations inside the installed package (proto/, models/), found from the compiled file's position so
 * they work from dist/, from an npm install and inside the container alike.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'proto'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the tensorgate package root above ${start}`);
    dir = parent;
  }
}

export const PACKAGE_ROOT = findPackageRoot(__dirname);
export const PROTO_DIR = path.join(PACKAGE_ROOT, 'proto');
export const BUNDLED_MODELS_DIR = path.join(PACKAGE_ROOT, 'models');
