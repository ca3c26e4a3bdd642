/**
 * What a model name may be: one plain folder of the repository, never a path. Names reach the repository from
 * the v2 load/unload requests (gRPC and REST), `tensorgate models load|unload|reload` and --load-model; each is
 * checked here before anything touches the file system, so '../x' can never name a folder beside the repository.
 *
 * The rules accept every folder the repository's scan serves (repository/version-folders.ts modelFolders: any
 * subfolder not starting with '.'), so no model that loads today is refused by name: the length bound is the file
 * system's own limit on one name (NAME_MAX, 255 bytes on Linux and macOS), which no existing folder can pass.
 */
import { echo, invalidArgument } from '../core/errors';

export const MAX_MODEL_NAME_BYTES = 255;

/** The name with control characters made visible, cut to a readable length (a NUL would end a C string in a log). */
function shown(name: string): string {
  return echo(name.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === '\0' ? '\\0' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)));
}

/** Why `name` is not a model name, or undefined when it is one. */
export function modelNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'model name is empty; name a model folder of the repository';
  const not = `model name ${shown(name)} is not a folder name of the repository`;
  const rule = 'a model name is one folder of the model repository, never a path';
  for (const [c, label] of [['/', "'/'"], ['\\', "'\\'"], ['\0', 'NUL']] as const) {
    if (name.includes(c)) return `${not}: it contains ${label}; ${rule}`;
  }
  if (name.startsWith('.')) return `${not}: it starts with '.'; ${rule} ('.', '..' and hidden folders are not models)`;
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_MODEL_NAME_BYTES) return `${not}: it is ${bytes} bytes long; a model folder name is 1-${MAX_MODEL_NAME_BYTES} bytes`;
  return undefined;
}

/** `name`, or INVALID_ARGUMENT naming the rule it breaks. */
export function checkModelName(name: string): string {
  const problem = modelNameProblem(name);
  if (problem) throw invalidArgument(problem);
  return name;
}
