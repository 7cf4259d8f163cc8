// A relying party written with openid-client's defaults: discovery, the
// authorization code flow with PKCE and no state (openid-client's default,
// RFC 9700 §2.1.1), the ID token's checks (and RFC 9207's iss), userinfo and
// a refresh, then the logout URL it builds from discovery
// (RP-Initiated Logout 1.0). It prints the authorization URL, reads the URL the browser was
// sent back to on stdin, and prints what it got as JSON.
import * as client from 'openid-client';
import * as readline from 'node:readline';

const issuer = new URL(process.env.ISSUER);
const redirectURI = process.env.REDIRECT_URI;
// The test issuer is plain http on a loopback address; OAuth requires TLS
// (RFC 6749 §3.1), so openid-client needs to be told. Nothing else is set.
const config = await client.discovery(issuer, 'node-app', undefined, client.None(), { execute: [client.allowInsecureRequests] });
const verifier = client.randomPKCECodeVerifier();
const challenge = await client.calculatePKCECodeChallenge(verifier);
const url = client.buildAuthorizationUrl(config, { redirect_uri: redirectURI, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' });
console.log(url.href);

const lines = readline.createInterface({ input: process.stdin });
const callback = await new Promise(resolve => lines.once('line', resolve));
lines.close();
const result = {};
try {
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: verifier, idTokenExpected: true });
  const claims = tokens.claims();
  result.sub = claims.sub;
  const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  result.userinfoSub = info.sub;
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  result.refreshedSub = refreshed.claims()?.sub;
  result.endSession = Boolean(config.serverMetadata().end_session_endpoint);
  result.logoutURL = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token, post_logout_redirect_uri: process.env.POST_LOGOUT_REDIRECT_URI, state: 'signed-out-state',
  }).href;
} catch (error) {
  result.error = `${error.name}: ${error.message} ${error.code ?? ''} ${JSON.stringify(error.cause ?? '')}`;
}
console.log(JSON.stringify(result));
