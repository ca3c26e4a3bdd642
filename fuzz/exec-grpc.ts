/**
 * Sends gRPC cases as raw bytes (serializer and deserializer are the identity, so the server's decoder sees
 * exactly what the generator made) and checks the answer: a status other than UNKNOWN and INTERNAL, within
 * the call's deadline; a ModelStreamInfer stream answers each request once and its errors are not crashes.
 */
import * as grpc from '@grpc/grpc-js';
import { unb64, type Case, type Outcome } from './case';
import { knownFinding } from './known-findings';
import { decode } from './wire';

const identity = (b: Buffer) => b;
/** Status codes that say the server failed where a client's input should be refused: never acceptable here. */
const FAULTS = new Set([grpc.status.UNKNOWN, grpc.status.INTERNAL]);
/** A stream error_message that reads like a JavaScript exception escaped validation. */
const CRASH_TEXT = /TypeError|RangeError|ReferenceError|SyntaxError|Cannot read prop|is not a function|is not iterable|Maximum call stack|undefined \(reading/;

export class GrpcExecutor {
  private readonly clients: grpc.Client[];
  private next = 0;

  /** `hangMs`: the deadline every call gets unless its case sets a shorter one; reaching it is a hang. */
  constructor(address: string, private readonly hangMs: number, channels = 2) {
    // A few channels, so one connection's flow control does not serialise every call.
    this.clients = Array.from({ length: channels }, (_, i) => new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20, 'fuzz.channel': i }));
  }

  close(): void {
    for (const c of this.clients) c.close();
  }

  run(c: Extract<Case, { kind: 'grpc-unary' | 'grpc-server-stream' | 'grpc-bidi' }>): Promise<Outcome> {
    const client = this.clients[this.next++ % this.clients.length]!;
    const ownDeadline = c.deadlineMs !== undefined;
    const deadline = Date.now() + (c.deadlineMs ?? this.hangMs);
    const started = performance.now();
    return new Promise((resolve) => {
      let messages = 0;
      const streamErrors: string[] = [];
      const finish = (status: { code: grpc.status; details: string }) => {
        const violations: string[] = [];
        const code = grpc.status[status.code] ?? String(status.code);
        const known = knownFinding(status.details)?.id ?? streamErrors.map((e) => knownFinding(e)?.id).find(Boolean);
        if (FAULTS.has(status.code) && !knownFinding(status.details)) violations.push(`status ${code}: ${status.details}`);
        // The server's own DEADLINE_EXCEEDED (an input's tiny timeout_us) comes back at once; only the call's deadline
        // running out (the harness's generous one, not a deadline the input chose) is a hang.
        const elapsed = performance.now() - started;
        if (status.code === grpc.status.DEADLINE_EXCEEDED && !ownDeadline && elapsed >= this.hangMs * 0.9) violations.push(`hang: no answer within ${this.hangMs} ms`);
        if (c.kind === 'grpc-bidi' && status.code === grpc.status.OK && messages !== c.bodies.length) {
          violations.push(`ModelStreamInfer answered ${messages} of ${c.bodies.length} requests`);
        }
        for (const e of streamErrors) if (CRASH_TEXT.test(e) && !knownFinding(e)) violations.push(`stream error_message reads like a crash: ${e}`);
        resolve({ code, message: streamErrors[0] ?? status.details, violations, ...(known ? { known } : {}) });
      };
      const options = { deadline };
      if (c.kind === 'grpc-unary') {
        client.makeUnaryRequest(c.path, identity, identity, unb64(c.body), new grpc.Metadata(), options, (err) =>
          finish(err ? { code: err.code ?? grpc.status.UNKNOWN, details: err.details ?? err.message } : { code: grpc.status.OK, details: '' }),
        );
        return;
      }
      const call =
        c.kind === 'grpc-server-stream'
          ? client.makeServerStreamRequest(c.path, identity, identity, unb64(c.body), new grpc.Metadata(), options)
          : client.makeBidiStreamRequest(c.path, identity, identity, new grpc.Metadata(), options);
      let done = false;
      const end = (status: { code: grpc.status; details: string }) => {
        if (done) return;
        done = true;
        finish(status);
      };
      call.on('data', (bytes: Buffer) => {
        messages++;
        if (c.kind === 'grpc-bidi') {
          try {
            const m = decode('inference.ModelStreamInferResponse', bytes);
            if (m.error_message) streamErrors.push(String(m.error_message));
          } catch (err) {
            streamErrors.push(`the response does not decode: ${(err as Error).message}`);
          }
        }
      });
      call.on('error', (err: grpc.ServiceError) => end({ code: err.code, details: err.details }));
      call.on('status', (s: grpc.StatusObject) => end({ code: s.code, details: s.details }));
      if (c.kind === 'grpc-bidi') {
        const duplex = call as grpc.ClientDuplexStream<Buffer, Buffer>;
        for (const body of c.bodies) duplex.write(unb64(body));
        duplex.end();
      }
    });
  }
}
