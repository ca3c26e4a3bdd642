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
    for (const name of await modelFolders(this.repository.root)) this.fingerprints.set(name, await fingerprint(path.join(this.repository.root, name)));
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
    const root = this.repository.root;
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
      const now = await fingerprint(path.join(root, name));
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

/** Names, sizes and modification times of a model folder's files and its version folders' files. */
async function fingerprint(dir: string): Promise<string> {
  const parts: string[] = [];
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (!/^[0-9]+$/.test(e.name)) continue;
      const files = await fs.readdir(full).catch(() => []);
      for (const f of files.sort()) parts.push(await stamp(path.join(full, f), `${e.name}/${f}`));
    } else {
      parts.push(await stamp(full, e.name));
    }
  }
  return parts.join('\n');
}

async function stamp(file: string, name: string): Promise<string> {
  const s = await fs.stat(file).catch(() => undefined);
  return s ? `${name} ${s.size} ${s.mtimeMs}` : `${name} -`;
}
