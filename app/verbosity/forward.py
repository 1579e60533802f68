"""Sending `PUT /debug/flags/v` to one component, and saying plainly what its answer means.

One httpx.AsyncClient per credentials profile (a component's token, client certificate and CA),
built on first use and rebuilt when one of its files changes, so a rotated certificate is picked up
without a restart. Files are read in a worker thread, never on the event loop. Redirects are not
followed and the environment's proxy settings are ignored: the URL the registry resolved is the
only place a request can go.

Secrets stay out of every message: errors name a file, never what is in it.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import httpx

from app.verbosity.registry import Component, Registry, Target

log = logging.getLogger("clusterm.verbosity")

BODY_CAP = 64 * 1024  # a component's answer is one line; anything past this is not read
REFUSALS = frozenset({401, 403, 404, 405, 406})


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int
    message: str
    body: bytes = b""
    content_type: str | None = None
    refused: bool = False  # the component answered one of REFUSALS (explained in `message`)
    upstream: bool = False  # `status` and `body` are the component's own
    # The request went out but no answer came back: the component may have taken the level.
    uncertain: bool = False


@dataclass(frozen=True)
class Profile:
    client: httpx.AsyncClient
    token: str | None


class CredentialsError(Exception):
    """A configured credential file cannot be used; the message names the file and the reason."""


def _signature(component: Component) -> tuple[object, ...]:
    files = (
        component.token_file,
        component.client_cert_file,
        component.client_key_file,
        component.ca_file,
    )
    return tuple((f, f.stat().st_mtime_ns) if f else None for f in files)


def _read_token(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise CredentialsError(f"token_file {path} is empty")
    return token


def _ssl_context(component: Component) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(component.ca_file) if component.ca_file else None)
    if component.insecure_skip_tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if component.client_cert_file and component.client_key_file:
        ctx.load_cert_chain(component.client_cert_file, component.client_key_file)
    return ctx


class Forwarder:
    def __init__(self, *, registry: Registry, timeout_s: float, max_connections: int) -> None:
        self.registry = registry
        self.timeout = httpx.Timeout(timeout_s)
        # No keep-alive: a fan-out talks to each host:port once, and httpcore's pool scans every
        # idle connection on each request, which made a 1,000-node fan-out quadratic (measured:
        # 18 s with keep-alive, 7 s without, on the shared 2-core machine).
        self.limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=0)
        self._profiles: dict[str, tuple[tuple[object, ...], Profile]] = {}
        self._retired: list[httpx.AsyncClient] = []

    async def profile(self, name: str) -> Profile:
        """The client and token for a component's credentials; CredentialsError if unusable."""
        component = self.registry.get(name)
        try:
            return await anyio.to_thread.run_sync(self._load, component)
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            raise CredentialsError(
                f"clusterm cannot use the credentials configured for {name}: "
                f"cannot read{where}: {exc.strerror or exc}"
            ) from None
        except (ssl.SSLError, ValueError) as exc:
            raise CredentialsError(
                f"clusterm cannot use the TLS files configured for {name}: {exc}"
            ) from None

    def _load(self, component: Component) -> Profile:
        signature = _signature(component)
        cached = self._profiles.get(component.name)
        token = _read_token(component.token_file) if component.token_file else None
        if cached and cached[0] == signature:
            return Profile(cached[1].client, token)
        client = httpx.AsyncClient(
            verify=_ssl_context(component) if component.scheme == "https" else True,
            timeout=self.timeout,
            limits=self.limits,
            follow_redirects=False,
            trust_env=False,
        )
        if cached:
            self._retired.append(cached[1].client)
        self._profiles[component.name] = (signature, Profile(client, None))
        return Profile(client, token)

    async def aclose(self) -> None:
        for client in [p.client for _, p in self._profiles.values()] + self._retired:
            await client.aclose()
        self._profiles.clear()
        self._retired.clear()

    async def put(self, target: Target, level: int, profile: Profile) -> Outcome:
        where = f"{target.component} on {target.node}"
        if target.via:
            where += f" (through the apiserver on {target.via})"
        if target.url is None:
            return Outcome(False, target.problem_status, target.problem or f"{where}: no URL")
        headers = {"Authorization": f"Bearer {profile.token}"} if profile.token else {}
        shown = target.shown
        log.debug("PUT %s level %d to %s", shown, level, where)
        # A zone id picks the interface; no certificate names it, and TLS would check the host
        # as written: the certificate is checked against the address alone.
        address, zone, _ = target.url.host.partition("%")
        extensions = {"sni_hostname": address} if zone else {}
        try:
            # The URL object itself, never its text: httpx parses nothing again.
            async with profile.client.stream(
                "PUT",
                target.url,
                content=str(level).encode(),
                headers=headers,
                extensions=extensions,
            ) as response:
                body = await _read_capped(response)
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            return Outcome(
                False,
                504,
                f"{where} did not accept a connection within {self.timeout.connect}s at "
                f"{shown} (setting verbosity_timeout_s)",
            )
        except httpx.TimeoutException:
            return Outcome(
                False,
                504,
                f"{where} did not answer within {self.timeout.read}s at {shown} "
                "(setting verbosity_timeout_s)",
                uncertain=True,
            )
        except httpx.ConnectError as exc:
            reason = _tls_reason(exc)
            if reason:
                return Outcome(
                    False,
                    502,
                    f"TLS with {where} at {shown} failed: {reason}. Give the CA that signs "
                    f"its certificate as ca_file of {target.credentials} in "
                    "verbosity_components (or opt into insecure_skip_tls_verify for it)",
                )
            return Outcome(False, 502, f"cannot connect to {where} at {shown}: {exc}")
        except httpx.TransportError as exc:
            return Outcome(
                False, 502, f"{where} at {shown} broke off the exchange: {exc}", uncertain=True
            )
        status = response.status_code
        text = body.decode(errors="replace").strip()
        content_type = response.headers.get("content-type")
        if 200 <= status < 300:
            return Outcome(True, status, text, body, content_type, upstream=True)
        if status in REFUSALS:
            message = explain(target, status, where)
            return Outcome(False, status, message, body, content_type, refused=True, upstream=True)
        return Outcome(
            False,
            status,
            f"{where} answered {status}: {text[:500]}",
            body,
            content_type,
            False,
            True,
        )


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk[: BODY_CAP - size])
        size += len(chunk)
        if size >= BODY_CAP:
            break
    return b"".join(chunks)


def _tls_reason(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            return str(seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return text if "SSL" in text or "certificate" in text else None


_CONTROL_PLANE_403 = "the token lacks RBAC verb put on nonResourceURL /debug/flags/v"
_CONTROL_PLANE_404 = (
    "profiling is disabled on it (--profiling=false), which also removes the flags handler"
)


def explain(target: Target, status: int, where: str) -> str:
    """What a component's refusal means, and what to do about it."""
    kubelet = target.component == "kubelet"
    if status == 401:
        return (
            f"{where} refused clusterm's credentials (401): set a valid token_file or client "
            f"certificate for {target.credentials} in verbosity_components"
        )
    if status == 403:
        if kubelet:
            return f"{where} refused (403): the token lacks update on nodes/proxy"
        return f"{where} refused (403): {_CONTROL_PLANE_403}"
    if status == 404:
        if kubelet:
            return (
                f"{where} answered 404: kubelet debug flags handler is disabled "
                "(enableDebuggingHandlers and enableDebugFlagsHandler must be true)"
            )
        if target.component == "kube-proxy":
            return (
                f"{where} answered 404: kube-proxy serves /debug/flags/v only with "
                "enableProfiling: true"
            )
        if target.component == "kube-controller-manager":
            return f"{where} answered 404: {_CONTROL_PLANE_404}, or it is older than v1.23"
        return f"{where} answered 404: {_CONTROL_PLANE_404}"
    if status == 405:
        if kubelet:
            return (
                f"{where} answered 405: kubelet debug flags handler is disabled "
                "(set enableDebugFlagsHandler: true in the kubelet configuration)"
            )
        return f"{where} answered 405: its flags handler is switched off"
    return (
        f"{where} answered 406 unsupported http method: the PUT did not reach it as a PUT "
        "(is a proxy in between changing the method?)"
    )
