/**
 * Client channel settings shared by every tensorgate client: one or several server addresses as one grpc-js
 * target, round-robin load balancing over them, and retries of idempotent calls on UNAVAILABLE (a replica
 * that is draining, restarting or gone), all through grpc-js's service config.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** Idempotent methods: safe to send again when a replica answered UNAVAILABLE or went away mid-call. */
const RETRIED_METHODS = [
  { service: 'tensorgate.v1.ModelService', method: 'Predict' },
  { service: 'tensorgate.v1.ModelService', method: 'ListModels' },
  { service: 'tensorgate.v1.ModelService', method: 'GetModel' },
  // v2 (Open Inference Protocol): inference and the read methods; never the repository's load/unload.
  ...['ModelInfer', 'ServerLive', 'ServerReady', 'ModelReady', 'ServerMetadata', 'ModelMetadata', 'ModelConfig', 'ModelStatistics', 'RepositoryIndex'].map(
    (method) => ({ service: 'inference.GRPCInferenceService', method }),
  ),
  { service: 'grpc.health.v1.Health', method: 'Check' },
];

/**
 * The service config: round_robin spreads calls over every address (or every record of one DNS name) that
 * is connected; retryPolicy sends an idempotent call again, to the next ready replica, when it failed with
 * UNAVAILABLE. Streaming calls (Generate) are not retried: their first answers may already have been used.
 */
export const CLIENT_SERVICE_CONFIG = {
  loadBalancingConfig: [{ round_robin: {} }],
  methodConfig: [
    {
      name: RETRIED_METHODS,
      retryPolicy: {
        maxAttempts: 4,
        initialBackoff: '0.05s',
        maxBackoff: '1s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ],
};

/**
 * Channel options for a tensorgate client at `address`. `retries`: round-robin balancing and the retry policy
 * above (the CLI's choice; off by default, so a caller that wants to see each server's own answer, such as a
 * test of the server, sees it). Without it, a list of addresses still gets round_robin (else only the first
 * would be used) and a single address keeps grpc-js's defaults. grpc-js keeps a call's request for a retry only
 * up to the per-call retry buffer (256 KiB by default); larger requests would not be retried, so it is raised.
 */
export function clientChannelOptions(address: string, { retries = false }: { retries?: boolean } = {}): Record<string, string | number> {
  if (retries) {
    return {
      'grpc.service_config': JSON.stringify(CLIENT_SERVICE_CONFIG),
      'grpc.per_rpc_retry_buffer_size': 16 * 1024 * 1024,
      'grpc.retry_buffer_size': 64 * 1024 * 1024,
    };
  }
  if (address.includes(',')) return { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: CLIENT_SERVICE_CONFIG.loadBalancingConfig }) };
  return {};
}

/**
 * One address as given (HOST:PORT, a DNS name with several records, or any grpc-js target such as
 * `dns:`, `ipv4:`, `unix:`), or a comma-separated list of HOST:PORT turned into grpc-js's multi-address
 * target (`ipv4:a:1,b:2` or `ipv6:[a]:1,[b]:2`). grpc-js has no multi-address scheme for names, so a list
 * takes IP addresses (and `localhost`, read as 127.0.0.1); several names go behind one DNS name instead.
 */
export function clientTarget(address: string): string {
  const parts = address.split(',').map((p) => p.trim());
  if (parts.length === 1) return parts[0]!;
  const bad = (part: string, why: string) =>
    new Error(
      `address list ${JSON.stringify(address)}: ${JSON.stringify(part)} ${why}; a comma-separated list takes IP addresses as HOST:PORT ` +
        '(e.g. 10.0.0.1:50051,10.0.0.2:50051 or [fd00::1]:50051,[fd00::2]:50051, all of one family); for host names use one DNS name that resolves to every replica',
    );
  const hosts = parts.map((part) => {
    if (part === '') throw bad(part, 'is empty');
    const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(part);
    if (!m || Number(m[3]) > 65535) throw bad(part, 'is not HOST:PORT');
    const host = m[1] ?? (m[2] === 'localhost' ? '127.0.0.1' : m[2]!);
    if (m[1] !== undefined ? !isIPv6(host) : !isIPv4(host)) throw bad(part, 'is not an IP address');
    return { host, port: m[3]!, v6: m[1] !== undefined };
  });
  const family = hosts[0]!.v6;
  if (hosts.some((h) => h.v6 !== family)) throw bad(parts[hosts.findIndex((h) => h.v6 !== family)]!, 'is of another IP family than the first');
  return `${family ? 'ipv6' : 'ipv4'}:${hosts.map((h) => (h.v6 ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`)).join(',')}`;
}
