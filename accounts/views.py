"""Account pages: register, log in, log out. Logging in goes through
``authenticate(request=...)``, so django-axes counts failures and locks out exactly as
it does for the API (``accounts.lockout``)."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.models import AbstractBaseUser, User
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.errors import InviteInvalid, InviteRequired, UsernameTaken
from accounts.forms import RegisterForm
from accounts.models import SignupMode
from accounts.selectors import signup_mode, user_admitted
from accounts.services import user_register
from accounts.throttles import signup_allowed

# Two backends are configured (axes, model); a user we just created is the model's.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def register(request: HttpRequest) -> HttpResponse:
    """Create the account under the sign-up policy, log it in and go to the dashboard.
    Sign-ups per client address are limited like the API's (429)."""
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = RegisterForm(request.POST or None)
    context = {"form": form, "invite_only": signup_mode() == SignupMode.INVITE}
    if request.method != "POST":
        return render(request, "accounts/register.html", context)
    allowed, wait = signup_allowed(request)
    if not allowed:
        minutes = max(1, round((wait or 60) / 60))
        form.add_error(None, f"Too many sign-ups from your address; try again in about "
                             f"{minutes} minute(s), or sign up with an invite code.")
        return render(request, "accounts/register.html", context, status=429)
    if form.is_valid():
        try:
            user = user_register(username=form.cleaned_data["username"],
                                 email=form.cleaned_data["email"],
                                 password=form.cleaned_data["password1"],
                                 invite_code=form.cleaned_data["invite_code"])
        except (InviteRequired, InviteInvalid) as exc:
            form.add_error("invite_code", f"{exc.detail[:1].upper()}{exc.detail[1:]}.")
        except UsernameTaken as exc:  # a racing registration took the name
            form.add_error("username", exc.detail)
        else:
            login(request, cast(User, user), backend=MODEL_BACKEND)
            _welcome(request, user)
            return redirect("dashboard")
    return render(request, "accounts/register.html", context)


def _welcome(request: HttpRequest, user: AbstractBaseUser) -> None:
    if user_admitted(user=user):
        messages.success(request, f"Welcome, {user.get_username()}! Pick a runtime to launch.")
    else:
        messages.info(request, f"Welcome, {user.get_username()}! Your account waits for "
                               "staff approval; you can launch once it is approved.")


class PageLoginView(LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    messages.info(request, "You are logged out.")
    return redirect("landing")
