"""TLS, mutual TLS, the public and the internal token, and the refusal to listen openly without a
token: real in-process pool servers on loopback, certificates made at test time."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lesslabels.cli import datasets as cli_datasets
from lesslabels.cli import stack as cli_stack
from lesslabels.client import ClientTLS, PermissionDenied, PoolClient, Unauthenticated, Unavailable
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.common import errors, probe
from lesslabels.common.config import add_server_flags, server_settings
from lesslabels.pool import main as pool_main
from tests.helpers import server_settings_for_tests


@dataclasses.dataclass(frozen=True)
class Certificates:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str  # a CA that signed nothing here


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, key, issuer, issuer_key, *, ca=False, san=None, usage=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: pathlib.Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    folder = tmp_path_factory.mktemp("certs")
    ca_key, other_key = _key(), _key()
    ca = _certificate(_name("test CA"), ca_key, _name("test CA"), ca_key, ca=True)
    other = _certificate(_name("other CA"), other_key, _name("other CA"), other_key, ca=True)
    server_key, client_key = _key(), _key()
    server = _certificate(
        _name("localhost"),
        server_key,
        ca.subject,
        ca_key,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client = _certificate(_name("a client"), client_key, ca.subject, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return Certificates(
        ca=_write(folder, "ca.pem", _pem(ca)),
        server_cert=_write(folder, "server.pem", _pem(server)),
        server_key=_write(folder, "server.key", _key_pem(server_key)),
        client_cert=_write(folder, "client.pem", _pem(client)),
        client_key=_write(folder, "client.key", _key_pem(client_key)),
        other_ca=_write(folder, "other-ca.pem", _pem(other)),
    )


@pytest.fixture
def start_pool(tmp_path):
    """Start a pool server with the given settings; returns its address (stopped after the test)."""
    servers = []

    def start(**settings) -> str:
        server = pool_main.build_server(
            server_settings_for_tests(**settings), f"sqlite:///{tmp_path}/pool-{len(servers)}.db"
        )
        servers.append(server)
        port = server.start()
        server.set_serving()
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)


def _list(address: str, **kw) -> list:
    with PoolClient(address, timeout=5, **kw) as pool:
        return pool.list_datasets()


# -- TLS ---------------------------------------------------------------------------------------


def test_a_call_over_tls_works_and_a_plaintext_client_is_refused(certs, start_pool):
    address = start_pool(tls_cert=certs.server_cert, tls_key=certs.server_key)
    assert _list(address, tls=ClientTLS(ca=certs.ca)) == []
    # The same over "localhost", the certificate's other name.
    assert _list(address.replace("127.0.0.1", "localhost"), tls=ClientTLS(ca=certs.ca)) == []
    with pytest.raises(Unavailable):
        _list(address)  # plaintext to a TLS port: the handshake fails


def test_a_client_that_does_not_trust_the_servers_ca_is_refused(certs, start_pool):
    address = start_pool(tls_cert=certs.server_cert, tls_key=certs.server_key)
    with pytest.raises(Unavailable):
        _list(address, tls=ClientTLS(ca=certs.other_ca))


def test_mutual_tls_refuses_a_client_without_a_certificate(certs, start_pool):
    address = start_pool(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca)
    with pytest.raises(Unavailable):
        _list(address, tls=ClientTLS(ca=certs.ca))
    assert _list(address, tls=ClientTLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)) == []


def test_mutual_tls_refuses_a_certificate_from_another_ca(certs, start_pool, tmp_path):
    address = start_pool(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.other_ca)
    with pytest.raises(Unavailable):
        _list(address, tls=ClientTLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key))


def test_the_sdk_takes_pem_bytes_too(certs, start_pool):
    address = start_pool(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca)
    pem = {name: pathlib.Path(getattr(certs, name)).read_bytes() for name in ("ca", "client_cert", "client_key")}
    kw = dict(root_certificates=pem["ca"], certificate_chain=pem["client_cert"], private_key=pem["client_key"])
    assert _list(address, **kw) == []


def test_the_cli_with_tls_ca_works_and_without_it_says_it_cannot_reach_the_pool(certs, start_pool, capsys):
    address = start_pool(tls_cert=certs.server_cert, tls_key=certs.server_key)
    assert cli_datasets.datasets_main(["--pool-address", address, "--tls-ca", certs.ca]) == 0
    assert "no datasets" in capsys.readouterr().out
    assert cli_datasets.datasets_main(["--pool-address", address, "--timeout", "5"]) == 1
    assert "cannot reach the pool service" in capsys.readouterr().err


def test_the_cli_takes_tls_from_the_environment_and_names_a_missing_file(certs, start_pool, monkeypatch, capsys):
    address = start_pool(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca)
    monkeypatch.setenv("LESSLABELS_TLS_CA", certs.ca)
    monkeypatch.setenv("LESSLABELS_TLS_CLIENT_CERT", certs.client_cert)
    monkeypatch.setenv("LESSLABELS_TLS_CLIENT_KEY", certs.client_key)
    assert cli_datasets.datasets_main(["--pool-address", address]) == 0
    assert cli_datasets.datasets_main(["--pool-address", address, "--tls-ca", "/nonexistent/ca.pem"]) == 2
    assert "--tls-ca /nonexistent/ca.pem: cannot read it" in capsys.readouterr().err
    monkeypatch.delenv("LESSLABELS_TLS_CLIENT_KEY")
    assert cli_datasets.datasets_main(["--pool-address", address]) == 2
    assert "--tls-client-cert and --tls-client-key go together" in capsys.readouterr().err


def test_the_probe_checks_a_tls_server(certs, start_pool, capsys):
    address = start_pool(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca)
    argv = [address, "--tls-ca", certs.ca, "--tls-client-cert", certs.client_cert, "--tls-client-key", certs.client_key]
    assert probe.main(argv) == 0
    assert "SERVING" in capsys.readouterr().out
    assert probe.main([address, "--timeout", "2"]) == 1


def _parse_server_flags(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    add_server_flags(parser, 50051)
    return server_settings(parser.parse_args(argv))


def test_server_tls_flags_are_checked(certs, monkeypatch):
    with pytest.raises(SystemExit, match="--tls-cert and --tls-key go together"):
        _parse_server_flags(["--tls-cert", certs.server_cert])
    with pytest.raises(SystemExit, match="--tls-client-ca .* needs TLS on"):
        _parse_server_flags(["--tls-client-ca", certs.ca])
    with pytest.raises(SystemExit, match="--tls-key /nonexistent.key: cannot read it"):
        _parse_server_flags(["--tls-cert", certs.server_cert, "--tls-key", "/nonexistent.key"])
    monkeypatch.setenv("LESSLABELS_TLS_CERT", certs.server_cert)
    monkeypatch.setenv("LESSLABELS_TLS_KEY", certs.server_key)
    monkeypatch.setenv("LESSLABELS_TLS_CLIENT_CA", certs.ca)
    settings = _parse_server_flags([])
    assert (settings.tls_cert, settings.tls_key, settings.tls_client_ca) == (
        certs.server_cert,
        certs.server_key,
        certs.ca,
    )


# -- where a server listens --------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", ""])
def test_a_server_refuses_to_listen_beyond_loopback_without_a_token(host):
    with pytest.raises(SystemExit, match=r"refusing to listen on .* \(not loopback\) without a token.*--insecure"):
        _parse_server_flags(["--host", host])


def test_the_refusal_comes_before_the_pool_opens_anything(tmp_path):
    database = tmp_path / "pool.db"
    with pytest.raises(SystemExit, match="without a token"):
        pool_main.main(["--host", "0.0.0.0", "--port", "0", "--database-url", f"sqlite:///{database}"])
    assert not database.exists()


def test_loopback_a_token_or_insecure_let_a_server_listen():
    assert _parse_server_flags([]).host == "127.0.0.1"  # the default
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert _parse_server_flags(["--host", host]).host == host
    assert _parse_server_flags(["--host", "0.0.0.0", "--token", "t"]).token == "t"
    assert _parse_server_flags(["--host", "0.0.0.0", "--internal-token", "i"]).internal_token == "i"
    assert _parse_server_flags(["--host", "0.0.0.0", "--insecure"]).host == "0.0.0.0"


def test_lesslabels_up_refuses_an_open_host_without_a_token(tmp_path, capsys):
    assert cli_stack.up_main(["--state-dir", str(tmp_path), "--host", "0.0.0.0"]) == 2
    assert "without a token" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


# -- the public and the internal token ---------------------------------------------------------


def test_a_server_accepts_the_public_and_the_internal_token_and_nothing_else(start_pool):
    address = start_pool(token="public-token", internal_token="internal-token")
    assert _list(address, token="public-token") == []
    assert _list(address, token="internal-token") == []
    for wrong in ("", "other", "public-tokeninternal-token"):
        with pytest.raises(Unauthenticated):
            _list(address, token=wrong)


def _create_run(address: str, token: str, *, setup_token: str = "internal-token"):
    """CreateRun (a service-to-service method) with ``token``, on a dataset made with ``setup_token``."""
    from lesslabels import contract

    with PoolClient(address, timeout=5, token=setup_token) as pool:
        if not pool.list_datasets():
            pool.create_dataset("d", labels=["a", "b"])
    with RunStoreClient(address, timeout=5, token=token) as runs:
        return runs.create_run(contract.RunConfig(dataset="d").with_defaults())


def test_the_run_store_takes_only_the_internal_token(start_pool):
    """A run's state is the coordinator's: with both tokens set, the public token can neither create
    nor read a run in the pool's run store (PERMISSION_DENIED, saying why: users read runs through
    the coordinator); a wrong token is UNAUTHENTICATED as anywhere; the internal token can, and the
    public token still reaches the pool's datasets."""
    address = start_pool(token="public-token", internal_token="internal-token")
    with pytest.raises(PermissionDenied, match="RunStore/CreateRun is a service-to-service method.*internal token"):
        _create_run(address, "public-token")
    for wrong in ("", "wrong"):
        with pytest.raises(Unauthenticated):
            _create_run(address, wrong)
    run = _create_run(address, "internal-token")
    with RunStoreClient(address, timeout=5, token="public-token") as public:
        for read in (public.list_runs, lambda: public.get_run(run.id), lambda: public.list_rounds(run.id)):
            with pytest.raises(PermissionDenied, match="RunStore/.* is a service-to-service method"):
                read()
    with RunStoreClient(address, timeout=5, token="internal-token") as internal:
        assert [r.id for r in internal.list_runs()] == [run.id]
    assert [d.name for d in _datasets(address, "public-token")] == ["d"]


def _datasets(address: str, token: str):
    with PoolClient(address, timeout=5, token=token) as pool:
        return pool.list_datasets()


def test_every_run_store_method_is_internal_and_no_pool_method_is(start_pool):
    """The whole RunStore service is gated, a method added to it later included; PoolService is not."""
    import grpc

    from lesslabels.v1 import pool_pb2, run_store_pb2

    address = start_pool(token="public-token", internal_token="internal-token")
    (runs,) = run_store_pb2.DESCRIPTOR.services_by_name.values()
    (pool,) = pool_pb2.DESCRIPTOR.services_by_name.values()
    with grpc.insecure_channel(address) as channel:

        def code(service, method):
            call = channel.unary_unary(f"/{service.full_name}/{method.name}")
            try:
                call(b"", metadata=[("authorization", "Bearer public-token")], timeout=5)
            except grpc.RpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        assert {m.name: code(runs, m) for m in runs.methods} == {
            m.name: grpc.StatusCode.PERMISSION_DENIED for m in runs.methods
        }
        assert grpc.StatusCode.PERMISSION_DENIED not in {code(pool, m) for m in pool.methods}


def test_without_an_internal_token_the_public_one_opens_every_method(start_pool):
    address = start_pool(token="public-token")
    assert _create_run(address, "public-token", setup_token="public-token").id == 1


def test_with_only_an_internal_token_nothing_else_opens_anything(start_pool):
    address = start_pool(internal_token="internal-token")
    for wrong in ("", "public-token"):
        with pytest.raises(Unauthenticated):
            _list(address, token=wrong)
    assert _create_run(address, "internal-token").id == 1


def test_the_trainer_starts_jobs_only_for_the_internal_token(start_pool, tmp_path):
    """StartTraining goes through the interceptor: the public token is refused before the trainer
    looks at the request, the internal one reaches it (here: an unknown dataset), and the public
    token still lists jobs."""
    import grpc

    from lesslabels.trainer import main as trainer_main
    from lesslabels.v1 import trainer_pb2, trainer_pb2_grpc

    pool_address = start_pool(token="public-token", internal_token="internal-token")
    settings = server_settings_for_tests(token="public-token", internal_token="internal-token")
    trainer = trainer_main.build_server(settings, pool_address, tmp_path / "checkpoints")
    port = trainer.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = trainer_pb2_grpc.TrainerServiceStub(channel)
            request = trainer_pb2.StartTrainingRequest(dataset="nope", run_id=1)

            def call(method, message, token):
                return method(message, metadata=[("authorization", f"Bearer {token}")], timeout=10)

            with pytest.raises(grpc.RpcError) as public:
                call(stub.StartTraining, request, "public-token")
            assert public.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "StartTraining is a service-to-service method" in public.value.details()
            with pytest.raises(grpc.RpcError) as internal:
                call(stub.StartTraining, request, "internal-token")
            assert internal.value.code() not in (
                grpc.StatusCode.PERMISSION_DENIED,
                grpc.StatusCode.UNAUTHENTICATED,
            ), internal.value.details()
            assert "nope" in internal.value.details()
            assert list(call(stub.ListJobs, trainer_pb2.ListJobsRequest(), "public-token").jobs) == []
    finally:
        trainer.stop(0)
        trainer.trainer.pool.close()


def test_internal_methods_name_real_methods():
    """A misspelt name would leave a method open to the public token without anyone noticing."""
    from lesslabels.trainer import servicer
    from lesslabels.v1 import trainer_pb2 as proto

    (descriptor,) = proto.DESCRIPTOR.services_by_name.values()
    registration = servicer.registration(None)
    assert servicer.INTERNAL_METHODS and set(servicer.INTERNAL_METHODS) <= set(descriptor.methods_by_name)
    assert registration.internal_methods == tuple(f"/{descriptor.full_name}/{m}" for m in servicer.INTERNAL_METHODS)


def test_services_call_each_other_with_the_internal_token_over_mutual_tls(certs, start_pool):
    from lesslabels.trainer import main as trainer_main

    # The pool knows only the internal token and wants client certificates.
    pool_address = start_pool(
        token="internal-token", tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca
    )
    with PoolClient(pool_address, token="internal-token", tls=_mtls(certs)) as pool:
        pool.create_dataset("d", labels=["a", "b"])
    settings = server_settings_for_tests(token="public-token", internal_token="internal-token", client_tls=_mtls(certs))
    assert settings.outbound_token == "internal-token"
    trainer = trainer_main.build_server(settings, pool_address, pathlib.Path(certs.ca).parent / "checkpoints")
    try:
        assert trainer.trainer.pool.dataset("d").labels == ("a", "b")
    finally:
        trainer.trainer.pool.close()
    # Without the internal token the same call is refused: the public one is not enough here.
    with pytest.raises(Unauthenticated):
        _list(pool_address, token="public-token", tls=_mtls(certs))


def _mtls(certs: Certificates) -> ClientTLS:
    return ClientTLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)


def test_the_token_travels_over_tls(certs, start_pool):
    address = start_pool(token="secret", tls_cert=certs.server_cert, tls_key=certs.server_key)
    assert _list(address, token="secret", tls=ClientTLS(ca=certs.ca)) == []
    with pytest.raises(Unauthenticated):
        _list(address, tls=ClientTLS(ca=certs.ca))


def test_the_coordinator_reaches_the_pool_with_the_internal_token_over_mutual_tls(certs, start_pool):
    from lesslabels.coordinator import main as coordinator_main

    pool_address = start_pool(
        token="internal-token", tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca
    )
    settings = server_settings_for_tests(token="public-token", internal_token="internal-token", client_tls=_mtls(certs))
    nowhere = "127.0.0.1:9"  # trainer and scorer: not called by recover()
    server = coordinator_main.build_server(
        settings, pool_address, nowhere, nowhere, token=settings.outbound_token, tls=settings.client_tls
    )
    try:
        server.start()
        assert server.ready() == []  # recover() listed the pool's runs: token and certificate accepted
    finally:
        server.stop(0)
    # The same core built with the public token is refused by this pool.
    refused = coordinator_main.build_server(
        settings, pool_address, nowhere, nowhere, token="public-token", tls=_mtls(certs)
    )
    try:
        refused.start()
        with pytest.raises(errors.Unauthenticated, match="token"):
            refused.ready()
    finally:
        refused.stop(0)
