/**
 * The TLS files both ports serve from (--tls-cert, --tls-key, --tls-client-ca): loaded and checked once at
 * start, where every problem is one error naming the flag, the file and what was expected; then polled every
 * --tls-reload-secs, so a rotated certificate is served to new handshakes without a restart while open
 * connections keep the one they negotiated.
 *
 * Why poll the contents rather than fs.watch: Kubernetes secret and cert-manager volumes replace files by
 * swapping a symlink (`..data`), which inotify reports on the link's directory, not on the file watched, and
 * some editors and `cp` rewrite in place; comparing the bytes every few seconds sees every kind of change and
 * costs three small reads.
 *
 * A change is applied only whole and valid: a certificate and key that do not match, an expired certificate or
 * an unparsable CA bundle keeps the previous material serving and is reported ('reload-failed') once per
 * distinct content. It is reported only when a second poll finds the same content: a writer that replaces the
 * cert and then the key (or a poll that read the files across a symlink swap) gets one interval to finish
 * before a half-done change is called invalid.
 *
 * @example
 *   const files = TlsFiles.fromSettings(config);          // undefined: no TLS flags
 *   files?.load();                                         // throws TlsFilesError with one line
 *   files?.on('reloaded', (m) => log.info(m.subject)).start();
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log';

/** The settings this reads (src/config/server-config.ts). */
export interface TlsSettings {
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  tlsReloadSecs: number;
}

/** What is being served: the files' bytes and, for logs, the leaf certificate's identity and validity. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** The client CA bundle (mutual TLS), or undefined. */
  ca: Buffer | undefined;
  /** The leaf certificate's subject, one line ('CN=server, O=example'). */
  subject: string;
  serialNumber: string;
  fingerprint256: string;
  validFrom: Date;
  validTo: Date;
}

/** A problem with the TLS files that a person fixes: the message is one line. */
export class TlsFilesError extends Error {
  override name = 'TlsFilesError';
}

/** How long before expiry the certificate is warned about ('expiring'), and how often that warning repeats. */
export const EXPIRY_WARNING_MS = 7 * 24 * 3600_000;
const EXPIRY_WARNING_EVERY_MS = 24 * 3600_000;

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** 'ENOENT: no such file or directory, open ...' -> 'no such file or directory (ENOENT)'. */
function osReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const m = /^[A-Z]+: ([^,]+)/.exec(e.message ?? '');
  return e.code && m ? `${m[1]} (${e.code})` : (e.message ?? String(err));
}

function readFlagFile(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new TlsFilesError(`--${flag} ${file}: cannot read the file: ${osReason(err)}`);
  }
}

/** Every certificate in a PEM bundle, parsed; a clear error for a file that holds none or a broken one. */
function parseCertificates(flag: string, file: string, pem: Buffer, what: string): X509Certificate[] {
  const text = pem.toString('utf8');
  const blocks = text.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) {
    const swapped = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text) ? ' (it holds a private key: are --tls-cert and --tls-key swapped?)' : '';
    throw new TlsFilesError(`--${flag} ${file} is not a PEM ${what}: expected a '-----BEGIN CERTIFICATE-----' block${swapped}`);
  }
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new TlsFilesError(`--${flag} ${file}: certificate ${i + 1} of ${blocks.length} cannot be parsed (${(err as Error).message}); expected a PEM ${what}`);
    }
  });
}

function parseKey(file: string, pem: Buffer): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    const message = (err as Error).message;
    const encrypted = /passphrase|encrypted/i.test(message) || /ENCRYPTED/.test(pem.toString('utf8'));
    throw new TlsFilesError(
      encrypted
        ? `--tls-key ${file} is an encrypted private key: expected an unencrypted PEM key (openssl pkey -in KEY -out KEY.plain)`
        : `--tls-key ${file} is not a PEM private key (${message}): expected a '-----BEGIN PRIVATE KEY-----' block`,
    );
  }
}

/** The subject as one line: node gives one 'K=V' per line. */
const oneLine = (dn: string) => dn.split('\n').filter(Boolean).join(', ');

/**
 * Checks the files' contents together and returns the material, or throws TlsFilesError naming what is wrong.
 * `now` decides validity (the start, or the moment of a reload).
 */
export function checkTlsMaterial(settings: TlsSettings, files: { cert: Buffer; key: Buffer; ca: Buffer | undefined }, now = new Date()): TlsMaterial {
  const certFile = settings.tlsCert!;
  const keyFile = settings.tlsKey!;
  const [leaf] = parseCertificates('tls-cert', certFile, files.cert, 'certificate');
  const validFrom = new Date(leaf!.validFrom);
  const validTo = new Date(leaf!.validTo);
  const subject = oneLine(leaf!.subject);
  const validity = `valid from ${validFrom.toISOString()} to ${validTo.toISOString()}`;
  if (now < validFrom) throw new TlsFilesError(`--tls-cert ${certFile}: the certificate (${subject}) is not valid yet: ${validity}; check the clock or the certificate`);
  if (now > validTo) throw new TlsFilesError(`--tls-cert ${certFile}: the certificate (${subject}) has expired: ${validity}; renew it`);
  const key = parseKey(keyFile, files.key);
  if (!leaf!.checkPrivateKey(key)) {
    throw new TlsFilesError(`--tls-key ${keyFile} does not match the certificate in --tls-cert ${certFile} (${subject}): expected that certificate's private key`);
  }
  if (files.ca) parseCertificates('tls-client-ca', settings.tlsClientCa!, files.ca, 'CA certificate bundle');
  try {
    // What the servers will do with it: anything node:tls still refuses (an unsupported key type) fails here.
    tls.createSecureContext({ cert: files.cert, key: files.key, ...(files.ca ? { ca: files.ca } : {}) });
  } catch (err) {
    throw new TlsFilesError(`--tls-cert ${certFile} and --tls-key ${keyFile} cannot be used for TLS: ${(err as Error).message}`);
  }
  return { cert: files.cert, key: files.key, ca: files.ca, subject, serialNumber: leaf!.serialNumber, fingerprint256: leaf!.fingerprint256, validFrom, validTo };
}

/**
 * Events: 'reloaded' (material: TlsMaterial, previous: TlsMaterial) once a changed, valid set is in force;
 * 'reload-failed' (reason: string) once per distinct invalid content, the previous material still serving;
 * 'expiring' (material: TlsMaterial) when the certificate expires within EXPIRY_WARNING_MS, at start() and then
 * daily.
 */
export class TlsFiles extends EventEmitter {
  private material: TlsMaterial | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  /** The content (or read error) last refused, so an unchanged bad state is reported once, not every poll. */
  private refused: string | undefined;
  /** An invalid content seen once: reported if the next poll still finds it. */
  private suspect: string | undefined;
  private expiryWarned: { fingerprint: string; at: number } | undefined;

  private constructor(readonly settings: TlsSettings) {
    super();
  }

  /** undefined when no TLS flag is set (plaintext, the default). Never throws: load() reports problems. */
  static fromSettings(settings: TlsSettings): TlsFiles | undefined {
    if (!settings.tlsCert && !settings.tlsKey && !settings.tlsClientCa) return undefined;
    return new TlsFiles({ tlsCert: settings.tlsCert, tlsKey: settings.tlsKey, tlsClientCa: settings.tlsClientCa, tlsReloadSecs: settings.tlsReloadSecs });
  }

  /** Clients must present a certificate the client CA signed. */
  get mutual(): boolean {
    return this.settings.tlsClientCa !== undefined;
  }

  get current(): TlsMaterial {
    if (!this.material) throw new Error('TlsFiles.load() must be called first');
    return this.material;
  }

  /** Options for tls.createSecureContext / server.setSecureContext from the material in force. */
  secureContextOptions(): tls.SecureContextOptions {
    const m = this.current;
    return { cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}) };
  }

  /** Reads and checks the files (synchronously: this is the start); throws TlsFilesError with one line. */
  load(now = new Date()): TlsMaterial {
    const { tlsCert, tlsKey, tlsClientCa } = this.settings;
    if (tlsCert && !tlsKey) throw new TlsFilesError(`--tls-cert ${tlsCert} needs --tls-key FILE: the certificate's private key (PEM)`);
    if (tlsKey && !tlsCert) throw new TlsFilesError(`--tls-key ${tlsKey} needs --tls-cert FILE: the certificate (PEM) whose key it is`);
    if (!tlsCert || !tlsKey) throw new TlsFilesError(`--tls-client-ca ${tlsClientCa} needs --tls-cert FILE and --tls-key FILE: mutual TLS is TLS with the server's own certificate first`);
    const files = { cert: readFlagFile('tls-cert', tlsCert), key: readFlagFile('tls-key', tlsKey), ca: tlsClientCa ? readFlagFile('tls-client-ca', tlsClientCa) : undefined };
    this.material = checkTlsMaterial(this.settings, files, now);
    return this.material;
  }

  /** Polls every tlsReloadSecs until stop() (the timer never keeps the process alive); warns of a near expiry now. */
  start(): this {
    if (!this.timer) {
      this.checkExpiry(new Date());
      this.timer = setInterval(() => void this.poll(), Math.round(this.settings.tlsReloadSecs * 1000));
      this.timer.unref();
    }
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check of the files (what the timer runs): applies a valid change, reports an invalid one. */
  async poll(now = new Date()): Promise<void> {
    if (this.polling || !this.material) return;
    this.polling = true;
    try {
      const { tlsCert, tlsKey, tlsClientCa } = this.settings;
      let files: { cert: Buffer; key: Buffer; ca: Buffer | undefined };
      try {
        const read = (flag: string, file: string) =>
          fs.promises.readFile(file).catch((err) => {
            throw new TlsFilesError(`--${flag} ${file}: cannot read the file: ${osReason(err)}`);
          });
        const [cert, key, ca] = await Promise.all([read('tls-cert', tlsCert!), read('tls-key', tlsKey!), tlsClientCa ? read('tls-client-ca', tlsClientCa) : undefined]);
        files = { cert, key, ca };
      } catch (err) {
        this.refuse((err as Error).message, (err as Error).message);
        return;
      }
      const m = this.material;
      if (files.cert.equals(m.cert) && files.key.equals(m.key) && (files.ca === undefined || (m.ca !== undefined && files.ca.equals(m.ca)))) {
        this.refused = this.suspect = undefined; // back to what serves: a later bad change is news again
        this.checkExpiry(now);
        return;
      }
      const digest = createHash('sha256').update(files.cert).update('\0').update(files.key).update('\0').update(files.ca ?? '').digest('hex');
      let next: TlsMaterial;
      try {
        next = checkTlsMaterial(this.settings, files, now);
      } catch (err) {
        this.refuse(digest, (err as Error).message);
        return;
      }
      this.refused = this.suspect = undefined;
      this.material = next;
      this.emit('reloaded', next, m);
      this.checkExpiry(now);
    } finally {
      this.polling = false;
    }
  }

  private refuse(signature: string, reason: string): void {
    if (this.refused === signature) return;
    if (this.suspect !== signature) {
      this.suspect = signature;
      return;
    }
    this.refused = signature;
    this.emit('reload-failed', reason);
  }

  private checkExpiry(now: Date): void {
    const m = this.material!;
    if (m.validTo.getTime() - now.getTime() > EXPIRY_WARNING_MS) return;
    const last = this.expiryWarned;
    if (last && last.fingerprint === m.fingerprint256 && now.getTime() - last.at < EXPIRY_WARNING_EVERY_MS) return;
    this.expiryWarned = { fingerprint: m.fingerprint256, at: now.getTime() };
    this.emit('expiring', m);
  }
}

/**
 * grpc-js's CertificateProvider fed by TlsFiles: the server credentials below subscribe to it and call
 * setSecureContext on their HTTP/2 servers with each update, which changes what new handshakes get and leaves
 * established connections alone.
 *
 * Updates are delivered on the next tick, never inside add*Listener: grpc-js registers its listeners before
 * the watcher that applies them, so an update delivered synchronously would be computed and then lost, and
 * the port would drop every connection as 'credentials not loaded'.
 */
class TlsFilesCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  constructor(private readonly files: TlsFiles) {
    files.on('reloaded', (m: TlsMaterial, previous: TlsMaterial) => {
      if (m.ca && !(previous.ca && m.ca.equals(previous.ca))) for (const l of this.caListeners) l({ caCertificate: m.ca });
      for (const l of this.identityListeners) l({ certificate: m.cert, privateKey: m.key });
    });
  }

  addCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => this.caListeners.has(listener) && listener({ caCertificate: this.files.current.ca! }));
  }

  removeCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => this.identityListeners.has(listener) && listener({ certificate: this.files.current.cert, privateKey: this.files.current.key }));
  }

  removeIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
  }
}

/** gRPC server credentials serving `files` (load() first), rotating with them; mutual TLS with a client CA. */
export function grpcServerCredentials(files: TlsFiles): grpc.ServerCredentials {
  const provider = new TlsFilesCertificateProvider(files);
  return grpc.experimental.createCertificateProviderServerCredentials(provider, files.mutual ? provider : null, files.mutual);
}

/** Logs what is served, each rotation ('TLS certificate reloaded'), each refused change and a near expiry. */
export function logTlsEvents(files: TlsFiles, log: Logger): void {
  const describe = (m: TlsMaterial) => ({ subject: m.subject, serial: m.serialNumber, fingerprint256: m.fingerprint256, validTo: m.validTo.toISOString() });
  const m = files.current;
  log.info(
    { ...describe(m), mutualTls: files.mutual },
    `TLS on both ports: certificate ${m.subject}, valid until ${m.validTo.toISOString()}${files.mutual ? '; clients must present a certificate signed by --tls-client-ca' : ''}`,
  );
  files.on('reloaded', (next: TlsMaterial) =>
    log.info(describe(next), `TLS certificate reloaded: ${next.subject}, valid until ${next.validTo.toISOString()}; new connections get it, open ones keep theirs`),
  );
  files.on('reload-failed', (reason: string) => log.warn({ reason }, `TLS files changed but were not reloaded; the previous certificate keeps serving: ${reason}`));
  files.on('expiring', (next: TlsMaterial) =>
    log.warn(describe(next), `TLS certificate ${next.subject} expires at ${next.validTo.toISOString()}: rotate --tls-cert and --tls-key (re-read every ${files.settings.tlsReloadSecs} s)`),
  );
}

/** Loopback binds (127.0.0.0/8, ::1, localhost) may stay plaintext without a warning. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}
