import type { ViewProps } from '../common';

export function SteerView(_props: ViewProps) {
  return (
    <section class="view">
      <h2>Steering lab</h2>
      <p class="note">This view needs the server's <code>/v1/inspect/steer</code> endpoint, which this build does not have yet.</p>
    </section>
  );
}
