#!/usr/bin/env node
/**
 * `tensorgate` command line: serve a model repository, or talk to a running server.
 *
 * @example
 *   tensorgate serve --models ./models --port 50051
 *   tensorgate models --address 127.0.0.1:50051
 *   tensorgate models convert models/resnet > models/resnet/config.yaml   # from a Triton config.pbtxt
 *   tensorgate predict --model sentiment --text "I love this"
 *   tensorgate predict --model sentiment --input '{"name":"token_ids","dtype":"INT64","shape":[1,2],"values":[1963,1]}'
 *   tensorgate predict --model convnet --input @batch.json      # or --input - to read stdin
 *   tensorgate generate --model tiny-lm "And God said"          # streams the text, then tokens/s
 *   tensorgate keys new alice                                   # an API key and its access-policy line
 */
import type { Cluster } from 'node:cluster';
import { parseArgs } from 'node:util';
import { resolveServerConfig, SERVER_SETTINGS } from '../config/server-config';

const FLAG_WIDTH = Math.max(...SERVER_SETTINGS.map((s) => s.flag.length));
const ENV_WIDTH = Math.max(...SERVER_SETTINGS.map((s) => s.env.length));

const USAGE = `Usage: tensorgate <command> [options]

Commands:
  serve     serve a model repository over gRPC
  models    list the models a server serves
  models convert PATH
            print the config.yaml equivalent of a Triton config.pbtxt (PATH: a model folder or the
            file), its warnings as comments; exit 1 with the problems when it cannot be served
  models hash PATH
            print the sha256 of each version's model.onnx in a model folder as the config.yaml
            \`versions:\` section to paste; a server then loads no other bytes for those versions
  models load|unload|reload NAME
            model control on a server started with --model-control-mode explicit (v2 RepositoryModelLoad /
            Unload); reload switches to the new load without failing a request, unload drains first
  models promote|rollback NAME
            promote a model's canary (config.yaml canary) to take every request that names no version, or
            roll it back to the stable version, until the model is reloaded
  optimize MODEL --to VERSION [--from VERSION] [--models DIR] PASS...
            write an optimised copy of a model version as a new version (never over one), checked against
            the original on seeded inputs. Passes, applied in this order: --prune magnitude:FRACTION (zero
            the smallest weights of each layer), --quantize int8-dynamic (int8 weights) or --fp16 (float16
            weights and compute, inputs and outputs kept), --graph-optimize basic|extended|all (ONNX Runtime)
  compare MODEL A B [--models DIR] [--data FILE] [--json] [--batch-sizes 1,8,32] [--seconds S]
            run versions A and B of a model on the same inputs (seeded from its metadata, or JSON lines
            in FILE, labelled or not) and report file size, latency p50/p99 and throughput at batch 1 and
            the best batch, how far B's outputs are from A's, and task accuracy when rows carry labels
  keys new NAME
            a new API key for the access policy (--auth-config): prints the key, once, and the
            api_keys line holding only its sha256; keys hash NAME < FILE prints that line for a key
  predict   call Predict on a server (tensor from JSON with --input, or --text)
  generate  stream text from a generation model: tensorgate generate --model NAME "prompt"

serve options (flags win over environment variables):
${SERVER_SETTINGS.map((s) => `  --${s.flag.padEnd(FLAG_WIDTH)} ${s.env.padEnd(ENV_WIDTH)} ${s.help}`).join('\n')}

client options:
  --address HOST:PORT[,HOST:PORT...]
                         server address(es): several are balanced round-robin, and calls retried on
                         UNAVAILABLE (default 127.0.0.1:50051, env TENSORGATE_ADDRESS)
  --model NAME           model to call (predict)
  --version N            model version (predict; default: newest)
  --text TEXT            input_text for models with a text pipeline (predict)
  --input JSON|@FILE|-   a tensor {"name","dtype","shape","values"} or an array of them, given inline, read
                         from FILE, or from stdin with - (predict)
  --output NAME          an output to return; repeat for several (predict)
  --max-tokens N         most tokens to generate (generate; default: the model's default_max_tokens)
  --temperature T        0 = greedy (generate; default: the model's generation_config.json)
  --top-k K, --top-p P   sampling filters (generate)
  --seed N               repeat a run exactly (generate; the server prints the one it picked otherwise)
  --stop TEXT            stop before this text; repeat for several (generate)
  --timeout-ms MS        deadline for the call (default 30000)
  --tls                  connect with TLS, trusting the system's CAs (implied by the --tls-* flags below)
  --tls-ca FILE          connect with TLS, trusting this PEM CA bundle for the server's certificate
  --tls-cert FILE --tls-key FILE
                         client certificate and key (PEM) for a server with --tls-client-ca (mutual TLS)
  --tls-server-name NAME the name the server's certificate must carry, when --address does not name it
  --token TOKEN          sent as 'authorization: Bearer TOKEN' on every call (env TENSORGATE_TOKEN)
`;

/**
 * The commands' modules are loaded only when used: a cluster primary (`serve --processes N`) stays a small
 * supervisor that never loads the server, ONNX Runtime or grpc-js, and the serving process loads tracing
 * before grpc-js (src/cli/serve.ts).
 */
async function serveCommand(flags: Record<string, string | undefined>): Promise<void> {
  const config = resolveServerConfig(flags, process.env);
  if (config.processes > 1 && (require('node:cluster') as Cluster).isPrimary) {
    await (require('../cluster/primary') as typeof import('../cluster/primary')).runPrimary(config);
    return;
  }
  await (require('./serve') as typeof import('./serve')).serve(config);
}

const clientCommands = () => require('./client-commands') as typeof import('./client-commands');

async function main(argv: string[]): Promise<void> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(USAGE);
    return;
  }
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    strict: true,
    allowPositionals: command === 'generate' || command === 'models' || command === 'keys' || command === 'optimize' || command === 'compare',
    options: {
      ...Object.fromEntries(SERVER_SETTINGS.map((s) => [s.flag, { type: 'string' as const }])),
      address: { type: 'string' },
      model: { type: 'string' },
      version: { type: 'string' },
      text: { type: 'string' },
      input: { type: 'string' },
      output: { type: 'string', multiple: true },
      'timeout-ms': { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      stop: { type: 'string', multiple: true },
      // Client TLS and token (--tls-cert and --tls-key are also serve's settings: the same flags, the client's own files here).
      tls: { type: 'boolean' },
      'tls-ca': { type: 'string' },
      'tls-server-name': { type: 'string' },
      token: { type: 'string' },
      to: { type: 'string' },
      from: { type: 'string' },
      'graph-optimize': { type: 'string' },
      quantize: { type: 'string' },
      fp16: { type: 'boolean' },
      prune: { type: 'string' },
      // compare
      data: { type: 'string' },
      json: { type: 'boolean' },
      'batch-sizes': { type: 'string' },
      seconds: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !command || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const address = values.address ?? process.env.TENSORGATE_ADDRESS ?? '127.0.0.1:50051';
  const timeoutMs = Number(values['timeout-ms'] ?? 30_000);
  // Read (and its files checked) only by the client commands; serve has its own --tls-* settings.
  const security = () =>
    (require('../client/client-security') as typeof import('../client/client-security')).clientSecurityFromFiles({
      tls: values.tls,
      tlsCa: values['tls-ca'],
      tlsCert: (values as Record<string, unknown>)['tls-cert'] as string | undefined,
      tlsKey: (values as Record<string, unknown>)['tls-key'] as string | undefined,
      tlsServerName: values['tls-server-name'],
      token: values.token ?? process.env.TENSORGATE_TOKEN,
    });
  switch (command) {
    case 'serve':
      await serveCommand(values as Record<string, string | undefined>);
      return;
    case 'models':
      if (positionals[0] === 'convert') {
        if (positionals.length > 2) throw new Error(`models convert takes one PATH, got: ${positionals.slice(1).join(' ')}`);
        await (require('./convert-command') as typeof import('./convert-command')).convertCommand(positionals[1]);
        return;
      }
      if (positionals[0] === 'hash') {
        if (positionals.length > 2) throw new Error(`models hash takes one PATH, got: ${positionals.slice(1).join(' ')}`);
        await (require('./hash-command') as typeof import('./hash-command')).hashCommand(positionals[1]);
        return;
      }
      if (positionals[0] === 'load' || positionals[0] === 'unload' || positionals[0] === 'reload') {
        if (positionals.length > 2) throw new Error(`models ${positionals[0]} takes one NAME, got: ${positionals.slice(1).join(' ')}`);
        await (require('./model-control-command') as typeof import('./model-control-command')).modelControlCommand(positionals[0], positionals[1], address, timeoutMs, security());
        return;
      }
      if (positionals[0] === 'promote' || positionals[0] === 'rollback') {
        if (positionals.length > 2) throw new Error(`models ${positionals[0]} takes one NAME, got: ${positionals.slice(1).join(' ')}`);
        await (require('./model-control-command') as typeof import('./model-control-command')).canaryCommand(positionals[0], positionals[1], address, timeoutMs, security());
        return;
      }
      if (positionals.length > 0) {
        throw new Error(`unknown models subcommand '${positionals[0]}' (models lists a server's models; models load|unload|reload NAME; models convert PATH converts a config.pbtxt; models hash PATH prints sha256s)`);
      }
      await clientCommands().modelsCommand(address, timeoutMs, security());
      return;
    case 'optimize':
      await (require('./optimize-command') as typeof import('./optimize-command')).optimizeCommand(positionals, {
        to: values.to,
        from: values.from,
        models: (values as Record<string, unknown>).models as string | undefined,
        graphOptimize: values['graph-optimize'],
        quantize: values.quantize,
        fp16: values.fp16,
        prune: values.prune,
      });
      return;
    case 'compare':
      await (require('./compare-command') as typeof import('./compare-command')).compareCommand(positionals, {
        models: (values as Record<string, unknown>).models as string | undefined,
        data: values.data,
        json: values.json,
        batchSizes: values['batch-sizes'],
        seconds: values.seconds,
      });
      return;
    case 'keys':
      (require('./keys-command') as typeof import('./keys-command')).keysCommand(positionals);
      return;
    case 'predict':
      await clientCommands().predictCommand(address, timeoutMs, {
        model: values.model,
        version: values.version,
        text: values.text,
        input: values.input,
        outputs: values.output ?? [],
      }, security());
      return;
    case 'generate':
      await (require('./generate-command') as typeof import('./generate-command')).generateCommand(address, timeoutMs, {
        model: values.model,
        version: values.version,
        prompt: positionals.join(' '),
        maxTokens: values['max-tokens'],
        temperature: values.temperature,
        topK: values['top-k'],
        topP: values['top-p'],
        seed: values.seed,
        stop: values.stop ?? [],
      }, security());
      return;
    default:
      throw new Error(`unknown command '${command}'\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = err as { code?: number; details?: string; message?: string };
  // gRPC status 16 (UNAUTHENTICATED) without a token given: say how the CLI sends one.
  const hint = e.code === 16 && !process.argv.includes('--token') && !process.env.TENSORGATE_TOKEN ? ' (this CLI sends one with --token TOKEN or TENSORGATE_TOKEN)' : '';
  process.stderr.write(`tensorgate: ${e.details ?? e.message ?? String(err)}${hint}\n`);
  process.exit(e.code !== undefined && e.code > 0 ? 2 : 1);
});
