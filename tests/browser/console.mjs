// Scenario: an operator opens /console on Tessera, is sent to the IdP,
// logs in, lands on the overview, visits every console page and checks
// what each shows, then signs out.
//
//   node console.mjs <tessera URL> <IdP issuer> <person> <agent id> <live token id> <revoked token id>
//
// Screenshots console-overview.png, console-agents.png, console-tokens.png,
// console-approvals.png, console-revocations.png and console-audit.png when
// TESSERA_SCREENSHOTS names a directory.

import { idpLogin, result, run, shot } from './lib.mjs';

const [base, idp, person, agent, live, revoked] = process.argv.slice(2);
if (!base || !idp || !person || !agent || !live || !revoked) {
  result({ error: 'usage: node console.mjs <tessera URL> <IdP issuer> <person> <agent> <live token> <revoked token>' });
  process.exit(2);
}
const dir = process.env.TESSERA_SCREENSHOTS;

await run(async (page) => {
  await page.goto(`${base}/console`);
  const atIdp = page.url().startsWith(`${idp}/`);
  await idpLogin(page, person);
  await page.waitForURL(`${base}/console`);
  const response = await page.reload();
  const csp = response.headers()['content-security-policy'] ?? null;
  const status = (await page.textContent('#checkpoint-status'))?.trim() ?? '';
  const checkpoint = status.startsWith('verified') ? 'verified' : status;
  await shot(page, dir, 'console-overview.png');
  let scripts = await page.$$eval('script', (s) => s.length);

  await page.click('nav.console a[href="/console/agents"]');
  await page.waitForURL(`${base}/console/agents`);
  const agentShown = (await page.textContent('#agents')).includes(agent);
  const descriptionText = (await page.textContent('#agents li.agent p.muted'))?.trim();
  await shot(page, dir, 'console-agents.png');
  scripts += await page.$$eval('script', (s) => s.length);

  await page.click('nav.console a[href="/console/tokens"]');
  await page.waitForURL(`${base}/console/tokens`);
  const cards = await page.$$eval('#tokens li.token', (items) => items.map((i) => i.textContent));
  const tokenLive = cards.some((t) => t.includes(live) && t.includes('live'));
  const tokenRevoked = cards.some((t) => t.includes(revoked) && t.includes('revoked'));
  await shot(page, dir, 'console-tokens.png');

  await page.click('nav.console a[href="/console/approvals"]');
  await page.waitForURL(`${base}/console/approvals`);
  const approvalsPage = (await page.textContent('h1'))?.trim();
  const approvalPending = (await page.$$eval('#approvals li.approval', (items) => items.map((i) => i.textContent)))
    .some((t) => t.includes('pending') && t.includes('pay invoice <42>'));
  await shot(page, dir, 'console-approvals.png');

  await page.click('nav.console a[href="/console/revocations"]');
  await page.waitForURL(`${base}/console/revocations`);
  const revokedShown = tokenRevoked && (await page.textContent('#revocations')).includes(revoked);
  await shot(page, dir, 'console-revocations.png');

  await page.click('nav.console a[href="/console/audit"]');
  await page.waitForURL(`${base}/console/audit`);
  await page.fill('form.filters input[name="agent"]', agent);
  await Promise.all([page.waitForNavigation(), page.click('form.filters button')]);
  const chains = await page.$$eval('#records p.chain', (items) => items.map((i) => i.textContent.replace(/\s+/g, ' ').trim()));
  const personChain = chains.some((c) => c.startsWith(`${person} at `) && c.includes(`agent://acme/planner -> ${agent} -> payments:create on invoice:<42>`) && c.endsWith('-> approval requested'));
  const auditChain = chains.some((c) => c.startsWith(`${agent} -> docs:read on docs/team-a/q3`) && c.endsWith('-> granted'));
  await shot(page, dir, 'console-audit.png');
  scripts += await page.$$eval('script', (s) => s.length);

  await Promise.all([page.waitForNavigation(), page.click('form.signout button')]);
  const signedOut = (await page.textContent('h1'))?.trim();
  return {
    atIdp,
    csp,
    checkpoint,
    agentShown,
    descriptionText,
    tokenLive,
    revokedShown,
    approvalsPage,
    approvalPending,
    personChain,
    auditChain,
    chains,
    scripts,
    signedOut,
  };
});
