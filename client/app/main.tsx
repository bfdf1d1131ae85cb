// First: zod must be configured before any schema is built (see zod-jitless.ts).
import { zodConfig } from './zod-jitless';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app';
import { registerServiceWorker } from './register-sw';
import './styles.css';

// Read, so the bundler keeps the module (and its place before every schema).
if (zodConfig.jitless !== true) throw new Error('zod must run jitless under the Content-Security-Policy');
const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root element');
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
void registerServiceWorker();
