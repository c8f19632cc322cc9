// A real OpenID Connect provider (npm `oidc-provider`, its development login and consent pages)
// for faultline's single sign-on tests.
//
//   node oidc_provider.mjs PORT REDIRECT_URI CLIENT_SECRET
//
// Serves the issuer http://127.0.0.1:PORT with one confidential client `faultline`. Any login
// name is accepted; the account's claims are sub = the name, email = NAME@example.test
// (verified) and name = "User NAME". Prints "ready ISSUER" once it listens.
import Provider from 'oidc-provider';

const [port, redirectUri, clientSecret] = process.argv.slice(2);
if (!port || !redirectUri || !clientSecret) {
  console.error('usage: node oidc_provider.mjs PORT REDIRECT_URI CLIENT_SECRET');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'faultline',
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // ID tokens carry the claims themselves, not only the userinfo endpoint
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true, name: `User ${id}` };
      },
    };
  },
  cookies: { keys: ['faultline-test-only-cookie-key'] },
});
provider.proxy = false;

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
