#!/usr/bin/env node
/**
 * `tensorgate` command line: serve a model repository, or talk to a running server.
 *
 * @example
 *   tensorgate serve --models ./models --port 50051
 *   tensorgate models --address 127.0.0.1:50051
 *   tensorgate predict --model sentiment --text "I love this"
 *   tensorgate predict --model sentiment --input '{"name":"token_ids","dtype":"INT64","shape":[1,2],"values":[1963,1]}'
 *   tensorgate predict --model convnet --input @batch.json      # or --input - to read stdin
 */
// First: tracing must start before @grpc/grpc-js is loaded.
import { telemetry } from '../telemetry/bootstrap';
import * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { resolveServerConfig, SERVER_SETTINGS } from '../config/server-config';
import { createLogger, logDestination } from '../log';
import { StartupError, TensorgateServer } from '../server';
import { modelsCommand, predictCommand } from './client-commands';

const FLAG_WIDTH = Math.max(...SERVER_SETTINGS.map((s) => s.flag.length));
const ENV_WIDTH = Math.max(...SERVER_SETTINGS.map((s) => s.env.length));

const USAGE = `Usage: tensorgate <command> [options]

Commands:
  serve     serve a model repository over gRPC
  models    list the models a server serves
  predict   call Predict on a server (tensor from JSON with --input, or --text)

serve options (flags win over environment variables):
${SERVER_SETTINGS.map((s) => `  --${s.flag.padEnd(FLAG_WIDTH)} ${s.env.padEnd(ENV_WIDTH)} ${s.help}`).join('\n')}

client options:
  --address HOST:PORT    server address (default 127.0.0.1:50051, env TENSORGATE_ADDRESS)
  --model NAME           model to call (predict)
  --version N            model version (predict; default: newest)
  --text TEXT            input_text for models with a text pipeline (predict)
  --input JSON|@FILE|-   a tensor {"name","dtype","shape","values"} or an array of them, given inline, read
                         from FILE, or from stdin with - (predict)
  --output NAME          an output to return; repeat for several (predict)
  --timeout-ms MS        deadline for the call (default 30000)
`;

async function serve(flags: Record<string, string | undefined>): Promise<void> {
  const config = resolveServerConfig(flags, process.env);
  const log = createLogger(config.logLevel, logDestination(config.logFormat));
  // grpc-js writes its own lines to stderr ("E No address added ..."); route them into our log, where
  // they keep the format and level, so a failed start ends with our one line naming the fix.
  grpc.setLogger({ error: (...args: unknown[]) => log.debug({ source: 'grpc-js' }, args.map(String).join(' ')) });
  const server = new TensorgateServer(config, log);
  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ signal }, 'shutdown requested');
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
  // A safety net, not a code path: every request's failure is answered where it happens. Should a promise
  // still reject unobserved, one request's bug must not take every other request down with the process.
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection (bug): the server keeps serving'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await server.start();
  } catch (err) {
    // A startup error a person can fix (a port in use) is one line; anything else keeps its stack for a bug report.
    if (err instanceof StartupError) log.fatal(`cannot start: ${err.message}`);
    else log.fatal({ err }, `cannot start: ${(err as Error).message}`);
    await server.shutdown(0).catch(() => undefined);
    process.exit(1);
  }
}

async function main(argv: string[]): Promise<void> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(USAGE);
    return;
  }
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    strict: true,
    options: {
      ...Object.fromEntries(SERVER_SETTINGS.map((s) => [s.flag, { type: 'string' as const }])),
      address: { type: 'string' },
      model: { type: 'string' },
      version: { type: 'string' },
      text: { type: 'string' },
      input: { type: 'string' },
      output: { type: 'string', multiple: true },
      'timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !command || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const address = values.address ?? process.env.TENSORGATE_ADDRESS ?? '127.0.0.1:50051';
  const timeoutMs = Number(values['timeout-ms'] ?? 30_000);
  switch (command) {
    case 'serve':
      await serve(values as Record<string, string | undefined>);
      return;
    case 'models':
      await modelsCommand(address, timeoutMs);
      return;
    case 'predict':
      await predictCommand(address, timeoutMs, {
        model: values.model,
        version: values.version,
        text: values.text,
        input: values.input,
        outputs: values.output ?? [],
      });
      return;
    default:
      throw new Error(`unknown command '${command}'\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = err as { code?: number; details?: string; message?: string };
  process.stderr.write(`tensorgate: ${e.details ?? e.message ?? String(err)}\n`);
  process.exit(e.code !== undefined && e.code > 0 ? 2 : 1);
});
