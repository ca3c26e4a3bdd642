#!/usr/bin/env node
/*
 * Container health probe: calls grpc.health.v1.Health/Check on the local tensorgate server.
 *
 *   node deploy/healthcheck.js [SERVICE]
 *
 * Exit status (what Docker's HEALTHCHECK expects): 0 when the server answers SERVING, 1 otherwise
 * (NOT_SERVING, UNKNOWN, unknown service, connection refused, deadline exceeded). The server reports
 * NOT_SERVING while it loads models and from the moment it starts draining on SIGTERM.
 *
 * Plain CommonJS on purpose: it runs in the runtime image, which holds only production dependencies
 * (@grpc/grpc-js and grpc-health-check are both runtime dependencies of tensorgate) and no TypeScript.
 *
 * Which port: the one the server was started with. The server's own `--port N` (read from its command
 * line: PID 1 in the container, where node is the entrypoint) wins, as it does in the server; then
 * TENSORGATE_PORT; then 50051. The probe dials 127.0.0.1.
 *
 * Environment:
 *   TENSORGATE_HEALTHCHECK_ADDRESS  HOST:PORT to dial instead of all of the above (optional)
 *   TENSORGATE_HEALTHCHECK_SERVER_PID  the server's process id, whose --port is read (default 1)
 *   TENSORGATE_PORT               the server's gRPC port when it was started without --port
 *   SERVICE argument              the health entry to check; default "" (the whole server)
 */
'use strict';

const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');
const { service: healthService } = require('grpc-health-check');

const DEADLINE_MS = 3000;

/** The value of `--port N` or `--port=N` in a NUL-separated /proc/<pid>/cmdline; undefined when absent. */
function portFlag(cmdline) {
  const args = cmdline.split('\0');
  let port;
  args.forEach((arg, i) => {
    if (arg === '--port' && args[i + 1] !== undefined) port = args[i + 1];
    else if (arg.startsWith('--port=')) port = arg.slice('--port='.length);
  });
  return port;
}

/** The --port of the server process, when it is a tensorgate server started with one. */
function serverPortFlag(env) {
  const pid = env.TENSORGATE_HEALTHCHECK_SERVER_PID || '1';
  let cmdline;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined; // not Linux, or no such process: fall back to the environment
  }
  if (!/(^|\/|\0)(tensorgate|main\.js)\0serve(\0|$)/.test(cmdline)) return undefined;
  const port = portFlag(cmdline);
  return port === '0' ? undefined : port; // --port 0 (a free one) says nothing about which one it got
}

function targetAddress(env) {
  if (env.TENSORGATE_HEALTHCHECK_ADDRESS) return env.TENSORGATE_HEALTHCHECK_ADDRESS;
  const flag = serverPortFlag(env);
  const [source, raw] = flag !== undefined ? ['the server\'s --port', flag] : ['TENSORGATE_PORT', env.TENSORGATE_PORT || '50051'];
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${source}=${JSON.stringify(raw)} is not a port number`);
  }
  return `127.0.0.1:${port}`;
}

function main() {
  let address;
  try {
    address = targetAddress(process.env);
  } catch (err) {
    process.stderr.write(`healthcheck: ${err.message}\n`);
    process.exit(1);
  }
  const service = process.argv[2] || '';
  const HealthClient = grpc.makeGenericClientConstructor(healthService, 'Health');
  const client = new HealthClient(address, grpc.credentials.createInsecure());
  // Backstop: whatever happens, answer within the deadline plus a margin (Docker kills slow probes anyway).
  setTimeout(() => {
    process.stderr.write(`healthcheck: no answer from ${address} within ${DEADLINE_MS} ms\n`);
    process.exit(1);
  }, DEADLINE_MS + 1000).unref();

  client.check({ service }, { deadline: Date.now() + DEADLINE_MS }, (err, res) => {
    client.close();
    if (err) {
      const code = grpc.status[err.code] || err.code;
      process.stderr.write(`healthcheck: ${address} ${code}: ${err.details || err.message}\n`);
      process.exit(1);
    }
    const status = res && res.status;
    if (status === 'SERVING') {
      process.stdout.write(`healthcheck: ${address} SERVING\n`);
      process.exit(0);
    }
    process.stderr.write(`healthcheck: ${address} ${status}\n`);
    process.exit(1);
  });
}

main();
