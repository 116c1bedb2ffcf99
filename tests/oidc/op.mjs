// A real OpenID Connect provider (the OpenID-certified npm package oidc-provider) for EOS's
// identity tests. Its access tokens are JWTs (RS256) for the resource `urn:eos`, audience `eos`,
// carrying Keycloak's claim shapes: realm roles in `realm_access.roles`, client roles in
// `resource_access.<client>.roles`, a `tenant` claim and `groups`.
//
// Settings come from the environment:
//   EOS_OP_PORT      the loopback port to listen on (required);
//   EOS_OP_ACCOUNTS  JSON: {"alice": {"realm": ["operator"], "client": [], "tenant": "acme",
//                    "groups": ["/tenants/acme"]}, ...};
//   EOS_OP_TTL       access-token lifetime in seconds (default 600).
// The signing key is made anew at every start (a restart is a key rotation). There is no login
// page: the interaction logs in the account the authorization request's `login_hint` names and
// grants what the client asked for, so a test can play the browser with a plain HTTP client.
// Prints "listening <issuer>" once it answers.

import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';
import { randomUUID } from 'node:crypto';

const port = Number(process.env.EOS_OP_PORT);
if (!port) {
  console.error('EOS_OP_PORT must name a port');
  process.exit(2);
}
const accounts = JSON.parse(process.env.EOS_OP_ACCOUNTS ?? '{}');
const ttl = Number(process.env.EOS_OP_TTL ?? 600);
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const key = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'edgectl',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    },
  ],
  jwks: { keys: [key] },
  cookies: { keys: [randomUUID()] },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile'],
  claims: { openid: ['sub'], profile: ['preferred_username'] },
  ttl: { AccessToken: ttl, IdToken: ttl, RefreshToken: 86400, Grant: 86400, Session: 86400, Interaction: 600, AuthorizationCode: 60 },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:eos',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'eos',
        audience: 'eos',
        accessTokenFormat: 'jwt',
        accessTokenTTL: ttl,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!accounts[id]) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, preferred_username: id }) };
  },
  async extraTokenClaims(ctx, token) {
    const account = accounts[token.accountId];
    if (!account) return undefined;
    const claims = { realm_access: { roles: account.realm ?? [] }, preferred_username: token.accountId };
    if (account.client) claims.resource_access = { edgectl: { roles: account.client } };
    if (account.tenant) claims.tenant = account.tenant;
    if (account.groups) claims.groups = account.groups;
    return claims;
  },
  async issueRefreshToken(ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
});

// The interaction: log in whom `login_hint` names, then grant what was asked.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/interaction/')) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    const accountId = params.login_hint;
    if (!accounts[accountId]) {
      ctx.status = 403;
      ctx.body = `no account ${JSON.stringify(accountId)} (say which with login_hint)`;
      return;
    }
    result = { login: { accountId } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.redirect(to);
});

provider.listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
