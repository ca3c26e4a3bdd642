/**
 * What a model repository holds before anything is loaded: its model folders, their version folders, and
 * whether the execution providers a config asks for exist in this ONNX Runtime build.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';

/**
 * The model folders of a repository: its subfolders, hidden ones skipped, and symlinks to folders (a symlink that
 * leads outside the repository is listed too, so that its load reports the escape instead of skipping it
 * silently; confined-path.ts refuses it). Throws when the root cannot be read.
 */
export async function modelFolders(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { withFileTypes: true });
  const names: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    // stat() reads only the target's type (never its contents) to tell a linked folder from a linked file.
    if (e.isDirectory() || (e.isSymbolicLink() && (await fs.stat(path.join(root, e.name)).catch(() => undefined))?.isDirectory())) names.push(e.name);
  }
  return names;
}

/**
 * The positive-integer subfolders of a model folder (its versions), symlinks with such names included (where a
 * symlink leads is judged when the version loads: confined-path.ts); none when the folder cannot be read. The
 * names are digits only, so a version folder is never a path.
 */
export async function listVersionFolders(dir: string): Promise<number[]> {
  try {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    return entries.filter((e) => (e.isDirectory() || e.isSymbolicLink()) && /^[0-9]+$/.test(e.name)).map((e) => Number(e.name)).filter((n) => n > 0);
  } catch {
    return [];
  }
}

/** A configured provider this build of ONNX Runtime lacks is a clear load error, not a silent CPU fallback. */
export function checkProviders(providers: readonly string[]): string | undefined {
  const backends = ort.listSupportedBackends();
  const usable = new Set(backends.filter((b) => b.bundled).map((b) => b.name));
  const absent = providers.filter((p) => !usable.has(p));
  if (absent.length === 0) return undefined;
  return (
    `execution provider${absent.length > 1 ? 's' : ''} ${absent.map((p) => `'${p}'`).join(', ')} not available in this ONNX Runtime build ` +
    `(available: ${[...usable].join(', ')}); install a build with it or remove it from session.execution_providers`
  );
}
