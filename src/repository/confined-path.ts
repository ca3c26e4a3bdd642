/**
 * Every file and folder the model repository opens stays inside it. A path is inside when its realpath (every
 * symlink and '..' resolved) is inside the realpath of the repository root: a symlink to another place in the
 * repository works, one out of it (or a config path with '..' or an absolute path elsewhere) is refused, with the
 * path as written and where it leads. The one place this rule lives; model-repository.ts, warmup.ts,
 * folder-config.ts and repository-poller.ts all go through it.
 *
 * Time of check and time of use: readConfined() opens the file first, then checks where the file it opened lies
 * (the opened file's device and inode must be the file at an inside realpath) and reads through that handle, so
 * swapping a symlink between the check and the read cannot make it read an outside file. confine() alone checks
 * a path that something else opens later (ONNX Runtime, the tokenizer and vocabulary loaders); there a swap in
 * between is still possible, which the callers say where it matters (model-file.ts narrows it for model files).
 */
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

const RULE = "every file of a model must resolve inside the repository: no '..' out of it, no absolute path elsewhere, no symlink out of it";

/** A path that leads outside the repository; its message names the path as written and where it leads. */
export class RepositoryEscape extends Error {
  constructor(what: string, real: string) {
    super(`${what} leads outside the model repository (to '${real}'); ${RULE}`);
  }
}

/** The repository root as confinement compares against it: its realpath (the root itself may be a symlink). */
export function realRoot(root: string): Promise<string> {
  return fs.realpath(root);
}

function isInside(root: string, real: string): boolean {
  const relative = path.relative(root, real);
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}

/**
 * The realpath of `file`, which must lie inside `root` (a realRoot()); RepositoryEscape otherwise. `what` names the
 * path for the message (e.g. "model file '2/model.onnx'"). Other errors (ENOENT for a missing file or a dangling
 * symlink) are fs's own, with their code, so callers can treat a missing optional file as before.
 */
export async function confine(root: string, file: string, what: string): Promise<string> {
  const real = await fs.realpath(file);
  if (!isInside(root, real)) throw new RepositoryEscape(what, real);
  return real;
}

/**
 * Opens `file` for reading and checks that the file opened is inside `root` and a regular file: the check is made
 * on the open file, so nothing can be swapped in between. Non-blocking open: a FIFO planted in a model folder
 * must not hang the load (it is then refused as not a regular file).
 */
export async function openConfined(root: string, file: string, what: string): Promise<{ handle: fs.FileHandle; real: string }> {
  const handle = await fs.open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const opened = await handle.stat();
    const real = await confine(root, file, what);
    const there = await fs.stat(real);
    // The path may have been pointed elsewhere after the open: what counts is the file this handle reads.
    if (there.dev !== opened.dev || there.ino !== opened.ino) throw new Error(`${what} was replaced while it was opened (now '${real}'); load it again`);
    if (!opened.isFile()) throw new Error(`${what} is not a regular file`);
    return { handle, real };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** The bytes of `file`, read through a handle checked by openConfined(). */
export async function readConfined(root: string, file: string, what: string): Promise<Buffer> {
  const { handle } = await openConfined(root, file, what);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/**
 * A path a config names, relative to the model folder `dir`. Absolute paths are refused (a config is moved with
 * its folder); '..' is allowed as long as the result stays inside the repository, which confine() decides.
 */
export function configPath(dir: string, given: string, what: string): string {
  if (path.isAbsolute(given)) throw new Error(`${what} is an absolute path; paths in a model's config are relative to its model folder`);
  return path.join(dir, given);
}
