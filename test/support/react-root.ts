import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import type { Root } from 'react-dom/client';
import { waitFor } from './wait';

/**
 * Renders hooks with the real react-dom in Node, without a DOM library: the
 * components render nothing, so React touches only the few properties of
 * the container and `window` stubbed here. Updates from outside (sync
 * events, live queries) are scheduled by React as in a browser; tests wait
 * for them with `waitFor`.
 */
const globals = globalThis as { window?: unknown; IS_REACT_ACT_ENVIRONMENT?: boolean };
globals.window ??= { event: undefined, HTMLIFrameElement: class {}, document: { activeElement: null } };
// Updates arrive from sync events, not from act(): React schedules them as in a browser.
globals.IS_REACT_ACT_ENVIRONMENT = false;

/** A container per root: react-dom marks the ones it has rendered into. */
const newContainer = (): object => ({
  nodeType: 1,
  nodeName: 'DIV',
  tagName: 'DIV',
  namespaceURI: null,
  ownerDocument: { nodeType: 9, addEventListener() {}, removeEventListener() {} },
  addEventListener() {},
  removeEventListener() {},
});

export interface RenderedHook<T> {
  /** What the hook returned on the latest render. */
  current(): T;
  /** Every value it returned, in order. */
  readonly history: T[];
  unmount(): Promise<void>;
}

export async function renderHook<T>(hook: () => T): Promise<RenderedHook<T>> {
  const history: T[] = [];
  function Probe(): null {
    history.push(hook());
    return null;
  }
  // A stand-in container: react-dom reads only the stubbed properties when nothing is rendered into it.
  const root: Root = createRoot(newContainer() as Element);
  root.render(createElement(Probe));
  await waitFor('the first render', () => history.length > 0, 5_000);
  return {
    current: () => {
      if (history.length === 0) throw new Error('not rendered');
      return history[history.length - 1]!;
    },
    history,
    unmount: async () => root.unmount(),
  };
}
