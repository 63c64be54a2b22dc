import { useEffect, useState } from 'preact/hooks';
import { post, percent, showPiece, type AttentionReport, type LensReport } from '../api';
import { cli, ErrorLine, heat, Reproduce, textColour, type ViewProps } from '../common';

const maxLensPositions = 16;

interface Lens { pieces: string[]; positions: number[]; reports: LensReport[] }

/** The logit lens as a layer × position grid, and one layer's attention as a heatmap over tokens. */
export function InsideView({ model }: ViewProps) {
  const [prompt, setPrompt] = useState('Once upon a time');
  const [lens, setLens] = useState<Lens | null>(null);
  const [attention, setAttention] = useState<AttentionReport | null>(null);
  const [shares, setShares] = useState<AttentionReport | null>(null);
  const [layers, setLayers] = useState(0);
  const [layer, setLayer] = useState(0);
  const [head, setHead] = useState(0);
  const [error, setError] = useState<string | null>(null);

  const run = async (chosenLayer = layer) => {
    setError(null);
    try {
      const tokens = await post<{ tokens: { id: number; piece: string }[] }>('/tokenize', { content: prompt, with_pieces: true });
      const ids = tokens.tokens.map(t => t.id);
      const first = Math.max(0, ids.length - maxLensPositions);
      const positions = ids.map((_, i) => i).slice(first);
      const reports: LensReport[] = [];
      for (const position of positions) reports.push(await post<LensReport>('/v1/inspect/lens', { tokens: ids, position, top: 1 }));
      setLens({ pieces: tokens.tokens.map(t => t.piece), positions, reports });
      const all = await post<AttentionReport>('/v1/inspect/attention', { tokens: ids });
      setShares(all);
      const count = Math.max(...all.last_query.map(r => r.layer)) + 1;
      setLayers(count);
      const l = Math.min(chosenLayer, count - 1);
      setLayer(l);
      setAttention(await post<AttentionReport>('/v1/inspect/attention', { tokens: ids, layer: l }));
    } catch (e) { setError((e as Error).message); }
  };
  useEffect(() => { run(); }, []);

  const pickLayer = async (l: number) => {
    setLayer(l);
    if (!attention) return;
    try { setAttention(await post<AttentionReport>('/v1/inspect/attention', { tokens: attention.tokens, layer: l })); }
    catch (e) { setError((e as Error).message); }
  };
  const onKey = (e: KeyboardEvent) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); run(); } };
  const n = attention?.tokens.length ?? 0;
  const heads = attention?.heads ?? 0;
  const h = Math.min(head, Math.max(0, heads - 1));
  const pieces = lens?.pieces ?? [];

  return (
    <section class="view inside">
      <label class="prompt"><span>Prompt</span>
        <textarea aria-label="Prompt" rows={2} value={prompt} onInput={e => setPrompt((e.target as HTMLTextAreaElement).value)} onKeyDown={onKey} />
      </label>
      <ErrorLine error={error} />
      {lens ? (
        <>
          <h2>Logit lens: each layer's residual stream decoded as if it were the last</h2>
          <div class="scroll">
            <table class="grid" aria-label="Logit lens">
              <thead><tr><th>layer</th>{lens.positions.map(p => <th key={p} title={`position ${p}`}>{showPiece(pieces[p])}</th>)}</tr></thead>
              <tbody>
                {lens.reports[0].layers.map((stage, s) => (
                  <tr key={s}>
                    <th>{stage.stage}</th>
                    {lens.reports.map((r, c) => {
                      const t = r.layers[s].top[0];
                      return <td key={c} style={{ background: heat(t.prob), color: textColour(t.prob) }} title={`${showPiece(t.piece)} ${percent(t.prob, 2)}; KL to final ${r.layers[s].kl_to_final.toFixed(3)}`}>{showPiece(t.piece)}</td>;
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <p class="note">Cell: the top token at that layer and position; colour: its probability. Hover for the KL to the final layer.</p>
          <ResidualNorms norms={lens.reports[lens.reports.length - 1].residual_norms} positions={lens.positions} pieces={pieces} />
        </>
      ) : null}
      {attention && attention.patterns ? (
        <>
          <h2>Attention</h2>
          <div class="controls">
            <label><span>Layer</span> <select aria-label="Layer" value={layer} onChange={e => pickLayer(Number((e.target as HTMLSelectElement).value))}>
              {Array.from({ length: layers }, (_, i) => <option value={i} key={i}>{i}</option>)}
            </select></label>
            <label><span>Head</span> <select aria-label="Head" value={h} onChange={e => setHead(Number((e.target as HTMLSelectElement).value))}>
              {Array.from({ length: heads }, (_, i) => <option value={i} key={i}>{i}</option>)}
            </select></label>
          </div>
          <div class="scroll">
            <table class="grid attention" aria-label="Attention pattern">
              <thead><tr><th>query ↓ key →</th>{pieces.map((p, k) => <th key={k}>{showPiece(p)}</th>)}</tr></thead>
              <tbody>
                {Array.from({ length: n }, (_, q) => (
                  <tr key={q}>
                    <th>{showPiece(pieces[q])}</th>
                    {Array.from({ length: n }, (_, k) => {
                      const w = k <= q ? attention.patterns![(h * n + q) * n + k] : 0;
                      return <td key={k} style={{ background: k <= q ? heat(w) : '#eee', color: textColour(w) }} title={`${percent(w, 2)}`}>{k <= q ? (w * 100).toFixed(0) : ''}</td>;
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {shares ? <SinkGrid report={shares} /> : null}
        </>
      ) : null}
      <Reproduce command={`${cli(model, 'lens', ['--prompt', prompt])} && ${cli(model, 'attention', ['--prompt', prompt, '--layer', layer])}`} json={{ lens, attention }} name="inside" />
    </section>
  );
}

/** The L2 norm of each block's output at each position: how the residual stream grows with depth (and where outliers sit). */
function ResidualNorms({ norms, positions, pieces }: { norms: number[][]; positions: number[]; pieces: string[] }) {
  const max = Math.max(...norms.flatMap(row => positions.map(p => row[p])), 1e-9);
  return (
    <>
      <h3>Residual norms: ‖blocks.L.hook_resid_post‖ at each layer and position</h3>
      <div class="scroll">
        <table class="grid" aria-label="Residual norms">
          <thead><tr><th>after block</th>{positions.map(p => <th key={p} title={`position ${p}`}>{showPiece(pieces[p])}</th>)}</tr></thead>
          <tbody>
            {norms.map((row, l) => (
              <tr key={l}><th>{l}</th>{positions.map(p => {
                const v = row[p] / max;
                return <td key={p} style={{ background: heat(v), color: textColour(v) }} title={`block ${l}, position ${p}: ${row[p].toFixed(3)}`}>{row[p] < 100 ? row[p].toFixed(1) : row[p].toFixed(0)}</td>;
              })}</tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="note">Colour: the norm relative to the largest shown.</p>
    </>
  );
}

/** Share of the last token's attention paid to the first token (the sink), layer × head. */
function SinkGrid({ report }: { report: AttentionReport }) {
  const layers = Math.max(...report.last_query.map(r => r.layer)) + 1;
  const at = (l: number, h: number) => report.last_query.find(r => r.layer === l && r.head === h)?.shares[0] ?? 0;
  return (
    <>
      <h3>Where the last token looks: its attention to the first token (the sink), every layer and head</h3>
      <table class="grid" aria-label="Attention to the first token">
        <thead><tr><th>layer \ head</th>{Array.from({ length: report.heads }, (_, h) => <th key={h}>{h}</th>)}</tr></thead>
        <tbody>
          {Array.from({ length: layers }, (_, l) => (
            <tr key={l}><th>{l}</th>{Array.from({ length: report.heads }, (_, h) => {
              const w = at(l, h);
              return <td key={h} style={{ background: heat(w), color: textColour(w) }}>{(w * 100).toFixed(0)}</td>;
            })}</tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
