# The unmodified Azure SDK for Python (Debian bookworm's python3-azure)
# against a Keyward dev server. internal/e2e/python_test.go starts the
# server, creates the principals, and runs
#
#   /usr/bin/python3 clients.py CONFIG.json RESULTS.json
#
# with REQUESTS_CA_BUNDLE naming the dev CA. Every case prints one line and
# adds {"client","version","feature","ok","detail"} to RESULTS.json; the Go
# test fails on any case that is not ok, and docs/CLIENTS.md is rendered
# from the results. The only stand-in is name resolution (see
# site/sitecustomize.py).
import json
import os
import sys
import traceback
import uuid

import azure.core
import azure.identity
import azure.keyvault.certificates
import azure.keyvault.keys
import azure.keyvault.secrets
from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.certificates import CertificateClient, CertificatePolicy, KeyVaultCertificate
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, EncryptionAlgorithm, KeyWrapAlgorithm, SignatureAlgorithm
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

cfg = json.load(open(sys.argv[1]))
results = []


def version_of(mod):
    return getattr(mod, "__version__", None) or mod._version.VERSION


def case(client, version, feature):
    def wrap(fn):
        try:
            detail = fn() or ""
            ok = True
        except Exception as e:  # recorded, and fails the Go test
            ok = False
            lines = [l for l in str(e).strip().splitlines() if l.strip()]
            detail = "%s: %s" % (type(e).__name__, lines[0][:300] if lines else "")
            traceback.print_exc(file=sys.stderr)
        results.append({"client": client, "version": version, "feature": feature, "ok": ok, "detail": detail})
        print("%s %s | %s | %s" % ("PASS" if ok else "FAIL", client, feature, detail), flush=True)
        return fn
    return wrap


def uniq(prefix):
    return prefix + "-" + uuid.uuid4().hex[:8]


IDENTITY = "azure-identity " + version_of(azure.identity)
SECRETS = "azure-keyvault-secrets " + version_of(azure.keyvault.secrets)
KEYS = "azure-keyvault-keys " + version_of(azure.keyvault.keys)
CERTS = "azure-keyvault-certificates " + version_of(azure.keyvault.certificates)

vault = cfg["vault_url"]
env_for_mi = {"IDENTITY_ENDPOINT": cfg["mi_endpoint"], "IDENTITY_HEADER": cfg["mi_header"]}
env_for_sp = {"AZURE_TENANT_ID": cfg["tenant_id"], "AZURE_CLIENT_ID": cfg["client_id"],
              "AZURE_CLIENT_SECRET": cfg["client_secret"], "AZURE_AUTHORITY_HOST": cfg["authority_host"]}


def with_env(env, fn):
    saved = {k: os.environ.get(k) for k in list(env_for_mi) + list(env_for_sp)}
    for k in saved:
        os.environ.pop(k, None)
    os.environ.update(env)
    try:
        return fn()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# Instance discovery off (IDENTITY.md §0.2): instance_discovery=False in
# azure-identity 1.13.0b2 (Debian bookworm), disable_instance_discovery=True
# from 1.13.0 on.
def _no_discovery():
    import inspect
    from azure.identity._internal.msal_credentials import MsalCredential
    if "disable_instance_discovery" in inspect.signature(MsalCredential.__init__).parameters:
        return {"disable_instance_discovery": True}
    return {"instance_discovery": False}


NO_DISCOVERY = _no_discovery()
sp = ClientSecretCredential(cfg["tenant_id"], cfg["client_id"], cfg["client_secret"],
                            authority=cfg["authority_host"], **NO_DISCOVERY)


def read_s(cred):
    v = SecretClient(vault, cred).get_secret("s").value
    if v != "v":
        raise AssertionError("secret s = %r" % v)


@case("Python", IDENTITY, "ClientSecretCredential (authority, instance discovery off)")
def _():
    read_s(sp)
    return "%s=%s" % next(iter(NO_DISCOVERY.items()))


@case("Python", IDENTITY, "DefaultAzureCredential: AZURE_TENANT_ID/CLIENT_ID/CLIENT_SECRET/AUTHORITY_HOST")
def _():
    with_env(env_for_sp, lambda: read_s(DefaultAzureCredential(**NO_DISCOVERY)))


@case("Python", IDENTITY, "ManagedIdentityCredential: IDENTITY_ENDPOINT/IDENTITY_HEADER")
def _():
    with_env(env_for_mi, lambda: read_s(ManagedIdentityCredential(client_id=cfg["mi_client_id"])))


@case("Python", IDENTITY, "DefaultAzureCredential: IDENTITY_ENDPOINT/IDENTITY_HEADER only")
def _():
    with_env(env_for_mi, lambda: read_s(DefaultAzureCredential()))


def secrets_roundtrip(api_version):
    kw = {"api_version": api_version} if api_version else {}
    c = SecretClient(vault, sp, **kw)
    name = uniq("py-secret")
    s = c.set_secret(name, "hello", content_type="text/plain", tags={"a": "b"})
    if c.get_secret(name).value != "hello" or s.properties.content_type != "text/plain":
        raise AssertionError("get after set")
    c.set_secret(name, "hello2")
    versions = list(c.list_properties_of_secret_versions(name))
    if len(versions) != 2:
        raise AssertionError("%d versions" % len(versions))
    c.update_secret_properties(name, s.properties.version, enabled=False)
    if name not in [p.name for p in c.list_properties_of_secrets()]:
        raise AssertionError("not listed")
    deleted = c.begin_delete_secret(name).result()
    if deleted.name != name or not deleted.recovery_id:
        raise AssertionError("delete result %r" % deleted)
    c.purge_deleted_secret(name)
    return "api-version %s: set, get, versions, update, list, delete (sync poller), purge" % c.api_version


@case("Python", SECRETS, "secrets, default api-version")
def _():
    return secrets_roundtrip(None)


for v in ("7.0", "2016-10-01"):
    case("Python", SECRETS, "secrets, api-version " + v)(lambda v=v: secrets_roundtrip(v))


keys = KeyClient(vault, sp)


@case("Python", KEYS, "keys, default api-version")
def _():
    name = uniq("py-key")
    k = keys.create_rsa_key(name, size=2048)
    keys.create_ec_key(name + "-ec", curve="P-256")
    if keys.get_key(name).id != k.id:
        raise AssertionError("get")
    names = [p.name for p in keys.list_properties_of_keys()]
    if name not in names:
        raise AssertionError("not listed")
    keys.update_key_properties(name, tags={"t": "1"})
    rotated = keys.begin_delete_key(name + "-ec").result()
    if not rotated.recovery_id:
        raise AssertionError("delete")
    return "api-version %s: create RSA and EC, get, list, update, delete (sync poller)" % keys.api_version


@case("Python", KEYS, "crypto verified locally with cryptography")
def _():
    name = uniq("py-crypto")
    rsa_key = keys.create_rsa_key(name, size=2048)
    cc = CryptographyClient(rsa_key, sp)
    pub = rsa.RSAPublicNumbers(int.from_bytes(rsa_key.key.e, "big"), int.from_bytes(rsa_key.key.n, "big")).public_key()
    # Encrypt here, decrypt in the vault.
    ct = pub.encrypt(b"plaintext", padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    if cc.decrypt(EncryptionAlgorithm.rsa_oaep_256, ct).plaintext != b"plaintext":
        raise AssertionError("decrypt")
    # Sign in the vault, verify here.
    h = hashes.Hash(hashes.SHA256())
    h.update(b"message")
    digest = h.finalize()
    sig = cc.sign(SignatureAlgorithm.ps256, digest).signature
    pub.verify(sig, b"message", padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    wrapped = cc.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32)
    if cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key != b"k" * 32:
        raise AssertionError("unwrap")
    ec_key = keys.create_ec_key(name + "-ec", curve="P-256")
    ecc = CryptographyClient(ec_key, sp)
    sig = ecc.sign(SignatureAlgorithm.es256, digest).signature
    x, y = int.from_bytes(ec_key.key.x, "big"), int.from_bytes(ec_key.key.y, "big")
    ec_pub = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    ec_pub.verify(encode_dss_signature(r, s), b"message", ec.ECDSA(hashes.SHA256()))
    return "RSA-OAEP-256 decrypt, PS256 sign, RSA-OAEP-256 wrap/unwrap, ES256 sign"


@case("Python", CERTS, "certificates, synchronous pollers")
def _():
    c = CertificateClient(vault, sp)
    name = uniq("py-cert")
    cert = c.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    if not isinstance(cert, KeyVaultCertificate) or not cert.cer:
        raise AssertionError("begin_create_certificate(...).result() returned %r" % (cert,))
    if c.get_certificate(name).id != cert.id:
        raise AssertionError("get")
    op = c.get_certificate_operation(name)
    if op.status.lower() != "completed":
        raise AssertionError("operation status %s" % op.status)
    deleted = c.begin_delete_certificate(name).result()
    if not deleted.recovery_id:
        raise AssertionError("delete")
    return "api-version %s: begin_create_certificate().result(), get, operation, delete (sync poller)" % c.api_version


try:
    import azure.mgmt.keyvault
    from azure.mgmt.keyvault import KeyVaultManagementClient
    MGMT = "azure-mgmt-keyvault " + version_of(azure.mgmt.keyvault)
except ImportError as e:
    MGMT = "azure-mgmt-keyvault (missing)"
    KeyVaultManagementClient = None


@case("Python", MGMT, "management: vaults get, list_by_resource_group, list")
def _():
    if KeyVaultManagementClient is None:
        raise ImportError("azure.mgmt.keyvault is not installed")
    m = KeyVaultManagementClient(sp, cfg["subscription_id"], base_url=cfg["management_url"],
                                 credential_scopes=[cfg["management_resource"].rstrip("/") + "/.default"])
    v = m.vaults.get(cfg["resource_group"], cfg["vault_name"])
    if v.name != cfg["vault_name"] or not v.properties.vault_uri:
        raise AssertionError("get %r" % v)
    in_rg = [x.name for x in m.vaults.list_by_resource_group(cfg["resource_group"])]
    everywhere = [x.name for x in m.vaults.list()]
    if cfg["vault_name"] not in in_rg or cfg["vault_name"] not in everywhere:
        raise AssertionError("list: %r %r" % (in_rg, everywhere))
    return "api-version %s (vaults.list: %s)" % (KeyVaultManagementClient.DEFAULT_API_VERSION, "resources 2015-11-01")


json.dump({"python": sys.version.split()[0], "azure-core": azure.core.__version__, "results": results},
          open(sys.argv[2], "w"), indent=1)
sys.exit(0 if all(r["ok"] for r in results) else 1)
