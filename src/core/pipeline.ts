/**
 * InferencePipeline: what every front door calls. Resolves the model version, applies the text pipeline,
 * validates, and hands the run to the scheduler. The cache, circuit breaker and batcher slot in here,
 * once, so every protocol gets them.
 */
import { invalidArgument } from './errors';
import type { InferenceRequest, InferenceResult } from './request';
import { formatSpecs, validateInputs, validateOutputNames, type RequestLimits } from './validate';
import type { ModelRepository } from '../repository/model-repository';
import type { RequestScheduler } from '../scheduling/scheduler';

export class InferencePipeline {
  constructor(
    private readonly repository: ModelRepository,
    private readonly scheduler: RequestScheduler,
    private readonly limits: RequestLimits,
  ) {}

  async predict(request: InferenceRequest): Promise<InferenceResult> {
    const { entry, version } = this.repository.resolve(request.model, request.version || undefined);
    const where = `model '${entry.name}' version ${version.version}`;
    let inputs = request.inputs;
    let outputs = request.outputs;
    const pipeline = entry.textPipeline;
    const hasText = request.text !== undefined && request.text !== '';
    if (hasText) {
      if (!pipeline) {
        throw invalidArgument(`${where} has no text pipeline, so input_text cannot be used; send tensors in inputs: ${formatSpecs(version.inputs)}`);
      }
      if (inputs.length > 0) throw invalidArgument('send either input_text or inputs, not both');
      if (outputs.length > 0) throw invalidArgument('outputs cannot be chosen with input_text; the text pipeline returns labels');
      inputs = [pipeline.encode(request.text!)];
      outputs = [pipeline.config.output];
    } else if (inputs.length === 0 && pipeline) {
      throw invalidArgument(`no inputs sent; ${where} takes input_text, or tensors: ${formatSpecs(version.inputs)}`);
    }
    validateInputs(inputs, version.inputs, this.limits, where);
    validateOutputNames(outputs, version.outputs, where);

    const run = await this.repositoryRun(version.key, inputs, outputs, request);
    const result: InferenceResult = {
      model: entry.name,
      version: version.version,
      outputs: run.outputs,
      cached: false,
      computeMs: run.computeMs,
      batchRequests: run.batchRequests,
      batchRows: run.batchRows,
      queueMs: run.queueMs,
    };
    if (hasText) {
      result.text = pipeline!.decode(run.outputs);
    }
    return result;
  }

  private repositoryRun(key: string, inputs: InferenceRequest['inputs'], outputs: string[], request: InferenceRequest) {
    return this.scheduler.submit({
      key,
      inputs,
      outputs,
      deadline: request.deadline,
      signal: request.signal,
      priority: request.priority,
      timeoutMs: request.timeoutMs,
    });
  }
}
