import { describe, expect, it } from 'vitest';
import { departures, showPiece, shellQuote } from '../src/api';

describe('departures (Regenerate ×5 marks)', () => {
  it('marks where each run leaves run 1, and run 1 where the first other run leaves it', () => {
    const runs = [
      ['a', 'b', 'c', 'd'],
      ['a', 'b', 'c', 'd'],
      ['a', 'x', 'c'],
      ['a', 'b', 'c', 'e'],
      ['a', 'b', 'c'],
    ];
    expect(departures(runs)).toEqual([1, null, 1, 3, 3]);
  });
  it('gives null everywhere when all runs agree', () => {
    expect(departures([['a'], ['a'], ['a']])).toEqual([null, null, null]);
  });
});

describe('showPiece and shellQuote', () => {
  it('shows a leading space and newlines', () => {
    expect(showPiece(' the')).toBe('␣the');
    expect(showPiece('\n')).toBe('⏎');
  });
  it('quotes what a shell would split or expand', () => {
    expect(shellQuote('0.8')).toBe('0.8');
    expect(shellQuote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
  });
});
