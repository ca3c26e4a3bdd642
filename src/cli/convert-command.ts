/**
 * `tensorgate models convert PATH`: a Triton model folder (or its config.pbtxt) -> the equivalent config.yaml on
 * stdout, headed by the warnings; the problems on stderr and exit 1 when tensorgate cannot serve it. Offline: it
 * reads the file only, so a repository can be converted before any server runs.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Document, isScalar, visit } from 'yaml';
import { readTritonConfigFile, TRITON_CONFIG_FILE, type TritonConfigFile } from '../repository/triton/triton-config-file';

export async function convertCommand(target: string | undefined): Promise<void> {
  if (!target) throw new Error(`usage: tensorgate models convert PATH (a model folder holding ${TRITON_CONFIG_FILE}, or the file itself)`);
  let isDir: boolean;
  try {
    isDir = (await fs.stat(target)).isDirectory();
  } catch (err) {
    throw new Error(`cannot read '${target}': ${(err as Error).message}`);
  }
  const file = isDir ? path.join(target, TRITON_CONFIG_FILE) : target;
  // A folder is a model folder: its name must match `name:`, as when it is served. A lone file may be anywhere.
  const modelName = isDir ? path.basename(path.resolve(target)) : undefined;
  const converted = await readTritonConfigFile(file, modelName);
  if (converted.problems.length > 0) {
    throw new Error(`${file} cannot be served by tensorgate:\n${converted.problems.map((p) => `  - ${p}`).join('\n')}`);
  }
  process.stdout.write(renderConfigYaml(converted, file));
}

/** The converted config as YAML, short lists (shapes, batch sizes) inline as people write them. */
export function renderConfigYaml(converted: Pick<TritonConfigFile, 'raw' | 'warnings'>, source: string): string {
  const doc = new Document(converted.raw);
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((item) => isScalar(item))) node.flow = true;
    },
  });
  const header = [`# config.yaml converted from ${source} by \`tensorgate models convert\`.`];
  if (converted.warnings.length > 0) {
    header.push('# Warnings: Triton settings not honoured, or honoured differently:');
    for (const w of converted.warnings) header.push(`#   - ${w}`);
  }
  return `${header.join('\n')}\n${doc.toString({ lineWidth: 0 })}`;
}
