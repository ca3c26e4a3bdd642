/**
 * The one key of a model version, "model@version", used by the execution pool (session key), the scheduler,
 * breakers, metrics and the result cache's key prefix. Built and parsed only here. A model name may contain
 * '@' (a repository folder can be named "team@mlp"); a version cannot (version folders are positive integers,
 * and a version string from elsewhere is refused here), so parsing splits at the last '@'.
 */

export function versionKey(model: string, version: string | number): string {
  const v = String(version);
  if (v.includes('@')) throw new RangeError(`version '${v}' of model '${model}' contains '@', which cannot appear in a version`);
  return `${model}@${v}`;
}

export function parseVersionKey(key: string): { model: string; version: string } | undefined {
  const at = key.lastIndexOf('@');
  if (at < 0) return undefined;
  return { model: key.slice(0, at), version: key.slice(at + 1) };
}
