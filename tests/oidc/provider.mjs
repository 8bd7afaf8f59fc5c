// A real OpenID provider (oidc-provider) on 127.0.0.1, for PikoCI's single sign-on tests
// (tests/sso.rs). Not for production: it uses oidc-provider's development interactions (any
// login and password are accepted, then a consent page) and its development signing keys.
//
// Environment:
//   OIDC_PORT           the port to listen on, 0 for any free one; the issuer is
//                       http://127.0.0.1:PORT with the port listened on
//   OIDC_CLIENT_ID      the one client's id
//   OIDC_CLIENT_SECRET  its secret (accepted in the Authorization header, client_secret_basic,
//                       or in the form body, client_secret_post)
//   OIDC_REDIRECT_URIS  its redirect URIs, comma-separated
//
// Prints `oidc-provider listening on http://127.0.0.1:PORT` (the issuer) once it listens; exits
// on SIGTERM or SIGINT.

import { createServer } from 'node:http';

import Provider from 'oidc-provider';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.mjs: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const port = Number(required('OIDC_PORT'));
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`provider.mjs: OIDC_PORT is not a port: ${process.env.OIDC_PORT}`);
  process.exit(2);
}
const clientId = required('OIDC_CLIENT_ID');
const clientSecret = required('OIDC_CLIENT_SECRET');
const redirectUris = required('OIDC_REDIRECT_URIS')
  .split(',')
  .map((uri) => uri.trim())
  .filter(Boolean);

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      // A web client may register http:// redirect URIs (only implicit-flow clients must use
      // https). The registered method is basic, but oidc-provider accepts a client secret in
      // the form body (client_secret_post) from the same client: both are "a client secret".
      token_endpoint_auth_method: 'client_secret_basic',
      application_type: 'web',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: redirectUris,
    },
  ],
  // Every account exists: its id is the login typed in the development login form.
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: id,
          name: `User ${id}`,
          email: `${id}@example.com`,
        };
      },
    };
  },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
  },
  // PKCE: S256 is accepted by default (and only required of clients without a secret).
  features: {
    devInteractions: { enabled: true },
  },
  // Fixed keys: the cookies are signed, and the warning about missing keys stays away.
  cookies: { keys: ['pikoci-test-cookie-key'] },
};

// The issuer names the port, which is only known once listening (OIDC_PORT=0): the provider is
// made then, and answers the server's requests from then on.
const server = createServer();
server.on('error', (error) => {
  console.error(`provider.mjs: cannot listen on 127.0.0.1:${port}: ${error.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  // Errors answered to clients are the test's business; the provider's own are shown.
  provider.on('server_error', (_ctx, error) => console.error('oidc-provider server_error:', error));
  server.on('request', provider.callback());
  console.log(`oidc-provider listening on ${issuer}`);
});

function stop() {
  server.close(() => process.exit(0));
  // Browsers' keep-alive connections would hold close() open.
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
