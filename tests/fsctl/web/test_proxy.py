"""The README's reverse proxy for real: Debian's nginx with conf/nginx/fsctl-web.conf in front of fsctl-web.

The sample site is used as shipped, only its ports (free loopback ones instead of 80/443/8090) and its
certificate (a throw-away self-signed one for pbx.example.invalid and 127.0.0.1) changed. Through it:
HTTP is sent to HTTPS, sign-in gives a Secure, HttpOnly, SameSite session cookie under HTTPS, the client's
own address reaches fsctl-web through X-Forwarded-For (a client on 127.0.0.2 is seen as 127.0.0.2, and a
forged X-Forwarded-For is not believed), and recordings are served in ranges (206).
"""

import http.client
import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from fsctl import db as fsdb
from fsctl.model import SignInThrottle
from tests.conftest import free_port
from tests.fsctl.web.conftest import csrf_of
from tests.fsctl.web.test_browser import PASSWORD, prepare, web_process

pytestmark = pytest.mark.servers  # (nginx and fsctl-web as processes: make test-fast leaves it out)
REPO = Path(__file__).resolve().parents[3]
NGINX = "/usr/sbin/nginx"
HOST = "pbx.example.invalid"


def site(web_port, http_port, https_port, cert, key):
    """conf/nginx/fsctl-web.conf with private ports and the test certificate: nothing else changed."""
    text = (REPO / "conf/nginx/fsctl-web.conf").read_text()
    for old, new in [
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl"),
        (f"/etc/ssl/certs/{HOST}.pem", str(cert)),
        (f"/etc/ssl/private/{HOST}.key", str(key)),
        ("http://127.0.0.1:8090", f"http://127.0.0.1:{web_port}"),
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def start_nginx(tmp_path, site_text):
    """nginx in the foreground with only this site, its files in tmp_path; returns the process."""
    assert shutil.which(NGINX) or Path(NGINX).exists(), "nginx is missing: run make sysdeps as root"
    conf = tmp_path / "nginx"
    conf.mkdir()
    (conf / "site.conf").write_text(site_text)
    user = "user root;\n" if __import__("os").geteuid() == 0 else ""  # (workers write the private temp folders)
    (conf / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {conf}/nginx.pid;\nerror_log {conf}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  access_log {conf}/access.log;\n  client_body_temp_path {conf}/body;\n"
        f"  proxy_temp_path {conf}/proxy;\n  fastcgi_temp_path {conf}/fastcgi;\n  uwsgi_temp_path {conf}/uwsgi;\n"
        f"  scgi_temp_path {conf}/scgi;\n  include {conf}/site.conf;\n}}\n"
    )
    check = subprocess.run(
        [NGINX, "-t", "-p", str(conf), "-c", str(conf / "nginx.conf")], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stderr  # the sample site is valid for Debian 12's nginx
    return subprocess.Popen(
        [NGINX, "-p", str(conf), "-c", str(conf / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=open(conf / "stderr.log", "wb"),
    )


class Browser:
    """A tiny HTTPS client (http.client) from a chosen loopback address, keeping cookies, asking for HOST."""

    def __init__(self, port, tls, source="127.0.0.1"):
        self.port, self.tls, self.source, self.cookies = port, tls, source, {}

    def request(self, method, path, form=None, headers=None):
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.tls, timeout=20, source_address=(self.source, 0)
        )
        head = {"Host": HOST, **(headers or {})}
        if self.cookies:
            head["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            head["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=head)
            response = conn.getresponse()
            response.body = response.read()
        finally:
            conn.close()
        response.set_cookies = response.headers.get_all("set-cookie") or []
        for line in response.set_cookies:
            name, _, value = line.split(";", 1)[0].partition("=")
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        response.text = response.body.decode("utf-8", "replace")
        return response


def test_readme_nginx_site_in_front_of_fsctl_web(tmp_path):
    url, root, ids, digests = prepare(tmp_path)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={HOST}",
            "-addext",
            f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    http_port, https_port = free_port(), free_port()
    with web_process(
        tmp_path, url, root, web_secure_cookies="true", web_base_url=f"https://{HOST}:{https_port}"
    ) as base:
        web_port = int(base.rsplit(":", 1)[1])
        nginx = start_nginx(tmp_path, site(web_port, http_port, https_port, cert, key))
        try:
            tls = ssl.create_default_context(cafile=str(cert))
            deadline = time.monotonic() + 60
            while True:  # nginx is listening
                try:
                    Browser(https_port, tls).request("GET", "/sign-in")
                    break
                except OSError:
                    assert nginx.poll() is None and time.monotonic() < deadline, (
                        tmp_path / "nginx/error.log"
                    ).read_text()
                    time.sleep(0.2)
            # Plain HTTP is sent to HTTPS.
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=20)
            conn.request("GET", "/recordings", headers={"Host": HOST})
            plain = conn.getresponse()
            conn.close()
            assert (plain.status, plain.headers["location"]) == (301, f"https://{HOST}/recordings")
            # From 127.0.0.2, through nginx: a forged X-Forwarded-For is replaced by the real address.
            client = Browser(https_port, tls, source="127.0.0.2")
            page = client.request("GET", "/sign-in")
            assert page.status == 200 and page.headers["strict-transport-security"] == "max-age=31536000"
            wrong = client.request(
                "POST",
                "/sign-in",
                headers={"X-Forwarded-For": "203.0.113.9"},
                form={
                    "csrf": csrf_of(page.text),
                    "login": "101@acme.example",
                    "password": "wrong",
                    "next": "/recordings",
                },
            )
            assert wrong.status == 401
            fsdb.open_database(url)
            try:
                keys = sorted(t.key for t in SignInThrottle.select())
            finally:
                fsdb.close_database()
            assert keys == ["account:101@acme.example", "client:127.0.0.2"]
            # Sign in: the session cookie is Secure, HttpOnly, SameSite=Strict, host-only (__Host-).
            page = client.request("GET", "/sign-in")
            signed = client.request(
                "POST",
                "/sign-in",
                form={
                    "csrf": csrf_of(page.text),
                    "login": "101@acme.example",
                    "password": PASSWORD,
                    "next": "/recordings",
                },
            )
            assert signed.status == 303 and signed.headers["location"] == "/recordings"
            cookie = [c for c in signed.set_cookies if c.startswith("__Host-fsctl_session=")]
            assert len(cookie) == 1
            flags = {f.strip().lower() for f in cookie[0].split(";")[1:]}
            assert {"secure", "httponly", "samesite=strict", "path=/"} <= flags
            assert not any(f.startswith("domain=") for f in flags)
            listing = client.request("GET", "/recordings")
            assert listing.status == 200 and "Ona Onaitė" in listing.text
            # A recording in ranges, through the proxy (the player seeks).
            rid = ids[("acme.example", "101", "in")]
            whole = client.request("GET", f"/recordings/{rid}/audio")
            part = client.request("GET", f"/recordings/{rid}/audio", headers={"Range": "bytes=100-199"})
            assert whole.status == 200 and part.status == 206 and part.body == whole.body[100:200]
            assert re.fullmatch(r"bytes 100-199/\d+", part.headers["content-range"])
        finally:
            nginx.terminate()
            nginx.wait(timeout=20)
