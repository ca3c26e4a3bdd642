/**
 * The HTTP side of the request envelope (src/api/envelope.ts): how an HTTP call is described to it (trace
 * context from the `traceparent`/`tracestate` headers, the HTTP server semantic-convention attributes, the
 * response status attribute).
 */
import { defaultTextMapGetter } from '@opentelemetry/api';
import type { IncomingHttpHeaders } from 'node:http';
import type { CallStart } from '../envelope';
import type { RequestRecord } from '../request-record';
import { extractContext } from '../../telemetry/tracing';
import { HTTP_STATUS } from './status';
import { principalOf } from '../../security/call-principal';

export const ATTR_HTTP_METHOD = 'http.request.method';
export const ATTR_HTTP_ROUTE = 'http.route';
export const ATTR_HTTP_STATUS = 'http.response.status_code';

/** `route` is the route's template ("/v1/chat/completions"), never the raw path (bounded span names). */
export function httpCallStart(headers: IncomingHttpHeaders, method: string, route: string, record: RequestRecord): CallStart {
  return {
    record,
    spanName: `${method} ${route}`,
    parent: extractContext(headers, defaultTextMapGetter),
    attributes: { [ATTR_HTTP_METHOD]: method, [ATTR_HTTP_ROUTE]: route },
    statusAttributes: (code) => ({ [ATTR_HTTP_STATUS]: HTTP_STATUS[code] }),
    principal: principalOf(headers),
  };
}
