// Scenario: an application sends a person to Tessera's /oauth/authorize;
// they log in at the IdP, see the consent page, tick "remember", approve,
// and land on the application's redirect URI with a code; then they open
// their consents page and withdraw that consent.
//
//   node consent.mjs <authorization URL> <person>
//
// Screenshots consent.png and consents.png when TESSERA_SCREENSHOTS names
// a directory. Prints one JSON line (never the code).

import { idpLogin, result, run, shot } from './lib.mjs';

const [url, person] = process.argv.slice(2);
if (!url || !person) {
  result({ error: 'usage: node consent.mjs <authorization URL> <person>' });
  process.exit(2);
}
const base = new URL(url).origin;
const redirectUri = new URL(url).searchParams.get('redirect_uri');
const dir = process.env.TESSERA_SCREENSHOTS;

await run(async (page) => {
  await page.goto(url);
  await idpLogin(page, person);
  await page.waitForSelector('form[action="/oauth/authorize"]');
  const response = await page.reload();
  const csp = response.headers()['content-security-policy'] ?? null;
  const scopes = await page.$$eval('input[type="checkbox"][name="scope"]', (boxes) => boxes.map((b) => b.value));
  const client = (await page.textContent('#client'))?.trim();
  await page.check('input[name="remember"]');
  await shot(page, dir, 'consent.png');
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(redirectUri)),
    page.click('button[value="approve"]'),
  ]);
  const back = new URL(page.url());
  await page.goto(`${base}/consents`);
  const listed = await page.$$eval('li.consent code.client', (items) => items.map((i) => i.textContent));
  await shot(page, dir, 'consents.png');
  await Promise.all([page.waitForNavigation(), page.click('li.consent button')]);
  const after = (await page.textContent('main'))?.trim();
  return {
    csp,
    scopes,
    client,
    hasCode: back.searchParams.has('code'),
    state: back.searchParams.get('state'),
    iss: back.searchParams.get('iss'),
    listed,
    withdrawn: after.includes('no remembered consents'),
  };
});
