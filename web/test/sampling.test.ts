import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { reshape, decodeLogits, type Order } from '../src/sampling';

// Generated from the C# sampler stages on the built-in model's logits (WebUiVectorTests).
interface Case { temperature: number; top_k: number; top_p: number; min_p: number; order: Order; kept: number[]; prob: number[] }
const vectors: { rows: { logits: number[]; cases: Case[] }[] } =
  JSON.parse(readFileSync(new URL('./vectors.json', import.meta.url), 'utf8'));

const tolerance = 1e-6;
let maxDiff = 0;

describe('reshape matches the C# stages', () => {
  vectors.rows.forEach((row, r) => {
    const logits = Float32Array.from(row.logits);
    row.cases.forEach(c => {
      it(`row ${r}: T=${c.temperature} k=${c.top_k} p=${c.top_p} min-p=${c.min_p} ${c.order}`, () => {
        const got = reshape(logits, { temperature: c.temperature, topK: c.top_k, topP: c.top_p, minP: c.min_p, order: c.order });
        expect(Array.from(got.kept)).toEqual(c.kept);
        let diff = 0, sum = 0;
        c.kept.forEach((id, i) => { diff = Math.max(diff, Math.abs(got.prob[id] - c.prob[i])); });
        got.prob.forEach(p => { sum += p; });
        maxDiff = Math.max(maxDiff, diff);
        expect(diff).toBeLessThanOrEqual(tolerance);
        expect(Math.abs(sum - 1)).toBeLessThan(1e-9);
        // every id not kept is marked with the stage that removed it
        const kept = new Set(c.kept);
        for (let id = 0; id < logits.length; id++) expect(got.removedBy[id] === -1).toBe(kept.has(id));
      });
    });
  });
  it('prints the largest difference', () => {
    console.log(`max |prob diff| vs C#: ${maxDiff.toExponential(2)} (tolerance ${tolerance})`);
    expect(maxDiff).toBeGreaterThanOrEqual(0);
  });
});

describe('decodeLogits', () => {
  it('reads little-endian float32', () => {
    const row = Float32Array.of(1.5, -2.25, Math.fround(0.1));
    const base64 = btoa(String.fromCharCode(...new Uint8Array(row.buffer)));
    expect(Array.from(decodeLogits(base64))).toEqual(Array.from(row));
  });
});
