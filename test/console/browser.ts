// Headless Chromium for the console's browser tests: Debian's `chromium` package driven by
// playwright-core (no browser download), with a fresh profile per launch.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

/** The Chromium binary: $CHROMIUM_PATH, or Debian's package. */
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Where screenshots go when $ONCEFLOW_CONSOLE_SCREENSHOTS names a folder (e.g. docs/console); none otherwise. */
const screenshotDir = process.env.ONCEFLOW_CONSOLE_SCREENSHOTS;

/** A browser with a fresh profile; `close()` removes the profile. */
export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Saves a screenshot of the page as `<name>.png` when screenshots are asked for. */
  screenshot(name: string): Promise<void>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Launches headless Chromium; fails with what to install when it is missing. */
export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(chromiumPath))
    throw new Error(
      `No Chromium at ${chromiumPath}: install Debian's package (apt-get install -y chromium) or set CHROMIUM_PATH`,
    );
  const profile = await mkdtemp(join(tmpdir(), 'onceflow-console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    })();
    return closed;
  };
  return {
    context,
    page,
    screenshot: async (name) => {
      if (screenshotDir) await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
