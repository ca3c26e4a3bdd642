/**
 * `tensorgate serve` in the process that serves: one TensorgateServer, its signals and its exit. With
 * `--processes N` this runs in each of the N processes the cluster primary forks (src/cluster/primary.ts;
 * main.ts loads that instead in the primary), tied to it by a ClusterMember.
 */
// First: tracing must start before @grpc/grpc-js is loaded.
import { telemetry } from '../telemetry/bootstrap';
import * as grpc from '@grpc/grpc-js';
import * as os from 'node:os';
import type { ServerConfig } from '../config/server-config';
import { createLogger, logDestination } from '../log';
import { StartupError, TensorgateServer } from '../server';

export async function serve(options: ServerConfig): Promise<void> {
  // A serving process of a cluster (main.ts runs the primary elsewhere); N=1 never loads node:cluster.
  const clustered = options.processes > 1 ? (require('../cluster/worker') as typeof import('../cluster/worker')) : undefined;
  const index = clustered?.processIndex() ?? 0;
  const config = clustered ? clustered.shareOfMachine(options, os.availableParallelism()) : options;
  const root = createLogger(config.logLevel, logDestination(config.logFormat));
  // In a cluster every line says which process wrote it (0 is the primary).
  const log = clustered ? root.child({ process: index }) : root;
  // grpc-js writes its own lines to stderr ("E No address added ..."); route them into our log, where
  // they keep the format and level, so a failed start ends with our one line naming the fix.
  grpc.setLogger({ error: (...args: unknown[]) => log.debug({ source: 'grpc-js' }, args.map(String).join(' ')) });
  const server = new TensorgateServer(config, log);
  const member = clustered ? new clustered.ClusterMember(server, log, index) : undefined;

  let draining = false;
  const drain = (why: { signal: string } | { by: 'cluster primary' }) => {
    if (draining) return;
    draining = true;
    log.info(why, 'shutdown requested');
    member?.draining();
    server.shutdown().then(
      async () => {
        await telemetry?.shutdown().catch(() => undefined); // flush spans still buffered
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // A second signal exits at once. In a cluster the primary asks for the drain by message, not by forwarding
  // the signal: Ctrl-C in a terminal signals the whole process group, so a forwarded signal would arrive as a
  // second one and cut the drain short.
  let signals = 0;
  const onSignal = (signal: string) => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    drain({ signal });
  };
  member?.whenDrainRequested(() => drain({ by: 'cluster primary' }));
  // A safety net, not a code path: every request's failure is answered where it happens. Should a promise
  // still reject unobserved, one request's bug must not take every other request down with the process.
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection (bug): the server keeps serving'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  try {
    await server.listen();
    member?.listening();
    await server.loadModels();
  } catch (err) {
    // A startup error a person can fix (a port in use) is one line; anything else keeps its stack for a bug report.
    // In a cluster the primary prints that line, once for all the processes.
    const message = (err as Error).message;
    if (!member?.startupFailed(message)) {
      if (err instanceof StartupError) log.fatal(`cannot start: ${message}`);
      else log.fatal({ err }, `cannot start: ${message}`);
    } else if (!(err instanceof StartupError)) log.error({ err }, 'startup failed'); // the stack, for a bug report
    await server.shutdown(0).catch(() => undefined);
    process.exit(1);
  }
}
