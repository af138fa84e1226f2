"""Account pages: register, log in, log out. Logging in goes through
``authenticate(request=...)``, so django-axes counts failures and locks out exactly as
it does for the API (``accounts.lockout``)."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.models import User
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.forms import RegisterForm
from accounts.services import user_register

# Two backends are configured (axes, model); a user we just created is the model's.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def register(request: HttpRequest) -> HttpResponse:
    """Create the account, log it in and go to the dashboard."""
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = user_register(username=form.cleaned_data["username"],
                             email=form.cleaned_data["email"],
                             password=form.cleaned_data["password1"])
        login(request, cast(User, user), backend=MODEL_BACKEND)
        messages.success(request, f"Welcome, {user.get_username()}! Pick a runtime to launch.")
        return redirect("dashboard")
    return render(request, "accounts/register.html", {"form": form})


class PageLoginView(LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    messages.info(request, "You are logged out.")
    return redirect("landing")
