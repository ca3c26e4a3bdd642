/**
 * A version's model file before ONNX Runtime gets it: inside the repository (confined-path.ts), a regular file,
 * and, when config.yaml gives one (`versions: { "2": { sha256: ... } }`), the sha256 it names. A mismatch keeps
 * the version UNAVAILABLE and the file is never given to ONNX Runtime.
 *
 * What is hashed and what ONNX Runtime loads: the file is hashed here, through an open handle, so a mismatch is
 * the version's reason before any worker is asked; then each worker thread reads the file's realpath, hashes
 * those bytes again and loads exactly them (src/runtime/ort-session.ts, SessionSettings.sha256), so a file
 * replaced after this check never loads, on a worker started later either.
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
  /** device, inode, size and modification time when it was checked (a change while hashing is refused). */
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

