/**
 * Which of a model's version folders are served, as in TF Serving / Triton: the newest N, all, or a
 * specific list. Versions are positive integers (folder names); the newest is the largest.
 */
import type { VersionPolicy } from './model-config';

export function selectVersions(available: readonly number[], policy: VersionPolicy): number[] {
  const sorted = [...available].sort((a, b) => b - a);
  if ('latest' in policy) return sorted.slice(0, policy.latest);
  if ('all' in policy) return sorted;
  const wanted = new Set(policy.specific);
  return sorted.filter((v) => wanted.has(v));
}

export function describePolicy(policy: VersionPolicy): string {
  if ('latest' in policy) return `latest ${policy.latest}`;
  if ('all' in policy) return 'all';
  return `specific [${policy.specific.join(', ')}]`;
}
