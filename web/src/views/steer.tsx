import { useEffect, useState } from 'preact/hooks';
import { post, showPiece } from '../api';
import { cli, ErrorLine, Field, Reproduce, type ViewProps } from '../common';

interface SteerReport { layer: number; coeff: number; vector_length: number; vector_row_norms: number[]; runs: { seed: number; unsteered: string; steered: string }[] }
interface SweepReport { targets: number[]; target_pieces: string[]; sweep: { layer: number; coeff: number; logprob_lift: number; kl_to_unsteered: number; relative_norm: number }[] }

/** Diverging colour for a log-probability lift: blue up, red down. */
function lift(v: number, scale: number): string {
  const x = Math.max(-1, Math.min(1, v / (scale || 1)));
  return x >= 0 ? `hsl(215, 80%, ${Math.round(97 - 50 * x)}%)` : `hsl(0, 75%, ${Math.round(97 + 45 * x)}%)`;
}

/** Add/subtract prompts at a layer, continuations side by side with the same seeds, and the sweep. */
export function SteerView({ model }: ViewProps) {
  const [prompt, setPrompt] = useState('Once upon a time');
  const [add, setAdd] = useState('dragon');
  const [sub, setSub] = useState('');
  const [layer, setLayer] = useState(1);
  const [coeff, setCoeff] = useState(4);
  const [seed, setSeed] = useState(1);
  const [report, setReport] = useState<SteerReport | null>(null);
  const [sweep, setSweep] = useState<SweepReport | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const steer = async () => {
    setError(null);
    setBusy(true);
    try {
      setReport(await post<SteerReport>('/v1/inspect/steer', { prompt, add, sub, layer, coeff, runs: 3, max_tokens: 24, seed }));
    } catch (e) { setError((e as Error).message); } finally { setBusy(false); }
  };
  const runSweep = async () => {
    setError(null);
    setBusy(true);
    try {
      setSweep(await post<SweepReport>('/v1/inspect/steer/sweep', { prompt, add, sub, coeffs: [-8, -4, -2, 1, 2, 4, 8, 16] }));
    } catch (e) { setError((e as Error).message); } finally { setBusy(false); }
  };
  useEffect(() => { steer().then(runSweep); }, []);

  const layers = sweep ? [...new Set(sweep.sweep.map(r => r.layer))].sort((a, b) => a - b) : [];
  const coeffs = sweep ? [...new Set(sweep.sweep.map(r => r.coeff))].sort((a, b) => a - b) : [];
  const scale = sweep ? Math.max(...sweep.sweep.map(r => Math.abs(r.logprob_lift)), 1e-9) : 1;
  const command = cli(model, 'steer', ['--prompt', prompt, '--add', add, '--sub', sub, '--layer', layer, '--coeff', coeff, '--runs', 3, '--max-tokens', 24, '--seed', seed]);
  return (
    <section class="view steer" data-ready={report && sweep ? '' : undefined}>
      <div class="form">
        <Field label="Prompt"><textarea aria-label="Prompt" rows={2} value={prompt} onInput={e => setPrompt((e.target as HTMLTextAreaElement).value)} /></Field>
        <Field label="Add"><textarea aria-label="Add" rows={2} value={add} onInput={e => setAdd((e.target as HTMLTextAreaElement).value)} /></Field>
        <Field label="Subtract"><textarea aria-label="Subtract" rows={2} value={sub} onInput={e => setSub((e.target as HTMLTextAreaElement).value)} /></Field>
      </div>
      <div class="controls">
        <label><span>Layer</span> <input type="number" aria-label="Layer" min={0} value={layer} onInput={e => setLayer(Math.max(0, Number((e.target as HTMLInputElement).value) || 0))} /></label>
        <div class="slider">
          <label for="coeff">Coefficient</label>
          <input id="coeff" type="range" min={-16} max={16} step={0.5} value={coeff} onInput={e => setCoeff(Number((e.target as HTMLInputElement).value))} onChange={() => steer()} />
          <output for="coeff">{coeff}</output>
        </div>
        <label class="seed"><span>Seed</span><input type="number" aria-label="Seed" min={0} value={seed} onInput={e => setSeed(Math.max(0, Number((e.target as HTMLInputElement).value) || 0))} /></label>
        <button onClick={steer}>Steer</button>
        <button onClick={runSweep}>Sweep layers × coefficients</button>
        {busy ? <span class="busy note">running…</span> : null}
      </div>
      <ErrorLine error={error} />
      {report ? (
        <>
          <h2>Same seeds, without and with the vector (layer {report.layer}, coefficient {report.coeff}; vector over {report.vector_length} positions)</h2>
          <table class="dist steerruns" aria-label="Continuations">
            <thead><tr><th>seed</th><th>without</th><th>with</th></tr></thead>
            <tbody>{report.runs.map(r => <tr key={r.seed}><td>{r.seed}</td><td class="tok">{r.unsteered}</td><td class="tok steered">{r.steered}</td></tr>)}</tbody>
          </table>
        </>
      ) : null}
      {sweep ? (
        <>
          <h2>Sweep: log-probability lift of {sweep.target_pieces.map(p => `“${showPiece(p)}”`).join(', ')} at the next token</h2>
          <table class="grid" aria-label="Steering sweep">
            <thead><tr><th>layer \ coeff</th>{coeffs.map(c => <th key={c}>{c}</th>)}</tr></thead>
            <tbody>{layers.map(l => (
              <tr key={l}><th>{l}</th>{coeffs.map(c => {
                const r = sweep.sweep.find(x => x.layer === l && x.coeff === c)!;
                return <td key={c} style={{ background: lift(r.logprob_lift, scale) }} title={`lift ${r.logprob_lift.toFixed(3)} nats; KL to unsteered ${r.kl_to_unsteered.toFixed(3)}; |vector|/|residual| ${r.relative_norm.toFixed(2)}`}>{r.logprob_lift.toFixed(2)}</td>;
              })}</tr>
            ))}</tbody>
          </table>
          <p class="note">Blue: the targets became likelier; red: less likely. Hover a cell for the KL to the unsteered distribution and the vector's size relative to the residual stream.</p>
        </>
      ) : null}
      <Reproduce command={command} json={{ report, sweep }} name="steer" />
    </section>
  );
}
