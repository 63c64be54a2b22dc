import type { ViewProps } from '../common';

export function DriftView(_props: ViewProps) {
  return (
    <section class="view">
      <h2>Drift</h2>
      <p class="note">This view needs the server's <code>/v1/inspect/drift</code> endpoint, which this build does not have yet.</p>
    </section>
  );
}
