/**
 * A generation model's tokenizer and chat template, from the Hugging Face files beside its config.yaml:
 * tokenizer.json (read by @huggingface/tokenizers, pure JS) and tokenizer_config.json (special tokens,
 * `chat_template`, rendered by @huggingface/jinja as transformers' apply_chat_template does).
 */
import * as path from 'node:path';
import type * as Jinja from '@huggingface/jinja' with { 'resolution-mode': 'import' };
import type * as Tokenizers from '@huggingface/tokenizers' with { 'resolution-mode': 'import' };
import { readJson } from './hf-files';

export interface ChatMessage {
  role: string;
  content: string;
}

/** A special token in tokenizer_config.json: a string, or an AddedToken object with `content`. */
type TokenEntry = string | { content?: string } | null | undefined;

interface TokenizerConfig {
  bos_token?: TokenEntry;
  eos_token?: TokenEntry;
  chat_template?: string | { name: string; template: string }[];
}

// Both packages are ES modules with CommonJS builds; this project compiles to CommonJS, so they are required.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Template } = require('@huggingface/jinja') as typeof Jinja;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Tokenizer } = require('@huggingface/tokenizers') as typeof Tokenizers;
type Template = Jinja.Template;
type Tokenizer = Tokenizers.Tokenizer;

const tokenText = (t: TokenEntry) => (typeof t === 'string' ? t : (t?.content ?? undefined));

export class TextTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly bosToken: string | undefined,
    readonly eosToken: string | undefined,
    private readonly template: Template | undefined,
  ) {}

  /** Reads `tokenizer.json` and `tokenizer_config.json` (optional) from `dir`; throws naming the file and the problem. */
  static async load(dir: string): Promise<TextTokenizer> {
    const json = await readJson(path.join(dir, 'tokenizer.json'));
    const config = ((await readJson(path.join(dir, 'tokenizer_config.json'), true)) ?? {}) as TokenizerConfig;
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json as object, config);
    } catch (err) {
      throw new Error(`tokenizer.json cannot be used: ${(err as Error).message}`);
    }
    let source = config.chat_template;
    if (Array.isArray(source)) source = source.find((t) => t.name === 'default')?.template ?? source[0]?.template;
    let template: Template | undefined;
    if (source) {
      try {
        template = new Template(source);
      } catch (err) {
        throw new Error(`tokenizer_config.json: chat_template does not parse: ${(err as Error).message}`);
      }
    }
    return new TextTokenizer(tokenizer, tokenText(config.bos_token), tokenText(config.eos_token), template);
  }

  get hasChatTemplate(): boolean {
    return this.template !== undefined;
  }

  /** Token ids of `text`; `addSpecial` adds what the tokenizer's post-processor adds (a BOS, for most). */
  encode(text: string, addSpecial = true): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecial }).ids;
  }

  /** Text of `ids`, special tokens left out. */
  decode(ids: readonly number[]): string {
    if (ids.length === 0) return ''; // the library refuses an empty list
    return this.tokenizer.decode(ids as number[], { skip_special_tokens: true });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /** The chat rendered as the prompt the model was trained on, ending where the assistant's reply begins. */
  renderChat(messages: readonly ChatMessage[]): string {
    if (!this.template) throw new Error('the model has no chat_template in tokenizer_config.json');
    return this.template.render({
      messages,
      add_generation_prompt: true,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
    });
  }
}
