"""Roles over the gateway's TCP listener: the method table, the Subject parsing, the decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from teu_api.errors import PermissionDenied, Unauthenticated
from teu_api.gateway.v1 import gateway_pb2
from teu_common import authz, config
from teu_common.authz import Peer, Role

PUBLIC = ("ContainersService", "ImagesService", "SystemService", "NetworksService", "VolumesService")
C = "/teu.gateway.v1.ContainersService/"


def public_methods() -> list[str]:
    """Every method of the five public services, as gRPC names them (``/package.Service/Method``)."""
    return [
        f"/{service.full_name}/{method.name}"
        for name in PUBLIC
        for service in [gateway_pb2.DESCRIPTOR.services_by_name[name]]
        for method in service.methods
    ]


def ssl_context(subject: str) -> dict[str, list[bytes]]:
    """An auth context as gRPC gives it for a TLS peer with ``subject``."""
    return {"transport_security_type": [b"ssl"], "x509_subject": [subject.encode()]}


def test_every_public_method_is_in_exactly_one_tier() -> None:
    """Each method of the five public services sits in exactly one tier, and the tiers name nothing else."""
    listed = [method for methods in authz.TIERS.values() for method in methods]
    assert len(listed) == len(set(listed)), "a method is in two tiers"
    assert sorted(listed) == sorted(public_methods())


def test_tiers_follow_the_documented_split() -> None:
    """Reads are viewer's, lifecycle verbs operator's, and whatever runs code or moves files admin's."""
    assert authz.required_role(C + "List") is Role.VIEWER
    assert authz.required_role("/teu.gateway.v1.SystemService/Info") is Role.VIEWER
    for verb in ("Start", "Stop", "Restart", "Kill", "Wait"):
        assert authz.required_role(C + verb) is Role.OPERATOR
    for verb in ("Run", "Create", "Exec", "Attach", "CopyFrom", "CopyTo", "Export", "Remove", "Commit"):
        assert authz.required_role(C + verb) is Role.ADMIN
    assert authz.required_role("/teu.gateway.v1.ImagesService/Pull") is Role.ADMIN
    assert authz.required_role("/grpc.health.v1.Health/Check") is None


def test_roles_are_cumulative_allowlists() -> None:
    """A role may call its tier and the tiers below, nothing above, and nobody a method outside the table."""
    viewer, operator, admin = Peer("v", Role.VIEWER), Peer("o", Role.OPERATOR), Peer("a", Role.ADMIN)
    assert authz.authorize(C + "Inspect", viewer) is Role.VIEWER
    assert authz.authorize(C + "Stop", operator) is Role.OPERATOR
    assert authz.authorize(C + "Inspect", operator) is Role.OPERATOR
    assert authz.authorize(C + "Exec", admin) is Role.ADMIN
    with pytest.raises(PermissionDenied, match="needs the operator role"):
        authz.authorize(C + "Stop", viewer)
    with pytest.raises(PermissionDenied, match="needs the admin role"):
        authz.authorize(C + "Run", operator)
    with pytest.raises(PermissionDenied, match="not allowed"):
        authz.authorize("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", admin)


def test_a_peer_without_role_is_denied_everything() -> None:
    """A certificate whose OU names no role may not even list."""
    with pytest.raises(PermissionDenied, match="names no role"):
        authz.authorize(C + "List", Peer("mallory", None))


@pytest.mark.parametrize(
    ("subject", "pairs"),
    [
        ("CN=alice,OU=viewer,O=Teu", [("CN", "alice"), ("OU", "viewer"), ("O", "Teu")]),
        ("cn=alice , ou=admin", [("CN", "alice "), ("OU", "admin")]),
        ('CN=a\\,b=c\\; \\C3\\A9\\"#\\+,OU=viewer+OU=admin', [("CN", 'a,b=c; é"#+'), ("OU", "viewer"), ("OU", "admin")]),
        ("CN=\\ x\\=y\\\\", [("CN", " x=y\\")]),
        ("OU=operator,O=Teu", [("OU", "operator"), ("O", "Teu")]),
        ("", []),
    ],
)
def test_parse_subject(subject: str, pairs: list[tuple[str, str]]) -> None:
    """gRPC's RFC 2253 Subject string comes apart into its attributes, escapes undone."""
    assert authz.parse_subject(subject) == pairs


def test_peer_identity_is_the_cn_and_role_the_ou() -> None:
    """The CN names the peer and the one OU that is a role gives its role; other OUs do not matter."""
    assert authz.peer_of(ssl_context("CN=alice,OU=viewer,O=Teu")) == Peer("alice", Role.VIEWER)
    assert authz.peer_of(ssl_context("CN=bob,OU=ops-team,OU=operator")) == Peer("bob", Role.OPERATOR)
    assert authz.peer_of(ssl_context("CN=carol,OU=guest")) == Peer("carol", None)
    assert authz.peer_of(ssl_context("CN=dave,OU=Admin")) == Peer("dave", None)  # roles are exact, lower case
    assert authz.peer_of(ssl_context("CN=eve,OU=viewer+OU=admin")) == Peer("eve", None)  # two roles: none


@pytest.mark.parametrize("subject", ["OU=admin,O=Teu", "CN=,OU=admin", "CN= ,OU=admin", "CN=a,CN=b,OU=admin"])
def test_a_certificate_without_one_cn_is_unauthenticated(subject: str) -> None:
    """A certificate from the right CA but without exactly one non-empty CN identifies nobody."""
    with pytest.raises(Unauthenticated):
        authz.peer_of(ssl_context(subject))


def test_only_tls_peers_are_identified() -> None:
    """A call that did not come over TLS (or came without a Subject) is unauthenticated."""
    with pytest.raises(Unauthenticated):
        authz.peer_of({"transport_security_type": [b"insecure"], "x509_subject": [b"CN=root,OU=admin"]})
    with pytest.raises(Unauthenticated):
        authz.peer_of({"transport_security_type": [b"ssl"]})


def test_tls_listener_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--tls-listen`` needs all three files, flags win over TEU_TLS_*, and nothing set means no listener."""
    for var in ("TEU_TLS_LISTEN", "TEU_TLS_CA", "TEU_TLS_CERT", "TEU_TLS_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert config.load_tls() is None
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key", "other")}
    for path in files.values():
        path.write_text("x")
    monkeypatch.setenv("TEU_TLS_LISTEN", "127.0.0.1:2376")
    with pytest.raises(ValueError, match="--tls-ca"):
        config.load_tls()
    monkeypatch.setenv("TEU_TLS_CA", str(files["ca"]))
    monkeypatch.setenv("TEU_TLS_CERT", str(files["cert"]))
    monkeypatch.setenv("TEU_TLS_KEY", str(files["key"]))
    tls = config.load_tls(ca=str(files["other"]))
    assert tls == config.TlsListen("127.0.0.1:2376", files["other"], files["cert"], files["key"])
    assert tls.argv()[:2] == ["--tls-listen", "127.0.0.1:2376"]
    with pytest.raises(ValueError, match="HOST:PORT"):
        config.load_tls(listen="2376")
    with pytest.raises(ValueError, match="not found"):
        config.load_tls(key=str(tmp_path / "missing.pem"))
