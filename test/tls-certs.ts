/**
 * Certificates for the TLS tests, made with Debian's openssl CLI (OpenSSL 3.0+: `req -CA` signs in one step)
 * in a temp folder: CAs, server and client certificates, and ones whose validity lies in the past, which
 * `req` cannot date (OpenSSL 3.0 has no -not_before), so those go through a throwaway `openssl ca`.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertFiles {
  cert: string;
  key: string;
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr || e.message} (the TLS tests need Debian's openssl 3.x on PATH)`);
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed CA: NAME.pem and NAME.key in `dir`. */
export async function makeCa(dir: string, name: string, cn = name): Promise<CertFiles> {
  const files = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  await openssl(dir, ['req', '-x509', ...EC_KEY, '-keyout', files.key, '-out', files.cert, '-days', '30', '-subj', `/CN=${cn}`]);
  return files;
}

/** A leaf certificate signed by `ca`: `san` like 'DNS:localhost,IP:127.0.0.1'; `usage` serverAuth or clientAuth. */
export async function makeLeaf(dir: string, name: string, ca: CertFiles, opts: { cn: string; san: string; usage: 'serverAuth' | 'clientAuth'; days?: number }): Promise<CertFiles> {
  const files = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  await openssl(dir, [
    'req', ...EC_KEY, '-keyout', files.key, '-out', files.cert, '-days', String(opts.days ?? 30), '-subj', `/CN=${opts.cn}`,
    '-CA', ca.cert, '-CAkey', ca.key,
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', `subjectAltName=${opts.san}`, '-addext', `extendedKeyUsage=${opts.usage}`,
  ]);
  return files;
}

/** A leaf certificate signed by `ca` valid only between two dates (YYYYMMDDHHMMSSZ), e.g. long expired. */
export async function makeDatedLeaf(dir: string, name: string, ca: CertFiles, opts: { cn: string; san: string; start: string; end: string }): Promise<CertFiles> {
  const files = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  const work = fs.mkdtempSync(path.join(dir, `${name}-ca-`));
  fs.writeFileSync(path.join(work, 'ca.cnf'), '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\ncopy_extensions=copy\n[p]\ncommonName=supplied\n');
  fs.writeFileSync(path.join(work, 'index.txt'), '');
  fs.writeFileSync(path.join(work, 'serial'), '1000\n');
  await openssl(work, ['req', '-new', ...EC_KEY, '-keyout', files.key, '-out', 'req.csr', '-subj', `/CN=${opts.cn}`, '-addext', `subjectAltName=${opts.san}`]);
  await openssl(work, ['ca', '-batch', '-config', 'ca.cnf', '-cert', ca.cert, '-keyfile', ca.key, '-in', 'req.csr', '-out', files.cert, '-startdate', opts.start, '-enddate', opts.end, '-notext']);
  fs.rmSync(work, { recursive: true, force: true });
  return files;
}
