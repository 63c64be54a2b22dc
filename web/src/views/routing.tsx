import { useEffect, useState } from 'preact/hooks';
import { post, percent, showPiece } from '../api';
import { cli, ErrorLine, Field, Reproduce, type ViewProps } from '../common';

interface Entry { layer: number; position: number; router_probs: number[]; experts: number[]; weights: number[] }
interface RoutingReport { tokens: number[]; entries: Entry[]; load: { expert: number; tokens: number; weight: number }[][]; differences_with_system: { layer: number; position: number; position_with_system: number }[] | null }

const hue = (expert: number, experts: number) => Math.round((360 * expert) / Math.max(1, experts));

/** Mixture-of-experts routing: experts chosen per token and layer, load per expert, a system prompt's effect. */
export function RoutingView({ model }: ViewProps) {
  const [prompt, setPrompt] = useState('Once upon a time');
  const [system, setSystem] = useState('You are a pirate.');
  const [report, setReport] = useState<RoutingReport | null>(null);
  const [pieces, setPieces] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [dense, setDense] = useState(false);

  const run = async () => {
    setError(null);
    try {
      const r = await post<RoutingReport>('/v1/inspect/routing', { prompt, ...(system ? { system } : {}) });
      const text = await Promise.all(r.tokens.map(id => post<{ content: string }>('/detokenize', { tokens: [id] })));
      setPieces(text.map(t => t.content));
      setReport(r);
    } catch (e) {
      const message = (e as Error).message;
      if (message.includes('no mixture-of-experts')) setDense(true);
      setError(message);
    }
  };
  useEffect(() => { run(); }, []);

  const layers = report ? Math.max(...report.entries.map(e => e.layer)) + 1 : 0;
  const experts = report?.entries[0]?.router_probs.length ?? 0;
  const changed = new Set(report?.differences_with_system?.map(d => `${d.layer}.${d.position}`));
  const at = (l: number, p: number) => report!.entries.find(e => e.layer === l && e.position === p);
  return (
    <section class="view routing" data-ready={report || dense ? '' : undefined}>
      <div class="form">
        <Field label="Prompt"><textarea aria-label="Prompt" rows={2} value={prompt} onInput={e => setPrompt((e.target as HTMLTextAreaElement).value)} /></Field>
        <Field label="System prompt (optional)"><textarea aria-label="System prompt" rows={2} value={system} onInput={e => setSystem((e.target as HTMLTextAreaElement).value)} /></Field>
        <button onClick={run}>Show routing</button>
      </div>
      <ErrorLine error={error} />
      {dense ? <p class="note">Routing needs a mixture-of-experts model (Mixtral-style), e.g. <code>nexttoken serve --model ../shared/fixtures/models/moe-tiny.f32.gguf</code>.</p> : null}
      {report ? (
        <>
          <h2>Experts chosen per token (rows) and layer (columns); colour: the expert with the largest weight</h2>
          <table class="grid" aria-label="Routing">
            <thead><tr><th>token</th>{Array.from({ length: layers }, (_, l) => <th key={l}>layer {l}</th>)}</tr></thead>
            <tbody>{report.tokens.map((id, p) => (
              <tr key={p}><th title={`id ${id}`}>{showPiece(pieces[p] ?? String(id))}</th>
                {Array.from({ length: layers }, (_, l) => {
                  const e = at(l, p);
                  if (!e) return <td key={l} />;
                  const moved = changed.has(`${l}.${p}`);
                  return <td key={l} class={moved ? 'moved' : ''} style={{ background: `hsl(${hue(e.experts[0], experts)}, 70%, 85%)` }}
                    title={e.experts.map((x, i) => `expert ${x}: weight ${e.weights[i].toFixed(3)}`).join('; ') + (moved ? '; routed elsewhere behind the system prompt' : '')}>{e.experts.join(' ')}</td>;
                })}</tr>
            ))}</tbody>
          </table>
          {report.differences_with_system ? <p class="note">Outlined: {report.differences_with_system.length} token × layer cells routed to other experts once the system prompt is in front.</p> : null}
          <h2>Load per expert (tokens routed to it, per layer)</h2>
          <table class="dist" aria-label="Expert load">
            <thead><tr><th>layer</th>{Array.from({ length: experts }, (_, x) => <th key={x}>expert {x}</th>)}</tr></thead>
            <tbody>{report.load.map((row, l) => (
              <tr key={l}><td>{l}</td>{row.map(x => <td key={x.expert} title={`total weight ${x.weight.toFixed(3)}`}>
                <span class="bar" style={{ width: `${(40 * x.tokens) / Math.max(1, report.tokens.length)}px`, background: `hsl(${hue(x.expert, experts)}, 60%, 55%)` }} /> {x.tokens} ({percent(x.tokens / Math.max(1, report.tokens.length), 0)})</td>)}</tr>
            ))}</tbody>
          </table>
        </>
      ) : null}
      <Reproduce command={cli(model, 'routing', ['--prompt', prompt, ...(system ? ['--system', system] : []), '--json'])} json={report} name="routing" />
    </section>
  );
}
