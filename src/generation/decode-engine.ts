/**
 * DecodeEngine: the sequences one worker generates for one model (continuous batching). Each step:
 * drop the rows the main thread ended, advance every running row by one token in ONE batched run, then
 * prefill the rows joining (each alone, then appended to the batch). Sampling happens here, next to the
 * logits: a row of logits is vocab x 4 bytes, a token is one number, and the main thread's time belongs
 * to the transport (see bench results: the main thread bounds throughput).
 *
 * A row ends here when it samples an end-of-sequence or stop token or reaches its length limit; the main
 * thread ends rows for stop strings and cancellations by dropping them in the next step.
 */
import type { InferTensor } from '../core/tensor';
import type { NativeSession } from '../runtime/ort-session';
import type { DecoderLayout } from './decoder-layout';
import { KvBatch, lastLogits, prefillFeeds } from './kv-batch';
import { chooseToken, type SamplingParams, type TokenHistory } from './sampling';
import { SeededRandom } from './seeded-random';
import type { AdmitRow, EngineFinish, GenStepReply, GenStepRequest, StepToken } from './step-messages';

interface Row extends TokenHistory {
  readonly tokens: number[];
  readonly promptLength: number;
  readonly admit: AdmitRow;
  readonly params: SamplingParams;
  readonly random: SeededRandom;
  generated: number;
}

export class DecodeEngine {
  private readonly batch: KvBatch;
  private readonly rows = new Map<number, Row>();

  constructor(private readonly layout: DecoderLayout) {
    this.batch = new KvBatch(layout);
  }

  get active(): number {
    return this.rows.size;
  }

  /**
   * One step on `session`. Any session of the model will do, a different one each step (the worker's solo
   * session when it has the machine to itself): the batch's KV cache is ours, fed to the run as inputs.
   */
  step(request: GenStepRequest, session: NativeSession): GenStepReply {
    const tokens: StepToken[] = [];
    const failed: GenStepReply['failed'] = [];
    let computeMs = 0;
    const ended = new Set<number>(request.drop.filter((seq) => this.rows.delete(seq)));

    this.batch.remove(ended);
    ended.clear();
    if (this.batch.size > 0) {
      const next = this.batch.seqs.map((seq) => last(this.rows.get(seq)!.tokens));
      try {
        const run = session.run(this.batch.decodeFeeds(next), []);
        computeMs += run.computeMs;
        const logits = outputNamed(run.outputs, 'logits');
        this.batch.advance(run.outputs);
        this.batch.seqs.forEach((seq, r) => {
          const token = this.sample(this.rows.get(seq)!, lastLogits(logits, r));
          tokens.push(token);
          if (token.finish) ended.add(seq);
        });
      } catch (err) {
        // The batch's cache is in an unknown state: every row in it fails, the engine starts empty.
        for (const seq of this.batch.seqs) failed.push({ seq, message: message(err) });
        ended.clear();
        for (const seq of this.batch.seqs) ended.add(seq);
      }
      for (const seq of ended) this.rows.delete(seq);
      this.batch.remove(ended);
    }

    for (const admit of request.admit) {
      const row: Row = {
        tokens: [...admit.prompt],
        promptLength: admit.prompt.length,
        admit,
        params: admit.params,
        random: new SeededRandom(admit.seed),
        generated: 0,
      };
      try {
        const run = session.run(prefillFeeds(this.layout, admit.prompt), []);
        computeMs += run.computeMs;
        const token = this.sample(row, lastLogits(outputNamed(run.outputs, 'logits'), 0));
        tokens.push(token);
        if (!token.finish) {
          this.batch.join(admit.seq, admit.prompt.length, run.outputs);
          this.rows.set(admit.seq, row);
        }
      } catch (err) {
        failed.push({ seq: admit.seq, message: message(err) });
      }
    }
    return { tokens, failed, computeMs, active: this.rows.size };
  }

  private sample(row: Row, logits: Float32Array): StepToken {
    const token = chooseToken(logits, row, row.params, row.random);
    row.tokens.push(token);
    row.generated++;
    const a = row.admit;
    let finish: EngineFinish | undefined;
    if ((!a.ignoreEos && a.eosTokenIds.includes(token)) || a.stopTokenIds.includes(token)) finish = 'eos';
    else if (row.generated >= a.maxNewTokens || row.tokens.length >= a.maxLength) finish = 'length';
    return finish ? { seq: a.seq, token, finish } : { seq: a.seq, token };
  }
}

function outputNamed(outputs: readonly InferTensor[], name: string): InferTensor {
  const t = outputs.find((o) => o.name === name);
  if (!t) throw new Error(`the model returned no '${name}'`);
  return t;
}

const last = (tokens: readonly number[]) => tokens[tokens.length - 1]!;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
