/**
 * Reconciles what a session reports about its inputs/outputs with what config.yaml declares. The session
 * is the truth about names and dtypes; the config may pin a symbolic dimension to a fixed size. Anything
 * contradictory makes the version UNAVAILABLE with every mismatch named.
 */
import type { TensorSpec } from '../core/tensor';
import type { TensorDecl, TextPipelineConfig } from './model-config';

export function checkSpecs(
  kind: 'input' | 'output',
  reported: TensorSpec[],
  declared: TensorDecl[] | undefined,
): { specs: TensorSpec[]; problems: string[] } {
  if (!declared) return { specs: reported, problems: [] };
  const problems: string[] = [];
  const specs = reported.map((s) => ({ ...s, shape: [...s.shape], dimNames: [...s.dimNames] }));
  for (const decl of declared) {
    const spec = specs.find((s) => s.name === decl.name);
    if (!spec) {
      problems.push(`${kind} '${decl.name}' is declared but the model has no such ${kind} (it has: ${reported.map((s) => s.name).join(', ')})`);
      continue;
    }
    if (spec.dtype !== decl.dtype) problems.push(`${kind} '${decl.name}' is declared ${decl.dtype} but the model says ${spec.dtype}`);
    if (!decl.shape || spec.shape.length === 0) {
      // The model reports no shape (or the config states none): take the config's, if any.
      if (decl.shape) spec.shape = [...decl.shape];
      if (decl.shape) spec.dimNames = decl.shape.map(() => '');
      continue;
    }
    if (decl.shape.length !== spec.shape.length) {
      problems.push(`${kind} '${decl.name}' is declared with rank ${decl.shape.length} [${decl.shape.join(', ')}] but the model's rank is ${spec.shape.length} [${spec.shape.join(', ')}]`);
      continue;
    }
    decl.shape.forEach((d, i) => {
      const actual = spec.shape[i]!;
      if (d === -1) return;
      if (actual === -1) spec.shape[i] = d;
      else if (actual !== d) problems.push(`${kind} '${decl.name}' dim ${i} is declared ${d} but the model fixes it at ${actual}`);
    });
  }
  return { specs, problems };
}

export function checkTextPipeline(pipeline: TextPipelineConfig, inputs: TensorSpec[], outputs: TensorSpec[]): string[] {
  const problems: string[] = [];
  const input = inputs.find((s) => s.name === pipeline.input);
  if (!input) problems.push(`text_pipeline.input '${pipeline.input}' is not an input of the model`);
  else if (input.dtype !== 'INT64' || (input.shape.length !== 0 && input.shape.length !== 2)) {
    problems.push(`text_pipeline.input '${pipeline.input}' must be INT64 [batch, tokens], the model has ${input.dtype} [${input.shape.join(', ')}]`);
  }
  const output = outputs.find((s) => s.name === pipeline.output);
  if (!output) problems.push(`text_pipeline.output '${pipeline.output}' is not an output of the model`);
  else if (output.dtype !== 'FP32') problems.push(`text_pipeline.output '${pipeline.output}' must be FP32, the model has ${output.dtype}`);
  else {
    const last = output.shape[output.shape.length - 1];
    if (last !== undefined && last !== -1 && last !== pipeline.labels.length) {
      problems.push(`text_pipeline.output '${pipeline.output}' has ${last} scores but ${pipeline.labels.length} labels are configured`);
    }
  }
  if (inputs.length > 1) problems.push(`text pipeline models must have exactly one input, the model has ${inputs.length}`);
  return problems;
}
