// An unmodified app using the Azure SDK for JavaScript: it reads one secret
// from a Keyward vault. internal/e2e/access_js_test.go runs it with
//
//   KEYWARD_MODE=secret  ClientSecretCredential (authorityHost, disableInstanceDiscovery)
//   KEYWARD_MODE=mi      ManagedIdentityCredential via IDENTITY_ENDPOINT/IDENTITY_HEADER
//   KEYWARD_MODE=dac     DefaultAzureCredential with nothing but environment variables
//
// Trust comes from NODE_EXTRA_CA_CERTS. The only stand-in is name
// resolution: *.localhost maps to 127.0.0.1, as an /etc/hosts line would.
"use strict";

const dns = require("dns");
const lookup = dns.lookup;
dns.lookup = function (hostname, options, callback) {
  if (typeof options === "function") {
    callback = options;
    options = {};
  }
  if (hostname === "localhost" || hostname.endsWith(".localhost")) {
    if (options && options.all) {
      return process.nextTick(callback, null, [{ address: "127.0.0.1", family: 4 }]);
    }
    return process.nextTick(callback, null, "127.0.0.1", 4);
  }
  return lookup.call(this, hostname, options, callback);
};

const { ClientSecretCredential, ManagedIdentityCredential, DefaultAzureCredential } = require("@azure/identity");
const { SecretClient } = require("@azure/keyvault-secrets");

async function main() {
  const env = process.env;
  let credential;
  switch (env.KEYWARD_MODE) {
    case "secret":
      credential = new ClientSecretCredential(env.KEYWARD_TENANT_ID, env.KEYWARD_CLIENT_ID, env.KEYWARD_CLIENT_SECRET, {
        authorityHost: env.KEYWARD_AUTHORITY_HOST,
        disableInstanceDiscovery: true,
      });
      break;
    case "mi":
      credential = new ManagedIdentityCredential({ clientId: env.KEYWARD_MI_CLIENT_ID });
      break;
    case "dac":
      credential = new DefaultAzureCredential();
      break;
    default:
      throw new Error("KEYWARD_MODE must be secret, mi or dac");
  }
  const client = new SecretClient(env.KEYWARD_VAULT_URL, credential);
  const secret = await client.getSecret(env.KEYWARD_SECRET_NAME || "s");
  console.log("secret=" + secret.value);
}

main().catch((err) => {
  console.error("ERROR", err && err.message ? err.message : err);
  process.exit(1);
});
