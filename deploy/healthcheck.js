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
 * Environment:
 *   TENSORGATE_PORT               the server's gRPC port (default 50051); the probe dials 127.0.0.1
 *   TENSORGATE_HEALTHCHECK_ADDRESS  HOST:PORT to dial instead (optional)
 *   SERVICE argument              the health entry to check; default "" (the whole server)
 */
'use strict';

const grpc = require('@grpc/grpc-js');
const { service: healthService } = require('grpc-health-check');

const DEADLINE_MS = 3000;

function targetAddress(env) {
  if (env.TENSORGATE_HEALTHCHECK_ADDRESS) return env.TENSORGATE_HEALTHCHECK_ADDRESS;
  const port = Number(env.TENSORGATE_PORT || 50051);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`TENSORGATE_PORT=${JSON.stringify(env.TENSORGATE_PORT)} is not a port number`);
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
