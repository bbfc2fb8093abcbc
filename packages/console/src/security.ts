import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** The session cookie's name. */
export const sessionCookie = 'onceflow_console';

const loopback = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/** Whether the request came over the loopback interface. */
export function isLoopback(request: FastifyRequest): boolean {
  return loopback.test(request.socket.remoteAddress ?? '');
}

function equal(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function cookies(request: FastifyRequest): Map<string, string> {
  const found = new Map<string, string>();
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0) found.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  return found;
}

/**
 * Sessions and CSRF tokens, keyed by a secret drawn when the console starts (a restart signs everyone
 * out). A session is `id.mac` in an HttpOnly, SameSite=Strict cookie; the CSRF token of a session is a
 * MAC of its id, put in every form (the synchronizer-token pattern), so a page of another origin can
 * neither read nor forge it. Writes also refuse a cross-site Origin or Sec-Fetch-Site.
 */
export class ConsoleSecurity {
  private readonly secret = randomBytes(32);

  constructor(private readonly token: string | undefined) {}

  private mac(purpose: string, value: string): string {
    return createHmac('sha256', this.secret).update(`${purpose}:${value}`).digest('base64url');
  }

  /** Whether `candidate` is the access token. */
  tokenMatches(candidate: unknown): boolean {
    return this.token !== undefined && typeof candidate === 'string' && equal(candidate, this.token);
  }

  /** Opens a session: sets the cookie. */
  openSession(reply: FastifyReply, path: string): void {
    const id = randomBytes(18).toString('base64url');
    reply.header(
      'set-cookie',
      `${sessionCookie}=${id}.${this.mac('session', id)}; HttpOnly; SameSite=Strict; Path=${path}; Max-Age=43200`,
    );
  }

  /** Ends the session: clears the cookie. */
  closeSession(reply: FastifyReply, path: string): void {
    reply.header('set-cookie', `${sessionCookie}=; HttpOnly; SameSite=Strict; Path=${path}; Max-Age=0`);
  }

  /** The session id of the request's valid cookie, or null. */
  sessionOf(request: FastifyRequest): string | null {
    const value = cookies(request).get(sessionCookie);
    if (value === undefined) return null;
    const [id, mac] = value.split('.');
    if (id === undefined || mac === undefined || !equal(mac, this.mac('session', id))) return null;
    return id;
  }

  /** The CSRF token of a principal (a session id or an identity from the auth hook). */
  csrfToken(principal: string): string {
    return this.mac('csrf', principal);
  }

  /** Whether `candidate` is the CSRF token of `principal`. */
  csrfMatches(principal: string, candidate: unknown): boolean {
    return typeof candidate === 'string' && equal(candidate, this.csrfToken(principal));
  }
}

/** Whether a write request comes from this console's own pages (by Origin and Sec-Fetch-Site). */
export function sameOrigin(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}

/** Headers on every page: nothing runs but the console's own script, nothing frames it. */
export const securityHeaders = Object.freeze({
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  // Not no-referrer: with it Chromium sends `Origin: null` on form posts, and the same-origin check needs the origin.
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
});
