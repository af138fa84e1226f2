"""The one page of ``pools``: Caddy's ``ask`` endpoint for on-demand TLS."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from pools import hostnames


@require_safe
def caddy_ask(request: HttpRequest) -> HttpResponse:
    """200 when Caddy may get a certificate for ``?domain=`` (the platform's domain or an
    active deployment's hostname), else 404 — which makes Caddy refuse the handshake, so
    nobody can have us request certificates for names of their choosing."""
    if hostnames.hostname_known(request.GET.get("domain", "")):
        return HttpResponse("yes", content_type="text/plain")
    return HttpResponse("no", status=404, content_type="text/plain")
