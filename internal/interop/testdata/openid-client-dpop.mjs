// A service written with openid-client's DPoP support (RFC 9449), none of
// Chit's code: client credentials with a DPoP key pair openid-client makes,
// then a call to a protected resource (Chit's REST CheckToken) with the
// DPoP-bound token and a fresh proof, and the same call replayed as a
// plain bearer token. openid-client answers the server's use_dpop_nonce by
// itself. It prints what it got as JSON.
import * as client from 'openid-client';

const issuer = new URL(process.env.ISSUER);
const result = {};
try {
  // The test issuer is plain http on a loopback address; OAuth requires TLS
  // (RFC 6749 §3.1), so openid-client needs to be told. Nothing else is set.
  const config = await client.discovery(issuer, process.env.CLIENT_ID, process.env.CLIENT_SECRET, undefined,
    { execute: [client.allowInsecureRequests] });
  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
  result.algorithms = config.serverMetadata().dpop_signing_alg_values_supported;
  const tokens = await client.clientCredentialsGrant(config, {}, { DPoP });
  result.tokenType = tokens.token_type;
  const check = new URL('/v1/auth/check', issuer);
  const call = async () => {
    try {
      return await client.fetchProtectedResource(config, tokens.access_token, check, 'GET', undefined, undefined, { DPoP });
    } catch (error) {
      // A resource server's use_dpop_nonce is the caller's to retry: the
      // handle has learned the nonce by now.
      if (error?.code === 'OAUTH_WWW_AUTHENTICATE_CHALLENGE' || error instanceof client.ResponseBodyError) {
        return await client.fetchProtectedResource(config, tokens.access_token, check, 'GET', undefined, undefined, { DPoP });
      }
      throw error;
    }
  };
  const checked = await call();
  result.checkStatus = checked.status;
  result.subject = (await checked.json()).subject;
  const bearer = await fetch(check, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  result.bearerStatus = bearer.status;
  result.bearerChallenge = bearer.headers.get('www-authenticate');
} catch (error) {
  result.error = `${error.name}: ${error.message} ${error.code ?? ''} ${JSON.stringify(error.cause ?? '')}`;
}
console.log(JSON.stringify(result));
