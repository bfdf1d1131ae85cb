import { z } from 'zod';

/*
 * Imported first by main.tsx, before any module builds a schema. zod's object
 * parser compiles itself with `new Function` and, to know whether it may,
 * probes `new Function('')` once; under the node's Content-Security-Policy
 * (`script-src 'self'`, no 'unsafe-eval') the probe throws, zod falls back to
 * its plain parser, and the browser still reports a `securitypolicyviolation`
 * for it. With `jitless` zod never tries, so the app runs with no violation.
 * zod reads the setting when each object schema is built, hence the order.
 *
 * An export that main.tsx reads, not a bare side-effect import: the package
 * says `"sideEffects": false`, so the bundler drops an import used for its
 * effect alone.
 */
export const zodConfig = z.config({ jitless: true });
