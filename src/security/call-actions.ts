/**
 * What each RPC and route does, for permissions: one table over every front door. A method missing here is
 * treated as `control`, the most guarded action, and a test checks that every served method is listed.
 */
import type { Action } from './access-policy';

export const CALL_ACTIONS: Readonly<Record<string, Action>> = {
  // tensorgate.v1.ModelService
  Predict: 'infer',
  Generate: 'generate',
  ListModels: 'metadata',
  GetModel: 'metadata',
  ControlCanary: 'control',
  Explain: 'infer',
  Feedback: 'infer',
  // inference.GRPCInferenceService (Open Inference Protocol v2)
  ServerLive: 'health',
  ServerReady: 'health',
  ServerMetadata: 'metadata',
  ModelReady: 'metadata',
  ModelMetadata: 'metadata',
  ModelConfig: 'metadata',
  ModelStatistics: 'metadata',
  ModelInfer: 'infer',
  ModelStreamInfer: 'infer',
  RepositoryIndex: 'metadata',
  RepositoryModelLoad: 'control',
  RepositoryModelUnload: 'control',
  // REST /v2
  'GET /v2': 'metadata',
  'GET /v2/health/live': 'health',
  'GET /v2/health/ready': 'health',
  'GET /v2/models/stats': 'metadata',
  'GET /v2/models/{name}': 'metadata',
  'GET /v2/models/{name}/versions/{version}': 'metadata',
  'GET /v2/models/{name}/ready': 'metadata',
  'GET /v2/models/{name}/versions/{version}/ready': 'metadata',
  'GET /v2/models/{name}/config': 'metadata',
  'GET /v2/models/{name}/versions/{version}/config': 'metadata',
  'GET /v2/models/{name}/stats': 'metadata',
  'GET /v2/models/{name}/versions/{version}/stats': 'metadata',
  'POST /v2/models/{name}/infer': 'infer',
  'POST /v2/models/{name}/versions/{version}/infer': 'infer',
  'POST /v2/models/{name}/explain': 'infer',
  'POST /v2/models/{name}/versions/{version}/explain': 'infer',
  'POST /v2/models/{name}/feedback': 'infer',
  'GET /v2/models/{name}/accuracy': 'metadata',
  'GET /v2/models/{name}/versions/{version}/accuracy': 'metadata',
  // Async jobs: a job's own action, on its model (src/api/http/job-routes.ts names the method by the job's kind)
  'GET /v2/jobs/{id}': 'infer',
  'DELETE /v2/jobs/{id}': 'infer',
  'GET /v2/jobs/{id} (generate)': 'generate',
  'DELETE /v2/jobs/{id} (generate)': 'generate',
  'POST /v2/repository/index': 'metadata',
  'POST /v2/repository/models/{name}/load': 'control',
  'POST /v2/repository/models/{name}/unload': 'control',
  // OpenAI-compatible /v1
  'GET /v1/models': 'metadata',
  'POST /v1/completions': 'generate',
  'POST /v1/chat/completions': 'generate',
  // The web console's JSON routes (its files are the `console` open group, src/api/http/access-check.ts)
  'GET /console/api/models': 'metadata',
  'GET /console/api/summary': 'metadata',
};

export const actionOf = (method: string): Action => CALL_ACTIONS[method] ?? 'control';
