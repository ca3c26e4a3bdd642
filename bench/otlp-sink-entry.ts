/**
 * Child-process entry: the receiving end of trace export for the "tracing export" section. A minimal
 * OTLP/HTTP traces receiver on 127.0.0.1 (ephemeral port): `POST /v1/traces` bodies (http/protobuf,
 * gzip if the exporter compresses) are read, counted (requests, bytes, spans) and answered 200 with an
 * empty ExportTraceServiceResponse (zero bytes, application/x-protobuf). Anything else gets 404.
 *
 * It runs as its own process, as a collector would, so the server pays only for producing and sending
 * spans. Speaks the entry-ipc protocol (`ready` with its port; stats carry `sink`); its CPU is reported
 * beside the server's rather than as interference (see LoadOptions.companions).
 */
import * as http from 'node:http';
import * as zlib from 'node:zlib';
import { serveIpc, type SinkWindow } from './entry-ipc';

/** Reads a protobuf varint at `at`; returns [value, next offset]. Values here (lengths, tags) fit in 2^53. */
function varint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (at >= buf.length) throw new Error('truncated varint');
    const b = buf[at++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, at];
    scale *= 128;
  }
}

/** Calls `fn(field, start, end)` for each length-delimited field of the message in buf[start, end). */
function eachBytesField(buf: Buffer, start: number, end: number, fn: (field: number, s: number, e: number) => void): void {
  let at = start;
  while (at < end) {
    const [tag, next] = varint(buf, at);
    at = next;
    const wire = tag & 7;
    if (wire === 0) at = varint(buf, at)[1];
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const [len, body] = varint(buf, at);
      fn(Math.floor(tag / 8), body, body + len);
      at = body + len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
}

/** Spans in an ExportTraceServiceRequest: resource_spans (1) -> scope_spans (2) -> spans (2). */
function countSpans(body: Buffer): number {
  let spans = 0;
  eachBytesField(body, 0, body.length, (f1, s1, e1) => {
    if (f1 !== 1) return;
    eachBytesField(body, s1, e1, (f2, s2, e2) => {
      if (f2 !== 2) return;
      eachBytesField(body, s2, e2, (f3) => {
        if (f3 === 2) spans++;
      });
    });
  });
  return spans;
}

async function main(): Promise<void> {
  const window: SinkWindow = { requests: 0, bytes: 0, spans: 0 };
  let badBodies = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url?.split('?')[0] !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const raw = Buffer.concat(chunks);
      window.requests++;
      window.bytes += raw.length;
      try {
        window.spans += countSpans(req.headers['content-encoding'] === 'gzip' ? zlib.gunzipSync(raw) : raw);
      } catch {
        badBodies++;
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': '0' }).end();
    });
  });
  const ipc = serveIpc(
    () => new Promise<void>((resolve) => {
      if (badBodies > 0) console.error(`otlp-sink: ${badBodies} request bodies could not be parsed as OTLP protobuf`);
      server.closeAllConnections();
      server.close(() => resolve());
    }),
    0,
    {
      reset: () => void Object.assign(window, { requests: 0, bytes: 0, spans: 0 }),
      read: () => ({ sink: { ...window } }),
    },
  );
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
  ipc.ready((server.address() as { port: number }).port);
}

main().catch((err: unknown) => {
  console.error('bench otlp-sink-entry failed:', err);
  process.exit(1);
});
