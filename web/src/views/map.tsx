import { useEffect, useState } from 'preact/hooks';
import { post, shellQuote, showPiece, type AttentionReport } from '../api';
import { Scatter, type Arrow, type Point } from '../chart';
import { cli, ErrorLine, Field, Reproduce, type ViewProps } from '../common';

interface MapPoint { prompt: number; position: number; id: number; piece: string; x: number; y: number }
interface MapReport { layer: number; x_axis: string; y_axis: string; points: MapPoint[] }

const lines = (text: string) => text.split('\n').map(l => l.trim()).filter(l => l.length > 0);

/**
 * The Activation Space Navigator: each prompt's last-token residual vector at a layer in 2-D (PCA, or a
 * concept axis against the first principal component), and arrows from each question to the same
 * question behind a system prompt.
 */
export function MapView({ model }: ViewProps) {
  const [questions, setQuestions] = useState('Once upon a time\nThe cat sat on the\nLily wanted to\nTom and his dog');
  const [system, setSystem] = useState('The story is about a dragon.');
  const [axisA, setAxisA] = useState('');
  const [axisB, setAxisB] = useState('');
  const [layer, setLayer] = useState(2);
  const [layers, setLayers] = useState(0);
  const [allTokens, setAllTokens] = useState(false);
  const [report, setReport] = useState<MapReport | null>(null);
  const [error, setError] = useState<string | null>(null);

  const qs = lines(questions);
  const prompts = [...qs, ...(system.trim() ? qs.map(q => `${system.trim()} ${q}`) : [])];
  const run = async (l = layer) => {
    setError(null);
    try {
      const a = lines(axisA), b = lines(axisB);
      setReport(await post<MapReport>('/v1/inspect/map', { prompts, layer: l, ...(a.length && b.length ? { axis_a: a, axis_b: b } : {}) }));
    } catch (e) { setError((e as Error).message); }
  };
  useEffect(() => {
    // The layer picker's range: the residual stream before each block and after the last.
    post<AttentionReport>('/v1/inspect/attention', { prompt: qs[0] ?? 'a' })
      .then(a => { const n = Math.max(...a.last_query.map(r => r.layer)) + 1; setLayers(n); const l = Math.min(layer, n); setLayer(l); return run(l); })
      .catch(e => setError((e as Error).message));
  }, []);

  const points: Point[] = [];
  const arrows: Arrow[] = [];
  if (report) {
    const last = new Map<number, MapPoint>();
    for (const p of report.points) if (!last.has(p.prompt) || last.get(p.prompt)!.position < p.position) last.set(p.prompt, p);
    if (allTokens) for (const p of report.points) if (last.get(p.prompt) !== p) points.push({ x: p.x, y: p.y, label: showPiece(p.piece), colour: p.prompt < qs.length ? '#bfdbfe' : '#fed7aa' });
    last.forEach((p, i) => points.push({ x: p.x, y: p.y, label: i < qs.length ? qs[i] : '+ system prompt', colour: i < qs.length ? '#1d4ed8' : '#ea580c' }));
    if (system.trim()) qs.forEach((_, i) => { const a = last.get(i), b = last.get(i + qs.length); if (a && b) arrows.push({ from: [a.x, a.y], to: [b.x, b.y] }); });
  }
  // The CLI reads prompts (and axis texts) from files, one per line.
  const file = (name: string, texts: string[]) => `printf '%s\\n' ${texts.map(shellQuote).join(' ')} > ${name}`;
  const axes = lines(axisA).length && lines(axisB).length;
  const command = [file('prompts.txt', prompts), ...(axes ? [file('a.txt', lines(axisA)), file('b.txt', lines(axisB))] : []),
    cli(model, 'map', ['--prompts', 'prompts.txt', '--layer', layer, ...(axes ? ['--axis-a', 'a.txt', '--axis-b', 'b.txt'] : []), '--json'])].join(' && ');
  return (
    <section class="view map" data-ready={report ? '' : undefined}>
      <div class="form">
        <Field label="Questions (one per line)"><textarea aria-label="Questions" rows={4} value={questions} onInput={e => setQuestions((e.target as HTMLTextAreaElement).value)} /></Field>
        <Field label="System prompt"><textarea aria-label="System prompt" rows={4} value={system} onInput={e => setSystem((e.target as HTMLTextAreaElement).value)} /></Field>
        <div>
          <Field label="Concept axis: A texts"><textarea aria-label="Axis A" rows={2} value={axisA} placeholder="empty: principal components" onInput={e => setAxisA((e.target as HTMLTextAreaElement).value)} /></Field>
          <Field label="minus B texts"><textarea aria-label="Axis B" rows={2} value={axisB} onInput={e => setAxisB((e.target as HTMLTextAreaElement).value)} /></Field>
        </div>
      </div>
      <div class="controls">
        <label><span>Layer</span> <select aria-label="Layer" value={layer} onChange={e => { const l = Number((e.target as HTMLSelectElement).value); setLayer(l); run(l); }}>
          {Array.from({ length: layers + 1 }, (_, i) => <option value={i} key={i}>{i === layers ? `${i} (final)` : i}</option>)}
        </select></label>
        <label class="check"><input type="checkbox" checked={allTokens} onChange={e => setAllTokens((e.target as HTMLInputElement).checked)} /> every token, not only the last</label>
        <button onClick={() => run()}>Map</button>
      </div>
      <ErrorLine error={error} />
      {report ? (
        <>
          <h2>Residual stream at layer {report.layer}: each prompt's last token{system.trim() ? '; arrows: the same question behind the system prompt' : ''}</h2>
          <Scatter points={points} arrows={arrows} label="Activation space" xLabel={report.x_axis} yLabel={report.y_axis} />
        </>
      ) : null}
      <Reproduce command={command} json={report} name="map" />
    </section>
  );
}
