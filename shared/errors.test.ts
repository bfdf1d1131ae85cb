import { describe, expect, it, vi } from 'vitest';
import { TidelineError, toWireError } from './errors';

describe('TidelineError', () => {
  it('is recognised when another copy of the module made it (an app module loading its own kit)', async () => {
    // A second module instance, as a schema module with its own copy of the kit would have.
    vi.resetModules();
    const other = await import('./errors');
    expect(other.TidelineError).not.toBe(TidelineError);
    const foreign = new other.TidelineError('NOT_FOUND', 'products/p9 does not exist');
    expect(foreign instanceof TidelineError).toBe(true);
    expect(toWireError(foreign)).toEqual({
      code: 'NOT_FOUND',
      message: 'products/p9 does not exist',
      retryable: false,
    });
  });

  it('is not claimed by plain errors or look-alikes', () => {
    expect(new Error('x') instanceof TidelineError).toBe(false);
    expect({ code: 'NOT_FOUND', message: 'x', retryable: false } instanceof TidelineError).toBe(false);
    expect(toWireError(new Error('secret detail'))).toEqual({
      code: 'INTERNAL',
      message: 'internal error',
      retryable: true,
    });
  });
});
