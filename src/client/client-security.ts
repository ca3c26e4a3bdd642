/**
 * How a tensorgate client reaches a server that serves TLS (--tls-cert on the server), asks for a client
 * certificate (mutual TLS, --tls-client-ca) or a bearer token: channel credentials and channel options for
 * grpc-js. Without any of it the channel is plaintext, as before.
 *
 * The token goes out as `authorization: Bearer TOKEN` on every call, added by a client interceptor rather
 * than call credentials: grpc-js refuses call credentials on a plaintext channel (where a token still makes
 * sense on loopback or inside a mesh that encrypts for us), and call credentials would add a second
 * authorization beside one a caller set on a call, where the interceptor lets the call's own win. One path,
 * the same on both. Over plaintext beyond loopback the token crosses the network readable: use TLS there.
 *
 * @example
 *   const security = clientSecurityFromFiles({ tlsCa: 'ca.pem', tlsCert: 'client.pem', tlsKey: 'client.key', token: process.env.TENSORGATE_TOKEN });
 *   const client = createModelClient('server.example:50051', {}, { security });
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';

export interface ClientTls {
  /** PEM CA bundle the server's certificate must chain to; undefined: the system's trusted roots. */
  ca?: Buffer;
  /** Client certificate chain and its private key (PEM), for mutual TLS; both or neither. */
  cert?: Buffer;
  key?: Buffer;
  /** The name the server's certificate must carry when the address does not name it (an IP address, say). */
  serverName?: string;
}

export interface ClientSecurity {
  /** TLS to the server; undefined: plaintext. */
  tls?: ClientTls;
  /** Sent as `authorization: Bearer TOKEN` metadata on every call. */
  token?: string;
}

/** What the CLI takes: file paths, read here so every error names its flag. */
export interface ClientSecurityFlags {
  /** --tls: TLS trusting the system's roots (implied by any other --tls-* flag). */
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
  /** --token, or env TENSORGATE_TOKEN. */
  token?: string;
}

function readFlagFile(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`--${flag} ${file}: cannot read the file: ${e.code ? `${e.message.replace(/^[A-Z]+: /, '').split(',')[0]} (${e.code})` : e.message}`);
  }
}

/** A bearer token must fit in one header value: visible ASCII, no spaces or line breaks. */
function checkToken(token: string, source: string): string {
  if (!/^[\x21-\x7e]+$/.test(token)) throw new Error(`${source}: expected a bearer token of visible ASCII characters (no spaces, line breaks or quotes around it)`);
  return token;
}

/** The security the CLI flags ask for; throws one line naming the flag for a missing pair or unreadable file. */
export function clientSecurityFromFiles(flags: ClientSecurityFlags): ClientSecurity {
  const security: ClientSecurity = {};
  if (flags.token !== undefined && flags.token !== '') security.token = checkToken(flags.token, '--token (or TENSORGATE_TOKEN)');
  if (flags.tlsCert && !flags.tlsKey) throw new Error(`--tls-cert ${flags.tlsCert} needs --tls-key FILE: the client certificate's private key (PEM)`);
  if (flags.tlsKey && !flags.tlsCert) throw new Error(`--tls-key ${flags.tlsKey} needs --tls-cert FILE: the client certificate (PEM) whose key it is`);
  if (flags.tls || flags.tlsCa || flags.tlsCert || flags.tlsServerName) {
    security.tls = {
      ...(flags.tlsCa ? { ca: readFlagFile('tls-ca', flags.tlsCa) } : {}),
      ...(flags.tlsCert ? { cert: readFlagFile('tls-cert', flags.tlsCert), key: readFlagFile('tls-key', flags.tlsKey!) } : {}),
      ...(flags.tlsServerName ? { serverName: flags.tlsServerName } : {}),
    };
  }
  return security;
}

/** Adds `authorization: Bearer TOKEN` to every call's metadata (unless the caller set one for that call). */
export function bearerTokenInterceptor(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        if (metadata.get('authorization').length === 0) metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** Channel credentials: plaintext, or TLS trusting `ca` (else the system's roots), with a client certificate if given. */
export function clientCredentials(security: ClientSecurity = {}): grpc.ChannelCredentials {
  const { tls } = security;
  if (!tls) return grpc.credentials.createInsecure();
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new Error('a client certificate needs its private key and the reverse (ClientTls cert and key)');
  return grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
}

/**
 * Channel options that go with clientCredentials(): the expected server name, and the interceptor that sends
 * the token. `options` are the caller's own; its interceptors run first.
 */
export function securityChannelOptions(security: ClientSecurity = {}, options: grpc.ClientOptions = {}): grpc.ClientOptions {
  const extra: grpc.ClientOptions = {};
  if (security.tls?.serverName) extra['grpc.ssl_target_name_override'] = security.tls.serverName;
  if (security.token !== undefined) extra.interceptors = [...(options.interceptors ?? []), bearerTokenInterceptor(security.token)];
  return extra;
}
