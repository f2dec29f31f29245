"""djchat_tls_acme: the certificate nginx serves comes from the ACME CA (Pebble in the acme
scenario), through its http-01 challenges on the published HTTP port; a converge renews it when
fewer than djchat_tls_acme_renew_days are left, reloading nginx while clients keep being served.
(The scenario's idempotence step proves that a converge with a valid certificate orders none.)"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from helpers import Stack

pytestmark = pytest.mark.disruptive


@pytest.fixture(autouse=True)
def acme_scenario(stack: Stack) -> None:
    if not stack.expect.get("tls_acme"):
        pytest.skip("djchat_tls_acme is off in this scenario (molecule test -s acme)")


def served_certificate(stack: Stack, name: str) -> x509.Certificate:
    """The certificate nginx presents for `name` (SNI), as a client would receive it."""
    parts = urlsplit(stack.base_url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def names(certificate: x509.Certificate) -> list[str]:
    extension = certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    return extension.value.get_values_for_type(x509.DNSName)


def issuer(certificate: x509.Certificate) -> str:
    return certificate.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def site_name(stack: Stack) -> str:
    return stack.expect["server_names"][0]


def test_the_certificate_comes_from_the_acme_ca(stack: Stack):
    certificate = served_certificate(stack, site_name(stack))

    assert certificate.issuer != certificate.subject, "still the self-signed stand-in"
    assert issuer(certificate).startswith("Pebble Intermediate CA"), issuer(certificate)
    assert names(certificate) == [site_name(stack)]
    print(f"served: serial {certificate.serial_number:x} from {issuer(certificate)}")


def test_the_challenge_path_is_served_over_plain_http(stack: Stack):
    with stack.session() as session:
        answer = session.get(
            f"{stack.http_url}/.well-known/acme-challenge/no-such-token",
            headers={"Host": site_name(stack)},
            allow_redirects=False,
            timeout=10,
        )
        other = session.get(
            f"{stack.http_url}/",
            headers={"Host": site_name(stack)},
            allow_redirects=False,
            timeout=10,
        )
    assert answer.status_code == 404, "a token that was never written (not a redirect to https)"
    assert other.status_code == 301  # everything else goes to https


def test_a_converge_renews_a_certificate_near_its_end_without_a_failed_request(stack: Stack):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    before = served_certificate(stack, site_name(stack))
    days_left = (before.not_valid_after_utc - before.not_valid_before_utc).days
    failures: list[str] = []
    sent = 0
    stop = threading.Event()

    def probe() -> None:
        nonlocal sent
        with stack.session() as session:
            while not stop.is_set():
                sent += 1
                try:
                    status = session.get(
                        stack.url("/"), headers={"Host": site_name(stack)}, timeout=10
                    ).status_code
                except requests.RequestException as error:
                    status = repr(error)
                if status != 200:
                    failures.append(str(status))
                time.sleep(0.1)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    # "Renew when fewer days are left than the certificate has at all": due now.
    renewal = stack.playbook("site.yml", "-e", f"djchat_tls_acme_renew_days={days_left + 1}")
    time.sleep(1)
    stop.set()
    prober.join()

    after = served_certificate(stack, site_name(stack))
    assert after.serial_number != before.serial_number, "the converge did not renew it"
    assert issuer(after).startswith("Pebble Intermediate CA")
    assert renewal.changed >= 1
    assert not failures, f"{len(failures)} of {sent} requests failed: {failures[:5]}"
    print(f"renewed {before.serial_number:x} -> {after.serial_number:x}, {sent} requests served")
