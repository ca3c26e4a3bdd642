/**
 * Writes models/sentiment/labelled.jsonl: a labelled set for `tensorgate compare sentiment A B --data ...`,
 * so that task accuracy of the bundled sentiment classifier (and of any version made from it) can be measured
 * on labels that do not come from the model itself.
 *
 * Provenance: the VADER sentiment lexicon (Hutto and Gilbert, "VADER: A Parsimonious Rule-based Model for
 * Sentiment Analysis of Social Media Text", ICWSM 2014), as shipped in the npm package vader-sentiment
 * (node_modules/vader-sentiment/vader_lexicon.txt, Apache-2.0, a devDependency). Each line there is
 * token TAB mean rating TAB standard deviation TAB the raw ratings of 10 human raters on -4..+4. Those ratings
 * are independent of AFINN-165, the lexicon the bundled model is built from (tools/build-models.ts), so the
 * set measures the model rather than echoing it.
 *
 * What is kept: tokens the sentiment tokenizer can produce as one word (letters, digits and apostrophes,
 * already lowercase; emoticons and capitalised entries are left out) whose mean rating is at least 1.5 away
 * from neutral, labelled 'positive' when the mean is above 0 and 'negative' otherwise. A token listed more than
 * once (a few are, e.g. "lol") gets the mean of its entries' means (each entry is 10 raters). Rows are sorted by
 * code unit, one {"text": ..., "label": ...} a line, so the output is the same byte for byte on every machine.
 *
 * Run after `npm run build` with: node dist/tools/make-labelled-set.js
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../src/paths';

const LEXICON = path.join(PACKAGE_ROOT, 'node_modules', 'vader-sentiment', 'vader_lexicon.txt');
const OUTPUT = path.join(PACKAGE_ROOT, 'models', 'sentiment', 'labelled.jsonl');
/** Mean ratings closer to 0 than this are too mild for a clear label. */
const MIN_STRENGTH = 1.5;
/** What the sentiment tokenizer matches as one word (src/pipelines/text-classification.ts). */
const ONE_WORD = /^[\p{L}\p{N}']+$/u;

export function labelledRows(lexicon: string): { text: string; label: 'positive' | 'negative' }[] {
  const means = new Map<string, number[]>();
  for (const [n, line] of lexicon.split('\n').entries()) {
    if (line.trim() === '') continue;
    const [token, mean] = line.split('\t');
    const value = Number(mean);
    if (token === undefined || mean === undefined || !Number.isFinite(value)) throw new Error(`${LEXICON} line ${n + 1} is not 'token TAB mean TAB ...'`);
    if (!ONE_WORD.test(token) || token !== token.toLowerCase()) continue;
    means.set(token, [...(means.get(token) ?? []), value]);
  }
  return [...means.entries()]
    .map(([text, values]) => ({ text, mean: values.reduce((x, y) => x + y, 0) / values.length }))
    .filter((r) => Math.abs(r.mean) >= MIN_STRENGTH)
    .sort((x, y) => (x.text < y.text ? -1 : x.text > y.text ? 1 : 0)) // code-unit order, not the locale's
    .map((r) => ({ text: r.text, label: r.mean > 0 ? 'positive' : 'negative' }));
}

if (require.main === module) {
  const rows = labelledRows(fs.readFileSync(LEXICON, 'utf8'));
  fs.writeFileSync(OUTPUT, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const positive = rows.filter((r) => r.label === 'positive').length;
  process.stdout.write(`${OUTPUT}: ${rows.length} rows (${positive} positive, ${rows.length - positive} negative)\n`);
}
