// Scenario: the person follows the approval link a webhook brought, is
// sent to the IdP, logs in, lands back on the approval page, reads what is
// asked and approves.
//
//   node approve.mjs <approval URL> <IdP issuer> <person>
//
// Screenshot approval.png (the page before the click) when
// TESSERA_SCREENSHOTS names a directory.

import { idpLogin, result, run, shot } from './lib.mjs';

const [approvalUrl, idp, person] = process.argv.slice(2);
if (!approvalUrl || !idp || !person) {
  result({ error: 'usage: node approve.mjs <approval URL> <IdP issuer> <person>' });
  process.exit(2);
}
const dir = process.env.TESSERA_SCREENSHOTS;

await run(async (page) => {
  await page.goto(approvalUrl);
  const atIdp = page.url().startsWith(`${idp}/`);
  await idpLogin(page, person);
  await page.waitForURL(approvalUrl);
  const response = await page.reload();
  const text = async (selector) => (await page.textContent(selector))?.trim() ?? null;
  const shown = {
    message: await text('#binding-message'),
    chain: await page.$$eval('#agent-chain li', (items) => items.map((i) => i.textContent.trim())),
    action: await text('#action'),
    resource: await text('#resource'),
    amount: await text('#amount'),
    status: await text('#status'),
  };
  const stylesheetLoaded = await page.evaluate(() => document.styleSheets.length === 1 && document.styleSheets[0].cssRules.length > 0);
  await shot(page, dir, 'approval.png');
  await Promise.all([page.waitForNavigation(), page.click('#approve')]);
  const outcome = await text('#outcome');
  const statusAfter = await text('#status');
  return {
    atIdp,
    pageStatus: response ? response.status() : null,
    csp: response ? response.headers()['content-security-policy'] ?? null : null,
    stylesheetLoaded,
    ...shown,
    outcome,
    statusAfter,
  };
});
