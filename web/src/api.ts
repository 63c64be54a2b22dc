// The server's endpoints, same origin only (no request leaves it).

export class ApiFailure extends Error {}
export class NeedsKey extends ApiFailure {}

/** The server's API key when it was started with --api-key (kept for this tab only). */
const keyName = 'nexttoken-api-key';
export function setApiKey(key: string) { sessionStorage.setItem(keyName, key); }
function auth(): Record<string, string> {
  const key = sessionStorage.getItem(keyName);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export async function post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...auth() },
    body: JSON.stringify(body),
    signal,
  });
  return read<T>(response, path);
}

export async function get<T>(path: string): Promise<T> {
  return read<T>(await fetch(path, { headers: auth() }), path);
}

async function read<T>(response: Response, path: string): Promise<T> {
  const text = await response.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { throw new ApiFailure(`${path}: HTTP ${response.status}, not JSON`); }
  if (response.status === 401) throw new NeedsKey(`${path}: this server needs its API key (enter it at the top)`);
  if (!response.ok) {
    const message = (json as { error?: { message?: string } }).error?.message ?? `HTTP ${response.status}`;
    throw new ApiFailure(`${path}: ${message}`);
  }
  return json as T;
}

export interface ReportToken { rank: number; id: number; piece: string; logit: number; prob: number }
export interface ExplainReport {
  seed: number; random: number | null; chosen: number; chosen_piece: string; chosen_rank: number; chosen_prob: number;
  stages: { stage: string; candidates_before: number; candidates_after: number; mass_removed: number }[];
}
export interface NextReport {
  model: string; tokens: number[]; pieces: string[]; top: ReportToken[];
  logsumexp: number; entropy: number; vocab_size: number; rest_prob: number; explain: ExplainReport | null;
}
export interface NextWithLogits { report: NextReport; logits_f32_base64: string }

export interface ComparedToken { id: number; piece: string; rank_a: number; rank_b: number; prob_a: number; prob_b: number; rank_change: number }
export interface CompareReport {
  tokens_a: number[]; tokens_b: number[]; kl_ab: number; kl_ba: number; js: number; tv: number;
  entropy_a: number; entropy_b: number; top_k: number; top_k_overlap: number;
  top_a: ComparedToken[]; top_b: ComparedToken[]; new_in_top_k: ComparedToken[]; dropped: ComparedToken[];
}

export interface LensReport {
  tokens: number[]; position: number;
  layers: { stage: string; kl_to_final: number; rank_of_final_top: number; top: ReportToken[] }[];
  /** L2 norm of blocks.L.hook_resid_post, [layer][position]. */
  residual_norms: number[][];
}

export interface AttentionReport {
  tokens: number[]; heads: number;
  spans: { name: string; start: number; end: number }[];
  last_query: { layer: number; head: number; shares: number[] }[];
  patterns: number[] | null;
}

export interface CompletionResponse {
  choices: { index: number; text: string; finish_reason: string; logprobs: { tokens: string[]; token_logprobs: (number | null)[] } | null }[];
}

/** A token's text with its leading space made visible, as the CLI shows it. */
export function showPiece(piece: string): string {
  return piece.replace(/^ /, '␣').replace(/\n/g, '⏎').replace(/\t/g, '⇥');
}

/** The piece's UTF-8 bytes in hex (the chips' hover text). */
export function pieceBytes(piece: string): string {
  return Array.from(new TextEncoder().encode(piece), b => b.toString(16).padStart(2, '0')).join(' ');
}

/** A shell word: single-quoted unless it is plainly safe. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function percent(p: number, digits = 1): string {
  return `${(p * 100).toFixed(digits)}%`;
}

/** Where each run first differs from run 1 (for run 1: from the first other run that differs), or null. */
export function departures(runs: string[][]): (number | null)[] {
  return runs.map((t, r) => {
    const others = r === 0 ? runs.slice(1) : [runs[0]];
    let first: number | null = null;
    for (const o of others) {
      const n = Math.max(t.length, o.length);
      for (let i = 0; i < n; i++) if (t[i] !== o[i]) { first = first == null ? i : Math.min(first, i); break; }
    }
    return first;
  });
}
