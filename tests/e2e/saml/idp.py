"""A real SimpleSAMLphp identity provider on loopback: its configuration and the commands that run it.

Debian's ``simplesamlphp`` (1.19) behind nginx with TLS and php-fpm 8.2, every file in a throwaway
folder: ``php -S`` has no TLS, and init scripts are blocked on these machines, so nginx and
php-fpm run in the foreground with their own configuration (``daemon off``, ``-F``) and are
stopped by pid like every other rig process. SimpleSAMLphp finds its configuration through
``SIMPLESAMLPHP_CONFIG_DIR`` (set in the php-fpm pool).

Nothing here knows pytest; ``conftest.py`` wires it into fixtures.
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

SSP_WWW = Path("/usr/share/simplesamlphp/www")
PHP_FPM_CANDIDATES = ("php-fpm8.2", "php-fpm")
NGINX = "/usr/sbin/nginx"

# Static test users of the exampleauth:UserPass source (test-only credentials).
USERS = {
    "alice": {
        "password": "alice-pass",
        "uid": "alice",
        "mail": "alice@saml-idp.test",
        "eduPersonAffiliation": "member",
    },
}


def php_fpm() -> str | None:
    for name in PHP_FPM_CANDIDATES:
        for folder in ("/usr/sbin", "/usr/bin"):
            path = Path(folder) / name
            if path.exists():
                return str(path)
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class SpRegistration:
    """One service provider entity as the IdP knows it (saml20-sp-remote.php)."""

    entity_id: str
    acs_url: str
    assertion_lifetime: int | None = None  # seconds; None = the IdP's default (300)


@dataclass(frozen=True)
class IdpFiles:
    root: Path
    config_dir: Path
    nginx_conf: Path
    fpm_conf: Path
    fpm_socket: Path
    base_url: str  # https://saml-idp.test:PORT/simplesaml/
    entity_id: str  # .../saml2/idp/metadata.php
    metadata_url: str
    sso_url: str


def _php(value: object) -> str:
    """A Python value as a PHP literal (strings, ints, bools, None, lists, dicts)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_php(v) for v in value) + "]"
    if isinstance(value, dict):
        return "[" + ", ".join(f"{_php(k)} => {_php(v)}" for k, v in value.items()) + "]"
    raise TypeError(f"no PHP literal for {type(value).__name__}")


def cert_body(pem: bytes) -> str:
    """The base64 DER of a PEM certificate: the form SAML metadata (certData) holds."""
    cert = x509.load_pem_x509_certificate(pem)
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def write_idp(
    root: Path,
    *,
    host: str,
    port: int,
    tls_cert: Path,
    tls_key: Path,
    signing_cert: Path,
    signing_key: Path,
    sps: list[SpRegistration],
    sp_cert_pem: bytes,
    secret_salt: str,
) -> IdpFiles:
    """Write SimpleSAMLphp's config, metadata and users, nginx's and php-fpm's configuration under root."""
    config_dir, metadata_dir = root / "config", root / "metadata"
    for d in (config_dir, metadata_dir, root / "cert", root / "log", root / "data", root / "tmp", root / "sessions",
              root / "nginx"):  # fmt: skip
        d.mkdir(parents=True, exist_ok=True)
    shutil.copy(signing_cert, root / "cert" / "idp.crt")
    shutil.copy(signing_key, root / "cert" / "idp.key")
    base_url = f"https://{host}:{port}/simplesaml/"
    config = {
        "baseurlpath": base_url,
        "certdir": f"{root / 'cert'}/",
        "loggingdir": f"{root / 'log'}/",
        "datadir": f"{root / 'data'}/",
        "tempdir": str(root / "tmp"),
        "metadatadir": f"{metadata_dir}/",
        "attributenamemapdir": "/etc/simplesamlphp/attributemap/",
        "technicalcontact_name": "authtrace e2e",
        "technicalcontact_email": "e2e@saml-idp.test",
        "secretsalt": secret_salt,
        "auth.adminpassword": secret_salt[::-1],
        "admin.protectindexpage": False,
        "admin.protectmetadata": False,
        "admin.checkforupdates": False,
        "timezone": "UTC",
        "enable.saml20-idp": True,
        "enable.shib13-idp": False,
        "module.enable": {"exampleauth": True, "core": True, "saml": True},
        "store.type": "phpsession",
        "session.phpsession.savepath": str(root / "sessions"),
        "session.cookie.secure": True,
        "session.cookie.samesite": "None",
        "logging.handler": "stderr",
        "showerrors": True,
        "errorreporting": False,
        "production": False,
        "language.available": ["en"],
        "language.default": "en",
        "trusted.url.domains": [host],
    }
    (config_dir / "config.php").write_text(
        "<?php\n$config = " + _php(config) + ";\n$config['logging.level'] = SimpleSAML\\Logger::INFO;\n"
    )
    users = {f"{u}:{v['password']}": {k: [a] for k, a in v.items() if k != "password"} for u, v in USERS.items()}
    userpass: dict[object, object] = {0: "exampleauth:UserPass"}
    userpass.update(users)
    sources = {"admin": ["core:AdminPassword"], "example-userpass": userpass}
    (config_dir / "authsources.php").write_text("<?php\n$config = " + _php(sources) + ";\n")
    hosted = {
        "host": "__DEFAULT__",
        "privatekey": "idp.key",
        "certificate": "idp.crt",
        "auth": "example-userpass",
        "signature.algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "saml20.sign.response": True,
        "saml20.sign.assertion": True,
    }
    (metadata_dir / "saml20-idp-hosted.php").write_text("<?php\n$metadata['__DYNAMIC:1__'] = " + _php(hosted) + ";\n")
    remote = []
    for sp in sps:
        entry: dict[str, object] = {
            "AssertionConsumerService": [
                {"Binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", "Location": sp.acs_url, "index": 0}
            ],
            "certData": cert_body(sp_cert_pem),
            "validate.authnrequest": True,  # the SP signs its requests (redirect binding query signature)
            "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
        }
        if sp.assertion_lifetime is not None:
            entry["assertion.lifetime"] = sp.assertion_lifetime
        remote.append(f"$metadata[{_php(sp.entity_id)}] = {_php(entry)};")
    (metadata_dir / "saml20-sp-remote.php").write_text("<?php\n" + "\n".join(remote) + "\n")

    socket_path = root / "php-fpm.sock"
    fpm_conf = root / "php-fpm.conf"
    fpm_conf.write_text(f"""[global]
pid = {root / "php-fpm.pid"}
error_log = /proc/self/fd/2
daemonize = no
log_level = notice

[ssp]
listen = {socket_path}
listen.mode = 0600
pm = static
pm.max_children = 3
clear_env = yes
catch_workers_output = yes
decorate_workers_output = no
env[SIMPLESAMLPHP_CONFIG_DIR] = {config_dir}
env[TZ] = UTC
php_admin_value[error_log] = /proc/self/fd/2
php_admin_flag[log_errors] = on
php_admin_value[session.save_path] = {root / "sessions"}
""")
    nginx_conf = root / "nginx.conf"
    tmp = root / "nginx"
    nginx_conf.write_text(f"""user root;
worker_processes 1;
daemon off;
master_process on;
pid {root / "nginx.pid"};
error_log /dev/stderr warn;
events {{ worker_connections 128; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {root / "log" / "access.log"};
    client_body_temp_path {tmp}/client;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {host};
        ssl_certificate {tls_cert};
        ssl_certificate_key {tls_key};
        location ^~ /simplesaml/ {{
            alias {SSP_WWW}/;
            index index.php;
            location ~ ^(?<prefix>/simplesaml)(?<phpfile>.+?\\.php)(?<pathinfo>/.*)?$ {{
                include /etc/nginx/fastcgi_params;
                fastcgi_pass unix:{socket_path};
                fastcgi_param SCRIPT_FILENAME {SSP_WWW}$phpfile;
                fastcgi_param SCRIPT_NAME /simplesaml$phpfile;
                fastcgi_param PATH_INFO $pathinfo if_not_empty;
                fastcgi_param HTTPS on;
            }}
        }}
    }}
}}
""")
    return IdpFiles(
        root=root, config_dir=config_dir, nginx_conf=nginx_conf, fpm_conf=fpm_conf, fpm_socket=socket_path,
        base_url=base_url, entity_id=f"{base_url}saml2/idp/metadata.php",
        metadata_url=f"{base_url}saml2/idp/metadata.php", sso_url=f"{base_url}saml2/idp/SSOService.php",
    )  # fmt: skip


def nginx_command(files: IdpFiles) -> list[str]:
    return [NGINX, "-c", str(files.nginx_conf), "-p", str(files.root), "-e", "/dev/stderr"]


def fpm_command(files: IdpFiles, fpm: str) -> list[str]:
    # -F: foreground; -R: allow root (these machines run tests as root; the pool has no user= then)
    return [fpm, "-F", "-R", "-y", str(files.fpm_conf)]
