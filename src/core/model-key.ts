/**
 * The one key of a model version, "model@version", used by the execution pool (session key), the scheduler,
 * breakers, metrics and the result cache's key prefix. A version loaded again while its previous load still
 * serves (a reload without downtime) gets a generation suffix, "model@version#2", so both loads can exist side
 * by side; metrics and cache invalidation see through it (parseVersionKey). Built and parsed only here. A model name may contain
 * '@' (a repository folder can be named "team@mlp"); a version cannot (version folders are positive integers,
 * and a version string from elsewhere is refused here), so parsing splits at the last '@'.
 */

export function versionKey(model: string, version: string | number, generation = 1): string {
  const v = String(version);
  if (v.includes('@')) throw new RangeError(`version '${v}' of model '${model}' contains '@', which cannot appear in a version`);
  return generation > 1 ? `${model}@${v}#${generation}` : `${model}@${v}`;
}

/** Model and version of a key; a load generation ("#2", see versionKey) is not part of the version. */
export function parseVersionKey(key: string): { model: string; version: string } | undefined {
  const at = key.lastIndexOf('@');
  if (at < 0) return undefined;
  const hash = key.indexOf('#', at);
  return { model: key.slice(0, at), version: key.slice(at + 1, hash < 0 ? undefined : hash) };
}

/** The version part of a key with its load generation ("1", "1#2"): what tells two loads of a version apart. */
export function loadedVersion(key: string): string {
  return key.slice(key.lastIndexOf('@') + 1);
}
