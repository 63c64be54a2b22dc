// Client-side reshaping of one next-token distribution: the C# sampler's stages
// (src/NextToken/Sampling) redone in the browser so the sliders move without re-running the model.
// Float32 steps are rounded with Math.fround where the C# code works in float, so the kept sets
// match exactly and the probabilities to ~1e-7 (web/test/vectors.json is generated from C#).

export type Order = 'llama' | 'hf';

export interface Settings {
  temperature: number;
  topK: number; // 0 = off
  topP: number; // 1 = off
  minP: number; // 0 = off
  order?: Order; // llama.cpp's (the C# default) or Hugging Face's
}

export interface Reshaped {
  /** Ids still in the running after every stage, best first. */
  kept: Int32Array;
  /** [vocab] final probability of each id (0 where a stage removed it). */
  prob: Float64Array;
  /** [vocab] index into `stages` of the stage that removed the id, or -1 if kept. */
  removedBy: Int8Array;
  /** The stages that ran, in order, named as the C# stages name themselves. */
  stages: string[];
  /** Entropy (nats) of the final distribution. */
  entropy: number;
}

/** Default settings of the C# SamplingOptions (llama.cpp's). */
export const defaults: Settings = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, order: 'llama' };

const f = Math.fround;

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/**
 * Candidates.SortKey's order (higher logit first, lower id on ties, NaN last) as one float64:
 * the float's bits mapped to an ascending unsigned order, inverted, times 2^20, plus the id — exact
 * in 52 bits, so a native Float64Array sort replaces a comparator sort (50,257 entries in a few ms).
 */
function sortKey(logit: number, id: number): number {
  scratch[0] = logit === 0 ? 0 : logit; // −0 ties with +0
  const bits = scratchBits[0];
  const ascending = Number.isNaN(logit) ? 0 : bits & 0x8000_0000 ? ~bits >>> 0 : (bits | 0x8000_0000) >>> 0;
  return (0xffff_ffff - ascending) * 1_048_576 + id;
}

function sortBestFirst(list: Int32Array, logits: Float32Array): void {
  const keys = new Float64Array(list.length);
  for (let i = 0; i < list.length; i++) keys[i] = sortKey(logits[list[i]], list[i]);
  keys.sort();
  for (let i = 0; i < list.length; i++) list[i] = keys[i] % 1_048_576;
}

/** Softmax over the listed ids: exponentials in float32, summed in float64 (Candidates.Normalize). */
function normalize(list: Int32Array, logits: Float32Array, out: Float64Array): void {
  let max = -Infinity;
  for (const id of list) if (logits[id] > max) max = logits[id];
  let sum = 0;
  const e = new Float32Array(list.length);
  for (let i = 0; i < list.length; i++) {
    e[i] = f(Math.exp(f(logits[list[i]] - max)));
    sum += e[i];
  }
  const inverse = 1 / sum;
  for (let i = 0; i < list.length; i++) out[list[i]] = e[i] * inverse;
}

/** Stage names exactly as the C# stages format them ({p:0.###}). */
function fmt(x: number): string {
  const r = Math.round(f(x) * 1000) / 1000;
  return String(r);
}

/** Runs the chain the C# SamplerChain builds for these settings on one logits row. */
export function reshape(logits: Float32Array, s: Settings): Reshaped {
  const n = logits.length;
  const prob = new Float64Array(n);
  const removedBy = new Int8Array(n).fill(-1);
  const stages: string[] = [];
  if (s.temperature === 0) {
    // Greedy: no stage runs; the first best id (strictly greater wins, so the lowest id on ties).
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
    stages.push('greedy');
    removedBy.fill(0);
    removedBy[best] = -1;
    prob[best] = 1;
    return { kept: Int32Array.of(best), prob, removedBy, stages, entropy: 0 };
  }
  const cur = Float32Array.from(logits);
  let list = new Int32Array(n);
  for (let i = 0; i < n; i++) list[i] = i;

  type Stage = { name: string; apply: () => void };
  const topK: Stage | null = s.topK > 0 ? { name: `top-k ${s.topK}`, apply: () => {
    if (s.topK >= list.length) return;
    sortBestFirst(list, cur);
    list = list.slice(0, s.topK);
  } } : null;
  const topP: Stage | null = s.topP < 1 ? { name: `top-p ${fmt(s.topP)}`, apply: () => {
    const p = f(s.topP);
    sortBestFirst(list, cur);
    normalize(list, cur, prob);
    let cumulative = 0, length = list.length;
    for (let i = 0; i < list.length; i++) {
      cumulative += prob[list[i]];
      if (cumulative >= p) { length = i + 1; break; }
    }
    list = list.slice(0, Math.max(1, length));
  } } : null;
  const minP: Stage | null = s.minP > 0 ? { name: `min-p ${fmt(s.minP)}`, apply: () => {
    let best = -Infinity;
    for (const id of list) best = Math.max(best, cur[id]);
    const threshold = best + Math.log(f(s.minP));
    const kept = list.filter(id => cur[id] >= threshold);
    list = kept.length > 0 ? kept : list.slice(0, 1);
  } } : null;
  const temperature: Stage = { name: `temperature ${fmt(s.temperature)}`, apply: () => {
    const inverse = f(1 / f(s.temperature));
    for (const id of list) cur[id] = f(cur[id] * inverse);
  } };
  const order = (s.order ?? 'llama') === 'llama' ? [topK, topP, minP, temperature] : [temperature, topK, topP, minP];
  for (const stage of order) {
    if (!stage) continue;
    const index = stages.length;
    stages.push(stage.name);
    const before = list;
    stage.apply();
    if (list.length !== before.length) {
      const keep = new Uint8Array(n);
      for (const id of list) keep[id] = 1;
      for (const id of before) if (!keep[id]) removedBy[id] = index;
    }
  }
  prob.fill(0);
  sortBestFirst(list, cur);
  normalize(list, cur, prob);
  let entropy = 0;
  for (const id of list) if (prob[id] > 0) entropy -= prob[id] * Math.log(prob[id]);
  return { kept: list, prob, removedBy, stages, entropy };
}

/** Softmax of a whole row in float64 (display only: the unfiltered probabilities). */
export function softmax(logits: Float32Array, temperature = 1): Float64Array {
  const out = new Float64Array(logits.length);
  const t = temperature > 0 ? temperature : 1;
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp((logits[i] - max) / t);
  for (let i = 0; i < logits.length; i++) out[i] /= sum;
  return out;
}

/** Decodes the server's logits_f32_base64 (little-endian float32) into a row. */
export function decodeLogits(base64: string): Float32Array {
  const bytes = Uint8Array.from(atob(base64), c => c.charCodeAt(0));
  const view = new DataView(bytes.buffer);
  const row = new Float32Array(bytes.length / 4);
  for (let i = 0; i < row.length; i++) row[i] = view.getFloat32(i * 4, true);
  return row;
}
