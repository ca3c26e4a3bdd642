/**
 * `tensorgate models load|unload|reload NAME`: model control on a running server (started with
 * --model-control-mode explicit), through the v2 protocol's RepositoryModelLoad / RepositoryModelUnload, so
 * the same calls work against Triton. `reload` is a load of a loaded model: the new load is built beside the
 * one serving and switched to without failing a request.
 */
import { createInferenceClient, v2Call } from '../client/inference-client';
import { createModelClient, unary } from '../client/model-client';
import type { ClientSecurity } from '../client/client-security';

export type ModelControlAction = 'load' | 'unload' | 'reload';

export async function modelControlCommand(action: ModelControlAction, name: string | undefined, address: string, timeoutMs: number, security: ClientSecurity = {}): Promise<void> {
  if (!name) throw new Error(`usage: tensorgate models ${action} NAME (a model folder of the server's repository)`);
  const client = createInferenceClient(address, false, {}, security);
  const started = performance.now();
  try {
    await v2Call(client, action === 'unload' ? 'RepositoryModelUnload' : 'RepositoryModelLoad', { model_name: name }, timeoutMs);
    const index: { models: { name: string; version: string; state: string; reason: string }[] } = await v2Call(client, 'RepositoryIndex', {}, timeoutMs);
    const versions = index.models.filter((m) => m.name === name && m.version).map((m) => `v${m.version} ${m.state}${m.reason ? ` (${m.reason})` : ''}`);
    const done = action === 'unload' ? 'unloaded' : action === 'reload' ? 'reloaded' : 'loaded';
    process.stdout.write(`${name} ${done} in ${Math.round(performance.now() - started)} ms${versions.length ? `: ${versions.join(', ')}` : ''}\n`);
  } finally {
    client.close();
  }
}

/** `tensorgate models promote|rollback NAME`: ModelService ControlCanary; prints the split now in force. */
export async function canaryCommand(action: 'promote' | 'rollback', name: string | undefined, address: string, timeoutMs: number, security: ClientSecurity = {}): Promise<void> {
  if (!name) throw new Error(`usage: tensorgate models ${action} NAME (a model with a canary split in its config)`);
  const client = createModelClient(address, {}, { security });
  try {
    const status: { stable_version: string; weights: { version: string; weight: number }[]; rolled_back_versions: string[] } = await unary(
      client,
      'ControlCanary',
      { model: name, action: action === 'promote' ? 'PROMOTE' : 'ROLLBACK' },
      { deadlineMs: timeoutMs },
    );
    const weights = status.weights.map((w) => `v${w.version} ${w.weight}`).join(', ');
    process.stdout.write(`${name}: stable v${status.stable_version}; weights ${weights}${status.rolled_back_versions.length ? `; rolled back: ${status.rolled_back_versions.map((v) => `v${v}`).join(', ')}` : ''}\n`);
  } finally {
    client.close();
  }
}
