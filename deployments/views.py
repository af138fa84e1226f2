"""The user's web pages: landing, dashboard, one deployment and its actions.

Views are thin: parse the form, call one service, say what happened with a message,
redirect. Every domain error (``PaasError``) becomes an error message in the user's
words (``exc.detail``); someone else's deployment is a 404 like a missing one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import capfirst
from django.views.decorators.http import require_POST, require_safe

from deployments import lifetimes, selectors, services
from deployments.forms import AliasForm, FileDeleteForm, LaunchForm, ReleaseForm, UploadForm
from deployments.models import Deployment
from pools.errors import NotFound, PaasError, UnsafeUpload, UploadTooLarge

LOG_LINES = 50
# What each runtime is for, in a user's words (an unknown runtime shows its name only).
RUNTIME_GUIDE = {
    "nginx": ("Nginx", "Static site: upload index.html, CSS, images."),
    "apache": ("Apache", "Static site served by Apache httpd."),
    "python": ("Python", "An app.py listening on $PORT (requirements.txt is installed)."),
    "node": ("Node.js", "A server.js or an npm start script listening on $PORT."),
}


# --- pages --------------------------------------------------------------------------------
@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "deployments/landing.html", {"runtimes": _runtimes()})


@require_safe
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    rows = [_row(request, deployment)
            for deployment in selectors.deployments_for_user(user=_user(request))]
    return render(request, "deployments/dashboard.html", {
        "runtimes": _runtimes(),
        "active": [row for row in rows if not row["deployment"].is_ended],
        "released": [row for row in rows if row["deployment"].is_ended][:10],
    })


@require_safe
@login_required
def deployment_page(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _mine(request, pk)
    if deployment.is_pending:  # each refresh of the waiting page may hand it a slot
        services.deployments_serve_waiting(runtime_name=deployment.runtime_name)
        deployment.refresh_from_db()
    files: list[dict[str, object]] = []
    logs: tuple[list[str], str] | None = None
    if deployment.is_active:
        files = _read(request, lambda: services.deployment_files(deployment=deployment)) or []
        logs = _read(request, lambda: services.deployment_log_follow(deployment=deployment,
                                                                     tail=LOG_LINES))
    return render(request, "deployments/deployment.html", {
        **_row(request, deployment),
        "last_recovery": selectors.deployment_last_recovery(deployment=deployment),
        "expiry": lifetimes.deployment_expiry_warning(deployment=deployment),
        "files": files,
        "logs": logs[0] if logs else [],
        "log_cursor": logs[1] if logs else "",
        "upload_form": UploadForm(),
        "apps_domain": settings.PAAS_APPS_DOMAIN,
    })


# --- actions ------------------------------------------------------------------------------
@require_POST
@login_required
def deployment_launch(request: HttpRequest) -> HttpResponse:
    form = LaunchForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a runtime to launch.")
        return redirect("dashboard")
    try:
        deployment = services.deployment_create(
            user=_user(request), runtime_name=form.cleaned_data["runtime"])
    except PaasError as exc:
        messages.error(request, _explain(exc))
        return redirect("dashboard")
    if deployment.is_pending:
        messages.info(request, f"Your {deployment.runtime_name} container is being prepared; "
                               "this page refreshes by itself.")
    else:
        messages.success(request, f"Your {deployment.runtime_name} container is running on "
                                  f"port {deployment.port}. Upload your files below.")
    return redirect("deployment", pk=deployment.pk)


@require_POST
@login_required
def deployment_upload(request: HttpRequest, pk: int) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)

    def upload(deployment: Deployment) -> str:
        if not form.is_valid():
            raise PaasError(" ".join(str(msg) for errs in form.errors.values() for msg in errs))
        stored = services.deployment_upload(
            deployment=deployment, path=form.cleaned_data["path"],
            uploads=[(f.name or "", f) for f in form.cleaned_data["file"]])
        return f"Uploaded {len(stored)} file{'s' if len(stored) != 1 else ''}; they are live."

    return _act(request, pk, upload)


@require_POST
@login_required
def deployment_file_delete(request: HttpRequest, pk: int) -> HttpResponse:
    form = FileDeleteForm(request.POST)

    def delete(deployment: Deployment) -> str:
        if not form.is_valid():
            raise PaasError("Choose a file to delete.")
        services.deployment_file_delete(deployment=deployment, path=form.cleaned_data["path"])
        return f"Deleted {form.cleaned_data['path']}."

    return _act(request, pk, delete)


@require_POST
@login_required
def deployment_restart(request: HttpRequest, pk: int) -> HttpResponse:
    def restart(deployment: Deployment) -> str:
        if services.deployment_restart(deployment=deployment):
            return "Restarted."
        return "Your container is being replaced right now; it starts fresh anyway."

    return _act(request, pk, restart)


@require_POST
@login_required
def deployment_alias(request: HttpRequest, pk: int) -> HttpResponse:
    form = AliasForm(request.POST)

    def name(deployment: Deployment) -> str:
        if not form.is_valid():
            raise PaasError("A name has at most 63 characters.")
        alias = form.cleaned_data["alias"]
        services.deployment_alias_set(deployment=deployment, alias=alias)
        return (f"Named {alias}: the address is live in a moment." if alias
                else "Name removed.")

    return _act(request, pk, name)


@require_POST
@login_required
def deployment_extend(request: HttpRequest, pk: int) -> HttpResponse:
    def extend(deployment: Deployment) -> str:
        lifetimes.deployment_extend(deployment=deployment)
        return "Extended: your container stays longer."

    return _act(request, pk, extend)


@login_required
def deployment_release(request: HttpRequest, pk: int) -> HttpResponse:
    """POST with ``confirmed=yes`` releases (the page's button sets it after a JS
    ``confirm()``); anything else shows the confirmation page."""
    deployment = _mine(request, pk)
    if deployment.is_ended:
        messages.info(request, "This deployment is already released.")
        return redirect("deployment", pk=pk)
    if request.method != "POST" or not ReleaseForm(request.POST).is_confirmed:
        return render(request, "deployments/release_confirm.html", _row(request, deployment))

    def release(deployment: Deployment) -> str:
        services.deployment_release(deployment=deployment)
        return "Released. The container and your files are destroyed."

    return _act(request, pk, release)


# --- helpers ------------------------------------------------------------------------------
def _user(request: HttpRequest) -> AbstractBaseUser:
    user = request.user
    assert isinstance(user, AbstractBaseUser)  # login_required let it in
    return user


def _mine(request: HttpRequest, pk: int) -> Deployment:
    """One of the user's deployments; someone else's is a 404 like a missing one."""
    try:
        return selectors.deployment_get_for_user(user=_user(request), deployment_id=pk)
    except NotFound:
        raise Http404("No such deployment") from None


def _act(request: HttpRequest, pk: int, action: Callable[[Deployment], str]) -> HttpResponse:
    """Run one action on one of the user's deployments, say how it went, go back to it."""
    deployment = _mine(request, pk)
    try:
        messages.success(request, action(deployment))
    except PaasError as exc:
        messages.error(request, _explain(exc))
    return redirect("deployment", pk=deployment.pk)


def _read(request: HttpRequest, read: Callable[[], Any]) -> Any:
    """A read for the page; a failure (engine down, released meanwhile) shows as a
    warning, and the page still renders."""
    try:
        return read()
    except PaasError as exc:
        messages.warning(request, _explain(exc))
        return None


def _explain(exc: PaasError) -> str:
    text = capfirst(exc.detail.rstrip("."))
    if isinstance(exc, UnsafeUpload):
        return f"Unsafe upload rejected: {text}. Nothing was stored."
    if isinstance(exc, UploadTooLarge):
        return f"File too large: {text}. Nothing was stored."
    return f"{text}."


def _runtimes() -> list[dict[str, Any]]:
    return [{**runtime, "title": RUNTIME_GUIDE.get(runtime["name"], (runtime["name"], ""))[0],
             "hint": RUNTIME_GUIDE.get(runtime["name"], ("", ""))[1]}
            for runtime in selectors.runtimes_available()]


def _row(request: HttpRequest, deployment: Deployment) -> dict[str, Any]:
    return {"deployment": deployment, "state": deployment.state,
            "url": selectors.deployment_url(deployment=deployment,
                                            request_host=request.get_host())}
