/**
 * Authentication for every HTTP request (the APIs, /metrics, the probes), run by the front door before a
 * request's body is read, so a caller without valid credentials costs no body. The principal goes to the
 * request envelope (src/security/call-principal.ts) for permissions and rate limits; a refusal is answered
 * here (in the shape of the API it was sent to), and logged and counted by the envelope.
 *
 * /healthz, /readyz and the v2 health routes are the `health` group, /metrics the `metrics` group, the web
 * console's files (/ and /console/*, not its JSON routes) the `console` group: reachable without credentials
 * when the policy lists them under `open`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ServingError } from '../../core/errors';
import type { RequestEnvelope } from '../envelope';
import type { RequestRecord } from '../request-record';
import type { OpenGroup } from '../../security/access-policy';
import { actionOf } from '../../security/call-actions';
import { attachPrincipal } from '../../security/call-principal';
import { httpPeerIdentity } from '../../security/peer-identity';
import { httpCallStart } from './call-start';
import { CONSOLE_ASSETS_ROUTE } from './console-routes';
import { toHttpError } from './status';

/** An API's error body for a refusal, for the routes under its prefix (the OpenAI API has its own shape). */
export type ErrorBody = (err: ServingError) => unknown;

/** true when the request was refused (and answered). */
export type AccessCheck = (request: FastifyRequest, reply: FastifyReply) => Promise<boolean>;

function openGroupOf(method: string, route: string): OpenGroup | undefined {
  if (route === '/metrics') return 'metrics';
  if (route === '/healthz' || route === '/readyz') return 'health';
  if (method === 'GET' && (route === '/' || route === CONSOLE_ASSETS_ROUTE)) return 'console';
  return actionOf(`${method} ${route}`) === 'health' ? 'health' : undefined;
}

export function httpAccessCheck(envelope: RequestEnvelope, errorBodies: Record<string, ErrorBody> = {}): AccessCheck {
  return async (request, reply) => {
    const guard = envelope.guard;
    if (!guard) return false;
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    // The route's template as the envelope's records name it: '/v2/models/:name/infer' -> '/v2/models/{name}/infer'.
    const route = (request.routeOptions.url ?? request.url.split('?', 1)[0]!).replace(/:(\w+)/g, '{$1}').replace(/(.)\/$/, '$1');
    const group = openGroupOf(method, route);
    if (group && guard.open.has(group)) return false;
    const header = request.headers.authorization;
    try {
      attachPrincipal(request.headers, await guard.authenticate({ authorization: header, peer: httpPeerIdentity(request.raw) }));
      return false;
    } catch (err) {
      const record: RequestRecord = { protocol: 'http', method: `${method} ${route}`, model: '', version: '', code: 'OK', seconds: 0 };
      const shape = Object.entries(errorBodies).find(([prefix]) => route.startsWith(`${prefix}/`))?.[1];
      // Answered before the hook returns, so the request's lifecycle ends with this answer.
      await new Promise<void>((answered) =>
        envelope.refuse(httpCallStart(request.headers, method, route, record), ServingError.from(err, 'UNAUTHENTICATED'), (outcome) => {
          answered();
          if (outcome.ok || reply.sent) return;
          const { status, body, headers } = toHttpError(outcome.error);
          // RFC 9110: a 401 names the scheme the server takes.
          void reply
            .code(status)
            .headers({ ...headers, ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}) })
            .type('application/json')
            .send(shape ? shape(outcome.error) : { error: body.error });
        }),
      );
      return true;
    }
  };
}
