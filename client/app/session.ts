import { z } from 'zod';

/**
 * The signed-in user, kept in localStorage so every tab of the profile (and
 * the next visit) uses the same token, and so the same replica.
 */
export const SESSION_KEY = 'tideline.session';

const sessionSchema = z.object({ token: z.string().min(1), userId: z.string().min(1), roles: z.array(z.string()) });
export type Session = z.infer<typeof sessionSchema>;

const errorBodySchema = z.object({ error: z.object({ message: z.string() }) });

export function loadSession(): Session | null {
  const raw = localStorage.getItem(SESSION_KEY);
  if (raw === null) return null;
  try {
    const parsed = sessionSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session): void {
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession(): void {
  localStorage.removeItem(SESSION_KEY);
}

/** The development login (POST /auth/dev-login): a token for any user name. */
export async function signIn(user: string): Promise<Session> {
  const res = await fetch('/auth/dev-login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const error = errorBodySchema.safeParse(body);
    throw new Error(error.success ? error.data.error.message : `sign-in failed (HTTP ${res.status})`);
  }
  const session = sessionSchema.safeParse(body);
  if (!session.success) throw new Error('sign-in failed: the server answered with no token');
  return session.data;
}
