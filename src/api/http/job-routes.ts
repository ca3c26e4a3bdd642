/**
 * Async jobs on the HTTP port (the job store and runner are src/jobs):
 *
 *   POST /v2/models/{m}[/versions/{v}]/infer?async=true   202 {"job_id", "status", "model", "location"} + Location
 *   POST /v1/completions?async=true, /v1/chat/completions?async=true   the same (src/api/openai/openai-jobs.ts)
 *   GET    /v2/jobs/{id}   {"job_id", "status", "model", "version"?, "created", "finished"?, "expires"?, "result"? | "error"?}
 *   DELETE /v2/jobs/{id}   cancels a queued or running job (kept as cancelled), or forgets a finished one;
 *                          answers the job as it then is
 *
 * `result` is the very body the synchronous call would have answered (inserted as its JSON text, byte for
 * byte); `error` is {"code", "message"} as that call would have failed. Times are RFC 3339 UTC.
 *
 * GET and DELETE go through the request envelope like any call. A job is visible only to the principal that
 * created it: an id that is unknown, expired or another principal's is the same 404 (so ids cannot be
 * probed), answered after authentication alone. On a job it may see, the caller is checked for the job's own
 * action on the job's model (infer for an inference job, generate for a generation job; the record's method
 * names which, "GET /v2/jobs/{id}" or "GET /v2/jobs/{id} (generate)", as src/security/call-actions.ts lists them).
 * Each poll is a call like any other: it counts against the caller's rate limits (those of the job's model too).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { clip, echo, internal, invalidArgument, notFound, ServingError } from '../../core/errors';
import type { InferenceRequest, InferenceResult } from '../../core/request';
import type { InferencePipeline } from '../../serving/inference-pipeline';
import type { Job, JobStore } from '../../jobs/job-store';
import type { JobRunner } from '../../jobs/job-runner';
import { principalOf } from '../../security/call-principal';
import type { Principal } from '../../security/principal';
import type { RequestEnvelope } from '../envelope';
import { resultFields } from '../grpc/model-service';
import type { RequestRecord } from '../request-record';
import { toV2Response, type V2InferRequest } from '../v2/v2-infer';
import { httpCallStart } from './call-start';
import type { FrontDoorPlugin, FrontDoorRouteConfig } from './http-server';
import { toHttpError } from './status';
import { inferResponseToRest } from './v2-rest-codec';

/** Where the GET/DELETE routes are mounted (HttpFrontDoor.mount with this prefix). */
export const JOBS_PREFIX = '/v2/jobs';
const JOB_ROUTE = `${JOBS_PREFIX}/{id}`;
const MAX_ERROR_CHARS = 1024;

export interface JobRoutesDeps {
  jobs: JobRunner;
  envelope: RequestEnvelope;
}

/**
 * The `async` query parameter: true, false, or absent (false); anything else is refused, so a typo never
 * turns a long job into a synchronous call that times out.
 */
export function asyncRequested(query: unknown): boolean {
  const value = (query as Record<string, unknown> | undefined)?.async;
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw invalidArgument(`the query parameter async is ${echo(Array.isArray(value) ? value.join(',') : value, 24)}; expected async=true (answer at once with a job to poll) or async=false`);
}

/** Whether a request may be an async one: `async` given and not false (asyncRequested() then judges its value). */
export function wantsAsync(query: unknown): boolean {
  const value = (query as Record<string, unknown> | undefined)?.async;
  return value !== undefined && value !== 'false';
}

/** The 202 of an accepted submission, and its Location. */
export function acceptedAnswer(job: Job): { status: 202; contentType: string; payload: string; headers: Record<string, string> } {
  const location = `${JOB_ROUTE.replace('{id}', job.id)}`;
  return {
    status: 202,
    contentType: 'application/json',
    payload: JSON.stringify({ job_id: job.id, status: job.status, model: job.model, location }),
    headers: { location },
  };
}

/** GET's body: the job, with its result's JSON text inserted unchanged. */
export function jobView(job: Job, store: JobStore): string {
  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  const head = JSON.stringify({
    job_id: job.id,
    status: job.status,
    model: job.model,
    version: job.version,
    created: iso(job.created),
    finished: iso(job.finished),
    expires: iso(store.expiresAt(job)),
    error: job.error,
  });
  return job.result === undefined ? head : `${head.slice(0, -1)},"result":${job.result}}`;
}

/**
 * POST /v2/models/{m}/infer?async=true: the decoded, checked request becomes a job whose result is the JSON
 * answer of the synchronous call. Binary outputs cannot be part of a JSON result: refused before any job exists.
 */
export async function submitInferJob(
  parts: { jobs: JobRunner; pipeline: InferencePipeline },
  call: { v2: V2InferRequest; inference: InferenceRequest; who: Principal | undefined; route: string; record: RequestRecord },
): Promise<ReturnType<typeof acceptedAnswer>> {
  const { v2, inference, record } = call;
  refuseBinaryOutputs(v2);
  const job = await parts.jobs.submit<InferenceResult>({
    kind: 'infer',
    model: inference.model,
    who: call.who,
    route: call.route,
    requestId: inference.requestId,
    parent: inference.span,
    start: (ctx) => parts.pipeline.predict({ ...inference, signal: ctx.signal, deadline: ctx.deadline, onDispatch: ctx.running, span: ctx.span }),
    answer: (result, jobRecord) => {
      Object.assign(jobRecord, resultFields(result));
      const answer = inferResponseToRest(toV2Response(result, v2), () => false);
      return { body: answer.payload as string, model: result.model, version: result.version };
    },
  });
  // An accepted submission is not the inference; the job's own record is (counted by the v2 statistics when it
  // ends). A refused one stays counted as the failed inference the synchronous call would have been.
  delete record.inference;
  return acceptedAnswer(job);
}

function refuseBinaryOutputs(v2: V2InferRequest): void {
  const binary = v2.parameters.binary_data_output === true || v2.outputs.some((o) => o.parameters.binary_data === true);
  if (binary) {
    throw invalidArgument(
      "binary outputs (binary_data_output / an output's binary_data) cannot be returned by an async job, whose result is JSON inside GET /v2/jobs/{id}; ask for JSON outputs, or call without async=true",
    );
  }
}

export function jobRoutes(deps: JobRoutesDeps): FrontDoorPlugin {
  return (app) => {
    app.setErrorHandler((err: Error & { statusCode?: number }, _request, reply) => {
      // fastify's refusals (a body sent to these routes...) keep their 4xx; anything else is ours.
      if (!(err instanceof ServingError) && err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return sendError(reply, err.statusCode, err.message);
      const e = err instanceof ServingError ? err : internal(`internal error: ${err.message}`);
      const { status, headers } = toHttpError(e);
      sendError(reply, status, e.message, headers);
    });
    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?', 1)[0]!;
      if (/^\/v2\/jobs\/[^/]+\/?$/.test(path)) {
        void reply.header('allow', 'GET, DELETE');
        return sendError(reply, 405, `method ${request.method} is not allowed on ${clip(path, 128)}; allowed: GET, DELETE`);
      }
      sendError(reply, 404, `no route for ${clip(path, 128)}; jobs are served at GET and DELETE ${JOB_ROUTE}`);
    });
    const config: FrontDoorRouteConfig = { takesBody: false, servedAs: JOB_ROUTE };
    app.route({ method: 'GET', url: '/:id', config, handler: (request, reply) => serveJob(deps, 'GET', request, reply) });
    app.route({ method: 'DELETE', url: '/:id', config, handler: (request, reply) => serveJob(deps, 'DELETE', request, reply) });
  };
}

function serveJob(deps: JobRoutesDeps, method: 'GET' | 'DELETE', request: FastifyRequest, reply: FastifyReply): void {
  const { jobs, envelope } = deps;
  const id = (request.params as { id: string }).id;
  const job = jobs.store.get(id, principalOf(request.headers)?.label);
  const record: RequestRecord = {
    protocol: 'http',
    method: `${method} ${JOB_ROUTE}${job?.kind === 'generate' ? ' (generate)' : ''}`,
    model: job?.model ?? '',
    version: job?.version ?? '',
    code: 'OK',
    seconds: 0,
  };
  const start = httpCallStart(request.headers, method, JOB_ROUTE, record);
  const answer = (outcome: { ok: true; value: string } | { ok: false; error: ServingError }) => {
    if (outcome.ok) return void reply.code(200).type('application/json').send(outcome.value);
    const { status, headers } = toHttpError(outcome.error);
    sendError(reply, status, outcome.error.message, headers);
  };
  if (!job) {
    const missing = notFound(
      `no job ${echo(id)}: it does not exist or has expired. A job is kept ${jobs.ttlSecs} s after it finishes (--job-ttl-secs), ` +
        'only in the server process that accepted it (not across restarts), and only for whoever submitted it',
    );
    return envelope.refuse(start, missing, answer);
  }
  envelope.serve(
    start,
    async () => {
      if (method === 'GET') return jobView(job, jobs.store);
      // DELETE: an unfinished job is cancelled and kept as such; a finished one is answered once more and forgotten.
      if (job.status === 'queued' || job.status === 'running') jobs.cancel(job);
      else jobs.store.forget(job);
      return jobView(job, jobs.store);
    },
    answer,
  );
}

function sendError(reply: FastifyReply, status: number, message: string, headers: Record<string, string> = {}): void {
  if (reply.sent || reply.raw.destroyed) return;
  void reply.code(status).headers(headers).type('application/json').send({ error: clip(message, MAX_ERROR_CHARS) });
}
