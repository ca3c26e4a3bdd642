/**
 * A real grpc-js client of grpc.health.v1 (built from grpc-health-check's proto) for the health tests:
 * Check, and Watch with its updates collected in order.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

export type HealthClient = grpc.Client & { Check: Function; Watch: Function };

export function healthClient(address: string): HealthClient {
  const def = protoLoader.loadSync(healthProtoPath, { keepCase: true, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as any;
  return new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
}

export function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err: grpc.ServiceError | null, res: { status: string }) => (err ? reject(err) : resolve(res.status))),
  );
}

/** Collects Watch updates; `next()` resolves with the next status received. */
export function watch(client: HealthClient, service: string) {
  const call = client.Watch({ service }) as grpc.ClientReadableStream<{ status: string }>;
  const received: string[] = [];
  const waiters: ((s: string) => void)[] = [];
  call.on('data', (m: { status: string }) => {
    const waiter = waiters.shift();
    if (waiter) waiter(m.status);
    else received.push(m.status);
  });
  call.on('error', () => undefined);
  return {
    next: () => new Promise<string>((resolve) => (received.length > 0 ? resolve(received.shift()!) : waiters.push(resolve))),
    cancel: () => call.cancel(),
  };
}
