/**
 * Access-policy fixtures for the auth tests: API keys (and their hashes), an ES256 issuer with a JWKS file
 * and tokens made with jose, a policy file in a temp folder, and a server started with it whose log lines
 * are kept.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { serverConfigSchema, type ServerConfig } from '../src/config/server-config';
import { createLogger } from '../src/log';
import { TensorgateServer } from '../src/server';

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
export const loadJose = (): Promise<Jose> => import('jose');

export const newKey = () => `tg_${randomBytes(32).toString('base64url')}`;
export const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export interface Issuer {
  jwksFile: string;
  /** A token for `sub` with `claims`, valid for `ttlSecs` (negative: already expired). */
  token(sub: string, claims?: Record<string, unknown>, options?: { ttlSecs?: number; issuer?: string; audience?: string }): Promise<string>;
  /** A token signed by a key the JWKS does not hold. */
  forged(sub: string): Promise<string>;
}

export const ISSUER = 'https://login.example.test/';
export const AUDIENCE = 'tensorgate';

export async function makeIssuer(dir: string): Promise<Issuer> {
  const jose = await loadJose();
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
  const other = await jose.generateKeyPair('ES256');
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'test-1', alg: 'ES256', use: 'sig' };
  const jwksFile = path.join(dir, 'jwks.json');
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  const sign = (key: Parameters<InstanceType<Jose['SignJWT']>['sign']>[0], sub: string, claims: Record<string, unknown>, o: { ttlSecs?: number; issuer?: string; audience?: string }) => {
    const now = Math.floor(Date.now() / 1000);
    return new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'test-1' })
      .setSubject(sub)
      .setIssuer(o.issuer ?? ISSUER)
      .setAudience(o.audience ?? AUDIENCE)
      .setIssuedAt(now - 3600)
      .setExpirationTime(now + (o.ttlSecs ?? 600))
      .sign(key);
  };
  return {
    jwksFile,
    token: (sub, claims = {}, options = {}) => sign(privateKey, sub, claims, options),
    forged: (sub) => sign(other.privateKey, sub, {}, {}),
  };
}

export interface LoggedServer {
  server: TensorgateServer;
  lines: Record<string, unknown>[];
  close(): Promise<void>;
}

/** A server with `overrides` whose JSON log lines are kept (parsed) in `lines`. */
export async function startLoggedServer(overrides: Partial<ServerConfig>): Promise<LoggedServer> {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const config = serverConfigSchema.parse({ port: 0, httpPort: 0, workers: 1, logLevel: 'info', shutdownGraceMs: 2000, ...overrides });
  const server = new TensorgateServer(config, createLogger('info', sink));
  try {
    await server.start();
  } catch (err) {
    await server.shutdown(0);
    throw err;
  }
  return { server, lines, close: () => server.shutdown(1000) };
}
