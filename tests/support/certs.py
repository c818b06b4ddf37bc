"""Throw-away certificates for TLS tests (openssl CLI): a CA, a server certificate for
127.0.0.1/localhost, and client certificates signed by that CA or by another one."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-keyout", str(key), "-out", str(cert))
    return cert, key


def _signed(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    cert, key, csr, ext = (directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.csr",
                           directory / f"{name}.ext")
    ext.write_text(extensions)
    _run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr))
    _run("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
         "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return cert, key


@dataclass
class Certs:
    ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]
    stranger: tuple[Path, Path]  # a client certificate from a CA the server does not trust


def make_certs(directory: Path) -> Certs:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "extender-ca")
    other = _ca(directory, "other-ca")
    server = _signed(directory, "extender", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                                "extendedKeyUsage=serverAuth\n")
    client = _signed(directory, "kube-scheduler", ca, "extendedKeyUsage=clientAuth\n")
    stranger = _signed(directory, "stranger", other, "extendedKeyUsage=clientAuth\n")
    return Certs(ca[0], server, client, stranger)
