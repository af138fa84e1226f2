"""Request bodies are bounded before anything reads them.

Django spools a multipart body to temporary files as it parses it, and the CSRF check
parses a POST before any view runs, so a limit checked by a view comes too late: a
1 GiB POST to /login/ would be on disk first. This middleware, first in the chain,
refuses by the declared Content-Length (413; JSON under /api/), refuses bodies with no
length at all (411: Django would read none of it), and on the upload routes puts a
handler first that stops the parse at the limit while the body streams in.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError

from pools.errors import UploadTooLarge

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
    """First of the upload handlers: counts file bytes as they stream in and ends the
    parse (no further byte read, nothing more spooled) once they pass ``cap``. It raises
    ``UploadTooLarge`` rather than Django's ``StopUpload``, which would hand the view
    the files parsed so far as if they were the whole upload."""

    def __init__(self, request: HttpRequest, cap: int) -> None:
        super().__init__(request)
        self.cap = cap
        self.seen = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.seen += len(raw_data)
        if self.seen > self.cap:
            raise UploadTooLarge(f"the request body is over the {_size(self.cap)} limit")
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
            return self.limit_upload(request)
        return None

    def limit_upload(self, request: HttpRequest) -> HttpResponse | None:
        """Put the limiting handler first. The API parses the body in the view, after
        authentication, and answers the handler's ``UploadTooLarge`` with its 413. A
        page's body is parsed by the CSRF check before any view: parse it here, where the
        refusal can still be answered."""
        request.upload_handlers.insert(0, UploadLimitHandler(request, upload_file_cap()))
        if request.path_info.startswith("/api/"):
            return None
        if not (request.content_type or "").startswith("multipart/form-data"):
            return None
        try:
            request.FILES  # noqa: B018 (parsing is the point)
        except UploadTooLarge as exc:
            return _error(request, exc.status, exc.code, exc.detail)
        except MultiPartParserError as exc:
            return _error(request, 400, "invalid", f"malformed multipart body: {exc}")
        return None


def _too_large(request: HttpRequest, limit: int) -> HttpResponse:
    return _error(request, 413, "too_large", f"the request body is over the {_size(limit)} limit")


def _size(limit: int) -> str:
    return f"{limit / MB:.0f} MB" if limit >= MB else f"{limit // 1024} KB"


def _error(request: HttpRequest, status: int, code: str, detail: str) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": detail, "code": code}, status=status)
    return HttpResponse(f"{detail[0].upper()}{detail[1:]}.\n", status=status,
                        content_type="text/plain; charset=utf-8")
