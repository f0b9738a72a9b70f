"""The local certificate authority: a CA and the certificates every server and client uses for
TLS, under ``<infra.work_dir>/tls/`` (``vitalwatch infra up`` creates them; ``vitalwatch infra
certs --rotate`` renews them). Compose mounts the same layout.

Layout (directories 0700, keys 0600)::

    tls/ -> tls.d/<generation>/      a symlink, swapped atomically on rotation
        ca.crt  ca.key               the CA (kept on rotation unless it is renewed too)
        <name>.crt <name>.key        each server (kafka, mongo, elasticsearch, dashboard, api)
        <name>.pem                     and client (pipeline, notifier, device, …): cert + key,
                                       the form mongod and MongoDB clients read

A generation is written whole into a fresh directory and only then published by replacing the
symlink (``rename(2)``), so a reader sees the old set or the new one, never half of either.
Keys are ECDSA P-256 in unencrypted PKCS#8 (what Kafka's PEM key store and mongod read); they
never leave the directory, and nothing here logs them."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

GENERATIONS = "tls.d"
KEEP_GENERATIONS = 2  # the current one and the one before (readers still holding old paths)


@dataclass(frozen=True)
class Identity:
    """One certificate: a server (``hosts`` as subject alternative names) or a client."""

    name: str
    server: bool
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1")


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vitalwatch"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(days: int, now: dt.datetime):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _key()
    name = _name("vitalwatch local CA")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue(ca_key, ca_cert, ident: Identity, days: int, now: dt.datetime):
    """A leaf certificate for ``ident`` signed by the CA: serverAuth with the hosts as SANs, or
    clientAuth with the name as CN (the principal Kafka and MongoDB see)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = _key()
    b = (x509.CertificateBuilder().subject_name(_name(ident.name)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                                              if ident.server else [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if ident.server:
        sans: list[x509.GeneralName] = []
        for h in ident.hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


class LocalCA:
    """The certificates under ``root`` (``<infra.work_dir>/tls``); see the module doc."""

    def __init__(self, root: Path, identities: list[Identity], *, ca_days: int = 1825,
                 cert_days: int = 365, renew_before_days: int = 30) -> None:
        self.root, self.identities = root, identities
        self.ca_days, self.cert_days, self.renew_before_days = ca_days, cert_days, renew_before_days

    @property
    def generations(self) -> Path:
        return self.root.parent / GENERATIONS

    def path(self, name: str, ext: str = "crt") -> Path:
        return self.root / f"{name}.{ext}"

    def ensure(self, now: dt.datetime | None = None) -> bool:
        """Create the set if it is missing, incomplete or expiring; True if it wrote one."""
        now = now or dt.datetime.now(dt.UTC)
        if self._complete() and not self._expiring(now):
            return False
        self.rotate(renew_ca=not self._ca_usable(now), now=now)
        return True

    def rotate(self, *, renew_ca: bool = False, now: dt.datetime | None = None) -> Path:
        """Write a new generation (new leaf keys and certificates; the CA too with ``renew_ca``
        or when there is none) and publish it; returns its directory."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        now = now or dt.datetime.now(dt.UTC)
        self.generations.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.generations, 0o700)
        gen = self.generations / f"{now:%Y%m%dT%H%M%S%f}"
        tmp = gen.with_name(gen.name + ".partial")
        tmp.mkdir(mode=0o700)
        try:
            if renew_ca or not self._ca_usable(now):
                ca_key, ca_cert = make_ca(self.ca_days, now)
            else:
                ca_key = serialization.load_pem_private_key(self.path("ca", "key").read_bytes(), None)
                ca_cert = x509.load_pem_x509_certificate(self.path("ca").read_bytes())
            _write(tmp / "ca.crt", _pem_cert(ca_cert), 0o644)
            _write(tmp / "ca.key", _pem_key(ca_key), 0o600)
            for ident in self.identities:
                key, cert = issue(ca_key, ca_cert, ident, self.cert_days, now)
                _write(tmp / f"{ident.name}.crt", _pem_cert(cert), 0o644)
                _write(tmp / f"{ident.name}.key", _pem_key(key), 0o600)
                _write(tmp / f"{ident.name}.pem", _pem_cert(cert) + _pem_key(key), 0o600)
            tmp.rename(gen)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        link = self.root.with_name(self.root.name + ".new-link")
        link.unlink(missing_ok=True)
        link.symlink_to(Path(GENERATIONS) / gen.name)
        if self.root.exists() and not self.root.is_symlink():
            raise FileExistsError(f"{self.root} is not the certificate symlink; move it away")
        os.replace(link, self.root)
        self._prune(keep=gen)
        return gen

    def _prune(self, keep: Path) -> None:
        gens = sorted(p for p in self.generations.iterdir() if p.is_dir() and not p.name.endswith(".partial"))
        for old in gens[:-KEEP_GENERATIONS]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)

    def _complete(self) -> bool:
        return self.root.is_symlink() and all(
            self.path(n, e).exists() for n in ["ca", *(i.name for i in self.identities)] for e in ("crt", "key"))

    def _not_after(self, name: str) -> dt.datetime:
        from cryptography import x509

        return x509.load_pem_x509_certificate(self.path(name).read_bytes()).not_valid_after_utc

    def _ca_usable(self, now: dt.datetime) -> bool:
        try:
            return self._not_after("ca") - now > dt.timedelta(days=self.renew_before_days)
        except (FileNotFoundError, ValueError):
            return False

    def _expiring(self, now: dt.datetime) -> bool:
        soon = now + dt.timedelta(days=self.renew_before_days)
        return any(self._not_after(n) <= soon for n in ["ca", *(i.name for i in self.identities)])

    def expiry(self) -> dict[str, str]:
        """Each certificate's notAfter (for ``infra status``)."""
        return {n: f"{self._not_after(n):%Y-%m-%d}" for n in ["ca", *(i.name for i in self.identities)]
                if self.path(n).exists()}


def java_home() -> Path:
    """The JDK Spark launches: ``$JAVA_HOME``, else the one ``java`` on the path belongs to."""
    if home := os.environ.get("JAVA_HOME"):
        return Path(home)
    java = shutil.which("java")
    if not java:
        raise FileNotFoundError("no JDK: set JAVA_HOME or put java on the path")
    return Path(os.path.realpath(java)).parent.parent


def java_truststore(ca_file: Path, dest_dir: Path) -> Path:
    """A JKS trust store of the JDK's CAs (``lib/security/cacerts``) plus ``ca_file``, for a JVM's
    ``javax.net.ssl.trustStore``: the JVM keeps trusting the public CAs (Spark fetches its
    connectors from Maven Central over HTTPS) and also trusts our servers. Named by the digest of
    both inputs, so a rotated CA or an updated JDK gets a new store; written atomically, reused
    while current. The store holds public certificates only: its password (random, never
    written anywhere) guards integrity, and the JVM opens a JKS store without one."""
    import hashlib
    import secrets
    import subprocess
    import tempfile

    home = java_home()
    cacerts = home / "lib" / "security" / "cacerts"
    keytool = home / "bin" / "keytool"
    ca = Path(ca_file).read_bytes()
    digest = hashlib.sha256(ca + b"\0" + cacerts.read_bytes()).hexdigest()[:16]
    store = dest_dir / f"truststore-{digest}.jks"
    if store.is_file():
        return store
    dest_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VW_STORE_PASS": secrets.token_urlsafe(18), "VW_SRC_PASS": "changeit"}
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        part = Path(tmp) / store.name
        for argv in ([str(keytool), "-importkeystore", "-noprompt", "-srckeystore", str(cacerts),
                      "-srcstorepass:env", "VW_SRC_PASS", "-destkeystore", str(part), "-deststoretype", "JKS",
                      "-deststorepass:env", "VW_STORE_PASS"],
                     [str(keytool), "-importcert", "-noprompt", "-alias", "vitalwatch-local-ca", "-file", str(ca_file),
                      "-keystore", str(part), "-storetype", "JKS", "-storepass:env", "VW_STORE_PASS"]):
            out = subprocess.run(argv, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"building the Java trust store {store} failed: {out.stdout}{out.stderr}")
        os.chmod(part, 0o644)
        os.replace(part, store)
    return store
