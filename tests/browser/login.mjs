// Scenario: a person opens /me on Tessera, is sent to the IdP, logs in,
// lands on /me, signs out, and /me then asks for a login again.
//
//   node login.mjs <tessera URL> <IdP issuer> <person>
//
// Screenshots login.png (the IdP hand-off) and me.png when
// TESSERA_SCREENSHOTS names a directory.

import { idpLogin, result, run, shot } from './lib.mjs';

const [base, idp, person] = process.argv.slice(2);
if (!base || !idp || !person) {
  result({ error: 'usage: node login.mjs <tessera URL> <IdP issuer> <person>' });
  process.exit(2);
}
const dir = process.env.TESSERA_SCREENSHOTS;

await run(async (page) => {
  const first = await page.goto(`${base}/me`);
  const atIdp = page.url().startsWith(`${idp}/`);
  await shot(page, dir, 'login.png');
  await idpLogin(page, person);
  await page.waitForURL(`${base}/me`);
  const response = await page.reload();
  const headers = response.headers();
  const who = (await page.textContent('#who'))?.trim();
  const groups = await page.$$eval('main ul.tags:first-of-type li', (items) => items.map((i) => i.textContent));
  const stylesheetLoaded = await page.evaluate(() => document.styleSheets.length === 1 && document.styleSheets[0].cssRules.length > 0);
  await shot(page, dir, 'me.png');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/logout"] button')]);
  const signedOut = (await page.textContent('h1'))?.trim();
  await page.goto(`${base}/me`);
  const afterLogout = page.url();
  return {
    firstStatus: first ? first.status() : null,
    atIdp,
    who,
    groups,
    csp: headers['content-security-policy'] ?? null,
    stylesheetLoaded,
    signedOut,
    loginAgain: afterLogout.startsWith(`${idp}/`),
  };
});
