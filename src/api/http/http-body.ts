/**
 * Request bodies on the HTTP front door (src/api/http/http-server.ts): when a request announces one, how it is
 * read (counted as it arrives, never past the route's limit), and the content-type parsers every route on the
 * port inherits, mounted plugins included:
 *
 *   application/json          parsed; invalid JSON is a 400 naming the fault, `__proto__` keys are refused
 *   text/plain                a string
 *   application/octet-stream  a Buffer, as is a body sent with no Content-Type at all
 *   anything else             415, refused before any of the body is read
 *
 * The errors carry fastify's codes and status codes (FST_ERR_CTP_*) with messages clients can act on, so a
 * mounted plugin's own error handler sees the same statuses and texts as the front door's.
 */
import { errorCodes, type FastifyInstance, type FastifyRequest } from 'fastify';
import type * as http from 'node:http';
import { clip } from '../../core/errors';

/** Longest piece of client input (a path, a content type, a parse error) echoed in a message. */
export const MAX_ECHO_CHARS = 64;

/** Whether the request announces a body: chunked (any Transfer-Encoding) or a Content-Length above 0. */
export function announcesBody(req: http.IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/** Whether bytes the client announced may still be unread: an answer then has to close the connection. */
export function bodyLeftUnread(req: http.IncomingMessage): boolean {
  return announcesBody(req) && !req.complete;
}

/** Sends '100 Continue' to a client that waits for it before sending its body (never after an answer). */
export function continueIfExpected(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (!res.headersSent && req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
}

type FastifyError = Error & { code: string; statusCode: number };

function withMessage(err: Error, message: string): FastifyError {
  err.message = message;
  return err as FastifyError;
}

/** 413: `message` says which limit. */
export function bodyTooLarge(message: string): FastifyError {
  return withMessage(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(), message);
}

/** 415 for a content type no parser of the route takes. */
export function unsupportedMediaType(contentType: string | undefined, path: string): FastifyError {
  return withMessage(
    new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(),
    `content type ${JSON.stringify(clip(contentType ?? '', MAX_ECHO_CHARS))} is not supported by ${path}; send application/json`,
  );
}

/** The route's body limit in a message: "over the limit of N bytes for /path". */
export function overLimit(request: FastifyRequest, path: string): FastifyError {
  return bodyTooLarge(`request body is over the limit of ${request.routeOptions.bodyLimit} bytes for ${path}`);
}

/**
 * Reads the body, counting as it arrives; rejects with a 413 as soon as it passes `limit` (the rest stays
 * unread, and the answer closes the connection) so a chunked body cannot grow past what the route allows.
 * Rejects if the request ends early.
 */
export function readBody(payload: NodeJS.ReadableStream, limit: number, tooLarge: () => Error): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      payload.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += bytes.length;
      if (size > limit) {
        cleanup();
        payload.pause();
        reject(tooLarge());
      } else chunks.push(bytes);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(Object.assign(err, { statusCode: 400 }));
    };
    const onClose = () => onError(new Error('the request closed before its body was complete'));
    payload.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
    payload.resume();
  });
}

/** JSON.parse, refusing the keys that poison prototypes when merged (as fastify's default parser does). */
function parseJson(text: string): unknown {
  // The reviver costs a call per value: only for bodies that could spell such a key (escapes included).
  if (!/proto|constructor|\\u/.test(text)) return JSON.parse(text);
  return JSON.parse(text, (key, value: unknown) => {
    if (key === '__proto__' || (key === 'constructor' && value !== null && typeof value === 'object' && 'prototype' in value)) {
      throw new ForbiddenKey(key);
    }
    return value;
  });
}

class ForbiddenKey extends Error {}

/**
 * The body as read for `request`: `limit` and the path for messages come from the route. A request that no
 * route matched (a mounted plugin's own not-found handler answers it) is not read at all.
 */
type Parse = (request: FastifyRequest, bytes: Buffer) => unknown;

function parser(sentPath: (request: FastifyRequest) => string, parse: Parse) {
  return (request: FastifyRequest, payload: NodeJS.ReadableStream): Promise<unknown> => {
    if (request.is404) return Promise.resolve(undefined);
    const path = sentPath(request);
    return readBody(payload, request.routeOptions.bodyLimit, () => overLimit(request, path)).then((bytes) => parse(request, bytes));
  };
}

/**
 * Installs the front door's parsers on `app` (the root; every plugin inherits them unless it replaces them).
 * `sentPath` names the request's path as the client sent it, bounded.
 */
export function installBodyParsers(app: FastifyInstance, sentPath: (request: FastifyRequest) => string): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    'application/json',
    parser(sentPath, (request, bytes) => {
      if (bytes.length === 0) throw withMessage(new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY(), `the request body is empty but its content type is application/json`);
      try {
        return parseJson(bytes.toString('utf8'));
      } catch (err) {
        const why = err instanceof ForbiddenKey ? `the key "${err.message}" is not allowed` : clip((err as Error).message, 2 * MAX_ECHO_CHARS);
        throw withMessage(new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY(), `the request body is not valid JSON: ${why}`);
      }
    }),
  );
  app.addContentTypeParser('text/plain', parser(sentPath, (_request, bytes) => bytes.toString('utf8')));
  app.addContentTypeParser('application/octet-stream', parser(sentPath, (_request, bytes) => bytes));
  // '*' is what fastify asks for a body with no Content-Type and for types no other parser takes.
  const bytes = parser(sentPath, (_request, body) => body);
  app.addContentTypeParser('*', (request: FastifyRequest, payload: NodeJS.ReadableStream) => {
    const type = request.headers['content-type'];
    if (type !== undefined && type.trim() !== '') {
      if (request.is404) return Promise.resolve(undefined);
      return Promise.reject(unsupportedMediaType(type, sentPath(request)));
    }
    return bytes(request, payload);
  });
}

/** For raw routes (HttpFrontDoor.addRoute): every content type is read as bytes. */
export function installRawParser(app: FastifyInstance, sentPath: (request: FastifyRequest) => string): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', parser(sentPath, (_request, body) => body));
}
