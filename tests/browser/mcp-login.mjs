// The person's side of an MCP client's authorization: the "browser" that
// examples/js/oauth-connect.mjs and examples/python/oauth_connect.py open
// with `--open "node tests/browser/mcp-login.mjs"`.
//
//   node mcp-login.mjs <authorization URL>
//
// Opens Tessera's /oauth/authorize URL in chromium, logs in at the IdP as
// TESSERA_PERSON (default alice), and on Tessera's consent page approves
// TESSERA_APPROVE: `all` (default), `deny`, or a space-separated subset of
// the requested scopes (the other boxes are unticked), and ticks
// "remember" when TESSERA_REMEMBER=1. Returns once the
// browser has been redirected to the client's redirect_uri (whose listener
// takes the code). A remembered consent skips the page. Screenshots
// mcp-login.png (the IdP hand-off) and consent.png when TESSERA_SCREENSHOTS
// names a directory. Prints one JSON line (never the code); exit 1 on
// failure.

import { idpLogin, result, run, shot } from './lib.mjs';

const url = process.argv[2];
if (!url) {
  result({ error: 'usage: node mcp-login.mjs <authorization URL>' });
  process.exit(2);
}
const redirectUri = new URL(url).searchParams.get('redirect_uri');
const person = process.env.TESSERA_PERSON || 'alice';
const approve = (process.env.TESSERA_APPROVE || 'all').trim();
const dir = process.env.TESSERA_SCREENSHOTS;
const arrived = (u) => redirectUri !== null && u.href.startsWith(redirectUri);

await run(async (page) => {
  await page.goto(url);
  let loggedIn = false;
  if (!arrived(new URL(page.url())) && (await page.$('input[name="login"]'))) {
    await shot(page, dir, 'mcp-login.png');
    await idpLogin(page, person);
    loggedIn = true;
  }
  let consentPage = null;
  await page.waitForLoadState('load');
  if (!arrived(new URL(page.url()))) {
    // Tessera's consent page: one checkbox per requested scope.
    await page.waitForSelector('form');
    consentPage = {
      url: page.url().split('?')[0],
      scopes: await page.$$eval('input[type="checkbox"][name="scope"]', (boxes) => boxes.map((b) => b.value)),
    };
    if (process.env.TESSERA_REMEMBER === '1') {
      await page.check('input[name="remember"]');
    }
    await shot(page, dir, 'consent.png');
    if (approve !== 'all' && approve !== 'deny') {
      const wanted = approve.split(/\s+/);
      for (const box of await page.$$('input[type="checkbox"][name="scope"]')) {
        const value = await box.getAttribute('value');
        await box.setChecked(wanted.includes(value));
      }
    }
    const decision = approve === 'deny' ? /deny|refuse|cancel/i : /approve|allow|accept/i;
    const button = page.locator('form button[type="submit"], form input[type="submit"]').filter({ hasText: decision });
    const target = (await button.count()) > 0 ? button.first() : page.getByRole('button', { name: decision }).first();
    await Promise.all([page.waitForURL(arrived, { timeout: 15000 }), target.click()]);
  }
  const back = new URL(page.url());
  return {
    loggedIn,
    consentPage,
    redirected: arrived(back),
    error: back.searchParams.get('error'),
    hasCode: back.searchParams.has('code'),
    iss: back.searchParams.get('iss'),
  };
});
