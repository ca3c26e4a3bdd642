/**
 * Authentication for every gRPC call, ours and the libraries' (health, reflection), as a grpc-js server
 * interceptor: it runs on the call's metadata, before the request message is read (the handler asks for the
 * message only once the metadata has passed), so a caller without valid credentials costs no decoding. The
 * principal it finds goes to the request envelope (src/security/call-principal.ts), which checks permissions
 * and rate limits once the call names its model. A refusal is answered, logged and counted by the envelope.
 *
 * Health (grpc.health.v1 and the v2 ServerLive/ServerReady) and reflection pass without credentials when the
 * policy lists them under `open`.
 */
import * as grpc from '@grpc/grpc-js';
import { ServingError } from '../../core/errors';
import type { RequestEnvelope } from '../envelope';
import type { OpenGroup } from '../../security/access-policy';
import { actionOf } from '../../security/call-actions';
import { attachPrincipal } from '../../security/call-principal';
import { grpcPeerIdentity } from '../../security/peer-identity';
import { grpcCallStart } from './call-start';
import { toGrpcError } from './status';

/** Which open group a method belongs to, if any: '/grpc.health.v1.Health/Check' -> 'health'. */
function openGroupOf(service: string, method: string): OpenGroup | undefined {
  if (service === 'grpc.health.v1.Health') return 'health';
  if (service.startsWith('grpc.reflection.')) return 'reflection';
  return actionOf(method) === 'health' ? 'health' : undefined;
}

export function accessInterceptor(envelope: RequestEnvelope): grpc.ServerInterceptor {
  return (descriptor, call) => {
    const guard = envelope.guard;
    const slash = descriptor.path.lastIndexOf('/');
    const service = descriptor.path.slice(1, slash);
    const method = descriptor.path.slice(slash + 1);
    const group = guard && openGroupOf(service, method);
    if (!guard || (group && guard.open.has(group))) return new grpc.ServerInterceptingCall(call);
    const intercepted: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const authorization = metadata.get('authorization')[0];
            guard.authenticate({ authorization: typeof authorization === 'string' ? authorization : undefined, peer: grpcPeerIdentity(call) }).then(
              (who) => {
                attachPrincipal(metadata, who);
                pass(metadata);
              },
              (err: unknown) => {
                const record = { protocol: 'grpc' as const, method, model: '', version: '', code: 'OK', seconds: 0 };
                envelope.refuse(grpcCallStart({ metadata }, service, record), ServingError.from(err, 'UNAUTHENTICATED'), (outcome) => {
                  if (!outcome.ok) intercepted.sendStatus(toGrpcError(outcome.error));
                });
              },
            );
          },
        }),
    });
    return intercepted;
  };
}
