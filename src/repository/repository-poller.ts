/**
 * --model-control-mode poll: rescans the model repository every few seconds and brings the served models in
 * line with the folders, as Triton's poll mode does. A model folder that appears is loaded; one whose files
 * changed (its config, any file beside it, a version folder added or removed, a model.onnx rewritten) is
 * reloaded, which switches without downtime (ModelRepository.loadModel); one that disappeared is unloaded
 * after its requests in flight finish.
 *
 * Change is judged by a fingerprint of names, sizes and modification times, not contents: cheap enough to run
 * every second on a large repository. A file copied in place keeps changing while it is written; a scan that
 * sees it half-written loads a broken version, which never takes traffic (the previous load keeps serving),
 * and the next scan, seeing the file changed again, loads it whole.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Logger } from '../log';
import type { ModelRepository } from './model-repository';
import { confine, realRoot, RepositoryEscape } from './confined-path';
import { modelFolders } from './version-folders';

export class RepositoryPoller extends EventEmitter<{ scanned: [changes: number] }> {
  private readonly fingerprints = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly repository: ModelRepository,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    super();
  }

  /** Remembers what is on disk now (the models just loaded from it) and starts scanning. */
  async start(): Promise<void> {
    const root = await realRoot(this.repository.root);
    for (const name of await modelFolders(root)) this.fingerprints.set(name, await fingerprint(root, path.join(root, name)));
    this.schedule();
  }

  /** Stops scanning; resolves once a scan under way has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.scanning;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.scanning = this.scan()
        .catch((err: unknown) => this.log.error({ err }, `model repository scan failed: ${(err as Error)?.message ?? String(err)}`))
        .finally(() => {
          this.scanning = undefined;
          this.schedule();
        });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One pass: load, reload and unload what changed since the last one. */
  async scan(): Promise<void> {
    const root = await realRoot(this.repository.root);
    const onDisk = new Set(await modelFolders(root));
    let changes = 0;
    for (const name of [...this.fingerprints.keys()]) {
      if (onDisk.has(name) || this.stopped) continue;
      this.fingerprints.delete(name);
      changes++;
      this.log.info({ model: name }, `model folder ${name} was removed from the repository: unloading it`);
      await this.repository.unloadModel(name);
    }
    for (const name of [...onDisk].sort()) {
      if (this.stopped) break;
      const now = await fingerprint(root, path.join(root, name));
      const before = this.fingerprints.get(name);
      if (before === now) continue;
      this.fingerprints.set(name, now);
      changes++;
      this.log.info({ model: name }, `model folder ${name} ${before === undefined ? 'appeared' : 'changed'}: ${before === undefined ? 'loading' : 'reloading'} it`);
      await this.repository.loadModel(name);
    }
    this.emit('scanned', changes);
  }
}

/**
 * Names, sizes and modification times of a model folder's files and its version folders' files. A folder (model
 * or version, linked or not) that leads outside the repository is not listed: its fingerprint is where it leads,
 * so pointing it elsewhere is a change, and its load reports the escape (confined-path.ts).
 */
async function fingerprint(root: string, dir: string): Promise<string> {
  const where = await inside(root, dir);
  if (where.outside) return `outside ${where.real}`;
  const parts: string[] = [];
  const entries = await fs.readdir(where.real, { withFileTypes: true }).catch(() => []);
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(where.real, e.name);
    if (/^[0-9]+$/.test(e.name) && (e.isDirectory() || e.isSymbolicLink())) {
      const version = await inside(root, full);
      if (version.outside) {
        parts.push(`${e.name} outside ${version.real}`);
        continue;
      }
      const files = await fs.readdir(version.real).catch(() => []);
      for (const f of files.sort()) parts.push(await stamp(path.join(full, f), `${e.name}/${f}`));
    } else if (!e.isDirectory()) {
      parts.push(await stamp(full, e.name));
    }
  }
  return parts.join('\n');
}

/** Where `dir` leads, and whether that is outside the repository `root`; a path that cannot be resolved counts as inside (nothing is read from it). */
async function inside(root: string, dir: string): Promise<{ real: string; outside: boolean }> {
  try {
    return { real: await confine(root, dir, 'folder'), outside: false };
  } catch (err) {
    if (err instanceof RepositoryEscape) return { real: await fs.realpath(dir), outside: true };
    return { real: dir, outside: false };
  }
}

async function stamp(file: string, name: string): Promise<string> {
  const s = await fs.stat(file).catch(() => undefined);
  return s ? `${name} ${s.size} ${s.mtimeMs}` : `${name} -`;
}
