import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { departures, post, percent, showPiece, pieceBytes, type NextWithLogits, type NextReport, type CompletionResponse } from '../api';
import { decodeLogits, reshape, softmax, defaults, type Settings } from '../sampling';
import { Chips, cli, ErrorLine, Reproduce, type ViewProps } from '../common';

const shown = 20;
const modelsOwn: Settings = { temperature: 1, topK: 0, topP: 1, minP: 0, order: 'llama' };
const regenerateTokens = 24;

interface Run { text: string; tokens: string[]; departs: number | null }

export function NextTokenView({ model }: ViewProps) {
  const [prompt, setPrompt] = useState('Once upon a time');
  const [report, setReport] = useState<NextReport | null>(null);
  const [logits, setLogits] = useState<Float32Array | null>(null);
  // The landing distribution is the model's own (temperature 1, no filter); "Sampler defaults" sets the CLI's.
  const [settings, setSettings] = useState<Settings>({ ...modelsOwn });
  const [seed, setSeed] = useState(42);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [lastRoll, setLastRoll] = useState<string | null>(null);
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [elapsed, setElapsed] = useState<number | null>(null);
  // Counts finished runs, so a test can wait for the next one even when two runs take the same time.
  const [finishedRuns, setFinishedRuns] = useState(0);
  const started = useRef<number | null>(null);

  const run = async (body: { prompt: string } | { tokens: number[] }) => {
    started.current = performance.now();
    setBusy(true);
    setError(null);
    try {
      const answer = await post<NextWithLogits>('/v1/inspect/next', { ...body, top: shown, logits: true });
      setLogits(decodeLogits(answer.logits_f32_base64));
      setReport(answer.report);
    } catch (e) {
      setError((e as Error).message);
      started.current = null;
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => { run({ prompt }); }, []);

  // Enter → table: measured to the frame after the table rendered.
  useEffect(() => {
    if (started.current == null || !report) return;
    const start = started.current;
    started.current = null;
    requestAnimationFrame(() => {
      setElapsed(performance.now() - start);
      setFinishedRuns(n => n + 1);
    });
  }, [report]);

  const reshaped = useMemo(() => (logits ? reshape(logits, settings) : null), [logits, settings]);
  const raw = useMemo(() => (logits ? softmax(logits) : null), [logits]);

  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      setRuns(null);
      setLastRoll(null);
      run({ prompt });
    }
  };

  const sampler = () => ({ temperature: settings.temperature, top_k: settings.topK, top_p: settings.topP, min_p: settings.minP });

  const roll = async () => {
    if (!report) return;
    setError(null);
    try {
      const answer = await post<NextReport>('/v1/inspect/next', { tokens: report.tokens, top: 1, explain: sampler(), seed });
      const x = answer.explain!;
      setLastRoll(`seed ${x.seed}: drew ${x.random == null ? 'greedy' : x.random.toFixed(4)} → “${showPiece(x.chosen_piece)}” (id ${x.chosen}, rank ${x.chosen_rank}, p ${percent(x.chosen_prob)})`);
      setSeed(seed + 1);
      setPrompt(prompt + x.chosen_piece);
      await run({ tokens: [...report.tokens, x.chosen] });
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const regenerate = async () => {
    if (!report) return;
    setError(null);
    try {
      const answer = await post<CompletionResponse>('/v1/completions', {
        prompt: report.tokens, max_tokens: regenerateTokens, n: 5, seed, logprobs: 0, ...sampler(),
      });
      const choices = [...answer.choices].sort((a, b) => a.index - b.index);
      const tokens = choices.map(c => c.logprobs?.tokens ?? [c.text]);
      const departs = departures(tokens);
      setRuns(choices.map((c, r) => ({ text: c.text, tokens: tokens[r], departs: departs[r] })));
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const set = (key: keyof Settings, value: number) => setSettings({ ...settings, [key]: value });
  const shownMass = report && reshaped ? report.top.reduce((sum, t) => sum + reshaped.prob[t.id], 0) : 0;
  const maxProb = report && reshaped ? Math.max(...report.top.map(t => reshaped.prob[t.id]), 1e-9) : 1;
  const command = cli(model, 'next', [
    ...(report && report.tokens.length && !lastRoll ? ['--prompt', prompt] : ['--tokens', (report?.tokens ?? []).join(',')]),
    '--top', shown, '--explain', '--temperature', settings.temperature, '--top-k', settings.topK,
    '--top-p', settings.topP, '--min-p', settings.minP, '--seed', seed,
  ]);

  return (
    <section class="view next">
      <label class="prompt">
        <span>Prompt</span>
        <textarea aria-label="Prompt" rows={2} value={prompt} onInput={e => setPrompt((e.target as HTMLTextAreaElement).value)} onKeyDown={onKey} />
      </label>
      <p class="hint">Enter runs the prompt (Shift+Enter for a new line). {busy ? <span class="busy">running…</span> : null}
        {elapsed != null ? <span class="timing" data-ms={elapsed.toFixed(1)} data-run={finishedRuns}>Enter → table: {elapsed.toFixed(0)} ms</span> : null}</p>
      <ErrorLine error={error} />
      {report ? <Chips ids={report.tokens} pieces={report.pieces} /> : null}

      <div class="controls" role="group" aria-label="Sampler">
        <Slider label="Temperature" min={0} max={2} step={0.05} value={settings.temperature} onChange={v => set('temperature', v)} shown={settings.temperature.toFixed(2)} />
        <Slider label="Top-k" min={0} max={100} step={1} value={settings.topK} onChange={v => set('topK', v)} shown={settings.topK === 0 ? 'off' : String(settings.topK)} />
        <Slider label="Top-p" min={0.01} max={1} step={0.01} value={settings.topP} onChange={v => set('topP', v)} shown={settings.topP >= 1 ? 'off' : settings.topP.toFixed(2)} />
        <Slider label="Min-p" min={0} max={1} step={0.01} value={settings.minP} onChange={v => set('minP', v)} shown={settings.minP === 0 ? 'off' : settings.minP.toFixed(2)} />
        <label class="seed"><span>Seed</span><input type="number" aria-label="Seed" value={seed} min={0} onInput={e => setSeed(Math.max(0, Math.floor(Number((e.target as HTMLInputElement).value) || 0)))} /></label>
        <button onClick={() => setSettings({ ...defaults })}>Sampler defaults</button>
        <button onClick={() => setSettings({ ...modelsOwn })}>No filters</button>
        <button onClick={roll} disabled={!report}>Roll</button>
        <button onClick={regenerate} disabled={!report}>Regenerate ×5</button>
      </div>
      {reshaped ? <p class="stages">Stages (llama.cpp order): {reshaped.stages.join(' → ')} → draw</p> : null}
      {lastRoll ? <p class="roll" aria-label="Last roll">{lastRoll}</p> : null}

      {report && reshaped && raw ? (
        <>
          <table class="dist" aria-label="Next-token distribution">
            <thead><tr><th>rank</th><th>id</th><th>token</th><th>logit</th><th>probability</th><th></th></tr></thead>
            <tbody>
              {report.top.map(t => {
                const p = reshaped.prob[t.id];
                const removed = reshaped.removedBy[t.id];
                return (
                  <tr class={removed >= 0 ? 'removed' : ''} key={t.id} title={`bytes ${pieceBytes(t.piece)}; model probability ${percent(raw[t.id], 2)}`}>
                    <td>{t.rank}</td><td>{t.id}</td><td class="tok">{showPiece(t.piece)}</td><td>{t.logit.toFixed(3)}</td>
                    <td class="prob">{removed >= 0 ? percent(0) : percent(p, 2)}</td>
                    <td class="barcell">
                      <span class="bar" style={{ width: `${(100 * p) / maxProb}%` }} />
                      {removed >= 0 ? <span class="why">removed by {reshaped.stages[removed]}</span> : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <p class="rest">… {report.vocab_size - report.top.length} more entries hold {percent(Math.max(0, 1 - shownMass), 2)}
            {' '}(before reshaping: {percent(report.rest_prob, 2)}). Entropy {reshaped.entropy.toFixed(3)} nats after reshaping, {report.entropy.toFixed(3)} nats from the model; {reshaped.kept.length} of {report.vocab_size} tokens can be drawn.</p>
        </>
      ) : null}

      {runs ? (
        <div class="runs" aria-label="Regenerations">
          <h2>Five runs (seeds {seed}…{seed + 4})</h2>
          {runs.map((r, i) => (
            <div class="run" key={i} aria-label={`Run ${i + 1}`}>
              <span class="runname">run {i + 1}</span>
              {r.tokens.map((t, j) => (
                <span class={r.departs === j ? 'rt departs' : r.departs != null && j > r.departs ? 'rt after' : 'rt'} key={j}>{t}</span>
              ))}
              <span class="departnote">{r.departs == null ? 'same as run 1' : i === 0 ? `others leave it at token ${r.departs + 1}` : `leaves run 1 at token ${r.departs + 1}`}</span>
            </div>
          ))}
        </div>
      ) : null}
      <Reproduce command={command} json={report ? { report, settings, reshaped: report.top.map(t => ({ id: t.id, prob: reshaped?.prob[t.id] ?? 0 })), runs } : null} name="next" />
    </section>
  );
}

function Slider({ label, min, max, step, value, onChange, shown }: { label: string; min: number; max: number; step: number; value: number; onChange: (v: number) => void; shown: string }) {
  const id = `slider-${label}`;
  return (
    <div class="slider">
      <label for={id}>{label}</label>
      <input id={id} type="range" min={min} max={max} step={step} value={value} onInput={e => onChange(Number((e.target as HTMLInputElement).value))} />
      <output for={id}>{shown}</output>
    </div>
  );
}
