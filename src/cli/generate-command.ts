/**
 * `tensorgate generate --model NAME "prompt"`: streams a Generate call's text to stdout as it arrives, then
 * one line to stderr with the finish reason, the token counts, tokens/s, the time to first token and the
 * seed (to repeat the run exactly with --seed).
 */
import { createModelClient } from '../client/model-client';
import type { ClientSecurity } from '../client/client-security';

export interface GenerateArgs {
  model?: string;
  version?: string;
  prompt?: string;
  maxTokens?: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  seed?: string;
  stop: string[];
}

function numberFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new Error(`--${name} must be a number, got '${value}'`);
  return n;
}

export async function generateCommand(address: string, timeoutMs: number, args: GenerateArgs, security: ClientSecurity = {}): Promise<void> {
  if (!args.model) throw new Error('generate needs --model NAME');
  if (!args.prompt) throw new Error('generate needs a prompt: tensorgate generate --model NAME "Once upon a time"');
  const request = {
    model: args.model,
    version: args.version ?? '',
    prompt: args.prompt,
    max_tokens: numberFlag('max-tokens', args.maxTokens) ?? 0,
    temperature: numberFlag('temperature', args.temperature),
    top_k: numberFlag('top-k', args.topK),
    top_p: numberFlag('top-p', args.topP),
    // uint64: sent as the decimal string so seeds above 2^53 survive
    ...(args.seed !== undefined ? { seed: args.seed } : {}),
    stop: args.stop,
  };
  const client = createModelClient(address, {}, { security });
  const started = performance.now();
  try {
    await new Promise<void>((resolve, reject) => {
      const call = client.Generate(request, { deadline: Date.now() + timeoutMs });
      let seed = '';
      let summary = '';
      call.on('data', (m: { text: string; seed: number | string; finish_reason: string; usage: { prompt_tokens: number; completion_tokens: number; time_to_first_token_s: number } | null }) => {
        if (!seed) seed = args.seed ?? String(m.seed);
        process.stdout.write(m.text);
        if (m.usage) {
          const seconds = (performance.now() - started) / 1000;
          const u = m.usage;
          summary =
            `\n[${m.finish_reason.toLowerCase()}: ${u.completion_tokens} tokens in ${seconds.toFixed(2)} s, ` +
            `${(u.completion_tokens / seconds).toFixed(1)} tokens/s, first token after ${(u.time_to_first_token_s * 1000).toFixed(0)} ms, ` +
            `prompt ${u.prompt_tokens} tokens, seed ${seed}]\n`;
        }
      });
      call.on('error', reject);
      call.on('end', () => {
        process.stdout.write('\n');
        process.stderr.write(summary);
        resolve();
      });
    });
  } finally {
    client.close();
  }
}
