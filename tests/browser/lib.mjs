// Shared helpers of the browser scenarios: launch Debian's chromium
// through playwright-core (no browser download), log in at the test IdP's
// form, take screenshots, print one JSON result line.

import { chromium } from 'playwright-core';
import path from 'node:path';

export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.TESSERA_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  // A phone-sized window: the pages must read well there.
  const context = await browser.newContext({ viewport: { width: 412, height: 860 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  return { browser, context, page };
}

// On the IdP's login form: log in as `login` (any password), then accept
// the consent form if the IdP shows one. Returns when the browser has left
// the IdP's interaction pages.
export async function idpLogin(page, login) {
  await page.waitForSelector('input[name="login"]');
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', 'any password');
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  if (page.url().includes('/interaction/')) {
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  }
}

// Saves a screenshot `name` in `dir` when `dir` is set (TESSERA_SCREENSHOTS).
export async function shot(page, dir, name) {
  if (!dir) return null;
  const file = path.join(dir, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// Prints the one JSON line the Rust side reads.
export function result(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

// Runs `scenario` with a launched browser; any failure is a result line
// `{ "error": ... }` and exit status 1.
export async function run(scenario) {
  const { browser, page } = await launch();
  try {
    result(await scenario(page));
  } catch (error) {
    result({ error: String(error && error.stack ? error.stack : error), url: page.url() });
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
