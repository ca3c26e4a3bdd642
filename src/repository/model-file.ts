/**
 * A version's model file before ONNX Runtime gets it: inside the repository (confined-path.ts), a regular file,
 * and, when config.yaml gives one (`versions: { "2": { sha256: ... } }`), the sha256 it names. A mismatch keeps
 * the version UNAVAILABLE and the file is never given to ONNX Runtime.
 *
 * What is hashed and what ONNX Runtime loads: the file is hashed through an open handle, and ONNX Runtime is
 * then given the file's realpath (no symlink left to retarget) to open in every worker thread. Handing the hashed
 * bytes themselves to the workers would close the gap entirely, but costs a copy of the model per worker (or a
 * SharedArrayBuffer the native binding does not take), keeps the bytes in memory for workers that are replaced
 * later, and breaks models whose weights are external data files found beside model.onnx. So the residual gap is
 * a file replaced between the hash and ONNX Runtime's open (milliseconds): unchangedSince() catches a replaced or
 * rewritten file (device, inode, size, modification time) after the load; only a rewrite that also restores the
 * modification time within that window goes unseen, and that needs write access to the repository.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { confine, openConfined } from './confined-path';
import type { ModelFolder } from './model-folder';

export interface CheckedModelFile {
  /** The realpath ONNX Runtime is given. */
  path: string;
  /** As messages name it: '2/model.onnx'. */
  shown: string;
  size: number;
  /** device, inode, size and modification time when it was checked (see unchangedSince). */
  identity: string;
}

const identityOf = (s: { dev: number; ino: number; size: number; mtimeMs: number }) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;

/** The sha256 of what `handle` reads from its current position to the end, in 1 MiB reads (a large model never sits in memory whole). */
export async function sha256Of(handle: fs.FileHandle): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(1 << 20);
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
    if (bytesRead === 0) return hash.digest('hex');
    hash.update(buffer.subarray(0, bytesRead));
  }
}

/** Version `version`'s model file (`file`, e.g. model.onnx) of `folder`: its version folder confined first, so the escape is named where it is. */
export async function checkVersionFile(folder: ModelFolder, version: number, file: string, sha256: string | undefined): Promise<CheckedModelFile> {
  const versionDir = path.join(folder.dir, String(version));
  await confine(folder.root, versionDir, `version folder '${version}'`).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err; // gone since the listing: the model file's check says it is missing
  });
  return checkModelFile(folder.root, path.join(versionDir, file), path.join(String(version), file), version, sha256);
}

/**
 * Checks `file` (version `version`'s model file, `shown` as the repository's messages name it, e.g. '2/model.onnx');
 * throws with the reason the version cannot load: missing, outside the repository, not a regular file, or not
 * the `sha256` (lower-case hex) the config gives.
 */
export async function checkModelFile(root: string, file: string, shown: string, version: number, sha256: string | undefined): Promise<CheckedModelFile> {
  let opened;
  try {
    opened = await openConfined(root, file, `model file '${shown}'`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new Error(`model file '${shown}' is missing`);
    throw err;
  }
  const { handle, real } = opened;
  try {
    const before = await handle.stat();
    if (sha256 !== undefined) {
      const has = await sha256Of(handle);
      if (has !== sha256) throw new Error(`model.onnx of version ${version} does not match its sha256: config says ${sha256}, the file has ${has}`);
      // A file written to while it was hashed: the hash proves nothing about what ONNX Runtime would read.
      if (identityOf(await handle.stat()) !== identityOf(before)) throw new Error(`model file '${shown}' changed while its sha256 was checked; load it again once it is written`);
    }
    return { path: real, shown, size: before.size, identity: identityOf(before) };
  } finally {
    await handle.close();
  }
}

/** Undefined when the checked file is still the one at its path; otherwise why not (it was replaced or rewritten). */
export async function unchangedSince(checked: CheckedModelFile): Promise<string | undefined> {
  const now = await fs.stat(checked.path).catch(() => undefined);
  if (now && identityOf(now) === checked.identity) return undefined;
  return `model file '${checked.shown}' changed while ONNX Runtime loaded it (after it was checked); load it again once it is written`;
}
