"""The local certificate authority (issue 19, point 1): permissions, a real TLS handshake with
the issued certificates, atomic rotation."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509

from vitalwatch.infra.tls import Identity, LocalCA

IDS = [Identity("kafka", server=True), Identity("pipeline", server=False)]


def _mode(p) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_keys_are_private_and_directories_closed(tmp_path) -> None:
    ca = LocalCA(tmp_path / "tls", IDS)
    assert ca.ensure() is True
    assert (tmp_path / "tls").is_symlink()
    gen = (tmp_path / "tls").resolve()
    assert _mode(gen) == 0o700 and _mode(gen.parent) == 0o700
    for n in ("ca", "kafka", "pipeline"):
        assert _mode(ca.path(n, "key")) == 0o600
    assert _mode(ca.path("kafka", "pem")) == 0o600
    assert ca.ensure() is False  # complete and far from expiry: left alone


def _handshake(ca: LocalCA, server: str, client: str | None, hostname: str = "localhost") -> str:
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(ca.path(server), ca.path(server, "key"))
    srv.load_verify_locations(ca.path("ca"))
    srv.verify_mode = ssl.CERT_REQUIRED
    cli = ssl.create_default_context(cafile=str(ca.path("ca")))
    if client:
        cli.load_cert_chain(ca.path(client), ca.path(client, "key"))
    lsock = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, object] = {}

    def serve() -> None:
        conn, _ = lsock.accept()
        try:
            with srv.wrap_socket(conn, server_side=True) as s:
                seen["peer"] = s.getpeercert()
                s.sendall(b"ok")
        except ssl.SSLError as e:
            seen["error"] = e

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with socket.create_connection(lsock.getsockname()) as raw, cli.wrap_socket(raw, server_hostname=hostname) as s:
        s.recv(2)
    t.join(5)
    lsock.close()
    return dict(x[0] for x in seen["peer"]["subject"])["commonName"]


def test_a_client_certificate_and_the_servers_name_verify_against_the_ca(tmp_path) -> None:
    ca = LocalCA(tmp_path / "tls", IDS)
    ca.ensure()
    assert _handshake(ca, "kafka", "pipeline") == "pipeline"
    assert _handshake(ca, "kafka", "pipeline", hostname="127.0.0.1") == "pipeline"
    with pytest.raises(ssl.SSLCertVerificationError):  # not a name the server certificate holds
        _handshake(ca, "kafka", "pipeline", hostname="example.org")
    # a client certificate is not a server certificate
    assert x509.ExtendedKeyUsageOID.SERVER_AUTH not in x509.load_pem_x509_certificate(
        ca.path("pipeline").read_bytes()).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value


def test_rotation_renews_leaves_keeps_the_ca_and_swaps_the_set_at_once(tmp_path) -> None:
    ca = LocalCA(tmp_path / "tls", IDS)
    ca.ensure()
    before = {n: ca.path(n).read_bytes() for n in ("ca", "kafka", "pipeline")}
    first = (tmp_path / "tls").resolve()
    ca.rotate()
    assert (tmp_path / "tls").resolve() != first
    assert ca.path("ca").read_bytes() == before["ca"]  # clients that trust the CA keep working
    assert all(ca.path(n).read_bytes() != before[n] for n in ("kafka", "pipeline"))
    assert _handshake(ca, "kafka", "pipeline") == "pipeline"
    ca.rotate(renew_ca=True)
    assert ca.path("ca").read_bytes() != before["ca"]
    assert len(list(ca.generations.iterdir())) == 2  # the current set and the one before


def test_an_expiring_set_is_renewed(tmp_path) -> None:
    ca = LocalCA(tmp_path / "tls", IDS, cert_days=10, renew_before_days=30)
    assert ca.ensure() is True
    assert ca.ensure() is True  # 10 days left < 30: renewed on every check until it is not
    ok = LocalCA(tmp_path / "tls", IDS, cert_days=365, renew_before_days=30)
    ok.ensure()
    assert ok.ensure(now=dt.datetime.now(dt.UTC)) is False


def test_a_failed_generation_leaves_the_published_one(tmp_path, monkeypatch) -> None:
    import vitalwatch.infra.tls as tls

    ca = LocalCA(tmp_path / "tls", IDS)
    ca.ensure()
    published = (tmp_path / "tls").resolve()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(tls, "issue", boom)
    with pytest.raises(OSError):
        ca.rotate()
    assert (tmp_path / "tls").resolve() == published
    assert not [p for p in ca.generations.iterdir() if p.name.endswith(".partial")]
