"""Request bodies are bounded before anything reads them.

Django spools a multipart body to temporary files as it parses it, and the CSRF check
parses a POST before any view runs, so a limit checked by a view comes too late: a
1 GiB POST to /login/ would be on disk first. This middleware, first in the chain,
refuses by the declared Content-Length (413; JSON under /api/), refuses bodies with no
length at all (411: Django would read none of it), and on the upload routes parses the
body itself through a handler that stops at the limit while streaming.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError

MB = 1024 * 1024
# The API's upload endpoint and the deployment page's upload form.
UPLOAD_ROUTES = re.compile(r"^/(api/)?deployments/\d+/(files|upload)/$")


def upload_file_cap() -> int:
    """File bytes one upload request may carry: the content limit plus room for archive
    headers (tar spends up to ~2 KB per member), as the content store's own cap."""
    return (settings.PAAS_MAX_UPLOAD_MB * MB + settings.PAAS_MAX_UPLOAD_FILES * 2048
            + MB)


def body_limit(path: str) -> int:
    """The largest body a route accepts: uploads their file cap and 1 MiB for the form
    and multipart framing; everything else (pages, login, admin, API) a small limit."""
    if UPLOAD_ROUTES.match(path):
        return upload_file_cap() + MB
    return settings.PAAS_MAX_REQUEST_KB * 1024


class UploadLimitHandler(FileUploadHandler):
    """First of the upload handlers: counts file bytes as they stream in and stops the
    parse (no further byte read, nothing more spooled) once they pass ``cap``."""

    def __init__(self, request: HttpRequest, cap: int) -> None:
        super().__init__(request)
        self.cap = cap
        self.seen = 0
        self.refused = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.seen += len(raw_data)
        if self.seen > self.cap:
            self.refused = True
            raise StopUpload(connection_reset=True)  # Django closes the partial files
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (memory or temporary file) makes the file


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal
        return self.get_response(request)

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        limit = body_limit(request.path_info)
        declared = request.META.get("CONTENT_LENGTH") or ""
        if not declared.strip():
            if request.META.get("HTTP_TRANSFER_ENCODING"):
                return _error(request, 411, "length_required",
                              "a request body needs a Content-Length header")
            return None
        try:
            length = int(declared)
        except ValueError:
            return _error(request, 400, "invalid", "the Content-Length header is not a number")
        if length > limit:
            return _too_large(request, limit)
        if UPLOAD_ROUTES.match(request.path_info) and request.method == "POST":
            return self.parse_upload(request)
        return None

    def parse_upload(self, request: HttpRequest) -> HttpResponse | None:
        """Parse the upload here, through the limiting handler, so no later reader (the
        CSRF check, the view) can spool more than the cap."""
        if not (request.content_type or "").startswith("multipart/form-data"):
            return None
        limiter = UploadLimitHandler(request, upload_file_cap())
        request.upload_handlers.insert(0, limiter)
        try:
            request.FILES  # noqa: B018 (parsing is the point)
        except MultiPartParserError as exc:
            return _error(request, 400, "parse_error", f"malformed multipart body: {exc}")
        if limiter.refused:
            return _too_large(request, upload_file_cap())
        return None


def _too_large(request: HttpRequest, limit: int) -> HttpResponse:
    size = f"{limit / MB:.0f} MB" if limit >= MB else f"{limit // 1024} KB"
    return _error(request, 413, "too_large", f"the request body is over the {size} limit")


def _error(request: HttpRequest, status: int, code: str, detail: str) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": detail, "code": code}, status=status)
    return HttpResponse(f"{detail[0].upper()}{detail[1:]}.\n", status=status,
                        content_type="text/plain; charset=utf-8")
