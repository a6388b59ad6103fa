// A real OpenID Connect provider (the certified `oidc-provider` package) on loopback, for tests.
//
//   node provider.js <port> <config.json>
//
// config.json: {"clients": [{client_id, client_secret, redirect_uris}], "accounts": {"<sub>":
// {email, email_verified, name}}}. Sign-in is non-interactive: the account is the authorization
// request's `login_hint`, and consent to the asked scopes is given at once. Prints
// "ready <issuer>" once listening; stops on SIGTERM.
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";

import Provider from "oidc-provider";

const port = Number(process.argv[2]);
const config = JSON.parse(readFileSync(process.argv[3], "utf8"));
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-rs256", use: "sig", alg: "RS256" };

const accounts = config.accounts;

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_post",
    ...client,
  })),
  jwks: { keys: [jwk] },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name", "given_name", "family_name"] },
  // The ID token carries the claims itself (what Google, Apple and Facebook Limited Login do).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => false },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const account = accounts[sub];
    if (!account) return undefined;
    return { accountId: sub, async claims() { return { sub, ...account }; } };
  },
});
provider.proxy = false;

provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith("/interaction/")) {
    await next();
    return;
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const hint = details.params.login_hint;
  if (!hint || !accounts[hint]) {
    ctx.status = 400;
    ctx.body = { error: "unknown login_hint" };
    return;
  }
  const grant = new provider.Grant({ accountId: hint, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope || "openid"));
  const grantId = await grant.save();
  const result = { login: { accountId: hint }, consent: { grantId } };
  ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result));
});

const server = provider.listen(port, "127.0.0.1", () => {
  process.stdout.write(`ready ${issuer}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
