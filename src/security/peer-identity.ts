/**
 * Who is on the other end of a mutual-TLS connection, read the same way on both ports, so that a client
 * certificate can be a principal for authorisation (issue 14).
 *
 * Only a certificate the TLS layer verified ever reaches here: the server requests client certificates and
 * rejects unauthorised ones during the handshake (--tls-client-ca), so a certificate on the socket is one our
 * CA signed. Without --tls-client-ca no certificate is requested and these return undefined.
 *
 * @example
 *   const peer = grpcPeerIdentity(call);   // or httpPeerIdentity(req)
 *   if (peer?.sans.includes('URI:spiffe://example.org/ns/prod/sa/frontend')) { ... }
 */
import type * as http from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';

export interface PeerIdentity {
  /** The certificate subject's common name (CN), or '' when the subject has none. */
  subject: string;
  /** subjectAltName entries as node reports them: 'DNS:x', 'URI:spiffe://...', 'IP Address:1.2.3.4'. */
  sans: string[];
  /** SHA-256 fingerprint, colon-separated upper-case hex, as node:tls reports it. */
  fingerprint256: string;
}

/** The identity in a peer certificate; undefined when there is none (node gives `{}` when the peer sent none). */
export function peerIdentityFromCertificate(cert: PeerCertificate | undefined | null): PeerIdentity | undefined {
  if (!cert || typeof cert !== 'object' || Object.keys(cert).length === 0) return undefined;
  if (!cert.fingerprint256 && !cert.subject) return undefined;
  return {
    subject: commonName(cert.subject?.CN),
    sans: splitSubjectAltName(cert.subjectaltname),
    fingerprint256: cert.fingerprint256 ?? '',
  };
}

/** The client certificate of a gRPC call (grpc-js exposes it through the call's auth context). */
export function grpcPeerIdentity(call: { getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null }): PeerIdentity | undefined {
  const context = typeof call.getAuthContext === 'function' ? call.getAuthContext() : undefined;
  return peerIdentityFromCertificate(context?.sslPeerCertificate);
}

/** The client certificate of an HTTP request, when it came over TLS. */
export function httpPeerIdentity(req: http.IncomingMessage): PeerIdentity | undefined {
  const socket = req.socket as Partial<TLSSocket> | undefined;
  // As grpc-js does: a certificate counts only once the TLS layer verified it against the client CA.
  if (!socket || socket.encrypted !== true || socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return undefined;
  return peerIdentityFromCertificate(socket.getPeerCertificate(false));
}

/** A subject with several CNs comes as an array; the first is the one certificates conventionally mean. */
function commonName(cn: string | string[] | undefined): string {
  if (Array.isArray(cn)) return cn[0] ?? '';
  return cn ?? '';
}

/**
 * node joins the entries with ', ' and quotes (JSON-style) any entry whose value contains a comma or quote,
 * so a plain split(', ') would cut a quoted URI in two: split outside quotes and unquote.
 */
export function splitSubjectAltName(value: string | undefined): string[] {
  if (!value) return [];
  const entries: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '\\' && value[i + 1] === 'u' && /^[0-9a-fA-F]{4}$/.test(value.slice(i + 2, i + 6))) {
        current += String.fromCharCode(parseInt(value.slice(i + 2, i + 6), 16));
        i += 5;
        continue;
      }
      if (ch === '\\' && i + 1 < value.length) { current += value[++i]; continue; }
      if (ch === '"') { quoted = false; continue; }
      current += ch;
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ',' && value[i + 1] === ' ') {
      entries.push(current);
      current = '';
      i++;
    } else {
      current += ch;
    }
  }
  if (current) entries.push(current);
  return entries;
}
