import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { pieceBytes, showPiece, shellQuote } from './api';
import type { ModelInfo } from './app';

export interface ViewProps { model: ModelInfo | null }

/** `nexttoken …` with the served model named (nothing for the built-in one, the CLI's default). */
export function cli(model: ModelInfo | null, command: string, args: (string | number)[]): string {
  const modelArgs = model && model.id !== 'stories260K' ? ['--model', model.id] : [];
  return ['nexttoken', command, ...modelArgs, ...args.map(a => shellQuote(String(a)))].join(' ');
}

/** "Copy as CLI command" and "Download JSON": every view's way to reproduce what it shows. */
export function Reproduce({ command, json, name }: { command: string; json: unknown; name: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try { await navigator.clipboard.writeText(command); } catch { /* clipboard refused (http, headless): the command is shown below */ }
    setCopied(true);
  };
  const download = () => {
    const url = URL.createObjectURL(new Blob([JSON.stringify(json, null, 2)], { type: 'application/json' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `${name}.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  return (
    <div class="reproduce">
      <button onClick={copy}>Copy as CLI command</button>
      <button onClick={download} disabled={json == null}>Download JSON</button>
      <code class="command" aria-label="CLI command">{command}</code>
      {copied ? <span class="note">copied</span> : null}
    </div>
  );
}

export function Chips({ ids, pieces }: { ids: number[]; pieces: string[] }) {
  return (
    <ol class="chips" aria-label="Tokens">
      {ids.map((id, i) => (
        <li class="chip" title={`id ${id}, bytes ${pieceBytes(pieces[i])}`} key={i}>
          <span class="piece">{showPiece(pieces[i])}</span><span class="id">{id}</span>
        </li>
      ))}
    </ol>
  );
}

export function ErrorLine({ error }: { error: string | null }) {
  return error ? <p class="error" role="alert">{error}</p> : null;
}

export function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return <label class="field"><span>{label}</span>{children}</label>;
}

/** Colour of a probability (0 → pale, 1 → deep blue) for heatmap cells. */
export function heat(p: number): string {
  const x = Math.max(0, Math.min(1, p));
  return `hsl(215, 80%, ${Math.round(97 - 55 * Math.sqrt(x))}%)`;
}

export function textColour(p: number): string {
  return Math.sqrt(Math.max(0, p)) > 0.6 ? '#fff' : '#111';
}
